//! The program: what the code generator turns into Rust. It is the checked
//! IR graph lowered to a linear list of kernel calls over named tensors,
//! with the training forward pass, the inference forward pass and the
//! backward pass side by side, then optimised by passes, each followed by
//! the verifier in debug builds.
//!
//! A step is data: the name of a runtime kernel and its typed arguments
//! ([`Arg`]). What a step reads and writes, the verifier, the memory plan
//! and the emitted call are all derived from those arguments, once, so a
//! new kernel needs no new case anywhere here.
//!
//! ```text
//! Graph ─lower→ forward steps ─autodiff→ backward steps ─passes→ Program
//! ```

pub(crate) mod autodiff;
mod display;
pub(crate) mod lower;
pub mod passes;
mod verify;

pub use lower::lower;
pub use verify::verify;

use crate::ir::{LossKind, Multipliers, NodeId, Optimizer};

/// A tensor of the program (an activation, a gradient or a scratch buffer),
/// stored in the arena: `per_sample` f32 values for each sample of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Names the generated local: `conv1`, `conv1.grad`, `lrn1.scale`.
    pub name: String,
    /// The per-sample shape.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    pub fn per_sample(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parameter or buffer of the model, a field of the generated `Params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// The `state_dict` name, such as `layer1.0.conv1.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Learnable parameters get gradients and optimizer updates; buffers
    /// (batch-norm running statistics) do not.
    pub learnable: bool,
    pub init: Init,
    /// The layer's `lr_mult` and `decay_mult`; `lr` 0 for a frozen layer.
    pub multipliers: Multipliers,
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub use crate::ops::Init;

/// An elementwise activation as a runtime kernel sees it: the variant of
/// the runtime's `Activation`, and whether its derivative needs its input
/// (GELU, SiLU, hardswish) or can be read from its output (ReLU, sigmoid,
/// tanh, hardtanh, ELU, ...).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Act {
    /// The `.net` name, for comments.
    pub name: &'static str,
    /// The runtime variant: `Relu`, `LeakyRelu`, or a gated one's `Gelu`.
    pub variant: &'static str,
    /// A gated activation `x·g(x)`: `Activation::Gated(Gated::<variant>)`.
    pub gated: bool,
    /// The arguments of a variant that takes them, in order (leaky ReLU's
    /// slope; hardtanh's bounds); unused slots are `None`.
    pub args: [Option<f64>; 2],
}

impl Act {
    pub const IDENTITY: Act =
        Act { name: "identity", variant: "Identity", gated: false, args: [None; 2] };

    pub fn is_identity(&self) -> bool {
        self.variant == "Identity"
    }

    /// Whether the backward pass needs the activation's input: then a
    /// training pass cannot drop the pre-activation by fusing it away.
    pub fn derivative_needs_input(&self) -> bool {
        self.gated
    }
}

/// The static per-sample geometry of a 2-D window op (conv or pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
}

/// A runtime shape struct, built with the batch `n` at the call. A
/// transposed conv's `win` is its input and window, `o` its output
/// channels, `oph` and `opw` its output padding. A pool
/// carries PyTorch's `ceil_mode` and `count_include_pad`; an adaptive pool
/// maps `[c, h, w]` to `[c, oh, ow]`; an upsampling multiplies `h` and `w`
/// by `sh` and `sw`.
/// A layer norm normalises `rows` rows of `len` values a sample; a
/// permutation's output axis `i` is input axis `perm[i]` of `dims`, `rank`
/// of each used; a channel scale multiplies `c` channels of `inner` values
/// by one factor each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    Conv { win: Window, o: usize, groups: usize },
    ConvTranspose { win: Window, o: usize, oph: usize, opw: usize, groups: usize },
    Pool { win: Window, ceil_mode: bool, count_include_pad: bool },
    AdaptivePool { c: usize, h: usize, w: usize, oh: usize, ow: usize },
    Upsample { c: usize, h: usize, w: usize, sh: usize, sw: usize },
    Dense { input: usize, output: usize },
    Lrn { c: usize, inner: usize, size: usize, alpha: f64, beta: f64, k: f64 },
    BatchNorm { c: usize, inner: usize, eps: f64, momentum: f64 },
    LayerNorm { rows: usize, len: usize, eps: f64 },
    GroupNorm { c: usize, inner: usize, groups: usize, eps: f64 },
    Permute { rank: usize, dims: Axes, perm: Axes },
    ChannelScale { c: usize, inner: usize },
}

/// The largest rank `permute` takes: the runtime's `permute::MAX_RANK`.
pub const MAX_PERMUTE_RANK: usize = 8;

/// Sizes or axes of a permuted sample, `rank` of them used.
pub type Axes = [usize; MAX_PERMUTE_RANK];

/// One argument of a kernel call.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// The batch size `n`.
    Batch,
    /// What keys the pass's dropout masks (the model's seed, its step
    /// count and the pass's first sample in the whole batch).
    Masks,
    /// A tensor read, with the per-sample length the kernel expects.
    In(TensorId, usize),
    /// A tensor written.
    Out(TensorId, usize),
    /// A tensor read and written in place.
    InOut(TensorId, usize),
    /// A parameter read.
    Param(ParamId),
    /// A buffer the training pass updates (batch-norm running statistics).
    Buffer(ParamId),
    /// A parameter's gradient, written.
    Grad(ParamId),
    /// A layer's slot of saved max-pool argmax indices.
    Argmax {
        slot: usize,
        write: bool,
    },
    /// A layer's slot of saved batch-norm statistics.
    Stats {
        slot: usize,
        write: bool,
    },
    Usize(usize),
    F32(f64),
    U16(u16),
    Act(Act),
    Shape(Geometry),
    /// Channel blocks of a concat: `(tensor, channels, per-sample length)`,
    /// read or written.
    Parts {
        parts: Vec<(TensorId, usize, usize)>,
        write: bool,
    },
    /// `Some(x)` or `None`.
    Optional(Option<Box<Arg>>),
    /// Where a ReLU's backward can be folded into this step's store: its
    /// output `y`, once a pass has folded it.
    ReluMask(Option<TensorId>),
    /// Where an activation's backward can be folded into a pool backward:
    /// the activation and the pool's output, once a pass has folded it.
    Through(Option<(Act, TensorId)>),
    /// This conv's prepared weights, kept across inference calls.
    Cache,
    /// The layer's name, for the kernel's errors.
    Layer(String),
}

impl Arg {
    pub fn opt(a: Option<Arg>) -> Arg {
        Arg::Optional(a.map(Box::new))
    }

    /// Calls `f` with each tensor of the argument, how it is touched, and
    /// the per-sample length the kernel expects of it, where it says.
    fn visit_tensors(&self, f: &mut impl FnMut(TensorId, Access, Option<usize>)) {
        match self {
            Arg::In(t, len) => f(*t, Access::Read, Some(*len)),
            Arg::Out(t, len) => f(*t, Access::Write, Some(*len)),
            Arg::InOut(t, len) => f(*t, Access::Update, Some(*len)),
            Arg::Parts { parts, write } => {
                for &(t, _, len) in parts {
                    f(t, if *write { Access::Write } else { Access::Read }, Some(len));
                }
            }
            Arg::Optional(Some(inner)) => inner.visit_tensors(f),
            Arg::ReluMask(Some(y)) | Arg::Through(Some((_, y))) => f(*y, Access::Read, None),
            Arg::Optional(None)
            | Arg::ReluMask(None)
            | Arg::Through(None)
            | Arg::Batch
            | Arg::Masks
            | Arg::Param(_)
            | Arg::Buffer(_)
            | Arg::Grad(_)
            | Arg::Argmax { .. }
            | Arg::Stats { .. }
            | Arg::Usize(_)
            | Arg::F32(_)
            | Arg::U16(_)
            | Arg::Act(_)
            | Arg::Shape(_)
            | Arg::Cache
            | Arg::Layer(_) => {}
        }
    }

    /// The parameter whose gradient the argument writes, if any.
    fn grad_written(&self) -> Option<ParamId> {
        match self {
            Arg::Grad(q) => Some(*q),
            Arg::Optional(Some(inner)) => inner.grad_written(),
            Arg::Optional(None)
            | Arg::Batch
            | Arg::Masks
            | Arg::In(..)
            | Arg::Out(..)
            | Arg::InOut(..)
            | Arg::Param(_)
            | Arg::Buffer(_)
            | Arg::Argmax { .. }
            | Arg::Stats { .. }
            | Arg::Usize(_)
            | Arg::F32(_)
            | Arg::U16(_)
            | Arg::Act(_)
            | Arg::Shape(_)
            | Arg::Parts { .. }
            | Arg::ReluMask(_)
            | Arg::Through(_)
            | Arg::Cache
            | Arg::Layer(_) => None,
        }
    }

    fn param_read(&self) -> Option<ParamId> {
        match self {
            Arg::Param(q) | Arg::Buffer(q) => Some(*q),
            Arg::Optional(Some(inner)) => inner.param_read(),
            Arg::Optional(None)
            | Arg::Batch
            | Arg::Masks
            | Arg::In(..)
            | Arg::Out(..)
            | Arg::InOut(..)
            | Arg::Grad(_)
            | Arg::Argmax { .. }
            | Arg::Stats { .. }
            | Arg::Usize(_)
            | Arg::F32(_)
            | Arg::U16(_)
            | Arg::Act(_)
            | Arg::Shape(_)
            | Arg::Parts { .. }
            | Arg::ReluMask(_)
            | Arg::Through(_)
            | Arg::Cache
            | Arg::Layer(_) => None,
        }
    }
}

/// How a step touches a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Update,
}

/// One kernel call: `runtime::nn::<kernel>(args...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The graph node it implements (for comments: layer name and line).
    pub node: NodeId,
    pub kernel: &'static str,
    pub args: Vec<Arg>,
}

impl Step {
    pub fn new(node: NodeId, kernel: &'static str, args: Vec<Arg>) -> Self {
        Step { node, kernel, args }
    }

    /// Every tensor argument with how it is touched, in argument order.
    pub fn tensors(&self) -> Vec<(TensorId, Access)> {
        self.tensor_lengths().into_iter().map(|(t, a, _)| (t, a)).collect()
    }

    /// [`Self::tensors`] with the per-sample length the kernel expects of
    /// each, where its argument says.
    pub fn tensor_lengths(&self) -> Vec<(TensorId, Access, Option<usize>)> {
        let mut out = Vec::new();
        for a in &self.args {
            a.visit_tensors(&mut |t, access, len| out.push((t, access, len)));
        }
        out
    }

    /// The tensors the step reads (updated ones included).
    pub fn reads(&self) -> Vec<TensorId> {
        self.tensors().into_iter().filter(|(_, a)| *a != Access::Write).map(|(t, _)| t).collect()
    }

    /// The tensors the step writes (updated ones included).
    pub fn writes(&self) -> Vec<TensorId> {
        self.tensors().into_iter().filter(|(_, a)| *a != Access::Read).map(|(t, _)| t).collect()
    }

    /// The parameters the step reads (not those whose gradient it writes).
    pub fn param_reads(&self) -> Vec<ParamId> {
        self.args.iter().filter_map(Arg::param_read).collect()
    }

    /// The parameter gradients the step writes, optional ones included.
    pub fn grads(&self) -> Vec<ParamId> {
        self.args.iter().filter_map(Arg::grad_written).collect()
    }

    /// The activation fused into this step's store, if any.
    pub fn fused_activation(&self) -> Option<Act> {
        self.args.iter().find_map(|a| {
            if let Arg::Act(act) = a {
                Some(*act).filter(|act| !act.is_identity())
            } else {
                None
            }
        })
    }
}

/// The loss, between the forward and backward passes.
#[derive(Clone, Debug, PartialEq)]
pub struct LossStep {
    pub kind: LossKind,
    /// The scored tensor (logits for cross-entropy).
    pub input: TensorId,
    /// Its gradient, written by the loss.
    pub grad: TensorId,
    pub node: NodeId,
}

/// A network input: its name (the generated argument's) and tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub name: String,
    pub tensor: TensorId,
}

/// A checked network, lowered and differentiated.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub name: String,
    pub tensors: Vec<TensorInfo>,
    pub params: Vec<ParamInfo>,
    /// The network inputs, in declaration order.
    pub inputs: Vec<Input>,
    /// The output of the inference pass.
    pub output: TensorId,
    /// The output of the training forward pass (the same layer's tensor).
    pub train_output: TensorId,
    pub train_forward: Vec<Step>,
    pub infer_forward: Vec<Step>,
    pub loss: Option<LossStep>,
    pub backward: Vec<Step>,
    pub optimizer: Option<Optimizer>,
    /// Max-pool layers keep the argmax of each output (u32) for backward:
    /// the per-sample length of each slot.
    pub argmax_slots: Vec<usize>,
    /// Batch-norm layers keep their batch mean and inverse std: channels per slot.
    pub stat_slots: Vec<usize>,
}

impl Program {
    pub fn tensor(&self, t: TensorId) -> &TensorInfo {
        &self.tensors[t.0]
    }

    pub fn param(&self, p: ParamId) -> &ParamInfo {
        &self.params[p.0]
    }

    pub fn is_input(&self, t: TensorId) -> bool {
        self.inputs.iter().any(|i| i.tensor == t)
    }

    pub fn learnable_count(&self) -> usize {
        self.params.iter().filter(|p| p.learnable).map(ParamInfo::len).sum()
    }

    /// Where `q`'s values start among the learnable parameters, which is
    /// where its optimizer state starts (per state value).
    pub fn learnable_offset(&self, q: ParamId) -> usize {
        self.params[..q.0].iter().filter(|p| p.learnable).map(ParamInfo::len).sum()
    }
}
