//! Backward fusion: a ReLU's backward, `d ← d · [y > 0]`, is folded into the
//! step that produced `d` when that step has a ReLU-mask slot (the
//! backward-data GEMM of a conv or dense layer that consumed the ReLU's
//! output): the GEMM's store applies the mask. The separate pass over `d`
//! disappears.

use super::fold_activation_backward;
use crate::program::Arg;

pub fn fuse_relu_mask(p: crate::program::Program) -> crate::program::Program {
    fold_activation_backward(p, |writer, act, y, _| {
        if act.variant != "Relu" {
            return false;
        }
        match writer.args.iter_mut().find(|a| matches!(a, Arg::ReluMask(None))) {
            Some(slot) => {
                *slot = Arg::ReluMask(Some(y));
                true
            }
            None => false,
        }
    })
}
