//! Optimizers as PyTorch's `torch.optim` defines them: [`Sgd`] (momentum,
//! Nesterov, L2 weight decay), [`Adam`] (L2 weight decay) and [`AdamW`]
//! (decoupled weight decay).
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
mod sgd;

use std::fmt;

pub use adam::{Adam, AdamMoments, AdamState, AdamW};
pub use sgd::{Sgd, SgdState};

use crate::error::LenError;

/// Why an Adam or AdamW step was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptimError {
    /// A buffer does not match the parameter tensor.
    Len(LenError),
    /// The step count is 1-based; at 0 the bias corrections divide by zero.
    ZeroStep,
}

impl fmt::Display for OptimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimError::Len(e) => e.fmt(f),
            OptimError::ZeroStep => write!(f, "adam: `step` is 1-based, found 0"),
        }
    }
}

impl std::error::Error for OptimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OptimError::Len(e) => Some(e),
            OptimError::ZeroStep => None,
        }
    }
}

impl From<LenError> for OptimError {
    fn from(e: LenError) -> Self {
        OptimError::Len(e)
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
