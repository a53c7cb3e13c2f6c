//! Adam and AdamW exactly as `torch.optim.Adam` and `torch.optim.AdamW`
//! (`amsgrad=False`, `maximize=False`), with the step count passed in so
//! that one training step can update many tensors with the same `t`.

use super::{range_mut, OptimizerError};
use crate::error::{check_len, LenError};

/// `torch.optim.Adam(lr, betas=(beta1, beta2), eps, weight_decay)`.
///
/// Per element at step `t` (1-based):
///
/// ```text
/// g = g + weight_decay · p                  (L2, coupled into the moments)
/// m = m + (1 − β1)(g − m)                   (PyTorch's lerp form)
/// v = β2·v + (1 − β2)·g²
/// p = p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
/// ```
///
/// `eps` is added OUTSIDE the square root, after the bias correction of `v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the gradients' global L2 norm to this before the step; see
    /// [`super::Sgd::clip_norm`].
    pub clip_norm: Option<f64>,
}

/// `torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay)`: Adam
/// without the L2 term, and instead `p = p · (1 − lr·weight_decay)` before
/// the Adam update (decoupled weight decay, Loshchilov & Hutter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the gradients' global L2 norm to this before the step; see
    /// [`super::Sgd::clip_norm`].
    pub clip_norm: Option<f64>,
}

impl Adam {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(lr: f64) -> Self {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, clip_norm: None }
    }

    /// One step on one parameter tensor. `step` is the 1-based number of
    /// the training step, the same for every tensor updated in it.
    pub fn step(
        &self,
        step: u64,
        state: AdamMoments<'_>,
        params: &mut [f32],
        grads: &[f32],
    ) -> Result<(), OptimizerError> {
        let (lr, beta1, beta2, eps) = (self.lr, self.beta1, self.beta2, self.eps);
        let h = Hyper { name: "adam", lr, beta1, beta2, eps };
        adam_step(h, self.weight_decay, 0.0, step, state, params, grads)
    }
}

impl AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn new(lr: f64) -> Self {
        AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, clip_norm: None }
    }

    /// One step on one parameter tensor; see [`Adam::step`].
    pub fn step(
        &self,
        step: u64,
        state: AdamMoments<'_>,
        params: &mut [f32],
        grads: &[f32],
    ) -> Result<(), OptimizerError> {
        let (lr, beta1, beta2, eps) = (self.lr, self.beta1, self.beta2, self.eps);
        let h = Hyper { name: "adamw", lr, beta1, beta2, eps };
        adam_step(h, 0.0, self.weight_decay, step, state, params, grads)
    }
}

#[derive(Clone, Copy)]
struct Hyper {
    /// The optimizer's name in errors.
    name: &'static str,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// The shared body: `l2` is Adam's coupled weight decay, `decoupled`
/// AdamW's. The scalars are computed in f64 and rounded once, as PyTorch's
/// Python-float arithmetic followed by f32 tensor ops does.
fn adam_step(
    h: Hyper,
    l2: f64,
    decoupled: f64,
    step: u64,
    state: AdamMoments<'_>,
    params: &mut [f32],
    grads: &[f32],
) -> Result<(), OptimizerError> {
    check_len("adam_step", "grads", grads.len(), params.len())?;
    check_len("adam_step", "m", state.m.len(), params.len())?;
    check_len("adam_step", "v", state.v.len(), params.len())?;
    if step == 0 {
        return Err(OptimizerError::ZeroStep { optimizer: h.name });
    }
    let t = step as f64;
    let bias_correction1 = 1.0 - h.beta1.powf(t);
    let bias_correction2_sqrt = (1.0 - h.beta2.powf(t)).sqrt();
    let neg_step_size = (-h.lr / bias_correction1) as f32;
    let bc2_sqrt = bias_correction2_sqrt as f32;
    let one_minus_beta1 = (1.0 - h.beta1) as f32;
    let beta2 = h.beta2 as f32;
    let one_minus_beta2 = (1.0 - h.beta2) as f32;
    let eps = h.eps as f32;
    let l2 = l2 as f32;
    let shrink = (1.0 - h.lr * decoupled) as f32;
    let decay = decoupled != 0.0;
    let k = AdamScalars {
        neg_step_size,
        bc2_sqrt,
        one_minus_beta1,
        beta2,
        one_minus_beta2,
        eps,
        l2,
        shrink,
    };
    // Memory-bound: big tensors are split across the pool (`par`); the
    // choices are constants in each block's loop, so it vectorises.
    crate::par::update3(params, state.m, state.v, grads, |p, m, v, g| match (decay, l2 != 0.0) {
        (true, true) => adam_block::<true, true>(k, p, m, v, g),
        (true, false) => adam_block::<true, false>(k, p, m, v, g),
        (false, true) => adam_block::<false, true>(k, p, m, v, g),
        (false, false) => adam_block::<false, false>(k, p, m, v, g),
    });
    Ok(())
}

/// The f32 scalars of one Adam step.
#[derive(Clone, Copy)]
struct AdamScalars {
    neg_step_size: f32,
    bc2_sqrt: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    l2: f32,
    shrink: f32,
}

/// The Adam update over one block: decoupled decay if `DECOUPLED`, L2
/// decay if `L2`.
#[inline(always)]
fn adam_block<const DECOUPLED: bool, const L2: bool>(
    k: AdamScalars,
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
) {
    let elements = params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut());
    for (((p, &g), m), v) in elements {
        if DECOUPLED {
            *p *= k.shrink;
        }
        let g = if L2 { g + k.l2 * *p } else { g };
        *m = super::flush_subnormal(*m + k.one_minus_beta1 * (g - *m));
        *v = super::flush_subnormal(*v * k.beta2 + k.one_minus_beta2 * g * g);
        let denom = v.sqrt() / k.bc2_sqrt + k.eps;
        *p += k.neg_step_size * *m / denom;
    }
}

/// The two moment buffers of one tensor: `m` (PyTorch's `exp_avg`) and `v`
/// (`exp_avg_sq`).
#[derive(Debug)]
pub struct AdamMoments<'a> {
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
}

/// The moments of [`Adam`] or [`AdamW`] for `len` parameters, zeroed,
/// allocated once.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl AdamState {
    pub fn new(len: usize) -> Self {
        AdamState { m: vec![0.0; len], v: vec![0.0; len] }
    }

    pub fn len(&self) -> usize {
        self.m.len()
    }

    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// All the moments, for a state made for one tensor or a flat parameter
    /// buffer.
    pub fn moments_mut(&mut self) -> AdamMoments<'_> {
        AdamMoments { m: &mut self.m, v: &mut self.v }
    }

    /// The moments of the tensor at `offset .. offset + len` of the flat
    /// parameter order.
    pub fn tensor_mut(&mut self, offset: usize, len: usize) -> Result<AdamMoments<'_>, LenError> {
        let m = range_mut("adam_state", "m", &mut self.m, offset, len)?;
        let v = range_mut("adam_state", "v", &mut self.v, offset, len)?;
        Ok(AdamMoments { m, v })
    }
}
