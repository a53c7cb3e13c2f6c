//! 2-D pooling over f32 NCHW tensors, forward and backward, with PyTorch's
//! semantics: `nn.MaxPool2d` and `nn.AvgPool2d` with `dilation = 1`, either
//! `ceil_mode`, either `count_include_pad` and no `divisor_override`;
//! `nn.AdaptiveAvgPool2d(1)` flattened to `[N, C]` as global average
//! pooling; and `nn.AdaptiveAvgPool2d((oh, ow))` (in `adaptive`).
//!
//! Every input plane `[H, W]` is pooled on its own, in memory order. Both
//! pools work a whole output row at a time: for each input row and each
//! window column `j`, one strided pass over the input row updates every
//! output of the row, so the bookkeeping is per row rather than per output
//! and the compare-and-select (max) or the sums (average) vectorise. Max
//! pooling does its padded edge windows one at a time, clipped.
//! Either way a window is visited in row-major order, as ATen visits it,
//! which fixes ties, NaN and the order of the sums.

use crate::error::{check_len, Error, LenError};
use crate::gemm::Activation;
use crate::isa::Isa;
use crate::reduce;
use rayon::prelude::*;

mod adaptive;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

pub use adaptive::{
    adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, bin as adaptive_bin, AdaptivePool2d,
};

/// The shape of a 2-D pooling: input `[n, c, h, w]`, a `kh x kw` window
/// moved by `sh`, `sw`, with `ph`, `pw` cells of padding on each side.
///
/// The geometry PyTorch accepts is `kh, kw, sh, sw >= 1`, `ph <= kh / 2`,
/// `pw <= kw / 2`, `h, w >= 1` and at least one output. For any other
/// geometry [`out_h`](Self::out_h) or [`out_w`](Self::out_w) is 0, so the
/// output is empty and a caller that expected outputs gets a length error
/// on `y`, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    /// PyTorch's `ceil_mode`: the output size rounds up, so a last window
    /// may run past the padded input (it is clipped), as long as it starts
    /// inside the input or its left padding.
    pub ceil_mode: bool,
    /// PyTorch's `count_include_pad`, for average pooling only: padding
    /// cells count in a window's divisor (never the cells past the padded
    /// input that a ceil-mode window reaches).
    pub count_include_pad: bool,
}

/// PyTorch's output size (`pooling_output_shape`), or 0 for an illegal
/// geometry: `(len + 2·pad - k) / stride + 1` rounded down, or in ceil mode
/// rounded up and then one less if the last window would start in the
/// right padding.
fn out_dim(len: usize, k: usize, stride: usize, pad: usize, ceil_mode: bool) -> usize {
    if len == 0 || k == 0 || stride == 0 || pad > k / 2 {
        return 0;
    }
    let round_up = if ceil_mode { stride - 1 } else { 0 };
    let Some(room) = (len + 2 * pad + round_up).checked_sub(k) else { return 0 };
    let out = room / stride + 1;
    if ceil_mode && (out - 1) * stride >= len + pad {
        out - 1
    } else {
        out
    }
}

impl Pool2d {
    /// A square `k x k` window with stride `s` and padding `p`, as
    /// `nn.MaxPool2d(k, s, p)`: PyTorch's defaults, floor mode and padding
    /// counted in an average's divisor.
    pub fn square(n: usize, c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> Self {
        Pool2d {
            n,
            c,
            h,
            w,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            ph: p,
            pw: p,
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// Output rows: `(h + 2·ph - kh) / sh + 1`, rounded as `ceil_mode` says.
    pub fn out_h(&self) -> usize {
        out_dim(self.h, self.kh, self.sh, self.ph, self.ceil_mode)
    }

    /// Output columns: `(w + 2·pw - kw) / sw + 1`, rounded as `ceil_mode` says.
    pub fn out_w(&self) -> usize {
        out_dim(self.w, self.kw, self.sw, self.pw, self.ceil_mode)
    }

    /// Elements of the input `[n, c, h, w]` (and of `dx`).
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the output `[n, c, out_h, out_w]` (and of `dy` and of the
    /// max-pool `argmax`).
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }

    /// Whether the windows are 2x2 at stride 2 without padding, each wholly
    /// inside the plane (a ceil-mode window past an odd edge is not): they
    /// tile the plane without overlapping, and have kernels of their own.
    fn is_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
            && 2 * self.out_h() <= self.h
            && 2 * self.out_w() <= self.w
    }

    /// The divisor of average window `o` along one axis: its cells inside
    /// the padded input with `count_include_pad`, else inside the input.
    /// Their product is ATen's `divide_factor`.
    #[inline(always)]
    fn count(&self, o: usize, s: usize, p: usize, k: usize, len: usize) -> usize {
        if self.count_include_pad {
            (o * s + k).min(len + 2 * p) - o * s
        } else {
            let (start, end) = window(o, s, p, k, len);
            end - start
        }
    }

    /// Each output column's divisor factor ([`Self::count`]) into `cols`.
    fn col_counts(&self, cols: &mut [f32]) {
        for (o_c, d) in cols.iter_mut().enumerate() {
            *d = self.count(o_c, self.sw, self.pw, self.kw, self.w) as f32;
        }
    }

    /// Output row `o_r`'s divisor factor. Times a column's it is ATen's
    /// `divide_factor` exactly (counts are far below 2²⁴).
    fn row_count(&self, o_r: usize) -> f32 {
        self.count(o_r, self.sh, self.ph, self.kh, self.h) as f32
    }

    /// The input rows `[start, end)` that output row `o` sees, padding cut off.
    /// For a legal geometry every window holds at least one input cell.
    #[inline(always)]
    fn rows(&self, o: usize) -> (usize, usize) {
        window(o, self.sh, self.ph, self.kh, self.h)
    }

    /// The input columns `[start, end)` that output column `o` sees.
    #[inline(always)]
    fn cols(&self, o: usize) -> (usize, usize) {
        window(o, self.sw, self.pw, self.kw, self.w)
    }
}

thread_local! {
    /// The column divisors of an average pooling, or a row of its output
    /// gradients divided by them.
    static AVG_ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The column maxima of one output row's window rows (inference).
    static COLUMN_MAXIMA: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The clipped input range of window `o`. The window starts at `o·s - p` in
/// input coordinates; working in padded coordinates keeps it unsigned.
#[inline(always)]
fn window(o: usize, s: usize, p: usize, k: usize, len: usize) -> (usize, usize) {
    let start = o * s;
    (start.saturating_sub(p), (start + k).saturating_sub(p).min(len))
}

/// The outputs `[lo, hi)` (of `out`) whose window cell `j` is an input cell,
/// not padding: `0 <= o·s + j - p < len`. Their cells are `lo·s + j - p`
/// onwards, `s` apart.
#[inline(always)]
fn span(j: usize, s: usize, p: usize, len: usize, out: usize) -> (usize, usize) {
    let lo = if j < p { (p - j).div_ceil(s) } else { 0 };
    let hi = if len + p > j { ((len + p - 1 - j) / s + 1).min(out) } else { 0 };
    (lo.min(hi), hi)
}

/// Max pooling, as `nn.MaxPool2d(kernel, stride, padding)` with
/// `return_indices = true`: `y` is the maximum of each window, padding counts
/// as `-inf`, and `argmax` is the flat index `ih·w + iw` of that maximum
/// inside its input plane (the index PyTorch returns).
///
/// As in ATen's CPU kernel the window is scanned row by row and a cell wins
/// if it is greater than the best so far or NaN: ties go to the first cell,
/// NaN propagates (the last NaN wins), and a window of `-inf` points at its
/// first input cell.
///
/// Fails if a plane has more than `u32::MAX` cells, as the index would not fit.
pub fn max_pool2d_forward(
    p: Pool2d,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) -> Result<(), LenError> {
    max_pool2d_forward_on(Isa::best(), p, x, y, argmax)
}

/// [`max_pool2d_forward`] on the kernels of `isa` (the portable ones if the
/// CPU lacks it), so that tests can run every path the CPU has.
pub fn max_pool2d_forward_on(
    isa: Isa,
    p: Pool2d,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) -> Result<(), LenError> {
    const OP: &str = "max_pool2d_forward";
    check_len(OP, "x", x.len(), p.x_len())?;
    check_len(OP, "y", y.len(), p.y_len())?;
    check_len(OP, "argmax", argmax.len(), p.y_len())?;
    let plane = p.h * p.w;
    if plane > u32::MAX as usize {
        return Err(LenError { op: OP, tensor: "x", expected: u32::MAX as usize, found: plane });
    }
    let (oh, ow) = (p.out_h(), p.out_w());
    if p.y_len() == 0 {
        return Ok(());
    }
    let one =
        |(xp, (yp, ap)): (&[f32], (&mut [f32], &mut [u32]))| max_plane::<true>(isa, p, xp, yp, ap);
    if parallel(p) {
        x.par_chunks(plane)
            .zip(y.par_chunks_mut(oh * ow).zip(argmax.par_chunks_mut(oh * ow)))
            .for_each(one);
    } else {
        x.chunks_exact(plane)
            .zip(y.chunks_exact_mut(oh * ow).zip(argmax.chunks_exact_mut(oh * ow)))
            .for_each(one);
    }
    Ok(())
}

/// [`max_pool2d_forward`] for inference: the same maxima, without the
/// argmax that only a backward pass would read.
pub fn max_pool2d_forward_infer(p: Pool2d, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    max_pool2d_forward_infer_on(Isa::best(), p, x, y)
}

/// [`max_pool2d_forward_infer`] on the kernels of `isa` (the portable ones
/// if the CPU lacks it).
pub fn max_pool2d_forward_infer_on(
    isa: Isa,
    p: Pool2d,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "max_pool2d_forward_infer";
    check_len(OP, "x", x.len(), p.x_len())?;
    check_len(OP, "y", y.len(), p.y_len())?;
    let (plane, out_plane) = (p.h * p.w, p.out_h() * p.out_w());
    if p.y_len() == 0 {
        return Ok(());
    }
    let one = |(xp, yp): (&[f32], &mut [f32])| max_plane::<false>(isa, p, xp, yp, &mut []);
    if parallel(p) {
        x.par_chunks(plane).zip(y.par_chunks_mut(out_plane)).for_each(one);
    } else {
        x.chunks_exact(plane).zip(y.chunks_exact_mut(out_plane)).for_each(one);
    }
    Ok(())
}

/// Whether a pool is big enough for its planes to be split across threads.
fn parallel(p: Pool2d) -> bool {
    p.x_len() >= 1 << 15 && crate::par::threads() > 1
}

/// The maxima of one plane's windows into `yp`, and with `ARGMAX` their
/// indices into `ap`.
///
/// Windows wholly inside the row (all but a padded edge) are done a whole
/// output row at a time: for each cell of the window, one pass over the
/// row's outputs, so the compare-and-select vectorises across outputs. The
/// edge windows go one at a time, clipped. Either way each window visits its
/// cells in row-major order with ATen's rule (a greater value or a NaN
/// takes over), so ties and NaNs resolve as in PyTorch.
#[inline(always)]
fn max_plane<const ARGMAX: bool>(isa: Isa, p: Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    if p.is_2x2() {
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && x86::max_plane::<ARGMAX>(p.w, p.out_w(), xp, yp, ap) {
            return;
        }
        let _ = isa;
        return max_plane_2x2::<ARGMAX>(p, xp, yp, ap);
    }
    if !ARGMAX {
        return max_plane_values(p, xp, yp);
    }
    let ow = p.out_w();
    let (s, pad, kw) = (p.sw, p.pw, p.kw);
    let (lo, hi) = interior_columns(p);
    for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let (r0, r1) = p.rows(o_r);
        let ar: &mut [u32] = if ARGMAX { &mut ap[o_r * ow..(o_r + 1) * ow] } else { &mut [] };
        for o_c in (0..lo).chain(hi..ow) {
            let (best, at) = max_window::<ARGMAX>(p, xp, r0, r1, o_c);
            yr[o_c] = best;
            if ARGMAX {
                ar[o_c] = at;
            }
        }
        if lo == hi {
            continue;
        }
        let ys = &mut yr[lo..hi];
        ys.fill(f32::NEG_INFINITY);
        if ARGMAX {
            // ATen's initial index: the first input cell of the window.
            for (i, a) in ar[lo..hi].iter_mut().enumerate() {
                *a = (r0 * p.w + (lo + i) * s - pad) as u32;
            }
        }
        for r in r0..r1 {
            for dc in 0..kw {
                // Input column of output lo + i: (lo + i)·s + dc - pad.
                let first = r * p.w + lo * s + dc - pad;
                let ar = if ARGMAX { &mut ar[lo..hi] } else { &mut [] };
                // A constant stride lets the loop vectorise.
                match s {
                    1 => max_pass::<ARGMAX, 1>(ys, ar, xp, first),
                    2 => max_pass::<ARGMAX, 2>(ys, ar, xp, first),
                    _ => max_pass_strided::<ARGMAX>(ys, ar, xp, first, s),
                }
            }
        }
    }
}

/// [`max_plane`] without indices (inference): each output row's window rows
/// are first reduced to one row of column maxima, a contiguous pass that
/// vectorises, and each window then takes the maximum of its `kw` column
/// maxima, so a `kh×kw` window costs `kh + kw` compares a column rather
/// than `kh·kw` strided ones. The value is the training path's: the
/// maximum, or NaN if the window holds one (only a tie of −0 with +0, or
/// which of several NaNs, may resolve otherwise).
fn max_plane_values(p: Pool2d, xp: &[f32], yp: &mut [f32]) {
    let (ow, w) = (p.out_w(), p.w);
    let (s, pad, kw) = (p.sw, p.pw, p.kw);
    let (lo, hi) = interior_columns(p);
    // Room for the maxima, then (at stride 2) their even and odd columns.
    crate::scratch::with(&COLUMN_MAXIMA, 2 * w, |buf| {
        let (maxima, phases) = buf.split_at_mut(w);
        for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
            let (r0, r1) = p.rows(o_r);
            // Starting from the first row is starting from −∞.
            maxima.copy_from_slice(&xp[r0 * w..][..w]);
            for r in r0 + 1..r1 {
                take_greater(maxima, &xp[r * w..][..w]);
            }
            for o_c in (0..lo).chain(hi..ow) {
                let (c0, c1) = p.cols(o_c);
                yr[o_c] = maxima[c0..c1].iter().fold(f32::NEG_INFINITY, |b, &x| greater(b, x));
            }
            if lo == hi {
                continue;
            }
            let ys = &mut yr[lo..hi];
            ys.fill(f32::NEG_INFINITY);
            if s == 2 {
                // Split once into even and odd columns, so that each of the
                // window's columns is a contiguous pass, not a strided one.
                let (even, odd) = phases.split_at_mut(w.div_ceil(2));
                let (pairs, last) = maxima.as_chunks::<2>();
                for (pair, (e, o)) in pairs.iter().zip(even.iter_mut().zip(odd.iter_mut())) {
                    (*e, *o) = (pair[0], pair[1]);
                }
                if let [v] = last {
                    even[pairs.len()] = *v;
                }
                for dc in 0..kw {
                    let first = lo * 2 + dc - pad;
                    let phase = if first % 2 == 0 { &even[first / 2..] } else { &odd[first / 2..] };
                    debug_assert!(phase.len() >= ys.len(), "interior windows stay inside");
                    take_greater(ys, phase);
                }
                continue;
            }
            for dc in 0..kw {
                let first = lo * s + dc - pad;
                match s {
                    1 => max_pass::<false, 1>(ys, &mut [], maxima, first),
                    _ => max_pass_strided::<false>(ys, &mut [], maxima, first, s),
                }
            }
        }
    });
}

/// The output columns `[lo, hi)` whose windows lie wholly inside the row:
/// `o·s ≥ pad` and `o·s + kw ≤ w + pad`.
fn interior_columns(p: Pool2d) -> (usize, usize) {
    let (ow, s, pad) = (p.out_w(), p.sw, p.pw);
    let lo = pad.div_ceil(s).min(ow);
    let hi = (p.w + pad).checked_sub(p.kw).map_or(0, |room| room / s + 1).clamp(lo, ow);
    (lo, hi)
}

/// `best[i]` becomes [`greater`]`(best[i], v[i])`.
#[inline(always)]
fn take_greater(best: &mut [f32], v: &[f32]) {
    for (b, &x) in best.iter_mut().zip(v) {
        *b = greater(*b, x);
    }
}

/// ATen's rule for the next cell `x` of a window: it takes over from the
/// best so far if greater, or NaN.
#[inline(always)]
fn greater(best: f32, x: f32) -> f32 {
    if x > best || x.is_nan() {
        x
    } else {
        best
    }
}

/// [`max_plane`] for 2x2 windows at stride 2 without padding (LeNet-5,
/// VGG): the four cells of a window are compared in registers, in ATen's
/// order, and each output is written once. The row passes of the general
/// path read and wrote every output and index four times (LeNet-5's
/// pooling forward was an eighth of its training step).
#[inline(always)]
fn max_plane_2x2<const ARGMAX: bool>(p: Pool2d, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    let (ow, w) = (p.out_w(), p.w);
    for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let top = &xp[2 * o_r * w..][..2 * ow];
        let bottom = &xp[(2 * o_r + 1) * w..][..2 * ow];
        let ar: &mut [u32] = if ARGMAX { &mut ap[o_r * ow..][..ow] } else { &mut [] };
        let pairs = top.as_chunks::<2>().0.iter().zip(bottom.as_chunks::<2>().0);
        for (o, (y, (t, b))) in yr.iter_mut().zip(pairs).enumerate() {
            // Starting from the first cell is ATen's start from −∞ with the
            // first cell's index: the first cell wins unless it is −∞, and
            // then the index is the same. Selects rather than branches, which
            // a window's unpredictable maximum would mispredict.
            let (mut best, mut at) = (t[0], 0u32);
            for (k, v) in [(1, t[1]), (w as u32, b[0]), (w as u32 + 1, b[1])] {
                let take = v > best || v.is_nan();
                best = if take { v } else { best };
                at = if take { k } else { at };
            }
            *y = best;
            if ARGMAX {
                // Fits: the caller checked the plane against u32::MAX.
                ar[o] = (2 * o_r * w + 2 * o) as u32 + at;
            }
        }
    }
}

/// One cell of every interior window of an output row: output `i` (of
/// `ys`) meets input `xp[first + i·S]`. Out of line: inlined into the plane
/// loop, its registers spilled inside this, the hot loop.
#[inline(never)]
fn max_pass<const ARGMAX: bool, const S: usize>(
    ys: &mut [f32],
    ar: &mut [u32],
    xp: &[f32],
    first: usize,
) {
    let xs = &xp[first..first + (ys.len() - 1) * S + 1];
    if ARGMAX {
        let ar = &mut ar[..ys.len()];
        for (i, (y, a)) in ys.iter_mut().zip(ar.iter_mut()).enumerate() {
            let v = xs[i * S];
            let take = v > *y || v.is_nan();
            *y = if take { v } else { *y };
            // Fits: the cell is inside the plane, whose size the caller
            // checked against u32::MAX.
            *a = if take { (first + i * S) as u32 } else { *a };
        }
    } else {
        for (i, y) in ys.iter_mut().enumerate() {
            let v = xs[i * S];
            *y = if v > *y || v.is_nan() { v } else { *y };
        }
    }
}

/// [`max_pass`] for any other stride.
#[inline(always)]
fn max_pass_strided<const ARGMAX: bool>(
    ys: &mut [f32],
    ar: &mut [u32],
    xp: &[f32],
    first: usize,
    s: usize,
) {
    for (i, y) in ys.iter_mut().enumerate() {
        let v = xp[first + i * s];
        if v > *y || v.is_nan() {
            *y = v;
            if ARGMAX {
                ar[i] = (first + i * s) as u32;
            }
        }
    }
}

/// The maximum of the clipped window at output `(rows r0..r1, column o_c)`,
/// and where it is.
#[inline(always)]
fn max_window<const ARGMAX: bool>(
    p: Pool2d,
    xp: &[f32],
    r0: usize,
    r1: usize,
    o_c: usize,
) -> (f32, u32) {
    let (c0, c1) = p.cols(o_c);
    let mut best = f32::NEG_INFINITY;
    // ATen's initial index: the first input cell of the window.
    let mut best_at = r0 * p.w + c0;
    for r in r0..r1 {
        let row = &xp[r * p.w + c0..r * p.w + c1];
        for (j, &v) in row.iter().enumerate() {
            if v > best || v.is_nan() {
                best = v;
                if ARGMAX {
                    best_at = r * p.w + c0 + j;
                }
            }
        }
    }
    // Fits: best_at < plane <= u32::MAX, checked by the caller.
    (best, best_at as u32)
}

/// The gradient of [`max_pool2d_forward`]: `dx` is overwritten with zeros,
/// then each `dy` is added to the input cell its `argmax` names, so a cell
/// that is the maximum of several overlapping windows gets their sum (as
/// `max_pool2d_with_indices_backward`).
///
/// An `argmax` entry outside its plane (not one the forward wrote) is
/// skipped rather than trusted.
pub fn max_pool2d_backward(
    p: Pool2d,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    max_pool2d_backward_on(Isa::best(), p, dy, argmax, dx)
}

/// [`max_pool2d_backward`] on the kernels of `isa` (the portable ones if
/// the CPU lacks it).
pub fn max_pool2d_backward_on(
    isa: Isa,
    p: Pool2d,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "max_pool2d_backward";
    check_len(OP, "dy", dy.len(), p.y_len())?;
    check_len(OP, "argmax", argmax.len(), p.y_len())?;
    check_len(OP, "dx", dx.len(), p.x_len())?;
    max_backward(isa, p, dy, argmax, None, dx);
    Ok(())
}

/// [`max_pool2d_backward`] fused with the backward of the activation whose
/// output fed the pool: each `dy` lands on its argmax cell multiplied by
/// `act'` there ([`crate::act::derivative_from_output`]), read from `y`,
/// the pool's output, which is the activation's output at that cell. So
/// the activation's output need not outlive the pool's forward, and every
/// other cell of `dx` is zero either way, so the separate pass over `dx`
/// that the activation's backward would make disappears. (For a cell that
/// is the maximum of several overlapping windows, `Σ g·act'` instead of
/// `(Σ g)·act'`: the same for ReLU, within rounding otherwise.) A gated
/// activation, whose derivative needs its input, is
/// [`Error::NeedsInput`].
pub fn max_pool2d_backward_through(
    p: Pool2d,
    dy: &[f32],
    argmax: &[u32],
    act: Activation,
    y: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    max_pool2d_backward_through_on(Isa::best(), p, dy, argmax, act, y, dx)
}

/// [`max_pool2d_backward_through`] on the kernels of `isa` (the portable
/// ones if the CPU lacks it).
pub fn max_pool2d_backward_through_on(
    isa: Isa,
    p: Pool2d,
    dy: &[f32],
    argmax: &[u32],
    act: Activation,
    y: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    const OP: &str = "max_pool2d_backward_through";
    if act.needs_input() {
        return Err(Error::NeedsInput { op: OP });
    }
    check_len(OP, "dy", dy.len(), p.y_len())?;
    check_len(OP, "argmax", argmax.len(), p.y_len())?;
    check_len(OP, "y", y.len(), p.y_len())?;
    check_len(OP, "dx", dx.len(), p.x_len())?;
    max_backward(isa, p, dy, argmax, Some((act, y)), dx);
    Ok(())
}

/// The max-pool gradient of checked operands, plane by plane: `dx`
/// overwritten, each `dy` (times `act'` of the pool's output `y` there,
/// with `act`) added at its argmax cell, an argmax outside its plane
/// skipped.
fn max_backward(
    isa: Isa,
    p: Pool2d,
    dy: &[f32],
    argmax: &[u32],
    act: Option<(Activation, &[f32])>,
    dx: &mut [f32],
) {
    let (plane, out_plane) = (p.h * p.w, p.out_h() * p.out_w());
    if p.y_len() == 0 {
        dx.fill(0.0);
        return;
    }
    let planes = dx
        .chunks_exact_mut(plane)
        .zip(dy.chunks_exact(out_plane).zip(argmax.chunks_exact(out_plane)));
    for (c, (dxp, (dyp, ap))) in planes.enumerate() {
        let yp = act.map(|(act, y)| (act, &y[c * out_plane..][..out_plane]));
        #[cfg(target_arch = "x86_64")]
        if p.is_2x2() && isa == Isa::Avx512 && x86::backward_plane(p.w, p.out_w(), dyp, ap, yp, dxp)
        {
            zero_uncovered_2x2(p, dxp);
            continue;
        }
        let _ = isa;
        dxp.fill(0.0);
        for (o, (&g, &i)) in dyp.iter().zip(ap).enumerate() {
            let Some(d) = dxp.get_mut(i as usize) else { continue };
            *d += match yp {
                None => g,
                Some((act, yp)) => g * crate::act::derivative_from_output(act, yp[o]),
            };
        }
    }
}

/// Zeroes the cells of a plane that no 2x2 window covers: its last column
/// and row when `w` and `h` are odd, which the window kernels do not write.
#[cfg(target_arch = "x86_64")]
fn zero_uncovered_2x2(p: Pool2d, dxp: &mut [f32]) {
    let covered = 2 * p.out_h();
    if p.w > 2 * p.out_w() {
        for row in dxp[..covered * p.w].chunks_exact_mut(p.w) {
            row[2 * p.out_w()..].fill(0.0);
        }
    }
    dxp[covered * p.w..].fill(0.0);
}

/// Average pooling, as `nn.AvgPool2d(kernel, stride, padding, ceil_mode,
/// count_include_pad)` without `divisor_override`: padding counts as zeros,
/// and each window is divided by ATen's `divide_factor`, its cells inside
/// the padded input (`count_include_pad`) or inside the input, which is
/// `kh·kw` in floor mode with padding counted. The window is summed in f32,
/// row by row, then divided, as ATen's CPU kernel does.
pub fn avg_pool2d_forward(p: Pool2d, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    const OP: &str = "avg_pool2d_forward";
    check_len(OP, "x", x.len(), p.x_len())?;
    check_len(OP, "y", y.len(), p.y_len())?;
    let (oh, ow) = (p.out_h(), p.out_w());
    if p.y_len() == 0 {
        return Ok(());
    }
    crate::scratch::with(&AVG_ROW, ow, |cols| {
        p.col_counts(cols);
        for (xp, yp) in x.chunks_exact(p.h * p.w).zip(y.chunks_exact_mut(oh * ow)) {
            for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
                avg_row(p, xp, o_r, yr);
                let rows = p.row_count(o_r);
                for (yv, &c) in yr.iter_mut().zip(cols.iter()) {
                    *yv /= rows * c;
                }
            }
        }
    });
    Ok(())
}

/// The sums of output row `o_r`'s windows into `yr`: for each input row
/// and window column, one strided pass over the row's outputs.
#[inline(always)]
fn avg_row(p: Pool2d, xp: &[f32], o_r: usize, yr: &mut [f32]) {
    let (r0, r1) = p.rows(o_r);
    yr.fill(0.0);
    for r in r0..r1 {
        let xr = &xp[r * p.w..(r + 1) * p.w];
        for j in 0..p.kw {
            let (lo, hi) = span(j, p.sw, p.pw, p.w, yr.len());
            if lo == hi {
                continue;
            }
            let (ys, first) = (&mut yr[lo..hi], lo * p.sw + j - p.pw);
            // A constant stride lets the loop vectorise.
            match p.sw {
                1 => avg_pass::<1>(ys, &xr[first..]),
                2 => avg_pass::<2>(ys, &xr[first..]),
                s => ys.iter_mut().zip(xr[first..].iter().step_by(s)).for_each(|(y, &v)| *y += v),
            }
        }
    }
}

/// One cell of every window of a stretch of an output row: output `i` adds
/// input `xs[i·S]`.
#[inline(never)]
fn avg_pass<const S: usize>(ys: &mut [f32], xs: &[f32]) {
    let xs = &xs[..(ys.len() - 1) * S + 1];
    for (i, y) in ys.iter_mut().enumerate() {
        *y += xs[i * S];
    }
}

/// The gradient of [`avg_pool2d_forward`]: `dx` is overwritten, each input
/// cell receiving `dy / divisor` from every window that covers it.
pub fn avg_pool2d_backward(p: Pool2d, dy: &[f32], dx: &mut [f32]) -> Result<(), LenError> {
    const OP: &str = "avg_pool2d_backward";
    check_len(OP, "dy", dy.len(), p.y_len())?;
    check_len(OP, "dx", dx.len(), p.x_len())?;
    dx.fill(0.0);
    let (oh, ow) = (p.out_h(), p.out_w());
    if p.y_len() == 0 {
        return Ok(());
    }
    // ATen divides each output gradient once, then adds the share to every
    // cell of the window: `shares` is a row of them.
    crate::scratch::with(&AVG_ROW, 2 * ow, |buf| {
        let (cols, shares) = buf.split_at_mut(ow);
        p.col_counts(cols);
        for (dxp, dyp) in dx.chunks_exact_mut(p.h * p.w).zip(dy.chunks_exact(oh * ow)) {
            for (o_r, dyr) in dyp.chunks_exact(ow).enumerate() {
                let rows = p.row_count(o_r);
                for ((s, &g), &c) in shares.iter_mut().zip(dyr).zip(cols.iter()) {
                    *s = g / (rows * c);
                }
                avg_row_backward(p, shares, o_r, dxp);
            }
        }
    });
    Ok(())
}

/// Adds output row `o_r`'s `shares` to the cells of their windows.
#[inline(always)]
fn avg_row_backward(p: Pool2d, shares: &[f32], o_r: usize, dxp: &mut [f32]) {
    let (r0, r1) = p.rows(o_r);
    for r in r0..r1 {
        let dxr = &mut dxp[r * p.w..(r + 1) * p.w];
        // Window cells right to left, so that the windows of a row add into
        // a cell left to right, in ATen's order.
        for j in (0..p.kw).rev() {
            let (lo, hi) = span(j, p.sw, p.pw, p.w, shares.len());
            if lo == hi {
                continue;
            }
            let (gs, first) = (&shares[lo..hi], lo * p.sw + j - p.pw);
            match p.sw {
                1 => avg_pass_backward::<1>(gs, &mut dxr[first..]),
                2 => avg_pass_backward::<2>(gs, &mut dxr[first..]),
                s => dxr[first..].iter_mut().step_by(s).zip(gs).for_each(|(d, &g)| *d += g),
            }
        }
    }
}

/// [`avg_pass`] backward: input `dxs[i·S]` gets output `i`'s share.
#[inline(never)]
fn avg_pass_backward<const S: usize>(gs: &[f32], dxs: &mut [f32]) {
    let dxs = &mut dxs[..(gs.len() - 1) * S + 1];
    for (i, &g) in gs.iter().enumerate() {
        dxs[i * S] += g;
    }
}

/// Global average pooling, `[n, c, h, w] -> [n, c]`: the mean of each plane,
/// as `nn.AdaptiveAvgPool2d(1)` followed by a flatten. An empty plane
/// (`h·w == 0`) has mean NaN, as `torch.mean` of an empty tensor.
pub fn global_avg_pool_forward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "global_avg_pool_forward";
    check_len(OP, "x", x.len(), n * c * h * w)?;
    check_len(OP, "y", y.len(), n * c)?;
    let plane = h * w;
    if plane == 0 {
        y.fill(f32::NAN);
        return Ok(());
    }
    let count = plane as f32;
    for (xp, yv) in x.chunks_exact(plane).zip(y.iter_mut()) {
        *yv = reduce::sum(xp) / count;
    }
    Ok(())
}

/// The gradient of [`global_avg_pool_forward`]: every cell of plane `(n, c)`
/// gets `dy[n, c] / (h·w)`. `dx` is overwritten.
pub fn global_avg_pool_backward(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "global_avg_pool_backward";
    check_len(OP, "dy", dy.len(), n * c)?;
    check_len(OP, "dx", dx.len(), n * c * h * w)?;
    let plane = h * w;
    if plane == 0 {
        return Ok(());
    }
    let count = plane as f32;
    for (dxp, &g) in dx.chunks_exact_mut(plane).zip(dy) {
        dxp.fill(g / count);
    }
    Ok(())
}
