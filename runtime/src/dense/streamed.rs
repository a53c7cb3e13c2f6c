//! Dense passes at small batches, reading the weight matrix once.
//!
//! With `n` samples a dense pass reads each weight `n` times. The GEMM packs
//! the whole weight matrix first, which at small `n` costs more than the
//! product; here the weights stream from memory once, in blocks, while the
//! few samples' rows stay in L1:
//! - forward: tasks own blocks of output rows; each weight row meets all
//!   samples through the inputs in blocks of `K_BLOCK`, so the samples'
//!   blocks stay in L1 while the weights stream; a single sample takes four
//!   weight rows at a time, so four streams are in flight;
//! - backward-data: tasks own blocks of input columns; each weight row's
//!   slice is added, scaled by `dy`, into every sample's slice of `dx`.
//!
//! Results go through a transposed or blocked scratch buffer (the tasks'
//! shares of `y` and `dx` are not contiguous), then into place with the
//! bias, activation or ReLU mask.

use super::Dense;
use crate::error::{check_len, LenError};
use crate::gemm::{Activation, Par};
use crate::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;

/// Weight rows per forward task.
const ROWS: usize = 16;
/// Inputs per block of the forward: every sample's block fits in L1.
const K_BLOCK: usize = 2048;
/// Input columns per backward-data task: every sample's slice of `dx`
/// fits in L1.
const COLS: usize = 1024;
/// Below this many weights, one thread does it all.
const PARALLEL_WEIGHTS: usize = 1 << 16;

thread_local! {
    /// `yᵀ` or the blocked `dx`, on the calling thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    crate::scratch::with(&SCRATCH, len, f)
}

fn parallel(s: &Dense, par: Par) -> bool {
    par == Par::Rayon && s.input * s.output >= PARALLEL_WEIGHTS
}

/// `y = act(x·Wᵀ + b)` by streaming the weights, on the kernels of `isa`
/// (the portable ones if the CPU lacks it).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    s: &Dense,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    s.check_forward("dense_forward (streamed)", x, weight, bias, y)?;
    if s.n > 0 && s.input > 0 && s.output > 0 {
        forward_checked(s, isa, x, weight, bias, activation, y, par);
    } else {
        // No inputs: every output is act(bias); no outputs: nothing to do.
        for row in y.chunks_exact_mut(s.output.max(1)) {
            for (o, v) in row.iter_mut().enumerate() {
                *v = activation.apply(bias.map_or(0.0, |b| b[o]));
            }
        }
    }
    Ok(())
}

/// `dx = dy·W`, zeroed where `relu_mask ≤ 0`, by streaming the weights on
/// the kernels of `isa`.
pub fn backward_data(
    s: &Dense,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    s.check("dense_backward_data (streamed)", dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len("dense_backward_data (streamed)", "relu_mask", m.len(), s.n * s.input)?;
    }
    if s.n > 0 && s.input > 0 && s.output > 0 {
        backward_data_checked(s, isa, dy, weight, relu_mask, dx, par);
    } else {
        dx.fill(0.0);
    }
    Ok(())
}

/// [`forward`] on checked, non-empty arguments.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_checked(
    s: &Dense,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    with_scratch(s.output * s.n, |yt| {
        let task = |(c, out): (usize, &mut [f32])| forward_rows(isa, s, x, weight, c * ROWS, out);
        if parallel(s, par) {
            yt.par_chunks_mut(ROWS * s.n).enumerate().for_each(task);
        } else {
            yt.chunks_mut(ROWS * s.n).enumerate().for_each(task);
        }
        for (o, col) in yt.chunks_exact(s.n).enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            for (sample, &v) in col.iter().enumerate() {
                y[sample * s.output + o] = activation.apply(v + b);
            }
        }
    });
}

/// [`backward_data`] on checked, non-empty arguments.
pub(super) fn backward_data_checked(
    s: &Dense,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) {
    with_scratch(s.input * s.n, |blocks| {
        let task = |(b, out): (usize, &mut [f32])| backward_cols(isa, s, dy, weight, b * COLS, out);
        if parallel(s, par) {
            blocks.par_chunks_mut(COLS * s.n).enumerate().for_each(task);
        } else {
            blocks.chunks_mut(COLS * s.n).enumerate().for_each(task);
        }
        for (b, block) in blocks.chunks(COLS * s.n).enumerate() {
            let width = block.len() / s.n;
            for (sample, src) in block.chunks_exact(width).enumerate() {
                let at = sample * s.input + b * COLS;
                let dst = &mut dx[at..at + width];
                dst.copy_from_slice(src);
                if let Some(mask) = relu_mask {
                    for (d, &m) in dst.iter_mut().zip(&mask[at..at + width]) {
                        if m <= 0.0 {
                            *d = 0.0;
                        }
                    }
                }
            }
        }
    });
}

fn forward_rows(isa: Isa, s: &Dense, x: &[f32], weight: &[f32], row0: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa.if_supported() {
        // SAFETY: `if_supported` keeps only ISAs the CPU has.
        Isa::Avx512 => return unsafe { forward_rows_avx512(s, x, weight, row0, out) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { forward_rows_avx2(s, x, weight, row0, out) },
        Isa::Portable => {}
    }
    let _ = isa;
    forward_rows_generic::<false>(s, x, weight, row0, out);
}

fn backward_cols(isa: Isa, s: &Dense, dy: &[f32], weight: &[f32], col0: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa.if_supported() {
        // SAFETY: `if_supported` keeps only ISAs the CPU has.
        Isa::Avx512 => return unsafe { backward_cols_avx512(s, dy, weight, col0, out) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { backward_cols_avx2(s, dy, weight, col0, out) },
        Isa::Portable => {}
    }
    let _ = isa;
    backward_cols_generic::<false>(s, dy, weight, col0, out);
}

/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_rows_avx512(s: &Dense, x: &[f32], w: &[f32], row0: usize, out: &mut [f32]) {
    forward_rows_generic::<true>(s, x, w, row0, out);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_rows_avx2(s: &Dense, x: &[f32], w: &[f32], row0: usize, out: &mut [f32]) {
    forward_rows_generic::<true>(s, x, w, row0, out);
}

/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn backward_cols_avx512(s: &Dense, dy: &[f32], w: &[f32], col0: usize, out: &mut [f32]) {
    backward_cols_generic::<true>(s, dy, w, col0, out);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_cols_avx2(s: &Dense, dy: &[f32], w: &[f32], col0: usize, out: &mut [f32]) {
    backward_cols_generic::<true>(s, dy, w, col0, out);
}

/// `out[r][sample] = ⟨W[row0 + r], x[sample]⟩` for the rows of `out`
/// (`[rows][n]`). No closures inside: they would not inherit the caller's
/// target features.
#[inline(always)]
fn forward_rows_generic<const FMA: bool>(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    row0: usize,
    out: &mut [f32],
) {
    let rows = out.len() / s.n;
    out.fill(0.0);
    let mut k0 = 0;
    while k0 < s.input {
        let kb = K_BLOCK.min(s.input - k0);
        let mut r = 0;
        if s.n == 1 {
            // One sample: four weight rows at a time, four memory streams
            // in flight and each load of x feeding four products.
            let xs = &x[k0..][..kb];
            while r + 4 <= rows {
                let w = |i: usize| &weight[(row0 + r + i) * s.input + k0..][..kb];
                let d = dot4::<FMA>([w(0), w(1), w(2), w(3)], xs);
                for (i, v) in d.into_iter().enumerate() {
                    out[r + i] += v;
                }
                r += 4;
            }
        }
        for r in r..rows {
            let w = &weight[(row0 + r) * s.input + k0..][..kb];
            let sums = &mut out[r * s.n..][..s.n];
            let xs = |sample: usize| &x[sample * s.input + k0..][..kb];
            let mut sample = 0;
            while sample + 2 <= s.n {
                let (a, b) = dot2::<FMA>(w, xs(sample), xs(sample + 1));
                sums[sample] += a;
                sums[sample + 1] += b;
                sample += 2;
            }
            if sample < s.n {
                sums[sample] += dot::<FMA>(w, xs(sample));
            }
        }
        k0 += kb;
    }
}

/// `(⟨w, x0⟩, ⟨w, x1⟩)`, each load of `w` feeding both.
#[inline(always)]
fn dot2<const FMA: bool>(w: &[f32], x0: &[f32], x1: &[f32]) -> (f32, f32) {
    const L: usize = 32;
    let (mut a0, mut a1) = ([0.0f32; L], [0.0f32; L]);
    let (wc, wr) = w.as_chunks::<L>();
    let ((c0, r0), (c1, r1)) = (x0.as_chunks::<L>(), x1.as_chunks::<L>());
    for ((wv, u), v) in wc.iter().zip(c0).zip(c1) {
        for l in 0..L {
            if FMA {
                a0[l] = wv[l].mul_add(u[l], a0[l]);
                a1[l] = wv[l].mul_add(v[l], a1[l]);
            } else {
                a0[l] += wv[l] * u[l];
                a1[l] += wv[l] * v[l];
            }
        }
    }
    let t0: f32 = wr.iter().zip(r0).map(|(w, x)| w * x).sum();
    let t1: f32 = wr.iter().zip(r1).map(|(w, x)| w * x).sum();
    (reduce(&mut a0) + t0, reduce(&mut a1) + t1)
}

/// `⟨w[i], x⟩` for four rows `w[i]`, each load of `x` feeding all four.
#[inline(always)]
fn dot4<const FMA: bool>(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    const L: usize = 32;
    let mut acc = [[0.0f32; L]; 4];
    let (xc, xr) = x.as_chunks::<L>();
    let [(w0, r0), (w1, r1), (w2, r2), (w3, r3)] = w.map(|w| w.as_chunks::<L>());
    for ((((xv, v0), v1), v2), v3) in xc.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        multiply_add::<FMA, L>(&mut acc[0], v0, xv);
        multiply_add::<FMA, L>(&mut acc[1], v1, xv);
        multiply_add::<FMA, L>(&mut acc[2], v2, xv);
        multiply_add::<FMA, L>(&mut acc[3], v3, xv);
    }
    let mut out = [0.0f32; 4];
    for ((o, a), wr) in out.iter_mut().zip(&mut acc).zip([r0, r1, r2, r3]) {
        let tail: f32 = wr.iter().zip(xr).map(|(w, x)| w * x).sum();
        *o = reduce(a) + tail;
    }
    out
}

/// `a += w·x` lane by lane (a function, not a closure: a closure would not
/// inherit the caller's target features).
#[inline(always)]
fn multiply_add<const FMA: bool, const L: usize>(a: &mut [f32; L], w: &[f32; L], x: &[f32; L]) {
    for l in 0..L {
        a[l] = if FMA { w[l].mul_add(x[l], a[l]) } else { a[l] + w[l] * x[l] };
    }
}

/// `Σ acc` by pairwise halving, each step one vector add: a plain `sum()`
/// would be `acc.len()` dependent scalar adds, slower than the products.
#[inline(always)]
fn reduce<const L: usize>(acc: &mut [f32; L]) -> f32 {
    let mut width = L / 2;
    while width >= 1 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `⟨w, x⟩` in 64 partial sums: four vector registers of independent
/// multiply-add chains, so the adds' latency does not serialise them.
#[inline(always)]
fn dot<const FMA: bool>(w: &[f32], x: &[f32]) -> f32 {
    const L: usize = 64;
    let mut acc = [0.0f32; L];
    let (wc, wr) = w.as_chunks::<L>();
    let (xc, xr) = x.as_chunks::<L>();
    for (wv, xv) in wc.iter().zip(xc) {
        for l in 0..L {
            acc[l] = if FMA { wv[l].mul_add(xv[l], acc[l]) } else { acc[l] + wv[l] * xv[l] };
        }
    }
    let tail: f32 = wr.iter().zip(xr).map(|(w, x)| w * x).sum();
    reduce(&mut acc) + tail
}

/// `out[sample] = Σ_o dy[sample][o] · W[o][col0..col0 + width]`, `out`
/// being `[n][width]`.
#[inline(always)]
fn backward_cols_generic<const FMA: bool>(
    s: &Dense,
    dy: &[f32],
    weight: &[f32],
    col0: usize,
    out: &mut [f32],
) {
    let width = out.len() / s.n;
    out.fill(0.0);
    let row = |o: usize| &weight[o * s.input + col0..][..width];
    let mut o = 0;
    // Four weight rows at a time: each pass over a sample's slice of dx
    // does four multiply-adds per load and store of it.
    while o + 4 <= s.output {
        let (w0, w1, w2, w3) = (row(o), row(o + 1), row(o + 2), row(o + 3));
        for (sample, acc) in out.chunks_exact_mut(width).enumerate() {
            let g = &dy[sample * s.output + o..][..4];
            let (g0, g1, g2, g3) = (g[0], g[1], g[2], g[3]);
            for ((((a, &a0), &a1), &a2), &a3) in acc.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                *a = if FMA {
                    g3.mul_add(a3, g2.mul_add(a2, g1.mul_add(a1, g0.mul_add(a0, *a))))
                } else {
                    *a + g0 * a0 + g1 * a1 + g2 * a2 + g3 * a3
                };
            }
        }
        o += 4;
    }
    while o < s.output {
        let w = row(o);
        for (sample, acc) in out.chunks_exact_mut(width).enumerate() {
            let g = dy[sample * s.output + o];
            for (a, &wv) in acc.iter_mut().zip(w) {
                *a = if FMA { g.mul_add(wv, *a) } else { *a + g * wv };
            }
        }
        o += 1;
    }
}
