//! Losses and their gradients: softmax cross-entropy fused with its
//! backward (with PyTorch's label smoothing and class weights), the halved
//! sum-of-squares error, and the elementwise losses of `pointwise`
//! (binary cross-entropy on logits, smooth L1, Huber).
//!
//! Each reduces by a mean (over the batch, its targets' weights, or every
//! element, as its PyTorch counterpart does), and the gradients already
//! carry that divisor, so the generated training step feeds them straight
//! into the backward of the last layer.

mod pointwise;

pub use pointwise::{bce_with_logits, huber, smooth_l1};

use std::fmt;

use crate::act::numel;
use crate::error::{check_len, LenError};

/// Why a loss could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossError {
    /// A buffer does not match the shape.
    Len(LenError),
    /// `labels[sample]` is not a class index below `classes`.
    Label { sample: usize, label: u64, classes: usize },
}

impl fmt::Display for LossError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossError::Len(e) => e.fmt(f),
            LossError::Label { sample, label, classes } => write!(
                f,
                "softmax_cross_entropy: label {label} of sample {sample} is out of range for {classes} classes"
            ),
        }
    }
}

impl std::error::Error for LossError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LossError::Len(e) => Some(e),
            LossError::Label { .. } => None,
        }
    }
}

impl From<LenError> for LossError {
    fn from(e: LenError) -> Self {
        LossError::Len(e)
    }
}

/// An integer type that holds class indices, so that labels can come
/// straight from a data loader as `u8`, `u16`, `u32`, `u64` or `usize`.
pub trait ClassIndex: Copy {
    /// The index, widened without loss.
    fn to_u64(self) -> u64;
}

macro_rules! class_index {
    ($($t:ty),*) => {$(
        impl ClassIndex for $t {
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
        }
    )*};
}
class_index!(u8, u16, u32, u64, usize);

/// The label of `sample` as an index below `classes`.
#[inline]
fn class_of<L: ClassIndex>(label: L, sample: usize, classes: usize) -> Result<usize, LossError> {
    let label = label.to_u64();
    match usize::try_from(label) {
        Ok(class) if class < classes => Ok(class),
        _ => Err(LossError::Label { sample, label, classes }),
    }
}

/// Checks every shape and every label before anything is written, so a bad
/// batch leaves `dlogits` untouched.
fn check_batch<L: ClassIndex>(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[L],
) -> Result<(), LossError> {
    check_len("softmax_cross_entropy", "logits", logits.len(), numel(&[batch, classes]))?;
    check_len("softmax_cross_entropy", "labels", labels.len(), batch)?;
    for (sample, &label) in labels.iter().enumerate() {
        class_of(label, sample, classes)?;
    }
    Ok(())
}

/// `(max, log Σ exp(x - max))` of one row: the stable log-sum-exp.
#[inline]
fn max_and_log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    (max, sum.ln())
}

/// Softmax cross-entropy, forward and backward fused, over `[batch, classes]`
/// logits: PyTorch's `F.cross_entropy(logits, labels)` with the default
/// `reduction='mean'` (no weights, no label smoothing; unsigned labels have
/// no `ignore_index`).
///
/// Returns `mean_n (logsumexp(logits_n) − logits_n[label_n])` and writes
/// `dlogits = (softmax(logits) − onehot(labels)) / batch`. The log-sum-exp
/// subtracts the row maximum, so logits of ±1000 stay finite. An empty batch
/// gives NaN, like PyTorch's mean of nothing.
pub fn softmax_cross_entropy<L: ClassIndex>(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[L],
    dlogits: &mut [f32],
) -> Result<f32, LossError> {
    check_batch(batch, classes, logits, labels)?;
    check_len("softmax_cross_entropy", "dlogits", dlogits.len(), logits.len())?;
    if classes == 0 {
        return Ok(f32::NAN);
    }
    let inv_batch = 1.0 / batch as f32;
    // f64 across the batch: thousands of per-sample losses of similar size
    // would otherwise lose digits in the mean.
    let mut total = 0.0f64;
    let rows = logits.chunks_exact(classes).zip(dlogits.chunks_exact_mut(classes));
    for (sample, ((row, drow), &label)) in rows.zip(labels).enumerate() {
        let class = class_of(label, sample, classes)?;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (d, &x) in drow.iter_mut().zip(row) {
            let e = (x - max).exp();
            *d = e;
            sum += e;
        }
        let scale = inv_batch / sum;
        for d in drow.iter_mut() {
            *d *= scale;
        }
        drow[class] -= inv_batch;
        // The PyTorch order, `lse − (x − max)`: exact when the label's logit
        // is the maximum, whatever the magnitude of the logits.
        total += f64::from(sum.ln() - (row[class] - max));
    }
    Ok((total / batch as f64) as f32)
}

/// The options of PyTorch's `F.cross_entropy` beyond the plain mean:
/// `label_smoothing` ε in `[0, 1)` and a `weight` per class.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions<'a> {
    pub label_smoothing: f32,
    pub weight: Option<&'a [f32]>,
}

/// [`softmax_cross_entropy`] with label smoothing and class weights, as
/// `F.cross_entropy(logits, labels, weight, label_smoothing=ε)`:
///
/// ```text
/// loss = Σ_n [(1 − ε)·w[y_n]·(−log p_n[y_n]) + ε/C·Σ_c w[c]·(−log p_n[c])] / Σ_n w[y_n]
/// ```
///
/// with `w = 1` without weights (the divisor is then the batch). Writes
/// `dlogits = [p·((1 − ε)·w[y] + ε/C·Σ_c w[c]) − (1 − ε)·w[y]·onehot(y) − ε/C·w] / Σ_n w[y_n]`.
/// A batch whose labels all weigh 0 gives NaN, as PyTorch's `0/0`.
pub fn softmax_cross_entropy_with<L: ClassIndex>(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[L],
    options: CrossEntropyOptions<'_>,
    dlogits: &mut [f32],
) -> Result<f32, LossError> {
    let CrossEntropyOptions { label_smoothing: eps, weight } = options;
    if eps == 0.0 && weight.is_none() {
        return softmax_cross_entropy(batch, classes, logits, labels, dlogits);
    }
    check_batch(batch, classes, logits, labels)?;
    check_len("softmax_cross_entropy", "dlogits", dlogits.len(), logits.len())?;
    if let Some(w) = weight {
        check_len("softmax_cross_entropy", "weight", w.len(), classes)?;
    }
    if classes == 0 {
        return Ok(f32::NAN);
    }
    let w = |c: usize| weight.map_or(1.0, |w| w[c]);
    // The divisor: the weights of the samples' labels (the batch without weights).
    let mut total_weight = 0.0f64;
    for (sample, &label) in labels.iter().enumerate() {
        total_weight += f64::from(w(class_of(label, sample, classes)?));
    }
    let inv_total = (1.0 / total_weight) as f32;
    let smooth = eps / classes as f32;
    let weight_sum: f32 = (0..classes).map(w).sum();
    let mut total = 0.0f64;
    let rows = logits.chunks_exact(classes).zip(dlogits.chunks_exact_mut(classes));
    for (sample, ((row, drow), &label)) in rows.zip(labels).enumerate() {
        let class = class_of(label, sample, classes)?;
        let (max, lse) = max_and_log_sum_exp(row);
        let target_weight = (1.0 - eps) * w(class);
        let p_scale = target_weight + smooth * weight_sum;
        // −log p_c = lse − (x_c − max), in PyTorch's order.
        let mut smoothed = 0.0f32;
        for (c, (d, &x)) in drow.iter_mut().zip(row).enumerate() {
            let shifted = x - max;
            smoothed += w(c) * (lse - shifted);
            let p = (shifted - lse).exp();
            *d = (p * p_scale - smooth * w(c)) * inv_total;
        }
        drow[class] -= target_weight * inv_total;
        let nll = lse - (row[class] - max);
        total += f64::from(target_weight * nll) + f64::from(smooth * smoothed);
    }
    Ok((total / total_weight) as f32)
}

/// The loss of [`softmax_cross_entropy`] without the gradient, for
/// evaluation.
pub fn softmax_cross_entropy_loss<L: ClassIndex>(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[L],
) -> Result<f32, LossError> {
    check_batch(batch, classes, logits, labels)?;
    if classes == 0 {
        return Ok(f32::NAN);
    }
    let mut total = 0.0f64;
    for (sample, (row, &label)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let class = class_of(label, sample, classes)?;
        let (max, lse) = max_and_log_sum_exp(row);
        total += f64::from(lse - (row[class] - max));
    }
    Ok((total / batch as f64) as f32)
}

/// The halved squared error over `[batch, features]`, averaged over the
/// batch: `E = 1/(2N) · Σ (t − y)²`.
///
/// Not PyTorch's `MSELoss` (which averages over every element and has no
/// ½): this is the textbook form whose gradient is `(y − t)/N`, so the
/// learning rate does not depend on the number of outputs.
pub fn mse(batch: usize, features: usize, y: &[f32], t: &[f32]) -> Result<f32, LenError> {
    let len = numel(&[batch, features]);
    check_len("mse", "y", y.len(), len)?;
    check_len("mse", "target", t.len(), len)?;
    let sum: f64 = y.iter().zip(t).map(|(&y, &t)| f64::from(t - y) * f64::from(t - y)).sum();
    Ok((0.5 * sum / batch as f64) as f32)
}

/// The gradient of [`mse`]: `dy = (y − t) / N`.
pub fn mse_backward(
    batch: usize,
    features: usize,
    y: &[f32],
    t: &[f32],
    dy: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[batch, features]);
    check_len("mse_backward", "y", y.len(), len)?;
    check_len("mse_backward", "target", t.len(), len)?;
    check_len("mse_backward", "dy", dy.len(), len)?;
    let inv_batch = 1.0 / batch as f32;
    for ((dy, &y), &t) in dy.iter_mut().zip(y).zip(t) {
        *dy = (y - t) * inv_batch;
    }
    Ok(())
}

/// [`mse`] and [`mse_backward`] in one pass; returns the loss.
pub fn mse_with_grad(
    batch: usize,
    features: usize,
    y: &[f32],
    t: &[f32],
    dy: &mut [f32],
) -> Result<f32, LenError> {
    let len = numel(&[batch, features]);
    check_len("mse", "y", y.len(), len)?;
    check_len("mse", "target", t.len(), len)?;
    check_len("mse", "dy", dy.len(), len)?;
    let inv_batch = 1.0 / batch as f32;
    let mut sum = 0.0f64;
    for ((dy, &y), &t) in dy.iter_mut().zip(y).zip(t) {
        let diff = y - t;
        *dy = diff * inv_batch;
        sum += f64::from(diff) * f64::from(diff);
    }
    Ok((0.5 * sum / batch as f64) as f32)
}
