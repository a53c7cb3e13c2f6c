//! The reference convolution: PyTorch's `nn.Conv2d` by its definition,
//! `y[n,o,oy,ox] = b[o] + Σ_{c,i,j} w[o,c,i,j] · x[n, g·C/G + c, oy·sh − ph + i·dh, ox·sw − pw + j·dw]`,
//! and its two gradients by the chain rule over the same index map; and the
//! transposed convolution, `nn.ConvTranspose2d`, by its own definition.

use crate::conv::Conv2d;
use crate::conv_transpose::ConvTranspose2d;

/// Calls `f(n, o, oy, ox, ci, i, j, x_index)` for every term of the sum
/// whose input position is inside the image (not padding).
fn for_each_term(
    s: &Conv2d,
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize, usize),
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    for n in 0..s.n {
        for o in 0..s.o {
            let g = o / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    for ci in 0..cg {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let iy = (oy * s.sh + i * s.dh) as isize - s.ph as isize;
                                let ix = (ox * s.sw + j * s.dw) as isize - s.pw as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let c = g * cg + ci;
                                let xi = ((n * s.c + c) * s.h + iy as usize) * s.w + ix as usize;
                                f(n, o, oy, ox, ci, i, j, xi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn y_index(s: &Conv2d, n: usize, o: usize, oy: usize, ox: usize) -> usize {
    ((n * s.o + o) * s.out_h() + oy) * s.out_w() + ox
}

fn w_index(s: &Conv2d, o: usize, ci: usize, i: usize, j: usize) -> usize {
    ((o * (s.c / s.groups) + ci) * s.kh + i) * s.kw + j
}

/// The forward pass in f64.
pub fn conv2d_forward(s: &Conv2d, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let mut y = vec![0.0; s.output_len()];
    for n in 0..s.n {
        for o in 0..s.o {
            for oy in 0..s.out_h() {
                for ox in 0..s.out_w() {
                    y[y_index(s, n, o, oy, ox)] = bias.map_or(0.0, |b| b[o]);
                }
            }
        }
    }
    for_each_term(s, |n, o, oy, ox, ci, i, j, xi| {
        y[y_index(s, n, o, oy, ox)] += w[w_index(s, o, ci, i, j)] * x[xi];
    });
    y
}

/// `dL/dx` given `dL/dy`.
pub fn conv2d_backward_data(s: &Conv2d, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.input_len()];
    for_each_term(s, |n, o, oy, ox, ci, i, j, xi| {
        dx[xi] += w[w_index(s, o, ci, i, j)] * dy[y_index(s, n, o, oy, ox)];
    });
    dx
}

/// `(dL/dw, dL/db)` given `dL/dy`.
pub fn conv2d_backward_weights(s: &Conv2d, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut dw = vec![0.0; s.weight_len()];
    let mut db = vec![0.0; s.o];
    for n in 0..s.n {
        for o in 0..s.o {
            for oy in 0..s.out_h() {
                for ox in 0..s.out_w() {
                    db[o] += dy[y_index(s, n, o, oy, ox)];
                }
            }
        }
    }
    for_each_term(s, |n, o, oy, ox, ci, i, j, xi| {
        dw[w_index(s, o, ci, i, j)] += x[xi] * dy[y_index(s, n, o, oy, ox)];
    });
    (dw, db)
}

/// Calls `f(n, ci, h, w, co, i, j, y_index)` for every term of PyTorch's
/// `nn.ConvTranspose2d`, `y[n, co, h·sh − ph + i·dh, w·sw − pw + j·dw] +=
/// wt[ci, co − g·O/G, i, j] · x[n, ci, h, w]`, whose output position is
/// inside the output.
fn for_each_transposed_term(
    s: &ConvTranspose2d,
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize, usize),
) {
    let (oh, ow) = (s.out_h() as isize, s.out_w() as isize);
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    for n in 0..s.n {
        for ci in 0..s.c {
            let g = ci / cg;
            for h in 0..s.h {
                for w in 0..s.w {
                    for co in g * og..(g + 1) * og {
                        for i in 0..s.kh {
                            for j in 0..s.kw {
                                let y = (h * s.sh + i * s.dh) as isize - s.ph as isize;
                                let x = (w * s.sw + j * s.dw) as isize - s.pw as isize;
                                if y < 0 || x < 0 || y >= oh || x >= ow {
                                    continue;
                                }
                                let yi = ((n * s.o + co) * oh as usize + y as usize) * ow as usize
                                    + x as usize;
                                f(n, ci, h, w, co, i, j, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn transposed_x_index(s: &ConvTranspose2d, n: usize, ci: usize, h: usize, w: usize) -> usize {
    ((n * s.c + ci) * s.h + h) * s.w + w
}

fn transposed_w_index(s: &ConvTranspose2d, ci: usize, co: usize, i: usize, j: usize) -> usize {
    let og = s.o / s.groups;
    ((ci * og + co % og) * s.kh + i) * s.kw + j
}

/// The transposed convolution's forward pass in f64.
pub fn conv_transpose2d_forward(
    s: &ConvTranspose2d,
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let plane = s.out_h() * s.out_w();
    let mut y = vec![0.0; s.output_len()];
    for (p, y) in y.chunks_mut(plane.max(1)).enumerate() {
        y.fill(bias.map_or(0.0, |b| b[p % s.o]));
    }
    for_each_transposed_term(s, |n, ci, h, wi, co, i, j, yi| {
        y[yi] += w[transposed_w_index(s, ci, co, i, j)] * x[transposed_x_index(s, n, ci, h, wi)];
    });
    y
}

/// The transposed convolution's `dL/dx` given `dL/dy`.
pub fn conv_transpose2d_backward_data(s: &ConvTranspose2d, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.input_len()];
    for_each_transposed_term(s, |n, ci, h, wi, co, i, j, yi| {
        dx[transposed_x_index(s, n, ci, h, wi)] += w[transposed_w_index(s, ci, co, i, j)] * dy[yi];
    });
    dx
}

/// The transposed convolution's `(dL/dw, dL/db)` given `dL/dy`.
pub fn conv_transpose2d_backward_weights(
    s: &ConvTranspose2d,
    x: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let plane = s.out_h() * s.out_w();
    let mut dw = vec![0.0; s.weight_len()];
    let mut db = vec![0.0; s.o];
    for (p, dy) in dy.chunks(plane.max(1)).enumerate() {
        db[p % s.o] += dy.iter().sum::<f64>();
    }
    for_each_transposed_term(s, |n, ci, h, wi, co, i, j, yi| {
        dw[transposed_w_index(s, ci, co, i, j)] += x[transposed_x_index(s, n, ci, h, wi)] * dy[yi];
    });
    (dw, db)
}
