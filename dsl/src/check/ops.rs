//! The built-in ops, losses and optimizers as the language sees them: their
//! argument signatures, and how bound arguments become IR ops.

use super::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::ir::{Conv2d, LossKind, Op, Optimizer, Pool2d};

/// How many tensor inputs an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    One,
    /// Two or more.
    Many,
}

/// A built-in op: its name, signature and arity.
#[derive(Debug)]
pub struct OpDef {
    pub name: &'static str,
    pub specs: &'static [ArgSpec],
    pub arity: Arity,
}

const CONV2D: &[ArgSpec] = &[
    pos("channels", Kind::Size, Lit::Required),
    pos("kernel", Kind::Pair, Lit::Required),
    named("stride", Kind::Pair, Lit::Int(1)),
    named("pad", Kind::PairCount, Lit::Int(0)),
    named("dilation", Kind::Pair, Lit::Int(1)),
    named("groups", Kind::Size, Lit::Int(1)),
    named("bias", Kind::Bool, Lit::Bool(true)),
];
const POOL: &[ArgSpec] = &[
    pos("kernel", Kind::Pair, Lit::Required),
    pos("stride", Kind::Pair, Lit::Absent),
    named("pad", Kind::PairCount, Lit::Int(0)),
];
const DENSE: &[ArgSpec] = &[
    pos("units", Kind::Size, Lit::Required),
    named("bias", Kind::Bool, Lit::Bool(true)),
    named("in", Kind::Size, Lit::Absent),
];
const LEAKY_RELU: &[ArgSpec] = &[pos("slope", Kind::Float, Lit::Float(0.01))];
const DROPOUT: &[ArgSpec] = &[pos("p", Kind::Fraction, Lit::Float(0.5))];
const LRN: &[ArgSpec] = &[
    pos("size", Kind::Size, Lit::Required),
    named("alpha", Kind::Float, Lit::Float(1e-4)),
    named("beta", Kind::Float, Lit::Float(0.75)),
    named("k", Kind::Float, Lit::Float(1.0)),
];
const BATCH_NORM: &[ArgSpec] = &[
    named("eps", Kind::Positive, Lit::Float(1e-5)),
    named("momentum", Kind::Fraction, Lit::Float(0.1)),
];
const NONE: &[ArgSpec] = &[];

pub const OPS: &[OpDef] = &[
    OpDef { name: "conv2d", specs: CONV2D, arity: Arity::One },
    OpDef { name: "max_pool", specs: POOL, arity: Arity::One },
    OpDef { name: "avg_pool", specs: POOL, arity: Arity::One },
    OpDef { name: "global_avg_pool", specs: NONE, arity: Arity::One },
    OpDef { name: "dense", specs: DENSE, arity: Arity::One },
    OpDef { name: "flatten", specs: NONE, arity: Arity::One },
    OpDef { name: "relu", specs: NONE, arity: Arity::One },
    OpDef { name: "leaky_relu", specs: LEAKY_RELU, arity: Arity::One },
    OpDef { name: "sigmoid", specs: NONE, arity: Arity::One },
    OpDef { name: "tanh", specs: NONE, arity: Arity::One },
    OpDef { name: "softmax", specs: NONE, arity: Arity::One },
    OpDef { name: "dropout", specs: DROPOUT, arity: Arity::One },
    OpDef { name: "lrn", specs: LRN, arity: Arity::One },
    OpDef { name: "batch_norm", specs: BATCH_NORM, arity: Arity::One },
    OpDef { name: "add", specs: NONE, arity: Arity::Many },
    OpDef { name: "concat", specs: NONE, arity: Arity::Many },
];

pub fn find_op(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|d| d.name == name)
}

/// Builds the IR op from validated arguments. Cross-argument checks that
/// need no input shape live here; shape checks live in `Op::infer`.
pub fn build_op(def: &OpDef, a: &Bound) -> Op {
    let pool = || Pool2d {
        kernel: a.pair("kernel").unwrap_or([1, 1]),
        stride: a.pair("stride").or_else(|| a.pair("kernel")).unwrap_or([1, 1]),
        pad: a.pair("pad").unwrap_or([0, 0]),
    };
    match def.name {
        "conv2d" => Op::Conv2d(Conv2d {
            out_channels: a.int("channels").unwrap_or(1),
            kernel: a.pair("kernel").unwrap_or([1, 1]),
            stride: a.pair("stride").unwrap_or([1, 1]),
            pad: a.pair("pad").unwrap_or([0, 0]),
            dilation: a.pair("dilation").unwrap_or([1, 1]),
            groups: a.int("groups").unwrap_or(1),
            bias: a.bool("bias").unwrap_or(true),
        }),
        "max_pool" => Op::MaxPool(pool()),
        "avg_pool" => Op::AvgPool(pool()),
        "global_avg_pool" => Op::GlobalAvgPool,
        "dense" => {
            Op::Dense { units: a.int("units").unwrap_or(1), bias: a.bool("bias").unwrap_or(true) }
        }
        "flatten" => Op::Flatten,
        "relu" => Op::Relu,
        "leaky_relu" => Op::LeakyRelu { slope: a.float("slope").unwrap_or(0.01) },
        "sigmoid" => Op::Sigmoid,
        "tanh" => Op::Tanh,
        "softmax" => Op::Softmax,
        "dropout" => Op::Dropout { p: a.float("p").unwrap_or(0.5) },
        "lrn" => Op::Lrn {
            size: a.int("size").unwrap_or(1),
            alpha: a.float("alpha").unwrap_or(1e-4),
            beta: a.float("beta").unwrap_or(0.75),
            k: a.float("k").unwrap_or(1.0),
        },
        "batch_norm" => Op::BatchNorm {
            eps: a.float("eps").unwrap_or(1e-5),
            momentum: a.float("momentum").unwrap_or(0.1),
        },
        "add" => Op::Add,
        "concat" => Op::Concat,
        other => unreachable!("op table and builder disagree on `{other}`"),
    }
}

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
