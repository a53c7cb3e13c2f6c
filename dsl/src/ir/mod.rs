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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax followed by cross-entropy against class-index labels.
    CrossEntropy,
    /// `E = ½·Σ(t − y)²` against targets of the output's shape, averaged over the batch.
    Mse,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub input: NodeId,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd { lr: f64, momentum: f64, nesterov: bool, weight_decay: f64 },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64, decoupled: bool },
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
