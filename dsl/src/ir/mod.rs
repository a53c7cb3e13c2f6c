//! The typed IR: a DAG of ops with static per-sample shapes, produced by the
//! checker. Nodes are stored in topological order (every input precedes its
//! consumers), which later passes rely on.

mod display;
mod dot;

pub use crate::ops::{Conv2d, Op, OpError, ParamSpec, Pool2d};
pub use display::{layer_rows, LayerRow};

use crate::ast::Span;
use std::fmt;

/// Index of a node in `Graph::nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A per-sample shape: `[C, H, W]` for images, `[F]` for features. The batch
/// dimension is implicit and is the only extent not known at compile time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements per sample. Shapes are validated against
    /// [`MAX_ELEMENTS`] when created, so this cannot overflow.
    pub fn elements(&self) -> usize {
        self.0.iter().product()
    }
}

/// The largest tensor the checker accepts, in elements per sample. It keeps
/// every size computation far from integer overflow.
pub const MAX_ELEMENTS: usize = 1 << 40;

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// One op applied to its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The layer path, such as `conv1` or `layer1.0.bn2`; parameters are named
    /// `<name>.weight` and so on, as in a PyTorch `state_dict`.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// The per-sample output shape.
    pub shape: Shape,
    /// The source text of the stage or expression that made this node.
    pub span: Span,
}

/// A loss and its options, with PyTorch's definitions and `reduction='mean'`.
#[derive(Clone, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax followed by cross-entropy against class-index labels
    /// (`F.cross_entropy`): with label smoothing `ε`, `(1 − ε)·nll + ε·mean
    /// over classes of −log p`; with a weight per class, the weighted sum
    /// divided by the labels' total weight.
    CrossEntropy { label_smoothing: f64, weight: Option<Vec<f64>> },
    /// `E = ½·Σ(t − y)²` against targets of the output's shape, averaged over the batch.
    Mse,
    /// Binary cross-entropy on logits against float targets of the output's
    /// shape (multi-label), averaged over every element; `pos_weight`
    /// broadcasts over the output's last axis.
    BceWithLogits { pos_weight: Option<Vec<f64>> },
    /// `SmoothL1Loss(beta)` against float targets, averaged over every element.
    SmoothL1 { beta: f64 },
    /// `HuberLoss(delta)` against float targets, averaged over every element.
    Huber { delta: f64 },
}

/// The loss as the language writes it, with the options that differ from
/// the defaults: `cross_entropy(label_smoothing: 0.1)`, `huber(delta: 1)`.
impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[f64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
        let mut options = Vec::new();
        match self {
            LossKind::CrossEntropy { label_smoothing, weight } => {
                if *label_smoothing != 0.0 {
                    options.push(format!("label_smoothing: {label_smoothing}"));
                }
                if let Some(w) = weight {
                    options.push(format!("weight: [{}]", list(w)));
                }
            }
            LossKind::BceWithLogits { pos_weight: Some(w) } => {
                options.push(format!("pos_weight: [{}]", list(w)));
            }
            LossKind::SmoothL1 { beta } => options.push(format!("beta: {beta}")),
            LossKind::Huber { delta } => options.push(format!("delta: {delta}")),
            LossKind::BceWithLogits { pos_weight: None } | LossKind::Mse => {}
        }
        f.write_str(self.name())?;
        if !options.is_empty() {
            write!(f, "({})", options.join(", "))?;
        }
        Ok(())
    }
}

impl LossKind {
    /// The loss's name in the language.
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::CrossEntropy { .. } => "cross_entropy",
            LossKind::Mse => "mse",
            LossKind::BceWithLogits { .. } => "bce_with_logits",
            LossKind::SmoothL1 { .. } => "smooth_l1",
            LossKind::Huber { .. } => "huber",
        }
    }

    /// Whether the targets are class indices (else floats of the output's shape).
    pub fn takes_labels(&self) -> bool {
        match self {
            LossKind::CrossEntropy { .. } => true,
            LossKind::Mse
            | LossKind::BceWithLogits { .. }
            | LossKind::SmoothL1 { .. }
            | LossKind::Huber { .. } => false,
        }
    }

    /// Whether the loss of a batch is the mean of its samples' losses, so
    /// that shards of the batch can be averaged by their samples: not with
    /// class weights, whose divisor spans the whole batch.
    pub fn is_sample_mean(&self) -> bool {
        !matches!(self, LossKind::CrossEntropy { weight: Some(_), .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub input: NodeId,
    pub span: Span,
}

/// The optimizer of the `optimizer` statement; `clip_norm` clips the
/// gradients' global L2 norm before each step.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
        clip_norm: Option<f64>,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        clip_norm: Option<f64>,
    },
}

/// The learning-rate schedule of the `schedule` statement: a decay over
/// the run's epochs after `warmup` epochs of linear warmup.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub decay: Decay,
    pub warmup: f64,
}

/// How a [`Schedule`] decays the rate; epochs are epochs completed.
#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    Constant,
    Step { every: f64, gamma: f64 },
    MultiStep { milestones: Vec<f64>, gamma: f64 },
    Cosine { min_lr: f64 },
}

/// How the optimizer treats a layer's learnable parameters, as Caffe's
/// `lr_mult` and `decay_mult` (PyTorch's parameter groups): their step
/// takes `lr·lr` and `weight_decay·decay`. A layer with `lr` 0 is frozen:
/// its parameters take no step and their gradients are not computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Multipliers {
    pub lr: f64,
    pub decay: f64,
}

impl Multipliers {
    pub const ONE: Multipliers = Multipliers { lr: 1.0, decay: 1.0 };

    pub fn frozen(&self) -> bool {
        self.lr == 0.0
    }
}

/// The number format of a network's matrix products (`precision`
/// statement): f32 throughout, or bf16 operands with f32 sums, the weights,
/// activations, gradients and optimizer state staying f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    /// Every precision, by its name in the language.
    pub const ALL: [(&'static str, Precision); 2] =
        [("f32", Precision::F32), ("bf16", Precision::Bf16)];

    /// The precision named `name` in the language.
    pub fn named(name: &str) -> Option<Precision> {
        Precision::ALL.iter().find(|(n, _)| *n == name).map(|&(_, p)| p)
    }

    /// Its name in the language.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// A checked network.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    /// The `Op::Input` nodes, in declaration order.
    pub inputs: Vec<NodeId>,
    pub output: NodeId,
    pub loss: Option<Loss>,
    pub optimizer: Option<Optimizer>,
    pub schedule: Option<Schedule>,
    /// The number format of the convs' and dense layers' products.
    pub precision: Precision,
    /// Each node's multipliers (`train` statements), by node index.
    pub multipliers: Vec<Multipliers>,
    /// The whole `network` item.
    pub span: Span,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    fn input_shapes(&self, node: &Node) -> Vec<&Shape> {
        node.inputs.iter().map(|&i| &self.node(i).shape).collect()
    }

    /// The learnable tensors of a node, in `state_dict` order.
    pub fn params_of(&self, node: &Node) -> Vec<ParamSpec> {
        node.op.params(&self.input_shapes(node))
    }

    pub fn param_count_of(&self, node: &Node) -> usize {
        self.params_of(node).iter().filter(|p| p.learnable).map(|p| p.shape.elements()).sum()
    }

    /// Forward multiply-accumulates per sample of a node (conv and dense only).
    pub fn macs_of(&self, node: &Node) -> u64 {
        node.op.macs(&self.input_shapes(node), &node.shape)
    }

    /// Forward floating-point operations per sample of a node.
    pub fn flops_of(&self, node: &Node) -> u64 {
        node.op.flops(&self.input_shapes(node), &node.shape)
    }

    pub fn total_params(&self) -> usize {
        self.nodes.iter().map(|n| self.param_count_of(n)).sum()
    }

    /// Each node's number among the layers that draw a random mask in
    /// training (dropout, stochastic depth), from 1 in node order: the
    /// `layer` of its mask key, which the generated code and the
    /// interpreter must agree on.
    pub fn mask_layers(&self) -> Vec<Option<u16>> {
        let mut next = 0u16;
        self.nodes
            .iter()
            .map(|n| {
                n.op.draws_mask().then(|| {
                    next += 1;
                    next
                })
            })
            .collect()
    }

    pub fn total_macs(&self) -> u64 {
        self.nodes.iter().map(|n| self.macs_of(n)).sum()
    }

    pub fn total_flops(&self) -> u64 {
        self.nodes.iter().map(|n| self.flops_of(n)).sum()
    }

    /// Bytes of all activations of one sample in f32, before any memory
    /// planning: the upper bound the memory plan improves on.
    pub fn activation_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.shape.elements() * 4).sum()
    }
}
