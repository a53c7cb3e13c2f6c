//! The losses and optimizers as the language sees them: their argument
//! signatures, and how bound arguments become IR values. (The ops live in
//! `crate::ops`, one module each.)

use super::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::ir::{LossKind, Optimizer};

pub const LOSSES: &[(&str, LossKind)] =
    &[("cross_entropy", LossKind::CrossEntropy), ("mse", LossKind::Mse)];

const SGD: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Required),
    named("momentum", Kind::Fraction, Lit::Float(0.0)),
    named("nesterov", Kind::Bool, Lit::Bool(false)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.0)),
];
const ADAM: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Float(1e-3)),
    named("beta1", Kind::Fraction, Lit::Float(0.9)),
    named("beta2", Kind::Fraction, Lit::Float(0.999)),
    named("eps", Kind::Positive, Lit::Float(1e-8)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.0)),
];
const ADAMW: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Float(1e-3)),
    named("beta1", Kind::Fraction, Lit::Float(0.9)),
    named("beta2", Kind::Fraction, Lit::Float(0.999)),
    named("eps", Kind::Positive, Lit::Float(1e-8)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.01)),
];

pub const OPTIMIZERS: &[(&str, &[ArgSpec])] = &[("sgd", SGD), ("adam", ADAM), ("adamw", ADAMW)];

pub fn build_optimizer(name: &str, a: &Bound) -> Optimizer {
    let f = |n: &str, d: f64| a.float(n).unwrap_or(d);
    match name {
        "sgd" => Optimizer::Sgd {
            lr: f("lr", 0.01),
            momentum: f("momentum", 0.0),
            nesterov: a.bool("nesterov").unwrap_or(false),
            weight_decay: f("weight_decay", 0.0),
        },
        _ => Optimizer::Adam {
            lr: f("lr", 1e-3),
            beta1: f("beta1", 0.9),
            beta2: f("beta2", 0.999),
            eps: f("eps", 1e-8),
            weight_decay: f("weight_decay", 0.0),
            decoupled: name == "adamw",
        },
    }
}
