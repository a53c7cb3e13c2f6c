//! Normalisation over f32 NCHW tensors, forward and backward, with PyTorch's
//! semantics: batch norm over the channel axis (`nn.BatchNorm2d`, and
//! `nn.BatchNorm1d` on `[N, C]` as `h = w = 1`) in training and inference
//! mode, and local response normalisation across channels
//! (`nn.LocalResponseNorm`).
//!
//! A channel of an NCHW tensor is `n` contiguous planes of `h·w` cells, one
//! per sample, so batch norm reduces plane by plane (f32 in many lanes
//! inside a plane, see `reduce`; f64 across planes) and applies one fused
//! multiply-add per cell, with a following activation fused in when asked.
//! LRN mixes a window of planes of the same sample.

use crate::act::per_activation;
use crate::error::{check_len, LenError};
use crate::gemm::Activation;
use crate::reduce;
use rayon::prelude::*;

/// The shape and hyper-parameters of a batch norm over `[n, c, h, w]`.
///
/// `momentum` is PyTorch's: `running = (1 - momentum)·running +
/// momentum·batch`. PyTorch's `momentum = None` (a cumulative average) is not
/// supported. An `affine = false` layer passes `gamma = 1`, `beta = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm {
    /// PyTorch's defaults: `eps = 1e-5`, `momentum = 0.1`.
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        BatchNorm { n, c, h, w, eps: 1e-5, momentum: 0.1 }
    }

    /// Elements of `x`, `y`, `dy` and `dx`.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Values per channel, the `m` the statistics average over: `n·h·w`.
    pub fn count(&self) -> usize {
        self.n * self.h * self.w
    }

    /// The offsets of channel `ch`'s planes, one per sample.
    #[inline(always)]
    fn planes(&self, ch: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        let (c, hw) = (self.c, self.h * self.w);
        (0..self.n).map(move |i| {
            let start = (i * c + ch) * hw;
            start..start + hw
        })
    }
}

/// Batch norm in training mode, as `nn.BatchNorm2d` in `train()`:
///
/// - normalises each channel by its batch mean and *biased* variance,
///   `y = (x - mean) / sqrt(var + eps) · gamma + beta`;
/// - saves `mean` and `invstd = 1 / sqrt(var + eps)` per channel in
///   `save_mean` and `save_invstd`, for [`batch_norm_backward`];
/// - updates `running_mean` with the mean and `running_var` with the
///   *unbiased* variance `var · m / (m - 1)`, `m = n·h·w`, by `momentum`.
///
/// With `m == 1` the unbiased variance is 0/0 and `running_var` becomes NaN,
/// as in ATen (PyTorch's Python layer refuses such a batch). An empty batch
/// (`m == 0`) leaves the running stats untouched, as ATen does, and saves
/// mean 0 and variance 0.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train(
    bn: BatchNorm,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
) -> Result<(), LenError> {
    let stats = (save_mean, save_invstd, running_mean, running_var);
    batch_norm_forward_train_act(bn, Activation::Identity, x, gamma, beta, y, stats)
}

/// [`batch_norm_forward_train`] with `activation` applied to each output
/// as it is stored: `y = act(bn(x))` in one pass where a separate
/// activation would read and write `y` again. The statistics are those of
/// `bn(x)`, before the activation. `stats` is `(save_mean, save_invstd,
/// running_mean, running_var)`.
pub fn batch_norm_forward_train_act(
    bn: BatchNorm,
    activation: Activation,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    stats: TrainStats<'_>,
) -> Result<(), LenError> {
    let (save_mean, save_invstd, running_mean, running_var) = stats;
    const OP: &str = "batch_norm_forward_train";
    check_len(OP, "x", x.len(), bn.x_len())?;
    check_len(OP, "gamma", gamma.len(), bn.c)?;
    check_len(OP, "beta", beta.len(), bn.c)?;
    check_len(OP, "y", y.len(), bn.x_len())?;
    check_len(OP, "save_mean", save_mean.len(), bn.c)?;
    check_len(OP, "save_invstd", save_invstd.len(), bn.c)?;
    check_len(OP, "running_mean", running_mean.len(), bn.c)?;
    check_len(OP, "running_var", running_var.len(), bn.c)?;
    let m = bn.count();
    let eps = f64::from(bn.eps);
    if m == 0 {
        save_mean.fill(0.0);
        save_invstd.fill((1.0 / eps.sqrt()) as f32);
        return Ok(());
    }
    let momentum = f64::from(bn.momentum);
    // Channels are independent: statistics in parallel over channels, then
    // the normalisation in parallel over samples (contiguous in y).
    let stats = |(ch, ((mean_out, invstd_out), (rmean, rvar))): (usize, StatsOut<'_>)| {
        let (mean, ssd) = channel_moments(bn, ch, x);
        let var = ssd / m as f64;
        let mean = mean as f32;
        *mean_out = mean;
        *invstd_out = (1.0 / (var + eps).sqrt()) as f32;
        *rmean = ((1.0 - momentum) * f64::from(*rmean) + momentum * f64::from(mean)) as f32;
        let unbiased = ssd / (m - 1) as f64;
        *rvar = ((1.0 - momentum) * f64::from(*rvar) + momentum * unbiased) as f32;
    };
    let outs = save_mean.iter_mut().zip(save_invstd.iter_mut());
    let running = running_mean.iter_mut().zip(running_var.iter_mut());
    if parallel(bn) {
        let outs = save_mean.par_iter_mut().zip(save_invstd.par_iter_mut());
        let running = running_mean.par_iter_mut().zip(running_var.par_iter_mut());
        outs.zip(running).enumerate().for_each(stats);
    } else {
        outs.zip(running).enumerate().for_each(stats);
    }
    normalise_all(bn, x, y, |ch| (save_mean[ch], save_invstd[ch]), gamma, beta, activation);
    Ok(())
}

/// The per-channel buffers of a training-mode forward: `(save_mean,
/// save_invstd, running_mean, running_var)`.
pub type TrainStats<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// The mean of channel `ch` and the sum of squared deviations from it, in
/// one pass over memory: each plane's own mean and squared deviations are
/// taken while it sits in L1 (two passes there, so no cancellation), and
/// the planes are merged in f64 by Chan, Golub and LeVeque's pairwise
/// update.
fn channel_moments(bn: BatchNorm, ch: usize, x: &[f32]) -> (f64, f64) {
    let (mut count, mut mean, mut ssd) = (0.0f64, 0.0f64, 0.0f64);
    for r in bn.planes(ch) {
        let plane = &x[r];
        if plane.is_empty() {
            continue;
        }
        let len = plane.len() as f64;
        let (plane_mean, plane_ssd) = reduce::mean_and_ssd(plane);
        let delta = plane_mean - mean;
        let total = count + len;
        mean += delta * len / total;
        ssd += plane_ssd + delta * delta * count * len / total;
        count = total;
    }
    (mean, ssd)
}

/// Per-channel outputs of the statistics pass: mean, invstd, and the
/// running mean and variance.
type StatsOut<'a> = ((&'a mut f32, &'a mut f32), (&'a mut f32, &'a mut f32));

/// Whether a batch norm is big enough for its passes to pay for splitting
/// across threads: below that, waking the other thread costs more than
/// it saves.
fn parallel(bn: BatchNorm) -> bool {
    bn.x_len() >= 1 << 15 && crate::par::threads() > 1
}

/// `y = (x - mean)·invstd·gamma + beta` for every channel, with
/// `(mean, invstd)` of channel `ch` from `stats(ch)`; samples in parallel
/// when that pays.
fn normalise_all(
    bn: BatchNorm,
    x: &[f32],
    y: &mut [f32],
    stats: impl Fn(usize) -> (f32, f32) + Sync,
    gamma: &[f32],
    beta: &[f32],
    activation: Activation,
) {
    let sample = bn.c * bn.h * bn.w;
    if sample == 0 {
        return;
    }
    // One loop per activation, so that each is vectorised.
    per_activation!(activation, crate::act::activate, |act| {
        let one = |(y, x): (&mut [f32], &[f32])| {
            let one_sample = BatchNorm { n: 1, ..bn };
            for ch in 0..bn.c {
                let (mean, invstd) = stats(ch);
                normalise(one_sample, ch, x, y, mean, invstd, gamma[ch], beta[ch], act);
            }
        };
        if parallel(bn) {
            y.par_chunks_mut(sample).zip(x.par_chunks(sample)).for_each(one);
        } else {
            y.chunks_mut(sample).zip(x.chunks(sample)).for_each(one);
        }
    })
}

/// `y = act((x - mean)·invstd·gamma + beta)` on channel `ch`, the affine
/// part folded as ATen does into one multiply-add per cell.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn normalise(
    bn: BatchNorm,
    ch: usize,
    x: &[f32],
    y: &mut [f32],
    mean: f32,
    invstd: f32,
    gamma: f32,
    beta: f32,
    act: impl Fn(f32) -> f32,
) {
    let scale = invstd * gamma;
    let shift = beta - mean * scale;
    for r in bn.planes(ch) {
        for (yv, &xv) in y[r.clone()].iter_mut().zip(&x[r]) {
            *yv = act(xv * scale + shift);
        }
    }
}

/// Batch norm in inference mode, as `nn.BatchNorm2d` in `eval()`:
/// `y = (x - running_mean) / sqrt(running_var + eps) · gamma + beta`.
pub fn batch_norm_forward_inference(
    bn: BatchNorm,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    let running = (running_mean, running_var);
    batch_norm_forward_inference_act(bn, Activation::Identity, x, gamma, beta, running, y)
}

/// [`batch_norm_forward_inference`] with `activation` applied to each
/// output as it is stored. `running` is `(running_mean, running_var)`.
pub fn batch_norm_forward_inference_act(
    bn: BatchNorm,
    activation: Activation,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running: (&[f32], &[f32]),
    y: &mut [f32],
) -> Result<(), LenError> {
    let (running_mean, running_var) = running;
    const OP: &str = "batch_norm_forward_inference";
    check_len(OP, "x", x.len(), bn.x_len())?;
    check_len(OP, "gamma", gamma.len(), bn.c)?;
    check_len(OP, "beta", beta.len(), bn.c)?;
    check_len(OP, "running_mean", running_mean.len(), bn.c)?;
    check_len(OP, "running_var", running_var.len(), bn.c)?;
    check_len(OP, "y", y.len(), bn.x_len())?;
    let stats = |ch: usize| (running_mean[ch], 1.0 / (running_var[ch] + bn.eps).sqrt());
    normalise_all(bn, x, y, stats, gamma, beta, activation);
    Ok(())
}

/// The gradient of [`batch_norm_forward_train`] (training mode, so through
/// the batch statistics too), from the `save_mean` and `save_invstd` that
/// the forward saved. With `x̂ = (x - mean)·invstd` and `m = n·h·w`:
///
/// - `dbeta = Σ dy`, `dgamma = Σ dy·x̂`;
/// - `dx = gamma·invstd·(dy - dbeta/m - x̂·dgamma/m)`, the fused formula of
///   ATen's `batch_norm_backward`.
///
/// `dx`, `dgamma` and `dbeta` are overwritten, not accumulated.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    bn: BatchNorm,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "batch_norm_backward";
    check_len(OP, "x", x.len(), bn.x_len())?;
    check_len(OP, "dy", dy.len(), bn.x_len())?;
    check_len(OP, "gamma", gamma.len(), bn.c)?;
    check_len(OP, "save_mean", save_mean.len(), bn.c)?;
    check_len(OP, "save_invstd", save_invstd.len(), bn.c)?;
    check_len(OP, "dx", dx.len(), bn.x_len())?;
    check_len(OP, "dgamma", dgamma.len(), bn.c)?;
    check_len(OP, "dbeta", dbeta.len(), bn.c)?;
    let m = bn.count();
    // Per-channel sums in parallel over channels, then dx in parallel over
    // samples.
    let sums = |(ch, (dg, db)): (usize, (&mut f32, &mut f32))| {
        let mean = save_mean[ch];
        let (mut sum_dy, mut dot) = (0.0f64, 0.0f64);
        for r in bn.planes(ch) {
            let (s, d) = reduce::sum_and_dot_dev(&dy[r.clone()], &x[r], mean);
            sum_dy += f64::from(s);
            dot += f64::from(d);
        }
        *db = sum_dy as f32;
        *dg = (dot * f64::from(save_invstd[ch])) as f32;
    };
    if parallel(bn) {
        dgamma.par_iter_mut().zip(dbeta.par_iter_mut()).enumerate().for_each(sums);
    } else {
        dgamma.iter_mut().zip(dbeta.iter_mut()).enumerate().for_each(sums);
    }
    let sample = bn.c * bn.h * bn.w;
    if m == 0 || sample == 0 {
        return Ok(());
    }
    let inv_m = 1.0 / m as f64;
    let (dgamma, dbeta) = (&*dgamma, &*dbeta);
    let one = |(dx, (dy, x)): (&mut [f32], (&[f32], &[f32]))| {
        let one_sample = BatchNorm { n: 1, ..bn };
        for ch in 0..bn.c {
            let (mean, invstd) = (save_mean[ch], save_invstd[ch]);
            let mean_dy = (f64::from(dbeta[ch]) * inv_m) as f32;
            // x̂·dgamma/m = (x - mean)·invstd²·dot/m = (x - mean)·invstd·dgamma/m.
            let k = (f64::from(dgamma[ch]) * f64::from(invstd) * inv_m) as f32;
            let a = gamma[ch] * invstd;
            for r in one_sample.planes(ch) {
                let planes = dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&x[r]);
                for ((d, &g), &xv) in planes {
                    *d = (g - mean_dy - (xv - mean) * k) * a;
                }
            }
        }
    };
    if parallel(bn) {
        dx.par_chunks_mut(sample)
            .zip(dy.par_chunks(sample).zip(x.par_chunks(sample)))
            .for_each(one);
    } else {
        dx.chunks_mut(sample).zip(dy.chunks(sample).zip(x.chunks(sample))).for_each(one);
    }
    Ok(())
}

/// The shape and hyper-parameters of a local response norm over
/// `[n, c, h, w]`, as `nn.LocalResponseNorm(size, alpha, beta, k)`.
///
/// `size` should be at least 1 (PyTorch rejects 0; here it gives NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

impl Lrn {
    /// PyTorch's defaults: `alpha = 1e-4`, `beta = 0.75`, `k = 1`.
    pub fn new(n: usize, c: usize, h: usize, w: usize, size: usize) -> Self {
        Lrn { n, c, h, w, size, alpha: 1e-4, beta: 0.75, k: 1.0 }
    }

    /// Elements of `x`, `y`, `scale`, `dy` and `dx`.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// The channels `[start, end)` that output channel `ch` sums over:
    /// `ch - size/2 ..= ch + (size-1)/2`, clipped. PyTorch pads `size/2` zero
    /// channels before and `(size-1)/2` after, then averages `size` of them,
    /// so an even window leans towards the lower channels.
    #[inline(always)]
    fn window(&self, ch: usize) -> (usize, usize) {
        (ch.saturating_sub(self.size / 2), (ch + self.size.div_ceil(2)).min(self.c))
    }

    /// The output channels whose window holds input channel `j`: the
    /// mirror image of [`window`](Self::window),
    /// `j - (size-1)/2 ..= j + size/2`, clipped.
    #[inline(always)]
    fn users(&self, j: usize) -> (usize, usize) {
        if self.size == 0 {
            return (j, j);
        }
        (j.saturating_sub((self.size - 1) / 2), (j + self.size / 2 + 1).min(self.c))
    }
}

/// Local response normalisation, as `nn.LocalResponseNorm(size, alpha, beta,
/// k)`: `y_c = x_c / scale_c^beta` with
/// `scale_c = k + alpha · (Σ_{c' in window(c)} x_c'²) / size`, the window
/// running from `c - size/2` to `c + (size-1)/2` (channels outside the
/// tensor count as zero, and the divisor is always `size`). `scale` is
/// saved for [`lrn_backward`].
pub fn lrn_forward(l: Lrn, x: &[f32], y: &mut [f32], scale: &mut [f32]) -> Result<(), LenError> {
    const OP: &str = "lrn_forward";
    check_len(OP, "x", x.len(), l.x_len())?;
    check_len(OP, "y", y.len(), l.x_len())?;
    check_len(OP, "scale", scale.len(), l.x_len())?;
    let (c, hw) = (l.c, l.h * l.w);
    let size = l.size as f32;
    let sample = c * hw;
    if sample == 0 {
        return Ok(());
    }
    // Output channels `ch0..` of one sample `x` into the matching planes of
    // `y` and `scale`.
    let channels = |ch0: usize, y: &mut [f32], scale: &mut [f32], x: &[f32]| {
        let plane = |ch: usize| ch * hw..(ch + 1) * hw;
        for (i, (y, s)) in y.chunks_exact_mut(hw).zip(scale.chunks_exact_mut(hw)).enumerate() {
            let ch = ch0 + i;
            s.fill(0.0);
            let (lo, hi) = l.window(ch);
            for cc in lo..hi {
                for (sv, &xv) in s.iter_mut().zip(&x[plane(cc)]) {
                    *sv += xv * xv;
                }
            }
            // ATen's order: average, then times alpha, then plus k.
            for sv in s.iter_mut() {
                *sv = l.k + l.alpha * (*sv / size);
            }
            divide_by_pow(y, &x[plane(ch)], s, l.beta);
        }
    };
    // Samples are independent, and so are output channels: in parallel
    // when the tensor is big enough, a sample's channels split between the
    // threads when there are fewer samples than threads (batch-1
    // inference).
    let threads = crate::par::threads();
    if l.x_len() >= 1 << 15 && threads > 1 {
        let block = if l.n < threads { c.div_ceil(threads) * hw } else { sample };
        y.par_chunks_mut(sample)
            .zip(scale.par_chunks_mut(sample).zip(x.par_chunks(sample)))
            .for_each(|(y, (scale, x))| {
                let blocks = y.par_chunks_mut(block).zip(scale.par_chunks_mut(block));
                blocks.enumerate().for_each(|(b, (y, s))| channels(b * block / hw, y, s, x));
            });
    } else {
        for (y, (scale, x)) in
            y.chunks_mut(sample).zip(scale.chunks_mut(sample).zip(x.chunks(sample)))
        {
            channels(0, y, scale, x);
        }
    }
    Ok(())
}

/// One sample's `dy`, `x`, `y` and `scale`, as the backward's zipped
/// chunks hand them over.
type LrnGradInputs<'a> = (&'a [f32], (&'a [f32], (&'a [f32], &'a [f32])));

/// `out = num / s^beta` elementwise. AlexNet's `beta = 0.75` takes
/// `s^0.75 = √s·√√s`: two square roots vectorise, where `powf` is a
/// library call per element; other exponents keep `powf`. Within 2 ulps of
/// it.
#[inline]
fn divide_by_pow(out: &mut [f32], num: &[f32], s: &[f32], beta: f32) {
    if beta == 0.75 {
        for ((o, &n), &sv) in out.iter_mut().zip(num).zip(s) {
            let r = sv.sqrt();
            *o = n / (r * r.sqrt());
        }
    } else {
        for ((o, &n), &sv) in out.iter_mut().zip(num).zip(s) {
            *o = n / sv.powf(beta);
        }
    }
}

/// The gradient of [`lrn_forward`], from its input `x`, output `y` and saved
/// `scale`. Each input feeds its own output and, through `scale`, the
/// outputs whose window holds it:
///
/// `dx_j = dy_j / scale_j^beta
///        - (2·alpha·beta / size) · x_j · Σ_{c: j in window(c)} dy_c · y_c / scale_c`.
///
/// `dx` is overwritten.
pub fn lrn_backward(
    l: Lrn,
    x: &[f32],
    y: &[f32],
    scale: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "lrn_backward";
    check_len(OP, "x", x.len(), l.x_len())?;
    check_len(OP, "y", y.len(), l.x_len())?;
    check_len(OP, "scale", scale.len(), l.x_len())?;
    check_len(OP, "dy", dy.len(), l.x_len())?;
    check_len(OP, "dx", dx.len(), l.x_len())?;
    let (c, hw) = (l.c, l.h * l.w);
    let coef = 2.0 * l.alpha * l.beta / l.size as f32;
    let sample = c * hw;
    if sample == 0 {
        return Ok(());
    }
    let one = |(dx, (dy, (x, (y, scale)))): (&mut [f32], LrnGradInputs<'_>)| {
        let plane = |ch: usize| ch * hw..(ch + 1) * hw;
        for j in 0..c {
            // dx_j first collects the cross-channel sum, then becomes the
            // gradient: no scratch buffer needed.
            let d = &mut dx[plane(j)];
            d.fill(0.0);
            let (lo, hi) = l.users(j);
            for cc in lo..hi {
                let p = plane(cc);
                let terms = d.iter_mut().zip(&dy[p.clone()]).zip(&y[p.clone()]).zip(&scale[p]);
                for (((dv, &g), &yv), &sv) in terms {
                    *dv += g * yv / sv;
                }
            }
            let p = plane(j);
            let terms = d.iter_mut().zip(&dy[p.clone()]).zip(&x[p.clone()]).zip(&scale[p]);
            if l.beta == 0.75 {
                for (((dv, &g), &xv), &sv) in terms {
                    let r = sv.sqrt();
                    *dv = g / (r * r.sqrt()) - coef * xv * *dv;
                }
            } else {
                for (((dv, &g), &xv), &sv) in terms {
                    *dv = g / sv.powf(l.beta) - coef * xv * *dv;
                }
            }
        }
    };
    let inputs =
        dy.chunks(sample).zip(x.chunks(sample).zip(y.chunks(sample).zip(scale.chunks(sample))));
    if l.x_len() >= 1 << 15 && crate::par::threads() > 1 {
        let inputs = dy
            .par_chunks(sample)
            .zip(x.par_chunks(sample).zip(y.par_chunks(sample).zip(scale.par_chunks(sample))));
        dx.par_chunks_mut(sample).zip(inputs).for_each(one);
    } else {
        dx.chunks_mut(sample).zip(inputs).for_each(one);
    }
    Ok(())
}
