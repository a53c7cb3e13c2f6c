//! The error every runtime kernel returns when a buffer does not have the
//! length its shape needs. Kernels check lengths up front (O(1)), so a wrong
//! buffer is an `Err` naming the tensor, never a panic or an out-of-bounds
//! read.

use std::fmt;

/// A buffer whose length does not match the shape of the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LenError {
    /// The op, such as `conv2d_forward`.
    pub op: &'static str,
    /// The buffer, such as `weight` or `workspace`.
    pub tensor: &'static str,
    pub expected: usize,
    pub found: usize,
}

impl fmt::Display for LenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}` has {} elements, expected {}",
            self.op, self.tensor, self.found, self.expected
        )
    }
}

impl std::error::Error for LenError {}

/// Checks that `tensor` of `op` holds exactly `expected` elements.
pub fn check_len(
    op: &'static str,
    tensor: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), LenError> {
    if found == expected {
        Ok(())
    } else {
        Err(LenError { op, tensor, expected, found })
    }
}

/// Checks that `tensor` of `op` holds at least `expected` elements (for
/// workspaces, which may be shared and larger than one op needs).
pub fn check_min_len(
    op: &'static str,
    tensor: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), LenError> {
    if found >= expected {
        Ok(())
    } else {
        Err(LenError { op, tensor, expected, found })
    }
}
