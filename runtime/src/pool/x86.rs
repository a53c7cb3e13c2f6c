//! The 2x2, stride-2, unpadded max pool (LeNet-5's, VGG's) in AVX-512,
//! forward and backward, 16 windows at a time.
//!
//! A window's two cells in a row are neighbours, so 32 floats of a row
//! hold 16 windows' left and right cells interleaved; one two-source
//! permute splits them into a vector of left cells and one of right cells.
//! The backward interleaves the four cells' gradients back the same way, and
//! writes every cell of the covered rows, so `dx` needs no zeroing first.
//! The scalar code this replaces compared one window at a time: LeNet-5's
//! two pools were a tenth of its training step.

use crate::gemm::Activation;
use crate::isa::Isa;
use std::arch::x86_64::*;

/// [`max_plane_2x2`] if the CPU has AVX-512F (returning false otherwise):
/// `xp` is an `[h, w]` plane, `yp` its `[h / 2, ow]` maxima, `ap` empty or
/// their indices.
pub(super) fn max_plane<const ARGMAX: bool>(
    w: usize,
    ow: usize,
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) -> bool {
    if Isa::Avx512.if_supported() != Isa::Avx512 || ow == 0 {
        return false;
    }
    assert!(2 * ow <= w && xp.len() >= 2 * (yp.len() / ow) * w);
    // The indices are 32-bit: the training forward refuses larger planes.
    assert!(!ARGMAX || (ap.len() == yp.len() && xp.len() <= u32::MAX as usize));
    // SAFETY: the CPU has AVX-512F; the lengths are asserted above.
    unsafe { max_plane_2x2::<ARGMAX>(w, ow, xp, yp, ap) };
    true
}

/// [`max_plane_2x2_backward`] if the CPU has AVX-512F (returning false
/// otherwise, or if an argmax is not in its window): `dxp` is an `[h, w]`
/// plane, `dyp`, `ap` and `act`'s pooled output the `[h / 2, ow]`
/// gradients, indices and maxima.
pub(super) fn backward_plane(
    w: usize,
    ow: usize,
    dyp: &[f32],
    ap: &[u32],
    act: Option<(Activation, &[f32])>,
    dxp: &mut [f32],
) -> bool {
    // The indices are compared in 32 bits: larger planes (which no forward
    // can have pooled) take the scalar path.
    if Isa::Avx512.if_supported() != Isa::Avx512 || ow == 0 || dxp.len() > u32::MAX as usize {
        return false;
    }
    let rows = 2 * (dyp.len() / ow);
    assert!(2 * ow <= w && ap.len() == dyp.len() && dxp.len() >= rows * w);
    assert!(act.is_none_or(|(_, y)| y.len() == dyp.len()));
    // SAFETY: the CPU has AVX-512F; the lengths are asserted above.
    unsafe { max_plane_2x2_backward(w, ow, dyp, ap, act, dxp) }
}

/// Lane `i` takes float `2i` of the pair of vectors (the left cells).
const LEFT: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
/// Lane `i` takes float `2i + 1` (the right cells).
const RIGHT: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
/// Interleaves the first 8 lanes of two vectors: `a0 b0 a1 b1 …`.
const LOW_PAIRS: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
/// Interleaves their last 8 lanes.
const HIGH_PAIRS: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

/// The lanes below `count` (at most 16).
#[inline(always)]
fn lanes(count: usize) -> __mmask16 {
    if count >= 16 {
        0xffff
    } else {
        (1u16 << count) - 1
    }
}

/// The left and right cells of the `windows` (at most 16) windows whose
/// row starts at `row[0]`; lanes past `windows` are zero.
///
/// # Safety
/// `row` must hold `2 · windows` floats; the CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn split_row(row: &[f32], windows: usize) -> (__m512, __m512) {
    debug_assert!(row.len() >= 2 * windows && windows <= 16);
    let floats = 2 * windows;
    // SAFETY: the masks cover the first `floats` floats of `row`, which it
    // holds; masked-off lanes are not read.
    let (a, b) = unsafe {
        let a = _mm512_maskz_loadu_ps(lanes(floats), row.as_ptr());
        let b = _mm512_maskz_loadu_ps(lanes(floats.saturating_sub(16)), row.as_ptr().add(16));
        (a, b)
    };
    // SAFETY: loading 16 i32 from an array of 16.
    let (left, right) = unsafe {
        (_mm512_loadu_si512(LEFT.as_ptr().cast()), _mm512_loadu_si512(RIGHT.as_ptr().cast()))
    };
    (_mm512_permutex2var_ps(a, left, b), _mm512_permutex2var_ps(a, right, b))
}

/// Writes the `windows` (at most 16) windows' left and right cells back
/// interleaved into `row`.
///
/// # Safety
/// `row` must hold `2 · windows` floats; the CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn merge_row(row: &mut [f32], windows: usize, left: __m512, right: __m512) {
    debug_assert!(row.len() >= 2 * windows && windows <= 16);
    let floats = 2 * windows;
    // SAFETY: loading 16 i32 from an array of 16.
    let (low, high) = unsafe {
        (
            _mm512_loadu_si512(LOW_PAIRS.as_ptr().cast()),
            _mm512_loadu_si512(HIGH_PAIRS.as_ptr().cast()),
        )
    };
    let (a, b) =
        (_mm512_permutex2var_ps(left, low, right), _mm512_permutex2var_ps(left, high, right));
    // SAFETY: the masks cover the first `floats` floats of `row`, which it
    // holds; masked-off lanes are not written.
    unsafe {
        _mm512_mask_storeu_ps(row.as_mut_ptr(), lanes(floats), a);
        _mm512_mask_storeu_ps(row.as_mut_ptr().add(16), lanes(floats.saturating_sub(16)), b);
    }
}

/// `2i` in lane `i`: the first column of window `i` of a block.
#[inline(always)]
fn even_columns() -> __m512i {
    // SAFETY: the intrinsic only needs AVX-512F, which every caller has
    // enabled; it reads no memory.
    unsafe { _mm512_loadu_si512(LEFT.as_ptr().cast()) }
}

/// The maxima of one `[h, w]` plane's 2x2 windows into `yp` (`ow` a row),
/// and with `ARGMAX` their flat indices into `ap`, with the scalar path's
/// rule: the cells in row-major order, and a cell takes over if it is
/// greater than the best so far or NaN.
///
/// # Safety
/// `xp` must hold the `2 · (yp.len() / ow)` rows of `w` floats the windows
/// read, `2 · ow <= w`; with `ARGMAX`, `ap` as long as `yp` and the plane's
/// indices below `u32::MAX`. The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_2x2<const ARGMAX: bool>(
    w: usize,
    ow: usize,
    xp: &[f32],
    yp: &mut [f32],
    ap: &mut [u32],
) {
    debug_assert!(2 * ow <= w && xp.len() >= 2 * (yp.len() / ow) * w);
    let columns = even_columns();
    for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
        let (top, bottom) = (&xp[2 * o_r * w..][..2 * ow], &xp[(2 * o_r + 1) * w..][..2 * ow]);
        for o in (0..ow).step_by(16) {
            let windows = (ow - o).min(16);
            // SAFETY: rows of 2·ow floats hold the 2·windows from 2·o.
            let ((tl, tr), (bl, br)) = unsafe {
                (split_row(&top[2 * o..], windows), split_row(&bottom[2 * o..], windows))
            };
            let (mut best, mut at) = (tl, _mm512_setzero_si512());
            for (v, k) in [(tr, 1), (bl, w as i32), (br, w as i32 + 1)] {
                let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best)
                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                best = _mm512_mask_mov_ps(best, take, v);
                at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(k));
            }
            let out = lanes(windows);
            // SAFETY: yr holds ow ≥ o + windows floats; the mask stops there.
            unsafe { _mm512_mask_storeu_ps(yr.as_mut_ptr().add(o), out, best) };
            if ARGMAX {
                // Fits: the caller checked the plane against u32::MAX.
                let first = _mm512_set1_epi32((2 * o_r * w + 2 * o) as i32);
                let index = _mm512_add_epi32(_mm512_add_epi32(first, columns), at);
                // SAFETY: as for y; ap is as long as yp.
                unsafe {
                    _mm512_mask_storeu_epi32(ap.as_mut_ptr().add(o_r * ow + o).cast(), out, index)
                };
            }
        }
    }
}

/// `act'` from the activation's output `y`, lane by lane, as
/// [`crate::act::derivative_from_output`] computes it.
#[inline]
#[target_feature(enable = "avx512f")]
fn derivative_from_output(act: Activation, y: __m512) -> __m512 {
    let (zero, one) = (_mm512_setzero_ps(), _mm512_set1_ps(1.0));
    match act {
        Activation::Identity => one,
        Activation::Relu => _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero), one),
        Activation::LeakyRelu(slope) => _mm512_mask_mov_ps(
            _mm512_set1_ps(slope),
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero),
            one,
        ),
        Activation::Sigmoid => _mm512_mul_ps(y, _mm512_sub_ps(one, y)),
        Activation::Tanh => _mm512_sub_ps(one, _mm512_mul_ps(y, y)),
        Activation::HardTanh(min, max) => inside(y, min, max, one),
        Activation::HardSigmoid => inside(y, 0.0, 1.0, _mm512_set1_ps(1.0 / 6.0)),
        Activation::Elu(alpha) => _mm512_mask_mov_ps(
            _mm512_add_ps(y, _mm512_set1_ps(alpha)),
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero),
            one,
        ),
        // Refused before any kernel runs (`max_pool2d_backward_through_on`);
        // NaN, as the scalar function gives, rather than a panic.
        Activation::Gated(_) => _mm512_set1_ps(f32::NAN),
    }
}

/// `slope` in the lanes where `lo < y < hi`, else 0.
#[inline]
#[target_feature(enable = "avx512f")]
fn inside(y: __m512, lo: f32, hi: f32, slope: __m512) -> __m512 {
    let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_set1_ps(lo));
    let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, _mm512_set1_ps(hi));
    _mm512_maskz_mov_ps(above & below, slope)
}

/// The gradient of [`max_plane_2x2`] for one plane: each window's `dy`
/// (times `act'` at its maximum, read from `y`, the pool's output, when the
/// activation's backward is fused in) on its argmax cell and zero on its other
/// three, every cell of the first `2 · (dyp.len() / ow)` rows' first `2·ow`
/// columns written. Returns false, having written only part of `dxp`, if an
/// argmax is not a cell of its own window (not one the forward wrote).
///
/// # Safety
/// `dxp` must hold those rows of `w` floats, `2 · ow <= w`, and `ap` and
/// `y` be as long as `dyp`, with the plane's indices below `u32::MAX`.
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn max_plane_2x2_backward(
    w: usize,
    ow: usize,
    dyp: &[f32],
    ap: &[u32],
    act: Option<(Activation, &[f32])>,
    dxp: &mut [f32],
) -> bool {
    debug_assert!(2 * ow <= w && ap.len() == dyp.len() && dxp.len() >= 2 * (dyp.len() / ow) * w);
    let columns = even_columns();
    let cells = [0, 1, w as i32, w as i32 + 1].map(|k| _mm512_set1_epi32(k));
    for (o_r, dyr) in dyp.chunks_exact(ow).enumerate() {
        let (top, bottom) = (2 * o_r * w, (2 * o_r + 1) * w);
        for o in (0..ow).step_by(16) {
            let windows = (ow - o).min(16);
            let out = lanes(windows);
            // SAFETY: dyr and ap's row hold ow ≥ o + windows values; the
            // mask stops there.
            let (g, a) = unsafe {
                (
                    _mm512_maskz_loadu_ps(out, dyr.as_ptr().add(o)),
                    _mm512_maskz_loadu_epi32(out, ap.as_ptr().add(o_r * ow + o).cast()),
                )
            };
            let first = _mm512_set1_epi32((top + 2 * o) as i32);
            let local = _mm512_sub_epi32(a, _mm512_add_epi32(first, columns));
            let at = cells.map(|cell| _mm512_mask_cmpeq_epi32_mask(out, local, cell));
            if at[0] | at[1] | at[2] | at[3] != out {
                return false;
            }
            let d = match act {
                None => g,
                Some((act, y)) => {
                    // SAFETY: y is as long as dyp; the mask stops there.
                    let v = unsafe { _mm512_maskz_loadu_ps(out, y.as_ptr().add(o_r * ow + o)) };
                    _mm512_mul_ps(g, derivative_from_output(act, v))
                }
            };
            let [tl, tr, bl, br] = at.map(|m| _mm512_maskz_mov_ps(m, d));
            // SAFETY: dxp holds the rows' first 2·ow ≥ 2·(o + windows) floats.
            unsafe {
                merge_row(&mut dxp[top + 2 * o..], windows, tl, tr);
                merge_row(&mut dxp[bottom + 2 * o..], windows, bl, br);
            }
        }
    }
    true
}
