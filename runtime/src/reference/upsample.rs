//! The reference upsampling kernels in f64, from the definitions: nearest
//! reads input `⌊o / factor⌋`; bilinear (`align_corners = false`) samples
//! at `(o + ½)/factor − ½`, clamped below at 0, between input `⌊·⌋` and
//! the next, the last input standing in past the right edge.

use crate::upsample::Upsample2d;

/// The inputs and weights that output `o` blends on an axis of `len`.
fn linear(o: usize, factor: usize, len: usize) -> [(usize, f64); 2] {
    let at = ((o as f64 + 0.5) / factor as f64 - 0.5).max(0.0);
    let i0 = (at.floor() as usize).min(len - 1);
    let frac = (at - i0 as f64).clamp(0.0, 1.0);
    [(i0, 1.0 - frac), ((i0 + 1).min(len - 1), frac)]
}

/// For each output cell of a plane, the input cells it reads and their
/// weights.
fn taps(p: Upsample2d, bilinear: bool, o_r: usize, o_c: usize) -> Vec<(usize, f64)> {
    if !bilinear {
        return vec![((o_r / p.sh) * p.w + o_c / p.sw, 1.0)];
    }
    let mut out = Vec::new();
    for (r, wr) in linear(o_r, p.sh, p.h) {
        for (c, wc) in linear(o_c, p.sw, p.w) {
            out.push((r * p.w + c, wr * wc));
        }
    }
    out
}

/// Upsampling, nearest or bilinear.
pub fn upsample2d(p: Upsample2d, bilinear: bool, x: &[f64]) -> Vec<f64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.h * p.w);
    let mut y = vec![0.0; p.y_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..oh {
            for o_c in 0..ow {
                y[(q * oh + o_r) * ow + o_c] = taps(p, bilinear, o_r, o_c)
                    .iter()
                    .map(|&(at, wt)| wt * x[q * plane + at])
                    .sum();
            }
        }
    }
    y
}

/// The upsampling gradient: each `dy` spread over the inputs it read, by
/// their weights.
pub fn upsample2d_backward(p: Upsample2d, bilinear: bool, dy: &[f64]) -> Vec<f64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.h * p.w);
    let mut dx = vec![0.0; p.x_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..oh {
            for o_c in 0..ow {
                let g = dy[(q * oh + o_r) * ow + o_c];
                for (at, wt) in taps(p, bilinear, o_r, o_c) {
                    dx[q * plane + at] += wt * g;
                }
            }
        }
    }
    dx
}
