//! Backward fusion: a ReLU's backward, `d ← d · [y > 0]`, is folded into the
//! GEMM that produced `d` (the backward-data pass of the conv or dense layer
//! that consumed the ReLU's output), as that GEMM's store mask. The separate
//! pass over `d` disappears.

use crate::program::{Act, Program, StepKind};

pub fn fuse_relu_mask(mut p: Program) -> Program {
    let mut i = 0;
    while i < p.backward.len() {
        if let StepKind::ActivationBackward { act: Act::Relu, y, d } = p.backward[i].kind {
            // The most recent step writing `d` must be a backward-data GEMM
            // without a mask yet; anything else (an accumulation, a pool)
            // keeps the separate step.
            let writer = p.backward[..i].iter().rposition(|s| s.kind.writes().contains(&d));
            if let Some(w) = writer {
                let fused = match &mut p.backward[w].kind {
                    StepKind::ConvBackwardData { dx, mask, .. }
                    | StepKind::DenseBackwardData { dx, mask, .. }
                        if *dx == d && mask.is_none() =>
                    {
                        *mask = Some(y);
                        true
                    }
                    _ => false,
                };
                if fused {
                    p.backward.remove(i);
                    continue;
                }
            }
        }
        i += 1;
    }
    p
}
