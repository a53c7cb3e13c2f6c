//! The reference normalisation kernels, in f64 from the definitions: batch,
//! layer and group norm with the textbook step-by-step gradient, and LRN
//! computed the way PyTorch's `local_response_norm` does it (zero-pad the
//! squares along the channels, average-pool them) with its gradient from
//! the full Jacobian.

use crate::norm::{BatchNorm, Lrn};
use crate::sample_norm::{GroupNorm, LayerNorm};

/// Everything a training-mode batch norm produces.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormTrain {
    pub y: Vec<f64>,
    /// The batch mean per channel.
    pub mean: Vec<f64>,
    /// `1 / sqrt(biased variance + eps)` per channel.
    pub invstd: Vec<f64>,
    pub running_mean: Vec<f64>,
    pub running_var: Vec<f64>,
}

/// The values of channel `ch`, sample by sample.
fn channel(bn: &BatchNorm, ch: usize) -> impl Iterator<Item = usize> {
    let (c, hw) = (bn.c, bn.h * bn.w);
    (0..bn.n).flat_map(move |i| (0..hw).map(move |s| (i * c + ch) * hw + s))
}

/// Batch mean and biased variance of every channel.
fn stats(bn: &BatchNorm, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = bn.count() as f64;
    let mean: Vec<f64> =
        (0..bn.c).map(|ch| channel(bn, ch).map(|i| x[i]).sum::<f64>() / m).collect();
    let var = (0..bn.c)
        .map(|ch| channel(bn, ch).map(|i| (x[i] - mean[ch]).powi(2)).sum::<f64>() / m)
        .collect();
    (mean, var)
}

/// Training-mode batch norm, with the running statistics updated by
/// `momentum` (the variance unbiased, `· m / (m - 1)`).
pub fn batch_norm_train(
    bn: BatchNorm,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
) -> BatchNormTrain {
    let m = bn.count() as f64;
    let (eps, mom) = (f64::from(bn.eps), f64::from(bn.momentum));
    let (mean, var) = stats(&bn, x);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0.0; x.len()];
    for ch in 0..bn.c {
        for i in channel(&bn, ch) {
            y[i] = (x[i] - mean[ch]) * invstd[ch] * gamma[ch] + beta[ch];
        }
    }
    let running_mean =
        (0..bn.c).map(|ch| (1.0 - mom) * running_mean[ch] + mom * mean[ch]).collect();
    let running_var =
        (0..bn.c).map(|ch| (1.0 - mom) * running_var[ch] + mom * var[ch] * m / (m - 1.0)).collect();
    BatchNormTrain { y, mean, invstd, running_mean, running_var }
}

/// Inference-mode batch norm with the running statistics.
pub fn batch_norm_inference(
    bn: BatchNorm,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
) -> Vec<f64> {
    let eps = f64::from(bn.eps);
    let mut y = vec![0.0; x.len()];
    for ch in 0..bn.c {
        for i in channel(&bn, ch) {
            y[i] =
                (x[i] - running_mean[ch]) / (running_var[ch] + eps).sqrt() * gamma[ch] + beta[ch];
        }
    }
    y
}

/// The training-mode gradient `(dx, dgamma, dbeta)` by the chain rule one
/// step at a time (through x̂, the variance and the mean), not the fused
/// formula the kernel uses.
pub fn batch_norm_backward(
    bn: BatchNorm,
    x: &[f64],
    dy: &[f64],
    gamma: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = bn.count() as f64;
    let eps = f64::from(bn.eps);
    let (mean, var) = stats(&bn, x);
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; bn.c];
    let mut dbeta = vec![0.0; bn.c];
    for ch in 0..bn.c {
        let std = (var[ch] + eps).sqrt();
        let xhat = |i: usize| (x[i] - mean[ch]) / std;
        dbeta[ch] = channel(&bn, ch).map(|i| dy[i]).sum();
        dgamma[ch] = channel(&bn, ch).map(|i| dy[i] * xhat(i)).sum();
        let dxhat = |i: usize| dy[i] * gamma[ch];
        let dvar: f64 = channel(&bn, ch)
            .map(|i| dxhat(i) * (x[i] - mean[ch]) * -0.5 * (var[ch] + eps).powf(-1.5))
            .sum();
        let dmean: f64 = channel(&bn, ch).map(|i| -dxhat(i) / std).sum::<f64>()
            + dvar * channel(&bn, ch).map(|i| -2.0 * (x[i] - mean[ch])).sum::<f64>() / m;
        for i in channel(&bn, ch) {
            dx[i] = dxhat(i) / std + dvar * 2.0 * (x[i] - mean[ch]) / m + dmean / m;
        }
    }
    (dx, dgamma, dbeta)
}

/// The LRN denominator before the power, `k + alpha · avg_pool(pad(x²))`,
/// built as PyTorch's `local_response_norm` builds it: the squares padded
/// with `size/2` zero channels before and `(size-1)/2` after, then averaged
/// over `size` consecutive channels.
pub fn lrn_scale(l: Lrn, x: &[f64]) -> Vec<f64> {
    let (c, hw) = (l.c, l.h * l.w);
    let (before, after) = (l.size / 2, (l.size - 1) / 2);
    let mut scale = vec![0.0; x.len()];
    let mut padded = vec![0.0; before + c + after];
    for i in 0..l.n {
        for s in 0..hw {
            for ch in 0..c {
                padded[before + ch] = x[(i * c + ch) * hw + s].powi(2);
            }
            for ch in 0..c {
                let avg = padded[ch..ch + l.size].iter().sum::<f64>() / l.size as f64;
                scale[(i * c + ch) * hw + s] = f64::from(l.k) + f64::from(l.alpha) * avg;
            }
        }
    }
    scale
}

/// LRN: `y = x / scale^beta`.
pub fn lrn(l: Lrn, x: &[f64]) -> Vec<f64> {
    let scale = lrn_scale(l, x);
    x.iter().zip(&scale).map(|(&v, &s)| v / s.powf(f64::from(l.beta))).collect()
}

/// The LRN gradient, summing `dy_c · ∂y_c/∂x_j` over every pair of channels
/// of a pixel; channel `j` is in the window of `c` if
/// `c - size/2 <= j <= c + (size-1)/2`.
pub fn lrn_backward(l: Lrn, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let (c, hw) = (l.c, l.h * l.w);
    let (alpha, beta, size) = (f64::from(l.alpha), f64::from(l.beta), l.size as f64);
    let scale = lrn_scale(l, x);
    let in_window = |j: usize, ch: usize| j + l.size / 2 >= ch && j <= ch + (l.size - 1) / 2;
    let mut dx = vec![0.0; x.len()];
    for i in 0..l.n {
        for s in 0..hw {
            let at = |ch: usize| (i * c + ch) * hw + s;
            for j in 0..c {
                let mut g = 0.0;
                for ch in 0..c {
                    let (xc, sc) = (x[at(ch)], scale[at(ch)]);
                    // ∂y_c/∂x_j = δ_cj·s_c^-β - β·x_c·s_c^(-β-1)·(alpha/size)·2·x_j.
                    let mut jac = 0.0;
                    if ch == j {
                        jac += sc.powf(-beta);
                    }
                    if in_window(j, ch) {
                        jac -= beta * xc * sc.powf(-beta - 1.0) * alpha / size * 2.0 * x[at(j)];
                    }
                    g += dy[at(ch)] * jac;
                }
                dx[at(j)] = g;
            }
        }
    }
    dx
}

/// The normalised rows of `x` (rows of `len` values): `(x̂, mean, rstd)`,
/// with the biased variance.
fn normalise_rows(x: &[f64], len: usize, eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut xhat, mut means, mut rstds) = (vec![0.0; x.len()], Vec::new(), Vec::new());
    for (r, row) in x.chunks(len).enumerate() {
        let mean = row.iter().sum::<f64>() / len as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / len as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for (j, v) in row.iter().enumerate() {
            xhat[r * len + j] = (v - mean) * rstd;
        }
        means.push(mean);
        rstds.push(rstd);
    }
    (xhat, means, rstds)
}

/// The gradient through `x̂ = (x - mean)·rstd` of each row, by the chain
/// rule one step at a time (through the variance and the mean), from the
/// gradient `dxhat` of the normalised values.
fn normalise_rows_backward(x: &[f64], len: usize, eps: f64, dxhat: &[f64]) -> Vec<f64> {
    let m = len as f64;
    let mut dx = vec![0.0; x.len()];
    for (r, row) in x.chunks(len).enumerate() {
        let g = &dxhat[r * len..(r + 1) * len];
        let mean = row.iter().sum::<f64>() / m;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
        let std = (var + eps).sqrt();
        let dvar: f64 =
            row.iter().zip(g).map(|(v, g)| g * (v - mean) * -0.5 * (var + eps).powf(-1.5)).sum();
        let dmean: f64 = g.iter().map(|g| -g / std).sum::<f64>()
            + dvar * row.iter().map(|v| -2.0 * (v - mean)).sum::<f64>() / m;
        for (j, v) in row.iter().enumerate() {
            dx[r * len + j] = g[j] / std + dvar * 2.0 * (v - mean) / m + dmean / m;
        }
    }
    dx
}

/// Layer norm as `nn.LayerNorm`: `(y, mean, rstd)`, the statistics per
/// row. `affine` is `(weight, bias)` of `len` values each.
pub fn layer_norm(
    ln: LayerNorm,
    x: &[f64],
    affine: Option<(&[f64], &[f64])>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (xhat, mean, rstd) = normalise_rows(x, ln.len, f64::from(ln.eps));
    let y = match affine {
        Some((w, b)) => {
            xhat.iter().enumerate().map(|(i, v)| v * w[i % ln.len] + b[i % ln.len]).collect()
        }
        None => xhat,
    };
    (y, mean, rstd)
}

/// The gradient of [`layer_norm`]: `(dx, dweight, dbias)`, the last two
/// empty without `weight`.
pub fn layer_norm_backward(
    ln: LayerNorm,
    x: &[f64],
    weight: Option<&[f64]>,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let eps = f64::from(ln.eps);
    let (xhat, _, _) = normalise_rows(x, ln.len, eps);
    let w = |i: usize| weight.map_or(1.0, |w| w[i % ln.len]);
    let dxhat: Vec<f64> = dy.iter().enumerate().map(|(i, g)| g * w(i)).collect();
    let dx = normalise_rows_backward(x, ln.len, eps, &dxhat);
    let (mut dw, mut db) = (vec![0.0; ln.len], vec![0.0; ln.len]);
    for (i, g) in dy.iter().enumerate() {
        dw[i % ln.len] += g * xhat[i];
        db[i % ln.len] += g;
    }
    if weight.is_none() {
        (dw, db) = (Vec::new(), Vec::new());
    }
    (dx, dw, db)
}

/// Group norm as `nn.GroupNorm`: `(y, mean, rstd)`, the statistics per
/// group of each sample. `affine` is `(weight, bias)` of `c` values each.
pub fn group_norm(
    gn: GroupNorm,
    x: &[f64],
    affine: Option<(&[f64], &[f64])>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let len = gn.c / gn.groups * gn.inner;
    let (xhat, mean, rstd) = normalise_rows(x, len, f64::from(gn.eps));
    let ch = |i: usize| i / gn.inner % gn.c;
    let y = match affine {
        Some((w, b)) => xhat.iter().enumerate().map(|(i, v)| v * w[ch(i)] + b[ch(i)]).collect(),
        None => xhat,
    };
    (y, mean, rstd)
}

/// The gradient of [`group_norm`]: `(dx, dweight, dbias)`, the last two
/// empty without `weight`.
pub fn group_norm_backward(
    gn: GroupNorm,
    x: &[f64],
    weight: Option<&[f64]>,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let eps = f64::from(gn.eps);
    let len = gn.c / gn.groups * gn.inner;
    let (xhat, _, _) = normalise_rows(x, len, eps);
    let ch = |i: usize| i / gn.inner % gn.c;
    let dxhat: Vec<f64> =
        dy.iter().enumerate().map(|(i, g)| g * weight.map_or(1.0, |w| w[ch(i)])).collect();
    let dx = normalise_rows_backward(x, len, eps, &dxhat);
    let (mut dw, mut db) = (vec![0.0; gn.c], vec![0.0; gn.c]);
    for (i, g) in dy.iter().enumerate() {
        dw[ch(i)] += g * xhat[i];
        db[ch(i)] += g;
    }
    if weight.is_none() {
        (dw, db) = (Vec::new(), Vec::new());
    }
    (dx, dw, db)
}
