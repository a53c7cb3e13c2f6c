//! Dead-code removal: forward steps whose outputs nothing reads (not a later
//! step, the loss, the output, nor the backward pass) are dropped, separately
//! for the training and the inference pass.

use crate::program::{Program, Step, TensorId};
use std::collections::HashSet;

pub fn remove_dead_steps(mut p: Program) -> Program {
    let backward_reads: HashSet<TensorId> = p.backward.iter().flat_map(|s| s.reads()).collect();
    let mut train_live: HashSet<TensorId> = backward_reads;
    train_live.insert(p.train_output);
    if let Some(loss) = &p.loss {
        train_live.insert(loss.input);
    }
    p.train_forward = keep_live(std::mem::take(&mut p.train_forward), train_live);
    p.infer_forward =
        keep_live(std::mem::take(&mut p.infer_forward), [p.output].into_iter().collect());
    p
}

/// Walks the steps backwards, keeping those that write a live tensor and
/// making their reads live.
fn keep_live(steps: Vec<Step>, mut live: HashSet<TensorId>) -> Vec<Step> {
    let mut kept: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps.into_iter().rev() {
        if step.writes().iter().any(|t| live.contains(t)) {
            live.extend(step.reads());
            kept.push(step);
        }
    }
    kept.reverse();
    kept
}
