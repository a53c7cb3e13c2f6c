//! Stochastic gradient descent exactly as `torch.optim.SGD` with
//! `dampening = 0`: L2 weight decay, heavy-ball momentum and Nesterov.

use super::range_mut;
use crate::error::{check_len, LenError};

/// `torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov)`.
///
/// Per element, with `g` the gradient and `b` the momentum buffer:
///
/// ```text
/// g = g + weight_decay · p                  (if weight_decay ≠ 0)
/// b = momentum · b + g                      (if momentum ≠ 0)
/// g = g + momentum · b  if nesterov, else  g = b
/// p = p − lr · g
/// ```
///
/// PyTorch sets `b = g` on the first step instead of decaying a buffer; with
/// dampening 0 that is the same as starting from the zeroed buffer that
/// [`SgdState::new`] allocates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Clip the gradients' global L2 norm to this before the step
    /// ([`super::clip_grad_norm`]). The norm spans every learnable tensor,
    /// so a model's training step applies it; [`Sgd::step`] on one tensor
    /// does not.
    pub clip_norm: Option<f64>,
}

impl Sgd {
    /// Whether this step can be fused into a weight gradient's GEMM
    /// (`dense::dense_backward_weights_sgd`): not Nesterov, whose step needs
    /// the gradient itself; not with clipping, whose scale needs every
    /// gradient first; and not plain SGD with `lr·weight_decay = 1` (in
    /// f32), where the fused step's `beta = 1 − lr·weight_decay` is 0 and
    /// the GEMM would not read a NaN weight.
    pub fn fusable(&self) -> bool {
        let decayed = 1.0 - (self.lr as f32) * (self.weight_decay as f32);
        !self.nesterov && self.clip_norm.is_none() && (self.momentum != 0.0 || decayed != 0.0)
    }

    /// Plain SGD: no momentum, no weight decay.
    pub fn new(lr: f64) -> Self {
        Sgd { lr, momentum: 0.0, nesterov: false, weight_decay: 0.0, clip_norm: None }
    }

    /// One step on one parameter tensor, with `momentum_buf` its slice of
    /// the state: the same length as `params`, or any length (empty) when
    /// `momentum == 0`, which keeps no buffer.
    pub fn step(
        &self,
        momentum_buf: &mut [f32],
        params: &mut [f32],
        grads: &[f32],
    ) -> Result<(), LenError> {
        check_len("sgd_step", "grads", grads.len(), params.len())?;
        // PyTorch rounds each Python-float scalar to f32 at the tensor op.
        let lr = self.lr as f32;
        let momentum = self.momentum as f32;
        let wd = self.weight_decay as f32;
        // Memory-bound: big tensors are split across the pool (`par`); the
        // choices are constants in each block's loop, so it vectorises.
        let decay = wd != 0.0;
        if self.momentum == 0.0 {
            // No buffer to keep: `momentum_buf` may be empty.
            crate::par::zip2(params, grads, |p, g| match decay {
                true => plain_block::<true>(p, g, lr, wd),
                false => plain_block::<false>(p, g, lr, wd),
            });
            return Ok(());
        }
        check_len("sgd_step", "momentum_buf", momentum_buf.len(), params.len())?;
        let nesterov = self.nesterov;
        crate::par::update2(params, momentum_buf, grads, |p, b, g| match (decay, nesterov) {
            (true, true) => momentum_block::<true, true>(p, b, g, lr, momentum, wd),
            (true, false) => momentum_block::<true, false>(p, b, g, lr, momentum, wd),
            (false, true) => momentum_block::<false, true>(p, b, g, lr, momentum, wd),
            (false, false) => momentum_block::<false, false>(p, b, g, lr, momentum, wd),
        });
        Ok(())
    }
}

/// `p -= lr·(g + wd·p)` (without the decay unless `DECAY`) over one block.
#[inline(always)]
fn plain_block<const DECAY: bool>(params: &mut [f32], grads: &[f32], lr: f32, wd: f32) {
    for (p, &g) in params.iter_mut().zip(grads) {
        let d = if DECAY { g + wd * *p } else { g };
        *p += -lr * d;
    }
}

/// The momentum update of [`Sgd::step`] over one block.
#[inline(always)]
fn momentum_block<const DECAY: bool, const NESTEROV: bool>(
    params: &mut [f32],
    buf: &mut [f32],
    grads: &[f32],
    lr: f32,
    momentum: f32,
    wd: f32,
) {
    for ((p, &g), b) in params.iter_mut().zip(grads).zip(buf.iter_mut()) {
        let d = if DECAY { g + wd * *p } else { g };
        *b = super::flush_subnormal(*b * momentum + d);
        *p += -lr * if NESTEROV { d + momentum * *b } else { *b };
    }
}

/// The momentum buffers of [`Sgd`] for `len` parameters, zeroed, allocated
/// once.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdState {
    momentum: Vec<f32>,
}

impl SgdState {
    pub fn new(len: usize) -> Self {
        SgdState { momentum: vec![0.0; len] }
    }

    pub fn len(&self) -> usize {
        self.momentum.len()
    }

    pub fn is_empty(&self) -> bool {
        self.momentum.is_empty()
    }

    /// The whole buffer, for a state made for one tensor or a flat
    /// parameter buffer.
    pub fn buffer_mut(&mut self) -> &mut [f32] {
        &mut self.momentum
    }

    /// The slice of the state for the tensor at `offset .. offset + len` of
    /// the flat parameter order.
    pub fn tensor_mut(&mut self, offset: usize, len: usize) -> Result<&mut [f32], LenError> {
        range_mut("sgd_state", "momentum_buf", &mut self.momentum, offset, len)
    }
}
