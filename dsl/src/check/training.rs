//! The losses, optimizers and schedules as the language sees them: their argument
//! signatures, and how bound arguments become IR values. (The ops live in
//! `crate::ops`, one module each.)

use super::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use super::value::Value;
use crate::ast::Span;
use crate::ir::{Decay, LossKind, Optimizer, Schedule};

const CROSS_ENTROPY: &[ArgSpec] = &[
    named("label_smoothing", Kind::Fraction, Lit::Float(0.0)),
    named("weight", Kind::Numbers, Lit::Absent),
];
const BCE_WITH_LOGITS: &[ArgSpec] = &[named("pos_weight", Kind::Numbers, Lit::Absent)];
const SMOOTH_L1: &[ArgSpec] = &[pos("beta", Kind::NonNegative, Lit::Float(1.0))];
const HUBER: &[ArgSpec] = &[pos("delta", Kind::Positive, Lit::Float(1.0))];

/// Each loss and the arguments after the tensor it scores.
pub const LOSSES: &[(&str, &[ArgSpec])] = &[
    ("cross_entropy", CROSS_ENTROPY),
    ("mse", &[]),
    ("bce_with_logits", BCE_WITH_LOGITS),
    ("smooth_l1", SMOOTH_L1),
    ("huber", HUBER),
];

/// A `loss` statement as checked: the loss, the tensor it scores and where
/// that is written, and where its list argument (class weights,
/// `pos_weight`) is, whose length the tensor's shape decides.
#[derive(Clone, Debug)]
pub struct LossDecl {
    pub kind: LossKind,
    pub input: (Value, Span),
    pub list: Option<Span>,
}

/// "`cross_entropy`, `mse`, ... and `huber`", for notes.
pub fn loss_list() -> String {
    let names: Vec<String> = LOSSES.iter().map(|(n, _)| format!("`{n}`")).collect();
    let (last, rest) = names.split_last().expect("there are losses");
    format!("{} and {last}", rest.join(", "))
}

/// The list argument whose length the output's shape decides, if any.
pub const LOSS_LISTS: &[&str] = &["weight", "pos_weight"];

pub fn build_loss(name: &str, a: &Bound) -> LossKind {
    let f = |n: &str, d: f64| a.float(n).unwrap_or(d);
    match name {
        "cross_entropy" => LossKind::CrossEntropy {
            label_smoothing: f("label_smoothing", 0.0),
            weight: a.numbers("weight"),
        },
        "bce_with_logits" => LossKind::BceWithLogits { pos_weight: a.numbers("pos_weight") },
        "smooth_l1" => LossKind::SmoothL1 { beta: f("beta", 1.0) },
        "huber" => LossKind::Huber { delta: f("delta", 1.0) },
        _ => LossKind::Mse,
    }
}

const SGD: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Required),
    named("momentum", Kind::Fraction, Lit::Float(0.0)),
    named("nesterov", Kind::Bool, Lit::Bool(false)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.0)),
    named("clip_norm", Kind::Positive, Lit::Absent),
];
const ADAM: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Float(1e-3)),
    named("beta1", Kind::Fraction, Lit::Float(0.9)),
    named("beta2", Kind::Fraction, Lit::Float(0.999)),
    named("eps", Kind::Positive, Lit::Float(1e-8)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.0)),
    named("clip_norm", Kind::Positive, Lit::Absent),
];
const ADAMW: &[ArgSpec] = &[
    pos("lr", Kind::Positive, Lit::Float(1e-3)),
    named("beta1", Kind::Fraction, Lit::Float(0.9)),
    named("beta2", Kind::Fraction, Lit::Float(0.999)),
    named("eps", Kind::Positive, Lit::Float(1e-8)),
    named("weight_decay", Kind::NonNegative, Lit::Float(0.01)),
    named("clip_norm", Kind::Positive, Lit::Absent),
];

/// The options of a `train` statement.
pub const TRAIN: &[ArgSpec] = &[
    named("frozen", Kind::Bool, Lit::Bool(false)),
    named("lr_mult", Kind::NonNegative, Lit::Float(1.0)),
    named("decay_mult", Kind::NonNegative, Lit::Float(1.0)),
];

pub const OPTIMIZERS: &[(&str, &[ArgSpec])] = &[("sgd", SGD), ("adam", ADAM), ("adamw", ADAMW)];

const WARMUP: ArgSpec = named("warmup", Kind::NonNegative, Lit::Float(0.0));
const CONSTANT: &[ArgSpec] = &[WARMUP];
const STEP: &[ArgSpec] = &[
    pos("step_size", Kind::Positive, Lit::Required),
    named("gamma", Kind::Positive, Lit::Float(0.1)),
    WARMUP,
];
const MULTISTEP: &[ArgSpec] = &[
    pos("milestones", Kind::Numbers, Lit::Required),
    named("gamma", Kind::Positive, Lit::Float(0.1)),
    WARMUP,
];
const COSINE: &[ArgSpec] = &[named("min_lr", Kind::NonNegative, Lit::Float(0.0)), WARMUP];

/// The learning-rate schedules, PyTorch's names without `LR`; epochs are
/// counted in whole epochs, warmup in (fractional) epochs.
pub const SCHEDULES: &[(&str, &[ArgSpec])] =
    &[("constant", CONSTANT), ("step", STEP), ("multistep", MULTISTEP), ("cosine", COSINE)];

pub fn build_schedule(name: &str, a: &Bound) -> Schedule {
    let f = |n: &str, d: f64| a.float(n).unwrap_or(d);
    let decay = match name {
        "step" => Decay::Step { every: f("step_size", 1.0), gamma: f("gamma", 0.1) },
        "multistep" => Decay::MultiStep {
            milestones: a.numbers("milestones").unwrap_or_default(),
            gamma: f("gamma", 0.1),
        },
        "cosine" => Decay::Cosine { min_lr: f("min_lr", 0.0) },
        _ => Decay::Constant,
    };
    Schedule { decay, warmup: f("warmup", 0.0) }
}

pub fn build_optimizer(name: &str, a: &Bound) -> Optimizer {
    let f = |n: &str, d: f64| a.float(n).unwrap_or(d);
    match name {
        "sgd" => Optimizer::Sgd {
            lr: f("lr", 0.01),
            momentum: f("momentum", 0.0),
            nesterov: a.bool("nesterov").unwrap_or(false),
            weight_decay: f("weight_decay", 0.0),
            clip_norm: a.float("clip_norm"),
        },
        _ => Optimizer::Adam {
            lr: f("lr", 1e-3),
            beta1: f("beta1", 0.9),
            beta2: f("beta2", 0.999),
            eps: f("eps", 1e-8),
            weight_decay: f("weight_decay", 0.0),
            decoupled: name == "adamw",
            clip_norm: a.float("clip_norm"),
        },
    }
}
