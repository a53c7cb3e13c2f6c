//! Backward fusion: an activation's backward, `d ← d · act'(y)`, right
//! after the max-pool backward that wrote `d` (the activation fed the pool,
//! as in conv → relu → max_pool), is folded into that pool backward, which
//! then multiplies each gradient by `act'` at the one cell it lands on. The
//! separate pass over `d` disappears.
//!
//! `act'` is read from the pool's output rather than the activation's: a
//! window's maximum is the activation's output at its argmax cell. The
//! activation's output (four times the pool's, for 2x2 windows) then dies
//! with the pool's forward instead of being kept for the backward. So only
//! activations whose derivative is a function of their output qualify.

use super::fold_activation_backward;
use crate::program::{Arg, Program, TensorId};

pub fn fuse_pool_activation(p: Program) -> Program {
    // Each training max pool's argmax slot, with its input and output.
    let pools: Vec<(usize, TensorId, TensorId)> = p
        .train_forward
        .iter()
        .filter_map(|s| {
            let slot = s.args.iter().find_map(|a| {
                if let Arg::Argmax { slot, write: true } = a {
                    Some(*slot)
                } else {
                    None
                }
            })?;
            let x = s.reads().first().copied()?;
            let y = s.writes().first().copied()?;
            Some((slot, x, y))
        })
        .collect();
    fold_activation_backward(p, |writer, act, y, _| {
        if act.derivative_needs_input() {
            return false;
        }
        let slot = writer.args.iter().find_map(|a| {
            if let Arg::Argmax { slot, write: false } = a {
                Some(*slot)
            } else {
                None
            }
        });
        let Some(slot) = slot else { return false };
        let Some(&(_, _, pooled)) = pools.iter().find(|&&(s, x, _)| s == slot && x == y) else {
            return false;
        };
        match writer.args.iter_mut().find(|a| matches!(a, Arg::Through(None))) {
            Some(through) => {
                *through = Arg::Through(Some((act, pooled)));
                true
            }
            None => false,
        }
    })
}
