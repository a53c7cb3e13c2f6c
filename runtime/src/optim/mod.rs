//! Optimizers as PyTorch's `torch.optim` defines them: [`Sgd`] (momentum,
//! Nesterov, L2 weight decay), [`Adam`] (L2 weight decay) and [`AdamW`]
//! (decoupled weight decay); and gradient clipping by the global norm
//! ([`clip_grad_norm`]), which each optimizer's `clip_norm` asks a model's
//! training step for.
//!
//! An optimizer is a plain struct of hyperparameters; its state lives in a
//! state struct allocated once for a parameter count ([`SgdState`],
//! [`AdamState`]). A `step` updates one flat parameter tensor in place from
//! its gradient and its slice of the state, never allocating, so generated
//! code can call it per tensor or once over a flat parameter buffer.
//!
//! Hyperparameters are `f64` because PyTorch computes the scalar factors
//! (bias corrections, `1 − lr·wd`) in Python floats; they are rounded to
//! f32 where PyTorch's tensor ops round them.

mod adam;
mod clip;
mod sgd;

use std::fmt;

pub use adam::{Adam, AdamMoments, AdamState, AdamW};
pub use clip::{clip_grad_norm, global_norm};
pub use sgd::{Sgd, SgdState};

use crate::error::LenError;

/// `x`, or zero if it is subnormal. Optimizer state that decays toward zero
/// (momentum, Adam's moments of a weight whose gradient stopped) goes
/// subnormal, and x86 takes on the order of a hundred cycles per
/// arithmetic operation on a subnormal operand, which made long runs'
/// optimizer steps many times slower. The values flushed are below
/// 1.2e-38, so the step is PyTorch's but for those.
#[inline(always)]
pub(crate) fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// Why an optimizer step was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptimizerError {
    /// A buffer does not match the parameter tensor.
    Len(LenError),
    /// Step 0 of `optimizer` (`adam`, `adamw`): the count is 1-based, and
    /// at 0 the bias corrections divide by zero.
    ZeroStep { optimizer: &'static str },
}

impl fmt::Display for OptimizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimizerError::Len(e) => e.fmt(f),
            OptimizerError::ZeroStep { optimizer } => {
                write!(f, "{optimizer}: `step` is 1-based, found 0")
            }
        }
    }
}

impl std::error::Error for OptimizerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OptimizerError::Len(e) => Some(e),
            OptimizerError::ZeroStep { .. } => None,
        }
    }
}

impl From<LenError> for OptimizerError {
    fn from(e: LenError) -> Self {
        OptimizerError::Len(e)
    }
}

/// `buffer[offset .. offset + len]`, or a length error naming `tensor` when
/// the range does not fit (so a wrong offset is an `Err`, not a panic).
pub(crate) fn range_mut<'a>(
    op: &'static str,
    tensor: &'static str,
    buffer: &'a mut [f32],
    offset: usize,
    len: usize,
) -> Result<&'a mut [f32], LenError> {
    let total = buffer.len();
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(&mut buffer[offset..end]),
        end => Err(LenError { op, tensor, expected: end.unwrap_or(usize::MAX), found: total }),
    }
}
