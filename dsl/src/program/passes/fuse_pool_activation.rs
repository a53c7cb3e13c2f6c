//! Backward fusion: an activation's backward, `d ← d · act'(y)`, right
//! after the max-pool backward that wrote `d` (the activation fed the pool,
//! as in conv → relu → max_pool), is folded into that pool backward, which
//! then multiplies each gradient by `act'` at the one cell it lands on. The
//! separate pass over `d` disappears.

use super::fold_activation_backward;
use crate::program::{Program, StepKind};

pub fn fuse_pool_activation(p: Program) -> Program {
    // The writer must be a max-pool backward with nothing fused yet.
    fold_activation_backward(p, |writer, act, y, d| match writer {
        StepKind::MaxPoolBackward { dx, act: fused @ None, .. } if *dx == d => {
            *fused = Some((act, y));
            true
        }
        _ => false,
    })
}
