//! Elementwise products of two same-shape tensors, forward and backward.
//!
//! Memory-bound loops that the compiler vectorises for the baseline
//! instruction set; large buffers are split across the pool
//! (`crate::par`). Lengths are checked before any memory is touched.

use crate::error::{check_len, LenError};

/// `y = a ⊙ b`.
pub fn mul(a: &[f32], b: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    check_len("mul", "b", b.len(), a.len())?;
    check_len("mul", "y", y.len(), a.len())?;
    mul_checked(a, b, y);
    Ok(())
}

/// The backward of [`mul`]: `da = dy ⊙ b` and `db = dy ⊙ a`, each
/// overwritten; `None` skips that gradient (an operand that needs none).
/// Two passes, one per gradient, each the shape of a [`crate::par`]
/// helper; both read `dy`, which a fused pass would read once.
pub fn mul_backward(
    a: &[f32],
    b: &[f32],
    dy: &[f32],
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), LenError> {
    const OP: &str = "mul_backward";
    check_len(OP, "b", b.len(), a.len())?;
    check_len(OP, "dy", dy.len(), a.len())?;
    if let Some(da) = &da {
        check_len(OP, "da", da.len(), a.len())?;
    }
    if let Some(db) = &db {
        check_len(OP, "db", db.len(), a.len())?;
    }
    if let Some(da) = da {
        mul_checked(dy, b, da);
    }
    if let Some(db) = db {
        mul_checked(dy, a, db);
    }
    Ok(())
}

/// `y = a ⊙ b` of checked operands.
fn mul_checked(a: &[f32], b: &[f32], y: &mut [f32]) {
    crate::par::zip3(y, a, b, |y, a, b| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a * b;
        }
    });
}
