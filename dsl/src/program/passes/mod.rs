//! The optimisation passes over a program, in order. Each is a function of
//! its own; the verifier runs after each in debug builds.

mod dead_code;
mod fold_batch_norm;
mod fuse_pool_activation;
mod fuse_relu_mask;
mod plan_memory;

pub use plan_memory::{plan_memory, MemoryPlan};

use super::{Act, Arg, Program, Step, TensorId};

/// A pass: a name (for the verifier's messages) and the function.
type Pass = (&'static str, fn(Program) -> Program);

/// The pipeline, in order.
pub const PIPELINE: &[Pass] = &[
    ("fuse_relu_mask", fuse_relu_mask::fuse_relu_mask),
    ("fuse_pool_activation", fuse_pool_activation::fuse_pool_activation),
    ("fold_batch_norm", fold_batch_norm::fold_batch_norm),
    ("dead_code", dead_code::remove_dead_steps),
];

/// Runs every pass of the pipeline, verifying after each in debug builds.
pub fn run(mut p: Program) -> Program {
    for (name, pass) in PIPELINE {
        p = pass(p);
        if cfg!(debug_assertions) {
            if let Err(e) = super::verify(&p) {
                unreachable!("program invalid after pass `{name}`: {e}");
            }
        }
    }
    p
}

/// The shared mechanism of the backward-fusion passes: each activation
/// backward `d ← d · act'(y)` is offered to the step that last wrote `d`;
/// `fold` returns whether that step took it over (and then updates the
/// step), in which case the separate pass over `d` disappears. Nothing may
/// read `d` between the writer and the activation backward: it would see
/// the gradient before the activation's factor.
fn fold_activation_backward(
    mut p: Program,
    fold: impl Fn(&mut Step, Act, TensorId, TensorId) -> bool,
) -> Program {
    let mut i = 0;
    while i < p.backward.len() {
        if let Some((act, y, d)) = activation_backward(&p.backward[i]) {
            let writer = p.backward[..i].iter().rposition(|s| s.writes().contains(&d));
            if let Some(w) = writer {
                let read_between = p.backward[w + 1..i].iter().any(|s| s.reads().contains(&d));
                if !read_between && fold(&mut p.backward[w], act, y, d) {
                    p.backward.remove(i);
                    continue;
                }
            }
        }
        i += 1;
    }
    p
}

/// `(act, y, d)` of an in-place activation backward `d ← d · act'(y)`.
fn activation_backward(s: &Step) -> Option<(Act, TensorId, TensorId)> {
    if s.kernel != "activation_backward_in_place" {
        return None;
    }
    if let [Arg::Act(act), Arg::In(y, _), Arg::InOut(d, _)] = s.args.as_slice() {
        Some((*act, *y, *d))
    } else {
        None
    }
}
