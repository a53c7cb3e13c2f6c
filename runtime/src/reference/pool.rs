//! The reference pooling kernels: each window cell by cell, padding included,
//! in f64. Planes are `[h, w]` slices of an NCHW tensor.

use crate::pool::{AdaptivePool2d, Pool2d};

/// The input cell that padded window cell `(o_r·sh + i, o_c·sw + j)` is, or
/// `None` if it is padding.
fn cell(p: &Pool2d, o_r: usize, o_c: usize, i: usize, j: usize) -> Option<usize> {
    let r = (o_r * p.sh + i).checked_sub(p.ph).filter(|&r| r < p.h)?;
    let c = (o_c * p.sw + j).checked_sub(p.pw).filter(|&c| c < p.w)?;
    Some(r * p.w + c)
}

/// Max pooling with padding as `-inf`; returns `(y, argmax)`, the argmax
/// being the first maximal input cell of the window in row-major order, or
/// the last NaN if there is one (PyTorch's rule).
pub fn max_pool2d(p: Pool2d, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.h * p.w);
    let mut y = vec![0.0; p.y_len()];
    let mut argmax = vec![0; p.y_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..oh {
            for o_c in 0..ow {
                let mut best: Option<(f64, usize)> = None;
                for i in 0..p.kh {
                    for j in 0..p.kw {
                        let Some(at) = cell(&p, o_r, o_c, i, j) else { continue };
                        let v = x[q * plane + at];
                        let wins = match best {
                            None => true,
                            Some((b, _)) => v > b || v.is_nan(),
                        };
                        if wins {
                            best = Some((v, at));
                        }
                    }
                }
                let (v, at) = best.expect("a legal window holds an input cell");
                y[(q * oh + o_r) * ow + o_c] = v;
                argmax[(q * oh + o_r) * ow + o_c] = at as u32;
            }
        }
    }
    (y, argmax)
}

/// The max-pooling gradient: each `dy` added to the cell its argmax names.
pub fn max_pool2d_backward(p: Pool2d, dy: &[f64], argmax: &[u32]) -> Vec<f64> {
    let (out_plane, plane) = (p.out_h() * p.out_w(), p.h * p.w);
    let mut dx = vec![0.0; p.x_len()];
    for (o, (&g, &at)) in dy.iter().zip(argmax).enumerate() {
        dx[(o / out_plane) * plane + at as usize] += g;
    }
    dx
}

/// The divisor of average window `(o_r, o_c)`, counted cell by cell: the
/// window's cells inside the padded input (a ceil-mode window may run past
/// it) with `count_include_pad`, else its input cells.
fn avg_divisor(p: &Pool2d, o_r: usize, o_c: usize) -> f64 {
    let mut count = 0;
    for i in 0..p.kh {
        for j in 0..p.kw {
            let in_padded = o_r * p.sh + i < p.h + 2 * p.ph && o_c * p.sw + j < p.w + 2 * p.pw;
            let counts =
                if p.count_include_pad { in_padded } else { cell(p, o_r, o_c, i, j).is_some() };
            count += usize::from(counts);
        }
    }
    count as f64
}

/// Average pooling with zero padding, divided as `avg_divisor` says.
pub fn avg_pool2d(p: Pool2d, x: &[f64]) -> Vec<f64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.h * p.w);
    let mut y = vec![0.0; p.y_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..oh {
            for o_c in 0..ow {
                let mut s = 0.0;
                for i in 0..p.kh {
                    for j in 0..p.kw {
                        s += cell(&p, o_r, o_c, i, j).map_or(0.0, |at| x[q * plane + at]);
                    }
                }
                y[(q * oh + o_r) * ow + o_c] = s / avg_divisor(&p, o_r, o_c);
            }
        }
    }
    y
}

/// The average-pooling gradient: each window spreads `dy / divisor` over
/// its input cells.
pub fn avg_pool2d_backward(p: Pool2d, dy: &[f64]) -> Vec<f64> {
    let (oh, ow, plane) = (p.out_h(), p.out_w(), p.h * p.w);
    let mut dx = vec![0.0; p.x_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..oh {
            for o_c in 0..ow {
                let g = dy[(q * oh + o_r) * ow + o_c] / avg_divisor(&p, o_r, o_c);
                for i in 0..p.kh {
                    for j in 0..p.kw {
                        if let Some(at) = cell(&p, o_r, o_c, i, j) {
                            dx[q * plane + at] += g;
                        }
                    }
                }
            }
        }
    }
    dx
}

/// The input bin of adaptive output `i` of `out` on an axis of `len`:
/// `[⌊i·len/out⌋, ⌈(i+1)·len/out⌉)`, by the definition in f64.
fn adaptive_bin(i: usize, out: usize, len: usize) -> (usize, usize) {
    let (i, out, len) = (i as f64, out as f64, len as f64);
    ((i * len / out).floor() as usize, ((i + 1.0) * len / out).ceil() as usize)
}

/// Adaptive average pooling: the mean of each output's bin.
pub fn adaptive_avg_pool2d(p: AdaptivePool2d, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; p.y_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..p.oh {
            let (r0, r1) = adaptive_bin(o_r, p.oh, p.h);
            for o_c in 0..p.ow {
                let (c0, c1) = adaptive_bin(o_c, p.ow, p.w);
                let mut s = 0.0;
                for r in r0..r1 {
                    for c in c0..c1 {
                        s += x[(q * p.h + r) * p.w + c];
                    }
                }
                y[(q * p.oh + o_r) * p.ow + o_c] = s / ((r1 - r0) * (c1 - c0)) as f64;
            }
        }
    }
    y
}

/// The adaptive-average-pooling gradient: each bin shares its `dy` evenly.
pub fn adaptive_avg_pool2d_backward(p: AdaptivePool2d, dy: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; p.x_len()];
    for q in 0..p.n * p.c {
        for o_r in 0..p.oh {
            let (r0, r1) = adaptive_bin(o_r, p.oh, p.h);
            for o_c in 0..p.ow {
                let (c0, c1) = adaptive_bin(o_c, p.ow, p.w);
                let g = dy[(q * p.oh + o_r) * p.ow + o_c] / ((r1 - r0) * (c1 - c0)) as f64;
                for r in r0..r1 {
                    for c in c0..c1 {
                        dx[(q * p.h + r) * p.w + c] += g;
                    }
                }
            }
        }
    }
    dx
}

/// The mean of each `[h, w]` plane: `[n, c, h, w] -> [n, c]`.
pub fn global_avg_pool(n: usize, c: usize, h: usize, w: usize, x: &[f64]) -> Vec<f64> {
    let plane = h * w;
    (0..n * c).map(|q| x[q * plane..(q + 1) * plane].iter().sum::<f64>() / plane as f64).collect()
}

/// The global-average-pooling gradient: `dy / (h·w)` on every cell.
pub fn global_avg_pool_backward(n: usize, c: usize, h: usize, w: usize, dy: &[f64]) -> Vec<f64> {
    let plane = h * w;
    (0..n * c * plane).map(|i| dy[i / plane] / plane as f64).collect()
}
