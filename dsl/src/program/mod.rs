//! The program: what the code generator turns into Rust. It is the checked
//! IR graph lowered to a linear list of kernel calls over named tensors,
//! with the training forward pass, the inference forward pass and the
//! backward pass side by side, then optimised by passes, each followed by
//! the verifier in debug builds.
//!
//! ```text
//! Graph ─lower→ forward steps ─autodiff→ backward steps ─passes→ Program
//! ```

mod autodiff;
mod display;
mod lower;
pub mod passes;
mod verify;

pub use lower::lower;
pub use verify::verify;

use crate::ir::{LossKind, NodeId, Optimizer};

/// A tensor of the program (an activation, a gradient or a scratch buffer),
/// stored in the arena: `per_sample` f32 values for each sample of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// For comments and debugging, such as `conv1` or `d.conv1`.
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
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
}

/// An activation fused into the step that produces its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
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

/// One kernel call.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The graph node it implements (for comments: layer name and line).
    pub node: NodeId,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    // ----- forward -----
    Conv {
        x: TensorId,
        y: TensorId,
        w: ParamId,
        b: Option<ParamId>,
        act: Act,
        win: Window,
        o: usize,
        groups: usize,
    },
    Dense {
        x: TensorId,
        y: TensorId,
        w: ParamId,
        b: Option<ParamId>,
        act: Act,
        input: usize,
        output: usize,
    },
    MaxPool {
        x: TensorId,
        y: TensorId,
        argmax: usize,
        win: Window,
    },
    /// Inference max pooling: no argmax, since no backward will need it.
    MaxPoolInfer {
        x: TensorId,
        y: TensorId,
        win: Window,
    },
    AvgPool {
        x: TensorId,
        y: TensorId,
        win: Window,
    },
    GlobalAvgPool {
        x: TensorId,
        y: TensorId,
        c: usize,
        hw: usize,
    },
    Activation {
        act: Act,
        x: TensorId,
        y: TensorId,
    },
    Softmax {
        x: TensorId,
        y: TensorId,
        c: usize,
        inner: usize,
    },
    /// Training-mode dropout; `layer` keys its mask.
    Dropout {
        x: TensorId,
        y: TensorId,
        p: f64,
        layer: u32,
    },
    Lrn {
        x: TensorId,
        y: TensorId,
        scale: TensorId,
        c: usize,
        inner: usize,
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    /// `slot` names the saved mean and inverse std of this layer; `act` is
    /// a following activation fused into the store (its backward stays a
    /// step of its own, which reads `y`).
    BatchNormTrain {
        x: TensorId,
        y: TensorId,
        act: Act,
        gamma: ParamId,
        beta: ParamId,
        mean: ParamId,
        var: ParamId,
        slot: usize,
        c: usize,
        inner: usize,
        eps: f64,
        momentum: f64,
    },
    BatchNormInfer {
        x: TensorId,
        y: TensorId,
        act: Act,
        gamma: ParamId,
        beta: ParamId,
        mean: ParamId,
        var: ParamId,
        c: usize,
        inner: usize,
        eps: f64,
    },
    /// `y = act(a + b)`: a following activation fused in, as for batch
    /// norm (its backward stays a step of its own).
    Add {
        a: TensorId,
        b: TensorId,
        y: TensorId,
        act: Act,
    },
    /// Channel concatenation; `parts` are (tensor, channels); `inner` is H·W.
    Concat {
        parts: Vec<(TensorId, usize)>,
        y: TensorId,
        inner: usize,
    },
    Copy {
        x: TensorId,
        y: TensorId,
    },

    // ----- backward -----
    ConvBackwardData {
        dy: TensorId,
        w: ParamId,
        mask: Option<TensorId>,
        dx: TensorId,
        win: Window,
        o: usize,
        groups: usize,
    },
    ConvBackwardWeights {
        x: TensorId,
        dy: TensorId,
        dw: ParamId,
        db: Option<ParamId>,
        win: Window,
        o: usize,
        groups: usize,
    },
    DenseBackwardData {
        dy: TensorId,
        w: ParamId,
        mask: Option<TensorId>,
        dx: TensorId,
        input: usize,
        output: usize,
    },
    DenseBackwardWeights {
        x: TensorId,
        dy: TensorId,
        dw: ParamId,
        db: Option<ParamId>,
        input: usize,
        output: usize,
    },
    /// `d ← d · act'(y)`, in place: the gradient of an activation's output
    /// becomes the gradient of its input.
    ActivationBackward {
        act: Act,
        y: TensorId,
        d: TensorId,
    },
    /// With `act`, the backward of the activation whose output fed the
    /// pool is fused in; the tensor given is the pool's output, from which
    /// `act'` is read at each window's maximum.
    MaxPoolBackward {
        dy: TensorId,
        argmax: usize,
        dx: TensorId,
        win: Window,
        act: Option<(Act, TensorId)>,
    },
    AvgPoolBackward {
        dy: TensorId,
        dx: TensorId,
        win: Window,
    },
    GlobalAvgPoolBackward {
        dy: TensorId,
        dx: TensorId,
        c: usize,
        hw: usize,
    },
    SoftmaxBackward {
        y: TensorId,
        dy: TensorId,
        dx: TensorId,
        c: usize,
        inner: usize,
    },
    DropoutBackward {
        dy: TensorId,
        dx: TensorId,
        p: f64,
        layer: u32,
    },
    LrnBackward {
        x: TensorId,
        y: TensorId,
        scale: TensorId,
        dy: TensorId,
        dx: TensorId,
        c: usize,
        inner: usize,
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    BatchNormBackward {
        x: TensorId,
        gamma: ParamId,
        slot: usize,
        dy: TensorId,
        dx: TensorId,
        dgamma: ParamId,
        dbeta: ParamId,
        c: usize,
        inner: usize,
    },
    ConcatBackward {
        dy: TensorId,
        parts: Vec<(TensorId, usize)>,
        inner: usize,
    },
    /// `acc += x`: a second gradient contribution to a tensor used twice.
    AddAssign {
        acc: TensorId,
        x: TensorId,
    },
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

/// A checked network, lowered and differentiated.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub name: String,
    pub tensors: Vec<TensorInfo>,
    pub params: Vec<ParamInfo>,
    /// The network input (one; more are a later extension).
    pub input: TensorId,
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

    pub fn learnable_count(&self) -> usize {
        self.params.iter().filter(|p| p.learnable).map(ParamInfo::len).sum()
    }

    /// Where `q`'s values start among the learnable parameters, which is
    /// where its optimizer state starts (per state value).
    pub fn learnable_offset(&self, q: ParamId) -> usize {
        self.params[..q.0].iter().filter(|p| p.learnable).map(ParamInfo::len).sum()
    }

    /// The dense weights whose gradient step an SGD step can be fused into:
    /// no later backward step reads those weights, so stepping them in
    /// place cannot change a gradient still to be computed.
    pub fn fusable_weights(&self) -> Vec<ParamId> {
        let read_after = |i: usize, q: ParamId| {
            self.backward[i + 1..].iter().any(|s| s.kind.param_reads().contains(&q))
        };
        self.backward
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.kind {
                StepKind::DenseBackwardWeights { dw, .. } if !read_after(i, dw) => Some(dw),
                _ => None,
            })
            .collect()
    }
}

impl StepKind {
    /// The activation fused into this step's store, if any: its backward
    /// is a step of its own, emitted before the step's other gradients.
    pub fn fused_activation(&self) -> Option<Act> {
        use StepKind::*;
        match self {
            Conv { act, .. }
            | Dense { act, .. }
            | BatchNormTrain { act, .. }
            | BatchNormInfer { act, .. }
            | Add { act, .. } => Some(*act).filter(|a| *a != Act::Identity),
            _ => None,
        }
    }

    /// The tensors the step reads.
    pub fn reads(&self) -> Vec<TensorId> {
        use StepKind::*;
        match self {
            Conv { x, .. }
            | Dense { x, .. }
            | MaxPool { x, .. }
            | MaxPoolInfer { x, .. }
            | AvgPool { x, .. }
            | GlobalAvgPool { x, .. } => vec![*x],
            Activation { x, .. }
            | Softmax { x, .. }
            | Dropout { x, .. }
            | Lrn { x, .. }
            | Copy { x, .. } => vec![*x],
            BatchNormTrain { x, .. } | BatchNormInfer { x, .. } => vec![*x],
            Add { a, b, .. } => vec![*a, *b],
            Concat { parts, .. } => parts.iter().map(|p| p.0).collect(),
            ConvBackwardData { dy, mask, .. } | DenseBackwardData { dy, mask, .. } => {
                std::iter::once(*dy).chain(*mask).collect()
            }
            ConvBackwardWeights { x, dy, .. } | DenseBackwardWeights { x, dy, .. } => vec![*x, *dy],
            ActivationBackward { y, d, .. } => vec![*y, *d],
            MaxPoolBackward { dy, act: Some((_, y)), .. } => vec![*dy, *y],
            MaxPoolBackward { dy, act: None, .. }
            | AvgPoolBackward { dy, .. }
            | GlobalAvgPoolBackward { dy, .. } => vec![*dy],
            SoftmaxBackward { y, dy, .. } => vec![*y, *dy],
            DropoutBackward { dy, .. } => vec![*dy],
            LrnBackward { x, y, scale, dy, .. } => vec![*x, *y, *scale, *dy],
            BatchNormBackward { x, dy, .. } => vec![*x, *dy],
            ConcatBackward { dy, .. } => vec![*dy],
            AddAssign { acc, x } => vec![*acc, *x],
        }
    }

    /// The parameters the step reads (not those whose gradient it writes).
    pub fn param_reads(&self) -> Vec<ParamId> {
        use StepKind::*;
        match self {
            Conv { w, b, .. } | Dense { w, b, .. } => std::iter::once(*w).chain(*b).collect(),
            BatchNormTrain { gamma, beta, mean, var, .. }
            | BatchNormInfer { gamma, beta, mean, var, .. } => vec![*gamma, *beta, *mean, *var],
            ConvBackwardData { w, .. } | DenseBackwardData { w, .. } => vec![*w],
            BatchNormBackward { gamma, .. } => vec![*gamma],
            // Listed, not `_`: a new step that reads a parameter must say so
            // here, or an SGD step could be fused before it reads.
            MaxPool { .. }
            | MaxPoolInfer { .. }
            | AvgPool { .. }
            | GlobalAvgPool { .. }
            | Activation { .. }
            | Softmax { .. }
            | Dropout { .. }
            | Lrn { .. }
            | Copy { .. }
            | Add { .. }
            | Concat { .. }
            | ConvBackwardWeights { .. }
            | DenseBackwardWeights { .. }
            | ActivationBackward { .. }
            | MaxPoolBackward { .. }
            | AvgPoolBackward { .. }
            | GlobalAvgPoolBackward { .. }
            | SoftmaxBackward { .. }
            | DropoutBackward { .. }
            | LrnBackward { .. }
            | ConcatBackward { .. }
            | AddAssign { .. } => vec![],
        }
    }

    /// The tensors the step writes.
    pub fn writes(&self) -> Vec<TensorId> {
        use StepKind::*;
        match self {
            Conv { y, .. }
            | Dense { y, .. }
            | MaxPool { y, .. }
            | MaxPoolInfer { y, .. }
            | AvgPool { y, .. }
            | GlobalAvgPool { y, .. } => vec![*y],
            Activation { y, .. } | Softmax { y, .. } | Dropout { y, .. } | Copy { y, .. } => {
                vec![*y]
            }
            Lrn { y, scale, .. } => vec![*y, *scale],
            BatchNormTrain { y, .. }
            | BatchNormInfer { y, .. }
            | Add { y, .. }
            | Concat { y, .. } => vec![*y],
            ConvBackwardData { dx, .. } | DenseBackwardData { dx, .. } => vec![*dx],
            ConvBackwardWeights { .. } | DenseBackwardWeights { .. } => vec![],
            ActivationBackward { d, .. } => vec![*d],
            MaxPoolBackward { dx, .. } | AvgPoolBackward { dx, .. } => vec![*dx],
            GlobalAvgPoolBackward { dx, .. }
            | SoftmaxBackward { dx, .. }
            | DropoutBackward { dx, .. } => vec![*dx],
            LrnBackward { dx, .. } | BatchNormBackward { dx, .. } => vec![*dx],
            ConcatBackward { parts, .. } => parts.iter().map(|p| p.0).collect(),
            AddAssign { acc, .. } => vec![*acc],
        }
    }

    /// Whether the step belongs to the backward pass.
    pub fn is_backward(&self) -> bool {
        use StepKind::*;
        matches!(
            self,
            ConvBackwardData { .. }
                | ConvBackwardWeights { .. }
                | DenseBackwardData { .. }
                | DenseBackwardWeights { .. }
                | ActivationBackward { .. }
                | MaxPoolBackward { .. }
                | AvgPoolBackward { .. }
                | GlobalAvgPoolBackward { .. }
                | SoftmaxBackward { .. }
                | DropoutBackward { .. }
                | LrnBackward { .. }
                | BatchNormBackward { .. }
                | ConcatBackward { .. }
        )
    }

    /// Whether the step reads and writes one tensor on purpose.
    pub fn is_in_place(&self) -> bool {
        matches!(self, StepKind::ActivationBackward { .. } | StepKind::AddAssign { .. })
    }
}
