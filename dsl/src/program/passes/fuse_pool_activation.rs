//! Backward fusion: an activation's backward, `d ← d · act'(y)`, right
//! after the max-pool backward that wrote `d` (the activation fed the pool,
//! as in conv → relu → max_pool), is folded into that pool backward, which
//! then multiplies each gradient by `act'` at the one cell it lands on. The
//! separate pass over `d` disappears.
//!
//! `act'` is read from the pool's output rather than the activation's: a
//! window's maximum is the activation's output at its argmax cell. The
//! activation's output (four times the pool's, for 2x2 windows) then dies
//! with the pool's forward instead of being kept for the backward.

use super::fold_activation_backward;
use crate::program::{Program, StepKind, TensorId};

pub fn fuse_pool_activation(p: Program) -> Program {
    // Each training max pool's argmax slot, with its input and output.
    let pools: Vec<(usize, TensorId, TensorId)> = p
        .train_forward
        .iter()
        .filter_map(|s| match s.kind {
            StepKind::MaxPool { x, y, argmax, .. } => Some((argmax, x, y)),
            _ => None,
        })
        .collect();
    // The writer must be a max-pool backward with nothing fused yet, whose
    // forward pooled the activation's output.
    fold_activation_backward(p, |writer, act, y, d| match writer {
        StepKind::MaxPoolBackward { dx, argmax, act: fused @ None, .. } if *dx == d => {
            let pooled = pools.iter().find(|&&(slot, x, _)| slot == *argmax && x == y);
            let Some(&(_, _, pooled)) = pooled else { return false };
            *fused = Some((act, pooled));
            true
        }
        _ => false,
    })
}
