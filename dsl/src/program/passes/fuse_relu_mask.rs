//! Backward fusion: a ReLU's backward, `d ← d · [y > 0]`, is folded into the
//! GEMM that produced `d` (the backward-data pass of the conv or dense layer
//! that consumed the ReLU's output), as that GEMM's store mask. The separate
//! pass over `d` disappears.

use super::fold_activation_backward;
use crate::program::{Act, Program, StepKind};

pub fn fuse_relu_mask(p: Program) -> Program {
    // The writer must be a backward-data GEMM without a mask yet; anything
    // else (an accumulation, a pool) keeps the separate step.
    fold_activation_backward(p, |writer, act, y, d| match writer {
        StepKind::ConvBackwardData { dx, mask, .. }
        | StepKind::DenseBackwardData { dx, mask, .. }
            if act == Act::Relu && *dx == d && mask.is_none() =>
        {
            *mask = Some(y);
            true
        }
        _ => false,
    })
}
