//! The weight gradient of a 3x3 stride-1 conv by Winograd F(4x4, 3x3).
//!
//! With `y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A` per tile, the transposition principle
//! gives the gradient of the 3x3 weights `g` from one tile as
//! `Gᵀ[(A dy Aᵀ) ⊙ (Bᵀ d B)]G`, and summed over all tiles of all samples,
//! `dW = Gᵀ [Σ_t (A dy_t Aᵀ) ⊙ (Bᵀ d_t B)] G`. The inner sum is, per point ξ,
//! a product reduced over tiles: `W'[ξ][k][c] = Σ_t DY[ξ][k][t] · V[ξ][c][t]`,
//! with `V` the same transformed input tiles as the forward pass.
//!
//! Chunks of samples split among tasks; each task sums its chunks into its
//! own `W'`, the partial sums are added, and one inverse transform per
//! channel pair gives `dW`.

use super::super::{with_columns, with_partials, Conv2d};
use super::{transform_inputs, Isa, Lanes, Layout, Problem, AVX2, AVX512, LANES, PORTABLE};
use super::{GRAD_CHUNK_TILES, POINTS, TILE, WIN};
use crate::gemm::Par;
use rayon::prelude::*;

/// `dweight = Σ_samples` of the weight gradient, overwritten, on the
/// kernels of `isa` (supported by the CPU, or the portable ones run).
pub(in crate::conv) fn run(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    par: Par,
) {
    let p = Problem::forward(s);
    let isa = super::usable(&p, isa);
    let threads = par.threads();
    let samples = p.chunk_samples(GRAD_CHUNK_TILES, threads);
    let chunks = p.n.div_ceil(samples);
    let tasks = threads.min(chunks).max(1);
    let wlen = POINTS * p.cin * p.cout;
    let (in_len, out_len) = (p.cin * p.h * p.w, p.cout * p.oh() * p.ow());
    with_partials(tasks * wlen, |partials| {
        let job = |(task, part): (usize, &mut [f32])| {
            part.fill(0.0);
            for chunk in task * chunks / tasks..(task + 1) * chunks / tasks {
                let first = chunk * samples;
                let count = samples.min(p.n - first);
                let x = &x[first * in_len..][..count * in_len];
                let dy = &dy[first * out_len..][..count * out_len];
                with_columns(p.scratch_len(count), |scratch| {
                    dispatch(isa, &p, x, dy, count, part, scratch);
                });
            }
        };
        if tasks > 1 {
            partials.par_chunks_mut(wlen).enumerate().for_each(job);
        } else {
            job((0, partials));
        }
        let (sum, rest) = partials.split_at_mut(wlen);
        for part in rest.chunks_exact(wlen) {
            for (a, &b) in sum.iter_mut().zip(part) {
                *a += b;
            }
        }
        inverse(&p, sum, dweight);
    });
}

fn dispatch(
    isa: Isa,
    p: &Problem,
    x: &[f32],
    dy: &[f32],
    samples: usize,
    part: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `run` keeps only ISAs the CPU supports.
        Isa::Avx512 => return unsafe { chunk_avx512(p, x, dy, samples, part, scratch) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { chunk_avx2(p, x, dy, samples, part, scratch) },
        Isa::Portable => {}
    }
    let _ = isa;
    chunk::<PORTABLE>(p, x, dy, samples, part, scratch);
}

/// [`chunk`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_avx512(
    p: &Problem,
    x: &[f32],
    dy: &[f32],
    samples: usize,
    part: &mut [f32],
    scratch: &mut [f32],
) {
    chunk::<AVX512>(p, x, dy, samples, part, scratch);
}

/// [`chunk`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(
    p: &Problem,
    x: &[f32],
    dy: &[f32],
    samples: usize,
    part: &mut [f32],
    scratch: &mut [f32],
) {
    chunk::<AVX2>(p, x, dy, samples, part, scratch);
}

/// Adds one chunk's `W'[ξ][k][c]` into `part`.
#[inline(always)]
fn chunk<const KIND: u8>(
    p: &Problem,
    x: &[f32],
    dy: &[f32],
    samples: usize,
    part: &mut [f32],
    scratch: &mut [f32],
) {
    let lay = Layout::new(p, samples);
    let [v_len, dy_len, pad_len, stage_len] = lay.lens(p);
    let (v, rest) = scratch.split_at_mut(v_len);
    let (dyt, rest) = rest.split_at_mut(dy_len);
    let (padded, rest) = rest.split_at_mut(pad_len);
    let staged = &mut rest[..stage_len];
    transform_inputs::<KIND>(p, &lay, x, padded, v);

    // dy into whole tiles, zero past its edges and in the spare sample that
    // lanes past the last tile read, so those add nothing; read in place
    // when it is whole tiles already.
    let dy_tiles: &[f32] = if lay.in_place(p) {
        dy
    } else {
        staged.fill(0.0);
        let (oh, ow) = (p.oh(), p.ow());
        for (plane, src) in staged.chunks_exact_mut(lay.out_plane()).zip(dy.chunks_exact(oh * ow)) {
            for (row, src) in plane.chunks_exact_mut(lay.out_row).zip(src.chunks_exact(ow)) {
                row[..ow].copy_from_slice(src);
            }
        }
        staged
    };
    for t0 in (0..lay.tiles).step_by(LANES) {
        let (_, out) = lay.offsets(p, t0);
        for k in 0..p.cout {
            let plane = &dy_tiles[k * lay.out_plane()..];
            let at = |xi: usize| xi * lay.m_point(p) + k * lay.cols + t0;
            #[cfg(target_arch = "x86_64")]
            if KIND == AVX512 {
                // SAFETY: KIND is AVX512 only inside `chunk_avx512`, whose
                // caller checked that the CPU has AVX-512F.
                unsafe { super::x86::dy_tiles_avx512(plane, &out, lay.out_row, dyt, at) };
                continue;
            }
            let mut d = [[[0.0; LANES]; TILE]; TILE];
            for (a, drow) in d.iter_mut().enumerate() {
                for (b, pt) in drow.iter_mut().enumerate() {
                    for (l, x) in pt.iter_mut().enumerate() {
                        *x = plane[out[l] + a * lay.out_row + b];
                    }
                }
            }
            for (i, row) in dy_2d(&d).iter().enumerate() {
                for (j, lanes) in row.iter().enumerate() {
                    dyt[at(i * WIN + j)..][..LANES].copy_from_slice(lanes);
                }
            }
        }
    }

    for xi in 0..POINTS {
        let a = &dyt[xi * lay.m_point(p)..][..p.cout * lay.cols];
        let b = &v[xi * lay.v_point(p)..][..p.cin * lay.cols];
        let out = &mut part[xi * p.cout * p.cin..][..p.cout * p.cin];
        #[cfg(target_arch = "x86_64")]
        if KIND == AVX512 {
            // SAFETY: as above.
            unsafe { super::x86::dots_avx512(a, b, lay.cols, p.cout, p.cin, out) };
            continue;
        }
        dots(a, b, lay.cols, out);
    }
}

/// `out[k][c] += ⟨a[k], b[c]⟩` over rows of `cols` floats (a multiple of
/// [`LANES`]).
#[inline(always)]
fn dots(a: &[f32], b: &[f32], cols: usize, out: &mut [f32]) {
    let cin = b.len() / cols;
    for (ka, orow) in a.chunks_exact(cols).zip(out.chunks_exact_mut(cin)) {
        for (cb, o) in b.chunks_exact(cols).zip(orow) {
            let mut acc: Lanes = [0.0; LANES];
            for (x, y) in ka.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += x[l] * y[l];
                }
            }
            *o += acc.iter().sum::<f32>();
        }
    }
}

/// A·y for the 6x4 A (the transpose of the output transform's Aᵀ):
/// `[y0, Σy, y0 − y1 + y2 − y3, y0 + 2y1 + 4y2 + 8y3, y0 − 2y1 + 4y2 − 8y3, y3]`.
#[inline(always)]
fn dy_1d(y: [Lanes; TILE]) -> [Lanes; WIN] {
    let [y0, y1, y2, y3] = y;
    let mut o = [[0.0; LANES]; WIN];
    for l in 0..LANES {
        let (s02, s13) = (y0[l] + y2[l], y1[l] + y3[l]);
        let (e, f) = (y0[l] + 4.0 * y2[l], 2.0 * y1[l] + 8.0 * y3[l]);
        o[0][l] = y0[l];
        o[1][l] = s02 + s13;
        o[2][l] = s02 - s13;
        o[3][l] = e + f;
        o[4][l] = e - f;
        o[5][l] = y3[l];
    }
    o
}

/// `A dy Aᵀ` of a 4x4 block of dy: columns first, then rows.
#[inline(always)]
fn dy_2d(d: &[[Lanes; TILE]; TILE]) -> [[Lanes; WIN]; WIN] {
    let mut t = [[[0.0; LANES]; TILE]; WIN];
    for j in 0..TILE {
        let col = dy_1d([d[0][j], d[1][j], d[2][j], d[3][j]]);
        for i in 0..WIN {
            t[i][j] = col[i];
        }
    }
    let mut out = [[[0.0; LANES]; WIN]; WIN];
    for i in 0..WIN {
        out[i] = dy_1d(t[i]);
    }
    out
}

/// Gᵀ·w for the 3x6 Gᵀ (the transpose of the weight transform's G).
fn inverse_1d(w: [f32; WIN]) -> [f32; 3] {
    let [w0, w1, w2, w3, w4, w5] = w;
    let (s12, d12, s34, d34) = (w1 + w2, w2 - w1, w3 + w4, w3 - w4);
    [w0 / 4.0 - s12 / 6.0 + s34 / 24.0, d12 / 6.0 + d34 / 12.0, (s34 - s12) / 6.0 + w5]
}

/// `dW[k][c] = Gᵀ W'[·][k][c] G`, the 6x6 sums back to 3x3 taps.
fn inverse(p: &Problem, sum: &[f32], dweight: &mut [f32]) {
    let pairs = p.cout * p.cin;
    for (pair, taps) in dweight.chunks_exact_mut(9).enumerate() {
        let w = |xi: usize| sum[xi * pairs + pair];
        let mut t = [[0.0f32; 3]; WIN];
        for (i, ti) in t.iter_mut().enumerate() {
            *ti = inverse_1d(std::array::from_fn(|j| w(i * WIN + j)));
        }
        for b in 0..3 {
            let col = inverse_1d(std::array::from_fn(|i| t[i][b]));
            for (a, &v) in col.iter().enumerate() {
                taps[a * 3 + b] = v;
            }
        }
    }
}
