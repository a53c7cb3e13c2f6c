//! The dense forward pass from 2 samples on AVX-512 (of any weights up to
//! `MAX_BATCH` samples, of cache-sized ones at any batch; see
//! `preferred`): register-blocked dot products of weight rows with
//! sample rows, both read where they lie.
//!
//! `y = x·Wᵀ` multiplies two matrices that are both contiguous along the
//! inputs (`x [n][in]`, `W [out][in]`). The GEMM's kernels broadcast one
//! operand and load the other in vectors along the outputs, so for this
//! product they pack both, transposing each, and a transposing pack costs
//! far more than the copy it replaces. Here one vector load of a weight row
//! and one of a sample row meet in a multiply-add lane by lane; a tile
//! keeps `ROWS` weight rows × `SAMPLES` samples of such partial sums in
//! registers and adds each one's lanes once, at the end of its block of
//! inputs.
//!
//! The weight rows of a tile stay in L1 while the samples stream past them
//! from L2, so every thread reads all the samples and its share of the
//! weights, once: at a few samples the pass runs at the speed of memory,
//! where the GEMM first packs all the weights (see `preferred`).

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Dense;
use crate::error::LenError;
use crate::gemm::{Activation, Par};
use crate::isa::Isa;
use rayon::prelude::*;
use std::ops::Range;

/// Weight rows per tile: with [`SAMPLES`], 24 accumulator registers of the
/// 32 AVX-512 has, and per 16 inputs eight loads from L1 and three from L2
/// for 24 multiply-adds.
pub(crate) const ROWS: usize = 8;
/// Samples per tile.
pub(crate) const SAMPLES: usize = 3;
/// Inputs per block: a tile's weight rows (32 KB) stay in L1 across all of
/// a thread's samples.
const K_BLOCK: usize = 1024;
/// Up to this many weights (8 MB), the forward pass runs here at any
/// batch; above it, up to [`MAX_BATCH`] samples.
const MAX_WEIGHTS: usize = 1 << 21;
/// With more weights than [`MAX_WEIGHTS`], the GEMM takes batches above
/// this, where its packing of the weights is shared by enough samples.
const MAX_BATCH: usize = 64;
/// Below this many multiply-adds, one thread does it all.
const PARALLEL_MACS: usize = 1 << 20;

/// Whether [`super::dense_forward`] takes this path for `s` on this CPU:
/// only the AVX-512 tile beats the alternatives, and from 2 samples: one
/// sample is as fast streamed four weight rows at a time
/// ([`super::streamed`]), while from 2 samples the streamed pass's blocks
/// of samples no longer stay in L1.
pub(crate) fn preferred(s: &Dense) -> bool {
    Isa::best() == Isa::Avx512 && s.n >= 2 && (s.weight_len() <= MAX_WEIGHTS || s.n <= MAX_BATCH)
}

/// `y = act(x·Wᵀ + b)` by dot products, on the kernels of `isa` (the
/// portable ones if the CPU lacks it).
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
    s.check_forward("dense_forward (dot)", x, weight, bias, y)?;
    forward_checked(s, isa, x, weight, bias, activation, y, par);
    Ok(())
}

/// [`forward`] on checked arguments.
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
    if s.n == 0 || s.output == 0 {
        return;
    }
    let store = Store { bias, activation };
    let threads = if s.n * s.input * s.output >= PARALLEL_MACS { par.threads() } else { 1 };
    let blocks = s.output.div_ceil(ROWS);
    let threads = threads.min(blocks);
    let y = Columns::new(y, s.output);
    let task = |t: usize| {
        let outputs =
            t * blocks / threads * ROWS..((t + 1) * blocks / threads * ROWS).min(s.output);
        // SAFETY: the tasks' output ranges are disjoint.
        unsafe { outputs_of(isa, s, x, weight, &store, &y, outputs) };
    };
    if threads > 1 {
        (0..threads).into_par_iter().for_each(task);
    } else {
        task(0);
    }
}

/// `y`, shared by threads that each write their own range of its columns
/// (outputs) in every row. The threads split the outputs, not the samples,
/// so that each reads only its share of the weights: in training, the
/// share its own core's SGD step has just written (see `gemm::Grid`).
struct Columns<'a> {
    ptr: *mut f32,
    len: usize,
    cols: usize,
    _y: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `Columns` hands out a row's columns only through `row_part`, whose
// callers promise that no two threads take overlapping parts.
unsafe impl Sync for Columns<'_> {}

impl<'a> Columns<'a> {
    fn new(y: &'a mut [f32], cols: usize) -> Self {
        Columns { ptr: y.as_mut_ptr(), len: y.len(), cols, _y: std::marker::PhantomData }
    }

    /// Columns `o0..o0 + width` of row `row`.
    ///
    /// # Safety
    /// No other reference to those elements may be alive while the slice
    /// is.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row_part(&self, row: usize, o0: usize, width: usize) -> &mut [f32] {
        let at = row * self.cols + o0;
        assert!(o0 + width <= self.cols && at + width <= self.len);
        // SAFETY: in bounds, as asserted; exclusive, as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), width) }
    }
}

/// What happens to a finished sum on its way into `y`.
struct Store<'a> {
    bias: Option<&'a [f32]>,
    activation: Activation,
}

impl Store<'_> {
    /// [`Self::write`] for a whole tile's [`ROWS`] outputs, in fixed-size
    /// steps the compiler turns into a few vector instructions, where
    /// [`Self::write`]'s per-element loop keeps the activation's `match` and
    /// the block flags inside.
    #[inline(always)]
    fn write_whole(
        &self,
        out: &mut [f32; ROWS],
        o0: usize,
        sums: &[f32; ROWS],
        first: bool,
        last: bool,
    ) {
        let mut v = *sums;
        if !first {
            v.iter_mut().zip(out.iter()).for_each(|(v, &o)| *v += o);
        }
        if last {
            if let Some(b) = self.bias {
                let b: &[f32; ROWS] = b[o0..o0 + ROWS].try_into().expect("a slice of ROWS");
                v.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
            }
            match self.activation {
                Activation::Identity => {}
                Activation::Relu => v.iter_mut().for_each(|v| *v = crate::act::relu_scalar(*v)),
                Activation::Gated(g) => crate::act::gated::forward_row(g, &mut v),
                act => v.iter_mut().for_each(|v| *v = act.apply(*v)),
            }
        }
        *out = v;
    }

    /// Writes `sums` into `out`, a sample's outputs from `o0`: overwriting
    /// on the first block of inputs, adding on later ones, the bias and
    /// activation applied after the last.
    #[inline(always)]
    fn write(&self, out: &mut [f32], o0: usize, sums: &[f32], first: bool, last: bool) {
        for (j, (o, &v)) in out.iter_mut().zip(sums).enumerate() {
            let v = if first { v } else { *o + v };
            *o = if last {
                self.activation.apply(v + self.bias.map_or(0.0, |b| b[o0 + j]))
            } else {
                v
            };
        }
    }
}

/// The outputs in `outputs` (whole tiles of [`ROWS`] but perhaps the last)
/// of every sample.
///
/// # Safety
/// No other thread may touch those columns of `y` during the call.
unsafe fn outputs_of(
    isa: Isa,
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    store: &Store<'_>,
    y: &Columns<'_>,
    outputs: Range<usize>,
) {
    if s.input == 0 {
        let zeros = vec![0.0; outputs.len()];
        for row in 0..s.n {
            // SAFETY: these columns are this call's, as the caller promises.
            let out = unsafe { y.row_part(row, outputs.start, outputs.len()) };
            store.write(out, outputs.start, &zeros, true, true);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa.if_supported() == Isa::Avx512 {
        // SAFETY: the CPU supports AVX-512F; the columns are this call's.
        return unsafe { x86::outputs_of(s, x, weight, store, y, outputs) };
    }
    let _ = isa;
    // SAFETY: the columns are this call's.
    unsafe { sweep(s, x, weight, store, y, outputs, portable_tile) };
}

/// The loops around a tile, shared by every instruction set: blocks of
/// inputs, then blocks of [`ROWS`] weight rows (kept in L1), then blocks of
/// [`SAMPLES`] samples (from L2). `tile(w, x, ld, rows, samples, kb)`
/// returns the sums `[sample][row]` of `rows ≤ ROWS` weight rows from `w`
/// and `samples ≤ SAMPLES` sample rows from `x` (each row `ld` apart) over
/// their first `kb` inputs.
///
/// # Safety
/// No other thread may touch the columns `outputs` of `y` during the call.
#[inline(always)]
unsafe fn sweep(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    store: &Store<'_>,
    y: &Columns<'_>,
    outputs: Range<usize>,
    tile: impl Fn(&[f32], &[f32], usize, usize, usize, usize) -> [[f32; ROWS]; SAMPLES],
) {
    let blocks = s.input.div_ceil(K_BLOCK);
    let kc = s.input.div_ceil(blocks).next_multiple_of(16);
    for k0 in (0..s.input).step_by(kc) {
        let kb = kc.min(s.input - k0);
        let (first, last) = (k0 == 0, k0 + kb == s.input);
        for o0 in outputs.clone().step_by(ROWS) {
            let rows = ROWS.min(outputs.end - o0);
            let w = &weight[o0 * s.input + k0..];
            for s0 in (0..s.n).step_by(SAMPLES) {
                let count = SAMPLES.min(s.n - s0);
                let sums = tile(w, &x[s0 * s.input + k0..], s.input, rows, count, kb);
                for (i, row_sums) in sums.iter().take(count).enumerate() {
                    // SAFETY: inside `outputs`, which are this call's.
                    let out = unsafe { y.row_part(s0 + i, o0, rows) };
                    if let Ok(whole) = <&mut [f32; ROWS]>::try_from(&mut *out) {
                        store.write_whole(whole, o0, row_sums, first, last);
                    } else {
                        store.write(out, o0, &row_sums[..rows], first, last);
                    }
                }
            }
        }
    }
}

/// The portable tile: eight lanes of partial sums per (row, sample), which
/// the compiler vectorises for the target's baseline.
fn portable_tile(
    w: &[f32],
    x: &[f32],
    ld: usize,
    rows: usize,
    samples: usize,
    kb: usize,
) -> [[f32; ROWS]; SAMPLES] {
    const L: usize = 8;
    let mut sums = [[0.0f32; ROWS]; SAMPLES];
    for (i, sample_sums) in sums.iter_mut().enumerate().take(samples) {
        let xs = &x[i * ld..][..kb];
        for (r, sum) in sample_sums.iter_mut().enumerate().take(rows) {
            let ws = &w[r * ld..][..kb];
            let mut acc = [0.0f32; L];
            let (wc, wt) = ws.as_chunks::<L>();
            let (xc, xt) = xs.as_chunks::<L>();
            for (a, b) in wc.iter().zip(xc) {
                for l in 0..L {
                    acc[l] += a[l] * b[l];
                }
            }
            let tail: f32 = wt.iter().zip(xt).map(|(a, b)| a * b).sum();
            *sum = acc.iter().sum::<f32>() + tail;
        }
    }
    sums
}
