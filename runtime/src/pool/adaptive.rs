//! Adaptive average pooling, as `nn.AdaptiveAvgPool2d((oh, ow))`: output
//! cell `i` of an axis of `len` averages the input bin
//! `[⌊i·len/out⌋, ⌈(i+1)·len/out⌉)`, so bins tile the input (and overlap
//! when `out` does not divide `len`). As ATen's CPU kernel, a bin is summed
//! in f32 in row-major order and divided by its height, then by its width,
//! and the backward spreads `dy / height / width` over the bin.
//!
//! The loops work a whole output row at a time, one input row of the bin
//! after another, so the inner loop runs along memory; pooling is
//! memory-bound and these plain loops keep up with the loads.

use crate::error::{check_len, LenError};

/// The shape of an adaptive pooling: input `[n, c, h, w]` to output
/// `[n, c, oh, ow]`. Any sizes are legal; an empty input or output has no
/// work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptivePool2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl AdaptivePool2d {
    /// Elements of the input `[n, c, h, w]` (and of `dx`).
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the output `[n, c, oh, ow]` (and of `dy`).
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.oh * self.ow
    }

    fn is_empty(&self) -> bool {
        self.x_len() == 0 || self.y_len() == 0
    }
}

/// The input bin `[start, end)` of output `i` of `out` along an axis of
/// `len`: PyTorch's `start_index` and `end_index`, in integers. Never
/// empty for `len, out >= 1`.
#[inline(always)]
pub fn bin(i: usize, out: usize, len: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

/// Adaptive average pooling of `x` into `y`.
pub fn adaptive_avg_pool2d_forward(
    p: AdaptivePool2d,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "adaptive_avg_pool2d_forward";
    check_len(OP, "x", x.len(), p.x_len())?;
    check_len(OP, "y", y.len(), p.y_len())?;
    if p.is_empty() {
        return Ok(());
    }
    for (xp, yp) in x.chunks_exact(p.h * p.w).zip(y.chunks_exact_mut(p.oh * p.ow)) {
        for (o_r, yr) in yp.chunks_exact_mut(p.ow).enumerate() {
            let (r0, r1) = bin(o_r, p.oh, p.h);
            yr.fill(0.0);
            for xr in xp[r0 * p.w..r1 * p.w].chunks_exact(p.w) {
                for (o_c, yv) in yr.iter_mut().enumerate() {
                    let (c0, c1) = bin(o_c, p.ow, p.w);
                    *yv = xr[c0..c1].iter().fold(*yv, |s, &v| s + v);
                }
            }
            let height = (r1 - r0) as f32;
            for (o_c, yv) in yr.iter_mut().enumerate() {
                let (c0, c1) = bin(o_c, p.ow, p.w);
                *yv = *yv / height / (c1 - c0) as f32;
            }
        }
    }
    Ok(())
}

/// The gradient of [`adaptive_avg_pool2d_forward`]: `dx` is overwritten,
/// each input cell receiving `dy / height / width` from every bin that
/// holds it.
pub fn adaptive_avg_pool2d_backward(
    p: AdaptivePool2d,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    check_len(OP, "dy", dy.len(), p.y_len())?;
    check_len(OP, "dx", dx.len(), p.x_len())?;
    dx.fill(0.0);
    if p.is_empty() {
        return Ok(());
    }
    for (dxp, dyp) in dx.chunks_exact_mut(p.h * p.w).zip(dy.chunks_exact(p.oh * p.ow)) {
        for (o_r, dyr) in dyp.chunks_exact(p.ow).enumerate() {
            let (r0, r1) = bin(o_r, p.oh, p.h);
            let height = (r1 - r0) as f32;
            for dxr in dxp[r0 * p.w..r1 * p.w].chunks_exact_mut(p.w) {
                for (o_c, &g) in dyr.iter().enumerate() {
                    let (c0, c1) = bin(o_c, p.ow, p.w);
                    let share = g / height / (c1 - c0) as f32;
                    for d in &mut dxr[c0..c1] {
                        *d += share;
                    }
                }
            }
        }
    }
    Ok(())
}
