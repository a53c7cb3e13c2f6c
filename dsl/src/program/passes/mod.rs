//! The optimisation passes over a program, in order. Each is a function of
//! its own; the verifier runs after each in debug builds.

mod dead_code;
mod fuse_pool_activation;
mod fuse_relu_mask;
mod plan_memory;

pub use plan_memory::{plan_memory, MemoryPlan};

use super::Program;

/// A pass: a name (for the verifier's messages) and the function.
type Pass = (&'static str, fn(Program) -> Program);

/// The pipeline, in order.
pub const PIPELINE: &[Pass] = &[
    ("fuse_relu_mask", fuse_relu_mask::fuse_relu_mask),
    ("fuse_pool_activation", fuse_pool_activation::fuse_pool_activation),
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
