//! Backward fusion: an activation's backward, `d ← d · act'(y)`, right
//! after the max-pool backward that wrote `d` (the activation fed the pool,
//! as in conv → relu → max_pool), is folded into that pool backward, which
//! then multiplies each gradient by `act'` at the one cell it lands on. The
//! separate pass over `d` disappears.

use crate::program::{Program, StepKind};

pub fn fuse_pool_activation(mut p: Program) -> Program {
    let mut i = 0;
    while i < p.backward.len() {
        if let StepKind::ActivationBackward { act, y, d } = p.backward[i].kind {
            // The most recent step writing `d` must be a max-pool backward
            // with nothing fused yet, and no step in between may read `d`
            // (it would see the gradient before the activation's factor).
            let writer = p.backward[..i].iter().rposition(|s| s.kind.writes().contains(&d));
            if let Some(w) = writer {
                let read_between = p.backward[w + 1..i].iter().any(|s| s.kind.reads().contains(&d));
                let fused = match &mut p.backward[w].kind {
                    StepKind::MaxPoolBackward { dx, act: fused @ None, .. }
                        if *dx == d && !read_between =>
                    {
                        *fused = Some((act, y));
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
