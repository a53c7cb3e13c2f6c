//! The im2col passes as GEMMs over a chunk of samples: one sample, or
//! several side by side for small output planes.
//!
//! With one GEMM per sample, a plane of 100 outputs (LeNet-5's conv2) makes
//! GEMMs of 100 columns: a third of the last panel is padding, and the
//! weights are packed again for every sample. [`samples_per_gemm`] picks
//! such shapes; their im2col matrices then sit side by side,
//! `[patch, cnt·plane]`, so one GEMM covers them all, and `dy` is gathered
//! into (the forward output scattered out of) the matching `[og, cnt·plane]`
//! layout, a copy of one tensor. With one sample, `dy` and the output are
//! used in place.

use super::im2col::{col2im, im2col, Im2colPanels};
use super::tuning::{
    IM2COL_BATCHED_MAX_COLUMNS, IM2COL_BATCHED_MAX_GROUP_OUTPUTS, IM2COL_BATCHED_MAX_PLANE,
};
use super::{epilogue, pointwise, with_columns, Conv2d};
use crate::gemm::{sgemm, sgemm_packed_b, Activation, Epilogue, MatMut, MatRef, Par};

/// Samples whose matrices one GEMM takes side by side: 1 unless the plane
/// is small, and never more than the batch.
pub(super) fn samples_per_gemm(s: &Conv2d) -> usize {
    if s.out_plane() >= IM2COL_BATCHED_MAX_PLANE
        || s.o / s.groups >= IM2COL_BATCHED_MAX_GROUP_OUTPUTS
        || pointwise::applies(s)
    {
        return 1;
    }
    (IM2COL_BATCHED_MAX_COLUMNS / (s.patch() * s.out_plane()).max(1)).clamp(1, s.n.max(1))
}

/// Samples per chunk when `threads` threads share the batch: every thread
/// gets a chunk when the batch allows.
pub(super) fn chunk_samples(s: &Conv2d, threads: usize) -> usize {
    samples_per_gemm(s).min(s.n.div_ceil(threads.max(1))).max(1)
}

/// Floats of per-thread scratch for a chunk of `cnt` samples: the columns
/// (backward passes) or the padded inputs (forward), and for several
/// samples one group's `[og, cnt·plane]` block.
pub(super) fn scratch_len(s: &Conv2d, cnt: usize) -> usize {
    let block = if cnt > 1 { s.o / s.groups } else { 0 };
    let columns_or_inputs = (s.patch() * cnt * s.out_plane()).max(cnt * s.padded_group_len());
    block * cnt * s.out_plane() + columns_or_inputs
}

/// The forward pass of the samples of `x` into `y`. The GEMM fills its
/// panels from the (padded) inputs, as one sample's does
/// ([`Im2colPanels`]); its output block is scattered into `y`.
pub(super) fn forward(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
    let out_len = s.o * plane;
    let cnt = y.len() / out_len;
    let cols = cnt * plane;
    with_columns(scratch_len(s, cnt), |scratch| {
        let (out, pad) = scratch.split_at_mut(og * cols);
        for g in 0..s.groups {
            let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch);
            let (padded, sample_stride) = s.pad_samples(x, cnt, g, pad);
            let b = Im2colPanels { s, padded, sample_stride };
            let epi = epilogue(bias.map(|b| &b[g * og..][..og]), activation);
            let c = MatMut::row_major(&mut out[..og * cols], cols);
            crate::gemm::expect_valid(sgemm_packed_b(
                og, cols, patch, 1.0, w, &b, 0.0, c, &epi, par,
            ));
            for (oc, row) in out.chunks_exact(cols).take(og).enumerate() {
                for (i, src) in row.chunks_exact(plane).enumerate() {
                    y[i * out_len + (g * og + oc) * plane..][..plane].copy_from_slice(src);
                }
            }
        }
    });
}

/// Group `g` of the `cnt` samples of `dy` as one `[og, cnt·plane]` matrix:
/// one sample's rows in place, several gathered into `buf`.
fn group_rows<'a>(
    s: &Conv2d,
    dy: &'a [f32],
    g: usize,
    cnt: usize,
    buf: &'a mut [f32],
) -> &'a [f32] {
    let (og, plane) = (s.o / s.groups, s.out_plane());
    let (out_len, cols) = (s.o * plane, cnt * plane);
    if cnt == 1 {
        return &dy[g * og * plane..][..og * plane];
    }
    for (oc, row) in buf.chunks_exact_mut(cols).take(og).enumerate() {
        for (i, dst) in row.chunks_exact_mut(plane).enumerate() {
            dst.copy_from_slice(&dy[i * out_len + (g * og + oc) * plane..][..plane]);
        }
    }
    &buf[..og * cols]
}

/// The backward-data pass of the samples of `dy` into `dx` (overwritten).
pub(super) fn backward_data(s: &Conv2d, dy: &[f32], weight: &[f32], dx: &mut [f32], par: Par) {
    let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
    let in_len = s.c * s.h * s.w;
    let cnt = dx.len() / in_len;
    let cols = cnt * plane;
    dx.fill(0.0);
    with_columns(scratch_len(s, cnt), |scratch| {
        let (col, buf) = scratch.split_at_mut(patch * cols);
        for g in 0..s.groups {
            // dcol [patch, cols] = W_gᵀ [patch, og] · dy_g [og, cols]
            let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch).t();
            let b = MatRef::row_major(group_rows(s, dy, g, cnt, buf), cols);
            let c = MatMut::row_major(col, cols);
            let r = sgemm(patch, cols, og, 1.0, w, b, 0.0, c, &Epilogue::NONE, par);
            crate::gemm::expect_valid(r);
            for (i, dx) in dx.chunks_exact_mut(in_len).take(cnt).enumerate() {
                col2im(s, &col[i * plane..], g, dx, cols);
            }
        }
    });
}

/// `dweight = Σ_{n in samples} dy_n · im2col(x_n)ᵀ`, overwritten, in
/// chunks of [`samples_per_gemm`] samples (one GEMM per sample for most
/// shapes).
pub(super) fn weight_grad(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    samples: std::ops::Range<usize>,
    dweight: &mut [f32],
    par: Par,
) {
    let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * plane);
    let per_gemm = samples_per_gemm(s);
    with_columns(scratch_len(s, per_gemm.min(samples.len())), |scratch| {
        let mut first = samples.start;
        while first < samples.end {
            let cnt = per_gemm.min(samples.end - first);
            let cols = cnt * plane;
            let (col, buf) = scratch.split_at_mut(patch * cols);
            let x = &x[first * in_len..][..cnt * in_len];
            let dy = &dy[first * out_len..][..cnt * out_len];
            // The first chunk overwrites dweight; later ones accumulate.
            let beta = if first == samples.start { 0.0 } else { 1.0 };
            for g in 0..s.groups {
                for (i, x) in x.chunks_exact(in_len).enumerate() {
                    im2col(s, x, g, &mut col[i * plane..], cols);
                }
                // dW_g [og, patch] += dy_g [og, cols] · colᵀ [cols, patch]
                let a = MatRef::row_major(group_rows(s, dy, g, cnt, buf), cols);
                let b = MatRef::row_major(&col[..patch * cols], cols).t();
                let c = MatMut::row_major(&mut dweight[g * og * patch..][..og * patch], patch);
                let r = sgemm(og, patch, cols, 1.0, a, b, beta, c, &Epilogue::NONE, par);
                crate::gemm::expect_valid(r);
            }
            first += cnt;
        }
    });
}
