//! The im2col algorithm, the general case: each pass is a GEMM per sample
//! and group over the unrolled windows (the im2col matrix), with the bias
//! and activation fused into the GEMM's store. The forward pass never
//! writes that matrix out: the GEMM fills its packed B panels straight
//! from the input, zero-padded first into scratch so that every run is a
//! plain copy. Small convs put several samples' matrices side by side in
//! one GEMM instead ([`super::im2col_gemm`]).

use super::{epilogue, im2col_gemm, pointwise, with_columns, Conv2d, ConvAlgo, ConvAlgorithm};
use super::{Pass, Scratch};
use crate::gemm::Par;
use crate::gemm::{sgemm_packed_b, sgemm_prepacked, Activation, MatMut, MatRef, PackB, PackedA};

/// [`ConvAlgo::Im2col`].
#[derive(Debug)]
pub(super) struct Im2col;

impl ConvAlgorithm for Im2col {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Im2col
    }

    fn name(&self) -> &'static str {
        "im2col-gemm"
    }

    fn applies(&self, _s: &Conv2d, _pass: Pass) -> bool {
        true
    }

    fn picks(&self, _s: &Conv2d, _pass: Pass) -> bool {
        true
    }

    fn scratch(&self, s: &Conv2d, _pass: Pass) -> Scratch {
        let per_gemm = im2col_gemm::samples_per_gemm(s);
        // The padded inputs of a chunk, or its columns.
        Scratch { columns: im2col_gemm::scratch_len(s, per_gemm), ..Scratch::default() }
    }

    fn forward(
        &self,
        s: &Conv2d,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        activation: Activation,
        y: &mut [f32],
        par: Par,
    ) {
        forward_samples(s, x, weight, None, bias, activation, y, par);
    }

    fn backward_data(
        &self,
        s: &Conv2d,
        dy: &[f32],
        weight: &[f32],
        relu_mask: Option<&[f32]>,
        dx: &mut [f32],
        par: Par,
    ) {
        let chunk = im2col_gemm::chunk_samples(s, par.threads());
        super::backward_data_chunks(s, chunk, dy, dx, relu_mask, par, |dy, dx, par| {
            // A pointwise conv is its own im2col matrix.
            if pointwise::applies(s) {
                pointwise::backward_data(s, dy, weight, dx, par)
            } else {
                im2col_gemm::backward_data(s, dy, weight, dx, par)
            }
        });
    }

    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        super::weight_grad_tasks(s, dweight, par, |samples, dweight, par| {
            if samples.is_empty() {
                dweight.fill(0.0);
            } else if pointwise::applies(s) {
                pointwise::weight_grad(s, x, dy, samples, dweight, par)
            } else {
                im2col_gemm::weight_grad(s, x, dy, samples, dweight, par)
            }
        });
    }
}

/// The forward pass of the samples of `x`, shared out between the threads
/// in chunks ([`im2col_gemm::chunk_samples`]). `packed`: each group's
/// weights packed once ([`super::ForwardCache`]), for GEMMs that take one
/// sample.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_samples(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let chunk = im2col_gemm::chunk_samples(s, par.threads());
    super::forward_chunks(s, chunk, x, y, par, |x, y, par| {
        forward_chunk(s, x, weight, packed, bias, activation, y, par)
    });
}

/// The im2col forward of a chunk of samples (see [`im2col_gemm`]); one
/// sample fills the GEMM's panels from its (padded) input instead.
#[allow(clippy::too_many_arguments)]
fn forward_chunk(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    if y.len() > s.o * s.out_plane() {
        return im2col_gemm::forward(s, x, weight, bias, activation, y, par);
    }
    forward_one_sample(s, x, weight, packed, bias, activation, y, par);
}

/// One sample's im2col forward: the im2col matrix is never written out, the
/// GEMM asks for its panels, which are filled from the input, zero-padded
/// first so that every run is a plain copy. The weights are `packed` when
/// given, else packed by each GEMM from `weight`.
#[allow(clippy::too_many_arguments)]
fn forward_one_sample(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
    with_columns(s.padded_group_len(), |buf| {
        for g in 0..s.groups {
            let y = MatMut::row_major(&mut y[g * og * plane..][..og * plane], plane);
            let epi = epilogue(bias.map(|b| &b[g * og..][..og]), activation);
            let (padded, sample_stride) = s.pad_samples(x, 1, g, buf);
            let b = Im2colPanels { s, padded, sample_stride };
            let r = match packed {
                Some(packed) => sgemm_prepacked(&packed[g], plane, &b, 0.0, y, &epi, par),
                None => {
                    let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch);
                    sgemm_packed_b(og, plane, patch, 1.0, w, &b, 0.0, y, &epi, par)
                }
            };
            crate::gemm::expect_valid(r);
        }
    });
}

impl Conv2d {
    /// Height and width of an input plane with its zero padding.
    fn padded_dims(&self) -> (usize, usize) {
        (self.h + 2 * self.ph, self.w + 2 * self.pw)
    }

    /// Floats of one group's padded input, which [`Self::pad_samples`] writes
    /// into scratch: none without padding, where the input serves as it is.
    pub(super) fn padded_group_len(&self) -> usize {
        if self.ph == 0 && self.pw == 0 {
            return 0;
        }
        let (hp, wp) = self.padded_dims();
        self.c / self.groups * hp * wp
    }

    /// Group `g` of the first `cnt` samples of `x`, each zero-padded on
    /// every side into `buf` (`cnt` times [`Self::padded_group_len`]
    /// floats), or `x`'s own planes when there is no padding; with the
    /// floats from one sample's planes to the next.
    pub(super) fn pad_samples<'a>(
        &self,
        x: &'a [f32],
        cnt: usize,
        g: usize,
        buf: &'a mut [f32],
    ) -> (&'a [f32], usize) {
        let (cg, in_len, plane) = (self.c / self.groups, self.c * self.h * self.w, self.h * self.w);
        let len = self.padded_group_len();
        if len == 0 {
            return (&x[g * cg * plane..], in_len);
        }
        let (hp, wp) = self.padded_dims();
        let buf = &mut buf[..cnt * len];
        for (dst, x) in buf.chunks_exact_mut(len).zip(x.chunks_exact(in_len)) {
            let planes = &x[g * cg * plane..][..cg * plane];
            for (dst, src) in dst.chunks_exact_mut(hp * wp).zip(planes.chunks_exact(plane)) {
                dst[..self.ph * wp].fill(0.0);
                let rows = dst[self.ph * wp..].chunks_exact_mut(wp).zip(src.chunks_exact(self.w));
                for (row, src) in rows {
                    zero_edges(row, self.pw, self.w);
                    copy_run(&mut row[self.pw..self.pw + self.w], src);
                }
                dst[(self.ph + self.h) * wp..].fill(0.0);
            }
        }
        (buf, len)
    }
}

/// The im2col matrix of one sample's group (as [`im2col`] writes it) as a
/// source of the GEMM's packed B panels, read from the group's input with
/// its padding written out ([`Conv2d::pad_samples`]): every tap of every
/// output then lies inside it, so a panel row is a few plain runs.
///
/// Several samples side by side ([`im2col_gemm`]) are `sample_stride`
/// floats apart in `padded`; their columns follow each other.
pub(super) struct Im2colPanels<'a> {
    pub(super) s: &'a Conv2d,
    pub(super) padded: &'a [f32],
    pub(super) sample_stride: usize,
}

impl PackB for Im2colPanels<'_> {
    fn pack_b(&self, dst: &mut [f32], p0: usize, kc: usize, j0: usize, nc: usize, nr: usize) {
        /// Runs per panel: at most one per column.
        const MAX_RUNS: usize = 64;
        assert!(nr <= MAX_RUNS, "panels of {nr} columns");
        let s = self.s;
        let (ow, plane) = (s.out_w(), s.out_plane());
        let (hp, wp) = s.padded_dims();
        let panels = dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr));
        for (panel, chunk) in panels.enumerate() {
            let first = j0 + panel * nr;
            let cols = nr.min(j0 + nc - first);
            // The panel's columns as runs along output rows: (offset in the
            // panel row, offset of the run's first input in a padded plane,
            // length).
            let mut runs = [(0usize, 0usize, 0usize); MAX_RUNS];
            let (mut count, mut done) = (0, 0);
            while done < cols {
                let (sample, at) = ((first + done) / plane, (first + done) % plane);
                let (oy, ox) = (at / ow, at % ow);
                let len = (ow - ox).min(cols - done);
                let from = sample * self.sample_stride + oy * s.sh * wp + ox * s.sw;
                runs[count] = (done, from, len);
                (count, done) = (count + 1, done + len);
            }
            // The taps of rows p0.. in order, stepped rather than divided
            // out of the row index: three divisions a row cost more than
            // copying the row's runs of 8 (ResNet-20's 64-channel 8x8 convs).
            let (mut ci, mut i, mut j) = s.tap(p0);
            for out in chunk.chunks_exact_mut(nr).take(kc) {
                out[cols..].fill(0.0);
                let tap = &self.padded[ci * hp * wp + i * s.dh * wp + j * s.dw..];
                j += 1;
                if j == s.kw {
                    j = 0;
                    i += 1;
                    if i == s.kh {
                        i = 0;
                        ci += 1;
                    }
                }
                for &(at, from, len) in &runs[..count] {
                    let out = &mut out[at..at + len];
                    if s.sw == 1 {
                        copy_run(out, &tap[from..from + len]);
                    } else {
                        let src = tap[from..].iter().step_by(s.sw);
                        out.iter_mut().zip(src).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
    }
}

/// Unrolls the windows of one sample's group `g` into `col`, a row-major
/// `[C/groups·kh·kw, out_h·out_w]` matrix with rows `ld` floats apart;
/// padding reads as zero.
pub(super) fn im2col(s: &Conv2d, x: &[f32], g: usize, col: &mut [f32], ld: usize) {
    let plane = s.out_plane();
    for r in 0..s.patch() {
        fill_col_row(s, x, g, r, &mut col[r * ld..][..plane]);
    }
}

/// Row `r` of the im2col matrix of one sample's group `g`: the input values
/// that weight `r = (channel, i, j)` multiplies, one per output position.
fn fill_col_row(s: &Conv2d, x: &[f32], g: usize, r: usize, row: &mut [f32]) {
    let (cg, ow) = (s.c / s.groups, s.out_w());
    let (ci, i, j) = s.tap(r);
    let plane = &x[(g * cg + ci) * s.h * s.w..][..s.h * s.w];
    // Stride 1 with this tap's columns inside the input: every output row
    // is one plain run, without fill_row's clipping (which, per run of 10
    // floats in LeNet-5's conv2, cost more than the copy).
    let start = (j * s.dw).checked_sub(s.pw).filter(|&c| s.sw == 1 && c + ow <= s.w);
    for (y, out) in row.chunks_exact_mut(ow).enumerate() {
        match (s.input_row(plane, y, i), start) {
            (Some(src), Some(c)) => copy_run(out, &src[c..c + ow]),
            (Some(src), None) => fill_row(out, src, j * s.dw, s.pw, s.sw),
            (None, _) => out.fill(0.0),
        }
    }
}

/// `out[x] = src[x·stride + offset − pad]`, zero outside `src`. Kept out
/// of line: inlined into [`im2col`], it slowed that function's plain-run
/// loop.
#[inline(never)]
fn fill_row(out: &mut [f32], src: &[f32], offset: usize, pad: usize, stride: usize) {
    let first = offset as isize - pad as isize;
    if stride == 1 {
        // The valid outputs form one contiguous run: copy it in one go.
        let lo = (-first).clamp(0, out.len() as isize) as usize;
        let hi = (src.len() as isize - first).clamp(lo as isize, out.len() as isize) as usize;
        out[..lo].fill(0.0);
        if hi > lo {
            let start = (lo as isize + first) as usize;
            copy_run(&mut out[lo..hi], &src[start..start + (hi - lo)]);
        }
        out[hi..].fill(0.0);
        return;
    }
    for (x, o) in out.iter_mut().enumerate() {
        let i = (x * stride) as isize + first;
        *o = if i >= 0 && (i as usize) < src.len() { src[i as usize] } else { 0.0 };
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row:
/// 10 floats in LeNet-5's conv2), where the call into libc's memmove cost
/// more than the copy. Runs of 8 or more go as 8-float blocks, the last one
/// overlapping the one before.
#[inline(always)]
pub(super) fn copy_run(dst: &mut [f32], src: &[f32]) {
    let len = dst.len();
    if len >= 64 {
        dst.copy_from_slice(src);
    } else if len >= COPY_BLOCK {
        for at in (0..len - COPY_BLOCK).step_by(COPY_BLOCK) {
            copy_block(dst, src, at);
        }
        copy_block(dst, src, len - COPY_BLOCK);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

const COPY_BLOCK: usize = 8;

/// Zeroes `row` outside `left..left + width`. Where each edge fits in
/// 8 floats, the row's first and last 8 are zeroed as whole blocks, for the
/// copy of the run to overwrite: filling the one or two padding floats of
/// each edge called into libc's memset, a visible share of ResNet-20's
/// batch-1 inference (its 8x8 convs' padded rows).
#[inline(always)]
pub(super) fn zero_edges(row: &mut [f32], left: usize, width: usize) {
    let (len, right) = (row.len(), row.len() - left - width);
    if len >= COPY_BLOCK && left <= COPY_BLOCK && right <= COPY_BLOCK {
        let head: &mut [f32; COPY_BLOCK] = (&mut row[..COPY_BLOCK]).try_into().expect("8 floats");
        *head = [0.0; COPY_BLOCK];
        let tail: &mut [f32; COPY_BLOCK] =
            (&mut row[len - COPY_BLOCK..]).try_into().expect("8 floats");
        *tail = [0.0; COPY_BLOCK];
    } else {
        row[..left].fill(0.0);
        row[left + width..].fill(0.0);
    }
}

/// `dst[at..at + 8] = src[at..at + 8]` as one array move.
#[inline(always)]
fn copy_block(dst: &mut [f32], src: &[f32], at: usize) {
    let from: &[f32; COPY_BLOCK] = src[at..at + COPY_BLOCK].try_into().expect("8 floats");
    let to: &mut [f32; COPY_BLOCK] = (&mut dst[at..at + COPY_BLOCK]).try_into().expect("8 floats");
    *to = *from;
}

/// The reverse of [`im2col`]: adds every column entry back into the input
/// position it was read from (padding entries are dropped).
pub(super) fn col2im(s: &Conv2d, col: &[f32], g: usize, dx: &mut [f32], ld: usize) {
    let plane = s.out_plane();
    for r in 0..s.patch() {
        add_col_row(s, &col[r * ld..][..plane], g, r, dx);
    }
}

/// Adds row `r` of an im2col-shaped gradient back into one sample's `dx`.
fn add_col_row(s: &Conv2d, row: &[f32], g: usize, r: usize, dx: &mut [f32]) {
    let (cg, ow) = (s.c / s.groups, s.out_w());
    let (ci, i, j) = (r / (s.kh * s.kw), r / s.kw % s.kh, r % s.kw);
    let plane = &mut dx[(g * cg + ci) * s.h * s.w..][..s.h * s.w];
    // As in `fill_col_row`: an interior tap of a stride-1 conv adds plain runs.
    let start = (j * s.dw).checked_sub(s.pw).filter(|&c| s.sw == 1 && c + ow <= s.w);
    for (y, vals) in row.chunks_exact(ow).enumerate() {
        let ih = (y * s.sh + i * s.dh) as isize - s.ph as isize;
        if ih < 0 || ih >= s.h as isize {
            continue;
        }
        let dst = &mut plane[ih as usize * s.w..][..s.w];
        match start {
            Some(c) => add_run(&mut dst[c..c + ow], vals),
            None => add_row(dst, vals, j * s.dw, s.pw, s.sw),
        }
    }
}

/// `dst += vals`.
#[inline(always)]
fn add_run(dst: &mut [f32], vals: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(vals) {
        *d += v;
    }
}

/// `dst[x·stride + offset − pad] += vals[x]` where that index is inside
/// `dst`: the reverse of [`fill_row`].
fn add_row(dst: &mut [f32], vals: &[f32], offset: usize, pad: usize, stride: usize) {
    let first = offset as isize - pad as isize;
    if stride == 1 {
        // The valid outputs form one contiguous run: a plain vector add.
        let lo = (-first).clamp(0, vals.len() as isize) as usize;
        let hi = (dst.len() as isize - first).clamp(lo as isize, vals.len() as isize) as usize;
        if hi > lo {
            let start = (lo as isize + first) as usize;
            for (d, &v) in dst[start..start + (hi - lo)].iter_mut().zip(&vals[lo..hi]) {
                *d += v;
            }
        }
        return;
    }
    for (x, &v) in vals.iter().enumerate() {
        let i = (x * stride) as isize + first;
        if i >= 0 && (i as usize) < dst.len() {
            dst[i as usize] += v;
        }
    }
}
