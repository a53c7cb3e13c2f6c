//! The ops of the language, one module per op or op family. Everything the
//! compiler knows about an op lives in its module, behind [`OpKind`]: its
//! signature and defaults ([`OpDef`]), shape inference, parameters with
//! their initialisation, cost, lowering to runtime kernel calls, its
//! vector-Jacobian product as more kernel calls, and its f64 evaluation
//! for the interpreter that tests check generated code against.
//!
//! Adding an op is a new module here and one line in [`OPS`];
//! `docs/adding-an-op.md` is the recipe.

mod activation;
mod add;
mod batch_norm;
mod concat;
mod conv;
mod conv_transpose;
mod dense;
mod dropout;
mod flatten;
mod group_norm;
mod input;
mod layer_norm;
mod lrn;
mod mul;
mod permute;
mod pool;
mod prelu;
mod reshape;
mod softmax;
mod stochastic_depth;
mod upsample;

pub(crate) use activation::erf;
pub use conv::Conv2d;
pub use pool::{Pool2d, PoolKind};

use crate::check::args::{ArgSpec, Bound};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::Act;
use std::fmt;
use std::sync::Arc;

/// Every op of the language: its name, signature and builder.
pub const OPS: &[OpDef] = &[
    conv::DEF,
    conv_transpose::DEF,
    pool::MAX_POOL,
    pool::AVG_POOL,
    pool::GLOBAL_AVG_POOL,
    pool::ADAPTIVE_AVG_POOL,
    upsample::DEF,
    dense::DEF,
    flatten::DEF,
    reshape::DEF,
    permute::DEF,
    activation::RELU,
    activation::LEAKY_RELU,
    activation::SIGMOID,
    activation::TANH,
    activation::GELU,
    activation::SILU,
    activation::RELU6,
    activation::HARDTANH,
    activation::HARDSIGMOID,
    activation::HARDSWISH,
    activation::ELU,
    prelu::DEF,
    softmax::DEF,
    softmax::LOG_SOFTMAX,
    dropout::DEF,
    stochastic_depth::DEF,
    lrn::DEF,
    batch_norm::DEF,
    layer_norm::DEF,
    group_norm::DEF,
    add::DEF,
    mul::DEF,
    concat::DEF,
];

pub fn find_op(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|d| d.name == name)
}

/// How many tensor inputs an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    One,
    /// Exactly two.
    Two,
    /// Two or more.
    Many,
}

/// An op as the language sees it: its name, its arguments with their
/// defaults (the one place they live), its arity, and how bound arguments
/// become the op.
#[derive(Debug)]
pub struct OpDef {
    pub name: &'static str,
    pub args: &'static [ArgSpec],
    pub arity: Arity,
    /// Builds the op; arguments are bound, defaults filled and ranges
    /// checked already.
    pub build: fn(&Bound) -> Op,
}

/// Everything the compiler knows about one op.
pub trait OpKind: fmt::Debug + Send + Sync {
    /// The name used in `.net` source.
    fn name(&self) -> &'static str;

    /// The stem of automatic layer names: `conv` gives `conv1`, `conv2`, ...
    fn stem(&self) -> &'static str {
        self.name()
    }

    /// The op's settings in short form for the layer table, such as `6@5x5 s1 p2`.
    fn detail(&self) -> String {
        String::new()
    }

    /// The output shape from the input shapes.
    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError>;

    /// Learnable parameters and buffers, in `state_dict` order.
    fn params(&self, _inputs: &[&Shape]) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// Multiply-accumulates per sample: conv and dense only, biases
    /// excluded, the convention of the published counts.
    fn macs(&self, _inputs: &[&Shape], _out: &Shape) -> u64 {
        0
    }

    /// Floating-point operations per sample at inference. Multiplies and
    /// adds count one each; a transcendental function counts one.
    fn flops(&self, inputs: &[&Shape], out: &Shape) -> u64;

    /// The op as an elementwise activation that a producer can fuse.
    fn activation(&self) -> Option<Act> {
        None
    }

    /// Whether the op's kernel can apply a following activation in its
    /// store, given its number of inputs.
    fn absorbs_activation(&self, _inputs: usize) -> bool {
        false
    }

    /// Whether training draws a random mask keyed by the layer's number
    /// (see [`crate::ir::Graph::mask_layers`]).
    fn draws_mask(&self) -> bool {
        false
    }

    /// Whether the output is the input's memory, reinterpreted (flatten).
    fn is_alias(&self) -> bool {
        false
    }

    /// Whether this is a network input.
    fn is_input(&self) -> bool {
        false
    }

    /// The forward steps, training and inference.
    fn lower(&self, cx: &mut LowerCx<'_>);

    /// The op as ONNX (opset 17) nodes computing its inference forward
    /// pass, written through `cx`, or why it has no ONNX form.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError>;

    /// The backward steps: the gradients of the inputs from `cx.gy`.
    fn vjp(&self, cx: &mut VjpCx<'_>);

    /// The output in f64, from the definition.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError>;
}

/// An op of a graph node.
#[derive(Clone)]
pub struct Op(Arc<dyn OpKind>);

impl Op {
    pub fn new(op: impl OpKind + 'static) -> Self {
        Op(Arc::new(op))
    }

    /// The network input op.
    pub fn input() -> Self {
        Op::new(input::Input)
    }

    /// The elementwise sum of its inputs, as `a + b` writes it.
    pub fn add() -> Self {
        Op::new(add::Add)
    }

    /// The elementwise product of two inputs, as `a * b` writes it.
    pub fn mul() -> Self {
        Op::new(mul::Mul)
    }
}

impl std::ops::Deref for Op {
    type Target = dyn OpKind;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Two ops are equal when they are the same op with the same settings.
impl PartialEq for Op {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// Why an op cannot take the shapes it was given. The checker attaches spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    pub message: String,
    /// Written under the op.
    pub label: String,
    /// The named argument most to blame, if any, to point at instead of the op.
    pub arg: Option<&'static str>,
    pub help: Option<String>,
}

impl OpError {
    pub fn new(message: impl Into<String>, label: impl Into<String>) -> Self {
        OpError { message: message.into(), label: label.into(), arg: None, help: None }
    }

    pub fn at(mut self, arg: &'static str) -> Self {
        self.arg = Some(arg);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// How a parameter starts, as PyTorch initialises the same layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `U(-1/√fan_in, 1/√fan_in)`: PyTorch's default for conv and linear
    /// weights (`kaiming_uniform_(a = √5)`) and biases alike.
    UniformFanIn {
        fan_in: usize,
    },
    Ones,
    Zeros,
    /// Every element this value (PReLU's slopes start at 0.25).
    Constant(f64),
}

/// A tensor owned by a layer, named as its `state_dict` suffix.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// `weight`, `bias`, `running_mean` or `running_var`.
    pub name: &'static str,
    pub shape: Shape,
    /// False for buffers such as batch-norm running statistics.
    pub learnable: bool,
    pub init: Init,
}

impl ParamSpec {
    pub fn learnable(name: &'static str, dims: Vec<usize>, init: Init) -> Self {
        ParamSpec { name, shape: Shape(dims), learnable: true, init }
    }

    pub fn buffer(name: &'static str, dims: Vec<usize>, init: Init) -> Self {
        ParamSpec { name, shape: Shape(dims), learnable: false, init }
    }
}

/// `[C, H, W]`, or an error naming the op.
pub fn expect_image(op: &str, x: &Shape) -> Result<(usize, usize, usize), OpError> {
    match *x.dims() {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(OpError::new(
            format!("`{op}` expects an image input [C, H, W], found {x}"),
            format!("input is {x}"),
        )),
    }
}

/// `[C, H, W]` and `[C]` pass; other ranks are an error naming the op.
pub fn expect_channels(op: &str, x: &Shape) -> Result<Shape, OpError> {
    match x.rank() {
        1 | 3 => Ok(x.clone()),
        _ => Err(OpError::new(
            format!("`{op}` expects [C] or [C, H, W], found {x}"),
            format!("input is {x}"),
        )),
    }
}

/// Every input has the first's shape, or an error naming the op's symbol.
pub fn same_shapes(inputs: &[&Shape], what: &str, symbol: &str) -> Result<Shape, OpError> {
    let x = inputs.first().copied().cloned().unwrap_or_default();
    if inputs.iter().all(|s| **s == x) {
        Ok(x)
    } else {
        let shapes: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        Err(OpError::new(
            format!("shape mismatch: cannot {what} {}", shapes.join(" and ")),
            format!("operands of `{symbol}` must have the same shape"),
        ))
    }
}

/// The first input's shape (ops of one input).
pub fn first(inputs: &[&Shape]) -> Shape {
    inputs.first().copied().cloned().unwrap_or_default()
}

/// The FLOPs of a conv or dense layer: a multiply and an add per MAC, and
/// an add per output for a bias.
pub fn gemm_flops(macs: u64, bias: bool, out: &Shape) -> u64 {
    let bias = if bias { out.elements() as u64 } else { 0 };
    macs.saturating_mul(2).saturating_add(bias)
}
