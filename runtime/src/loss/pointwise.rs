//! Losses of one output against one float target per element, forward and
//! backward in one pass: PyTorch's `BCEWithLogitsLoss`, `SmoothL1Loss` and
//! `HuberLoss`, each with `reduction='mean'` (over every element of the
//! batch, so the gradients carry `1/(N·F)`).
//!
//! The loss accumulates in f64 across the batch. Smooth L1 and Huber are
//! branch-free selects over contiguous slices, which the compiler
//! vectorises; binary cross-entropy calls `exp` and `ln_1p` per element, on
//! an output layer's few values a sample.

use crate::act::numel;
use crate::error::{check_len, LenError};

/// Checks the output, targets and gradient against `[batch, features]`.
fn check(
    op: &'static str,
    batch: usize,
    features: usize,
    y: &[f32],
    t: &[f32],
    dy: &[f32],
) -> Result<usize, LenError> {
    let len = numel(&[batch, features]);
    check_len(op, "y", y.len(), len)?;
    check_len(op, "targets", t.len(), len)?;
    check_len(op, "dy", dy.len(), len)?;
    Ok(len)
}

/// `−log σ(x) = max(−x, 0) + log(1 + e^−|x|)`, finite for any `x`.
#[inline(always)]
fn neg_log_sigmoid(x: f32) -> f32 {
    (-x).max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `σ(x)` without overflow for large `|x|`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Binary cross-entropy on logits `x` against targets `t` in `[0, 1]`,
/// PyTorch's numerically stable form, averaged over every element:
///
/// ```text
/// l = (1 − t)·x + (1 + (pw − 1)·t)·(−log σ(x))      dx = ((1 − t) − (1 + (pw − 1)·t)·σ(−x)) / (N·F)
/// ```
///
/// `pos_weight` (`pw`, 1 without it) broadcasts over the trailing axis as
/// PyTorch broadcasts a 1-D `pos_weight`: element `j` of a sample takes
/// `pos_weight[j % len]`, so its length must divide `features`.
pub fn bce_with_logits(
    batch: usize,
    features: usize,
    x: &[f32],
    t: &[f32],
    pos_weight: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<f32, LenError> {
    let len = check("bce_with_logits", batch, features, x, t, dx)?;
    let period = match pos_weight {
        Some(pw) if pw.is_empty() || !features.is_multiple_of(pw.len()) => {
            let found = pw.len();
            return Err(LenError {
                op: "bce_with_logits",
                tensor: "pos_weight",
                expected: features,
                found,
            });
        }
        Some(pw) => pw.len(),
        None => features.max(1),
    };
    let inv = 1.0 / len as f32;
    let mut total = 0.0f64;
    let rows = x.chunks(period).zip(t.chunks(period)).zip(dx.chunks_mut(period));
    for ((x, t), dx) in rows {
        let mut part = 0.0f32;
        for (j, ((&x, &t), dx)) in x.iter().zip(t).zip(dx.iter_mut()).enumerate() {
            let log_weight = pos_weight.map_or(1.0, |pw| (pw[j] - 1.0) * t + 1.0);
            part += (1.0 - t) * x + log_weight * neg_log_sigmoid(x);
            *dx = ((1.0 - t) - log_weight * sigmoid(-x)) * inv;
        }
        total += f64::from(part);
    }
    Ok((total / len as f64) as f32)
}

/// PyTorch's `SmoothL1Loss(beta)`: per element of `d = y − t`,
/// `½·d²/β` where `|d| < β`, else `|d| − ½β`; with `β = 0` it is the L1
/// loss (gradient `sign(d)`, 0 at 0), as PyTorch switches to `l1_loss`.
/// Averaged over every element.
pub fn smooth_l1(
    batch: usize,
    features: usize,
    y: &[f32],
    t: &[f32],
    beta: f32,
    dy: &mut [f32],
) -> Result<f32, LenError> {
    let len = check("smooth_l1", batch, features, y, t, dy)?;
    let inv = 1.0 / len as f32;
    let sum = if beta == 0.0 {
        elementwise(y, t, dy, |d| (d.abs(), sign(d) * inv))
    } else {
        let inv_beta = 1.0 / beta;
        elementwise(y, t, dy, |d| {
            let z = d.abs();
            let inside = z < beta;
            let loss = if inside { 0.5 * d * d * inv_beta } else { z - 0.5 * beta };
            let grad = if inside { d * inv_beta } else { sign(d) };
            (loss, grad * inv)
        })
    };
    Ok((sum / len as f64) as f32)
}

/// PyTorch's `HuberLoss(delta)`: per element of `d = y − t`, `½·d²` where
/// `|d| < δ`, else `δ·(|d| − ½δ)`; the gradient is `d` clamped to
/// `[−δ, δ]`. Averaged over every element.
pub fn huber(
    batch: usize,
    features: usize,
    y: &[f32],
    t: &[f32],
    delta: f32,
    dy: &mut [f32],
) -> Result<f32, LenError> {
    let len = check("huber", batch, features, y, t, dy)?;
    let inv = 1.0 / len as f32;
    let sum = elementwise(y, t, dy, |d| {
        let z = d.abs();
        let loss = if z < delta { 0.5 * d * d } else { delta * (z - 0.5 * delta) };
        (loss, d.clamp(-delta, delta) * inv)
    });
    Ok((sum / len as f64) as f32)
}

/// `sign(d)`, 0 at 0 (`torch.sign`).
#[inline(always)]
fn sign(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Writes `dy = grad(y − t)` and returns `Σ loss(y − t)`: eight running
/// sums in f32 (a reduction the compiler vectorises, which one sum is not),
/// added up in f64 every block.
#[inline(always)]
fn elementwise(y: &[f32], t: &[f32], dy: &mut [f32], f: impl Fn(f32) -> (f32, f32)) -> f64 {
    const LANES: usize = 8;
    const BLOCK: usize = 32 * LANES;
    let mut total = 0.0f64;
    let blocks = y.chunks(BLOCK).zip(t.chunks(BLOCK)).zip(dy.chunks_mut(BLOCK));
    for ((y, t), dy) in blocks {
        let mut acc = [0.0f32; LANES];
        let lanes = y.chunks(LANES).zip(t.chunks(LANES)).zip(dy.chunks_mut(LANES));
        for ((y, t), dy) in lanes {
            for (k, ((&y, &t), dy)) in y.iter().zip(t).zip(dy.iter_mut()).enumerate() {
                let (loss, grad) = f(y - t);
                acc[k] += loss;
                *dy = grad;
            }
        }
        total += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
    }
    total
}
