//! Upsampling of f32 NCHW tensors by integer factors, forward and backward,
//! as `nn.Upsample(scale_factor=(sh, sw), mode=...)` (`F.interpolate`):
//! `nearest`, and `bilinear` with `align_corners = false`.
//!
//! Source indices and weights follow ATen's CPU kernels in f32, the scale
//! being `1 / factor` rounded to f32 as ATen passes it: nearest takes
//! `⌊o · scale⌋` (which for factors such as 41 is not `o / 41`: PyTorch's
//! output 41 reads input 0), bilinear samples at `(o + ½)·scale − ½`,
//! clamped below at 0, between input `⌊·⌋` and the next (the last input
//! repeats at the right edge). The backward passes scatter each output
//! gradient over the inputs it read, in output order, as ATen does.
//!
//! Each output row is one or two input rows read along memory; the kernels
//! are plain loops, since upsampling is bound by its loads and stores.

use crate::error::{check_len, LenError};

/// The shape of an upsampling: input `[n, c, h, w]`, output
/// `[n, c, h·sh, w·sw]`. A zero factor or extent has no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Upsample2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub sh: usize,
    pub sw: usize,
}

impl Upsample2d {
    pub fn out_h(&self) -> usize {
        self.h * self.sh
    }

    pub fn out_w(&self) -> usize {
        self.w * self.sw
    }

    /// Elements of the input `[n, c, h, w]` (and of `dx`).
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the output `[n, c, h·sh, w·sw]` (and of `dy`).
    pub fn y_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
}

/// ATen's scale of a factor: `1 / factor`, computed in f64 and rounded to
/// f32 (`compute_scales_value`).
#[inline(always)]
fn scale(factor: usize) -> f32 {
    (1.0 / factor as f64) as f32
}

/// The input that output `o` of a nearest upsampling by `factor` reads, on
/// an axis of `len` inputs: ATen's `nearest_idx`.
#[inline(always)]
pub fn nearest_source(o: usize, factor: usize, len: usize) -> usize {
    match factor {
        1 => o,
        2 => o >> 1,
        _ => ((o as f32 * scale(factor)).floor() as usize).min(len - 1),
    }
}

/// The two inputs that output `o` of a bilinear upsampling by `factor`
/// blends on an axis of `len` inputs, and their weights: ATen's
/// `compute_source_index_and_lambda` with `align_corners = false`.
#[inline(always)]
pub fn linear_source(o: usize, factor: usize, len: usize) -> (usize, usize, f32, f32) {
    if factor == 1 {
        return (o, o, 1.0, 0.0);
    }
    let real = (scale(factor) * (o as f32 + 0.5) - 0.5).max(0.0);
    let i0 = (real.floor() as usize).min(len - 1);
    let l1 = (real - i0 as f32).clamp(0.0, 1.0);
    let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
    (i0, i1, 1.0 - l1, l1)
}

/// Checks the operands; `false` when there is no work.
fn check(
    op: &'static str,
    p: Upsample2d,
    (x_name, x): (&'static str, usize),
    (y_name, y): (&'static str, usize),
) -> Result<bool, LenError> {
    check_len(op, x_name, x, p.x_len())?;
    check_len(op, y_name, y, p.y_len())?;
    Ok(p.y_len() > 0)
}

/// Nearest upsampling: output `(o_r, o_c)` is input
/// `(nearest_source(o_r), nearest_source(o_c))`. An output row that reads
/// the same input row as the one before is a copy of it.
pub fn upsample_nearest2d_forward(p: Upsample2d, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    if !check("upsample_nearest2d_forward", p, ("x", x.len()), ("y", y.len()))? {
        return Ok(());
    }
    let (oh, ow) = (p.out_h(), p.out_w());
    for (xp, yp) in x.chunks_exact(p.h * p.w).zip(y.chunks_exact_mut(oh * ow)) {
        for o_r in 0..oh {
            let r = nearest_source(o_r, p.sh, p.h);
            if o_r > 0 && nearest_source(o_r - 1, p.sh, p.h) == r {
                yp.copy_within((o_r - 1) * ow..o_r * ow, o_r * ow);
                continue;
            }
            let xr = &xp[r * p.w..(r + 1) * p.w];
            let yr = &mut yp[o_r * ow..(o_r + 1) * ow];
            if p.sw == 1 {
                yr.copy_from_slice(xr);
                continue;
            }
            for (o_c, yv) in yr.iter_mut().enumerate() {
                *yv = xr[nearest_source(o_c, p.sw, p.w)];
            }
        }
    }
    Ok(())
}

/// The gradient of [`upsample_nearest2d_forward`]: `dx` is overwritten,
/// each input cell the sum of the output gradients that read it, added in
/// output order.
pub fn upsample_nearest2d_backward(
    p: Upsample2d,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    let work = check("upsample_nearest2d_backward", p, ("dx", dx.len()), ("dy", dy.len()))?;
    dx.fill(0.0);
    if !work {
        return Ok(());
    }
    let (oh, ow) = (p.out_h(), p.out_w());
    for (dxp, dyp) in dx.chunks_exact_mut(p.h * p.w).zip(dy.chunks_exact(oh * ow)) {
        for (o_r, dyr) in dyp.chunks_exact(ow).enumerate() {
            let r = nearest_source(o_r, p.sh, p.h);
            let dxr = &mut dxp[r * p.w..(r + 1) * p.w];
            for (o_c, &g) in dyr.iter().enumerate() {
                dxr[nearest_source(o_c, p.sw, p.w)] += g;
            }
        }
    }
    Ok(())
}

/// Bilinear upsampling with `align_corners = false`: each output blends
/// the 2x2 inputs [`linear_source`] gives on each axis, across the row
/// first, `l0h·(l0w·x00 + l1w·x01) + l1h·(l0w·x10 + l1w·x11)`, as ATen's
/// separable interpolation nests it.
pub fn upsample_bilinear2d_forward(
    p: Upsample2d,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    if !check("upsample_bilinear2d_forward", p, ("x", x.len()), ("y", y.len()))? {
        return Ok(());
    }
    let (oh, ow) = (p.out_h(), p.out_w());
    for (xp, yp) in x.chunks_exact(p.h * p.w).zip(y.chunks_exact_mut(oh * ow)) {
        for (o_r, yr) in yp.chunks_exact_mut(ow).enumerate() {
            let (r0, r1, h0, h1) = linear_source(o_r, p.sh, p.h);
            let (top, bottom) = (&xp[r0 * p.w..(r0 + 1) * p.w], &xp[r1 * p.w..(r1 + 1) * p.w]);
            for (o_c, yv) in yr.iter_mut().enumerate() {
                let (c0, c1, w0, w1) = linear_source(o_c, p.sw, p.w);
                *yv = h0 * (w0 * top[c0] + w1 * top[c1]) + h1 * (w0 * bottom[c0] + w1 * bottom[c1]);
            }
        }
    }
    Ok(())
}

/// The gradient of [`upsample_bilinear2d_forward`]: `dx` is overwritten,
/// each output gradient `g` adding `l_h·l_w·g` to each of the four inputs
/// it blended, in output order.
pub fn upsample_bilinear2d_backward(
    p: Upsample2d,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    let work = check("upsample_bilinear2d_backward", p, ("dx", dx.len()), ("dy", dy.len()))?;
    dx.fill(0.0);
    if !work {
        return Ok(());
    }
    let (oh, ow) = (p.out_h(), p.out_w());
    for (dxp, dyp) in dx.chunks_exact_mut(p.h * p.w).zip(dy.chunks_exact(oh * ow)) {
        for (o_r, dyr) in dyp.chunks_exact(ow).enumerate() {
            let (r0, r1, h0, h1) = linear_source(o_r, p.sh, p.h);
            for (o_c, &g) in dyr.iter().enumerate() {
                let (c0, c1, w0, w1) = linear_source(o_c, p.sw, p.w);
                dxp[r0 * p.w + c0] += h0 * w0 * g;
                dxp[r0 * p.w + c1] += h0 * w1 * g;
                dxp[r1 * p.w + c0] += h1 * w0 * g;
                dxp[r1 * p.w + c1] += h1 * w1 * g;
            }
        }
    }
    Ok(())
}
