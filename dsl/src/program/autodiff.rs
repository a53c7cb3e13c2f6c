//! Reverse-mode differentiation of the training forward pass: the nodes
//! are visited backwards, and each op contributes its vector-Jacobian
//! product ([`crate::ops::OpKind::vjp`]) to the gradients of its inputs.
//!
//! Gradient buffers are tensors like any other. A tensor used by several
//! consumers receives its first contribution directly and later ones
//! through a temporary and an `add_assign`. An activation's backward works
//! in place, so its input's gradient reuses its output's gradient buffer.
//!
//! As PyTorch's autograd, a tensor needs a gradient only if a learnable,
//! unfrozen parameter lies upstream of it: the layers before the first one
//! that learns compute no gradient at all, and a frozen layer computes its
//! input's gradient but not its weights'.

use super::lower::Lowered;
use super::{Arg, Program, Step, TensorId, TensorInfo};
use crate::ir::{Graph, NodeId, Shape};
use std::collections::HashMap;

pub fn differentiate(g: &Graph, mut p: Program, records: &[Option<Lowered>]) -> Program {
    let Some(loss) = p.loss.clone() else { return p };
    let mut ad = Autodiff {
        grad: HashMap::new(),
        steps: Vec::new(),
        tensors: std::mem::take(&mut p.tensors),
        requires: requires_grad(g),
    };
    ad.grad.insert(loss.input, loss.grad);
    for (i, rec) in records.iter().enumerate().rev() {
        let Some(rec) = rec else { continue };
        // A node whose output does not reach the loss contributes nothing,
        // nor does one with nothing upstream to learn.
        let Some(&gy) = ad.grad.get(&rec.y) else { continue };
        if !ad.requires[i] {
            continue;
        }
        let node = &g.nodes[i];
        let mut cx = VjpCx { g, node: NodeId(i), rec, gy, ad: &mut ad };
        if !rec.act.is_identity() {
            // A fused activation's backward comes first, in place.
            let len = cx.y_len();
            cx.emit(
                "activation_backward_in_place",
                vec![Arg::Act(rec.act), Arg::In(rec.y, len), Arg::InOut(gy, len)],
            );
        }
        node.op.vjp(&mut cx);
    }
    p.tensors = ad.tensors;
    p.backward = ad.steps;
    p
}

#[derive(Debug)]
struct Autodiff {
    /// The gradient buffer of each tensor that has one so far.
    grad: HashMap<TensorId, TensorId>,
    steps: Vec<Step>,
    tensors: Vec<TensorInfo>,
    /// By node: whether its output needs a gradient.
    requires: Vec<bool>,
}

/// By node: whether a learnable parameter of an unfrozen layer lies at or
/// upstream of it (network inputs need no gradient). Nodes are in
/// topological order.
fn requires_grad(g: &Graph) -> Vec<bool> {
    let mut requires = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let learns = !g.multipliers[i].frozen() && g.param_count_of(node) > 0;
        requires[i] = learns || node.inputs.iter().any(|x| requires[x.0]);
    }
    requires
}

/// Where a step should write a gradient contribution, and whether that
/// contribution must then be added into an existing gradient.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub write: TensorId,
    accumulate_into: Option<TensorId>,
}

/// What an op's vector-Jacobian product works with: its lowering record,
/// the gradient of its output, and where its steps go.
#[derive(Debug)]
pub struct VjpCx<'a> {
    pub g: &'a Graph,
    pub node: NodeId,
    pub rec: &'a Lowered,
    /// The gradient of the node's output.
    pub gy: TensorId,
    ad: &'a mut Autodiff,
}

impl VjpCx<'_> {
    /// The per-sample shape of input `i`.
    pub fn x_shape(&self, i: usize) -> &Shape {
        &self.g.node(self.g.node(self.node).inputs[i]).shape
    }

    pub fn y_len(&self) -> usize {
        self.ad.tensors[self.rec.y.0].per_sample()
    }

    pub fn x_len(&self, i: usize) -> usize {
        self.x_shape(i).elements()
    }

    /// Input `i` read whole.
    pub fn x(&self, i: usize) -> Arg {
        Arg::In(self.rec.xs[i], self.x_len(i))
    }

    /// The output read whole.
    pub fn y(&self) -> Arg {
        Arg::In(self.rec.y, self.y_len())
    }

    /// The output's gradient read whole.
    pub fn dy(&self) -> Arg {
        Arg::In(self.gy, self.y_len())
    }

    pub fn emit(&mut self, kernel: &'static str, args: Vec<Arg>) {
        self.ad.steps.push(Step::new(self.node, kernel, args));
    }

    /// Whether input `i` needs a gradient: network inputs do not, nor
    /// tensors with no unfrozen parameter upstream.
    pub fn needs_grad(&self, i: usize) -> bool {
        self.ad.requires[self.g.node(self.node).inputs[i].0]
    }

    /// Whether the layer's own parameters get gradients (it is not frozen).
    pub fn learns(&self) -> bool {
        !self.g.multipliers[self.node.0].frozen()
    }

    fn new_tensor(&mut self, name: String, like: TensorId) -> TensorId {
        let shape = self.ad.tensors[like.0].shape.clone();
        self.ad.tensors.push(TensorInfo { name, shape });
        TensorId(self.ad.tensors.len() - 1)
    }

    /// The buffer for a contribution to the gradient of input `i`.
    pub fn target(&mut self, i: usize) -> Target {
        let x = self.rec.xs[i];
        match self.ad.grad.get(&x) {
            None => {
                let name = format!("{}.grad", self.ad.tensors[x.0].name);
                let g = self.new_tensor(name, x);
                self.ad.grad.insert(x, g);
                Target { write: g, accumulate_into: None }
            }
            Some(&g) => {
                let name = format!("{}.grad_part", self.ad.tensors[x.0].name);
                let t = self.new_tensor(name, x);
                Target { write: t, accumulate_into: Some(g) }
            }
        }
    }

    /// A buffer that a kernel writes but nothing reads: the gradient of an
    /// input that needs none, from a kernel that always computes it.
    pub fn scratch(&mut self, i: usize) -> TensorId {
        let x = self.rec.xs[i];
        let name = format!("{}.grad_unused", self.ad.tensors[x.0].name);
        self.new_tensor(name, x)
    }

    /// Adds a target's contribution into the gradient it belongs to.
    pub fn finish(&mut self, t: Target, len: usize) {
        if let Some(acc) = t.accumulate_into {
            self.emit("add_assign", vec![Arg::InOut(acc, len), Arg::In(t.write, len)]);
        }
    }

    /// Input `i`'s gradient is `gy` unchanged: hands `gy`'s buffer to it if
    /// it has no gradient yet (valid once nothing else will write `gy`), or
    /// adds `gy` into its gradient.
    pub fn pass_through(&mut self, i: usize) {
        if !self.needs_grad(i) {
            return;
        }
        let (x, gy, len) = (self.rec.xs[i], self.gy, self.x_len(i));
        match self.ad.grad.get(&x) {
            None => {
                self.ad.grad.insert(x, gy);
            }
            Some(&acc) => self.emit("add_assign", vec![Arg::InOut(acc, len), Arg::In(gy, len)]),
        }
    }

    /// Input `i`'s gradient gets a copy of `gy` (or `gy` added into it):
    /// for inputs after the first of an op that passes its gradient on.
    pub fn copy_through(&mut self, i: usize) {
        if !self.needs_grad(i) {
            return;
        }
        let (x, gy, len) = (self.rec.xs[i], self.gy, self.x_len(i));
        match self.ad.grad.get(&x) {
            Some(&acc) => self.emit("add_assign", vec![Arg::InOut(acc, len), Arg::In(gy, len)]),
            None => {
                let t = self.target(i);
                self.emit("copy", vec![Arg::In(gy, len), Arg::Out(t.write, len)]);
            }
        }
    }

    /// The common case: input `i`'s gradient from one kernel writing
    /// `dx` (its last argument slot given by `args(dx)`).
    pub fn grad_into(
        &mut self,
        i: usize,
        kernel: &'static str,
        args: impl FnOnce(Arg) -> Vec<Arg>,
    ) {
        if !self.needs_grad(i) {
            return;
        }
        let len = self.x_len(i);
        let t = self.target(i);
        let args = args(Arg::Out(t.write, len));
        self.emit(kernel, args);
        self.finish(t, len);
    }
}
