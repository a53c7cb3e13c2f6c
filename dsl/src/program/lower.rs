//! Lowering: the checked graph becomes the forward steps of a program. The
//! driver gives each node its output tensor and its parameters, then asks
//! the node's op for its steps ([`crate::ops::OpKind::lower`]). It also
//! fuses: a layer that can absorb an activation (conv, dense, batch norm, a
//! binary add) computes its only consumer's activation in its own store.
//! Then autodiff adds the backward steps, and the passes run.

use super::{
    autodiff, passes, verify, Act, Arg, Input, LossStep, ParamId, ParamInfo, Program, Step,
    TensorId, TensorInfo,
};
use crate::ir::{Graph, Node, NodeId, Shape};

/// Lowers a checked graph into an optimised, verified program.
pub fn lower(g: &Graph) -> Program {
    let mut p = empty_program(g);
    let mut records: Vec<Option<Lowered>> = vec![None; g.nodes.len()];
    let mut tensor_of: Vec<Option<TensorId>> = vec![None; g.nodes.len()];
    let mut fused = vec![false; g.nodes.len()];
    let mask_layers = g.mask_layers();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for input in &node.inputs {
            consumers[input.0].push(i);
        }
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if fused[i] {
            continue;
        }
        let id = NodeId(i);
        let xs: Vec<TensorId> = node
            .inputs
            .iter()
            .map(|s| tensor_of[s.0].unwrap_or_else(|| unreachable!("inputs lower first")))
            .collect();
        if node.op.is_alias() {
            tensor_of[i] = Some(xs[0]);
            continue;
        }
        let (out_node, act) = match fusable_consumer(g, id, &xs, &consumers[i]) {
            Some((a, act)) => {
                fused[a.0] = true;
                (a, act)
            }
            None => (id, Act::IDENTITY),
        };
        // A fused layer's tensor keeps the layer's name: `conv1`, not `relu1`.
        let y = new_tensor(&mut p, node.name.clone(), &g.node(out_node).shape.0);
        tensor_of[i] = Some(y);
        tensor_of[out_node.0] = Some(y);
        let params = g
            .params_of(node)
            .into_iter()
            .map(|spec| {
                p.params.push(ParamInfo {
                    name: format!("{}.{}", node.name, spec.name),
                    shape: spec.shape.0,
                    learnable: spec.learnable,
                    init: spec.init,
                    multipliers: g.multipliers[i],
                });
                ParamId(p.params.len() - 1)
            })
            .collect();
        let mut cx = LowerCx {
            g,
            node,
            id,
            p: &mut p,
            rec: Lowered { y, xs, params, act, slot: 0, extra: Vec::new(), layer: 0 },
            mask_layer: mask_layers[i],
        };
        node.op.lower(&mut cx);
        records[i] = Some(cx.rec);
    }
    let output = tensor_of[g.output.0].unwrap_or_else(|| unreachable!("the output is lowered"));
    p.output = output;
    p.train_output = output;
    if let Some(loss) = &g.loss {
        let input = tensor_of[loss.input.0].unwrap_or_else(|| unreachable!("the loss input"));
        let shape = p.tensor(input).shape.clone();
        let name = format!("{}.grad", p.tensor(input).name);
        let grad = new_tensor(&mut p, name, &shape);
        p.loss = Some(LossStep { kind: loss.kind.clone(), input, grad, node: loss.input });
    }
    let p = autodiff::differentiate(g, p, &records);
    debug_verify(&p, "autodiff");
    let p = passes::run(p);
    debug_verify(&p, "passes");
    p
}

fn debug_verify(p: &Program, after: &str) {
    if cfg!(debug_assertions) {
        if let Err(e) = verify(p) {
            // A verifier failure is a compiler bug, not a user error.
            unreachable!("program invalid after {after}: {e}");
        }
    }
}

fn empty_program(g: &Graph) -> Program {
    Program {
        name: g.name.clone(),
        tensors: Vec::new(),
        params: Vec::new(),
        inputs: Vec::new(),
        output: TensorId(0),
        train_output: TensorId(0),
        train_forward: Vec::new(),
        infer_forward: Vec::new(),
        loss: None,
        backward: Vec::new(),
        optimizer: g.optimizer.clone(),
        argmax_slots: Vec::new(),
        stat_slots: Vec::new(),
    }
}

fn new_tensor(p: &mut Program, name: String, shape: &[usize]) -> TensorId {
    p.tensors.push(TensorInfo { name, shape: shape.to_vec() });
    TensorId(p.tensors.len() - 1)
}

/// The activation node fused into `id`'s store: `id`'s op absorbs
/// activations, its only consumer is one, and `id` is neither the output
/// nor the loss input. An activation whose derivative needs its input is
/// fused only where no backward pass reads it: a network without a loss.
fn fusable_consumer(
    g: &Graph,
    id: NodeId,
    xs: &[TensorId],
    consumers: &[usize],
) -> Option<(NodeId, Act)> {
    if !g.node(id).op.absorbs_activation(xs.len()) {
        return None;
    }
    let special = id == g.output || g.loss.as_ref().is_some_and(|l| l.input == id);
    match consumers {
        [only] if !special => {
            let act = g.nodes[*only].op.activation()?;
            let kept = act.derivative_needs_input() && g.loss.is_some();
            (!kept).then_some((NodeId(*only), act))
        }
        _ => None,
    }
}

/// What lowering made for one node, which its vector-Jacobian product reads.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The output tensor (the fused activation's, if one was fused).
    pub y: TensorId,
    /// The input tensors, in the node's input order.
    pub xs: Vec<TensorId>,
    /// The node's parameters, in the op's `params` order.
    pub params: Vec<ParamId>,
    /// A fused activation, or the identity.
    pub act: Act,
    /// The node's argmax or statistics slot, if it has one.
    pub slot: usize,
    /// Tensors the op made besides its output (LRN's scale).
    pub extra: Vec<TensorId>,
    /// The node's number among the layers drawing masks, which keys them.
    pub layer: u16,
}

/// What an op's lowering works with: its node, its tensors and parameters,
/// and where its steps go.
#[derive(Debug)]
pub struct LowerCx<'a> {
    pub g: &'a Graph,
    pub node: &'a Node,
    pub id: NodeId,
    p: &'a mut Program,
    pub rec: Lowered,
    mask_layer: Option<u16>,
}

impl LowerCx<'_> {
    /// The per-sample shape of input `i`.
    pub fn x_shape(&self, i: usize) -> &Shape {
        &self.g.node(self.node.inputs[i]).shape
    }

    /// Input `i` read whole.
    pub fn x(&self, i: usize) -> Arg {
        Arg::In(self.rec.xs[i], self.x_shape(i).elements())
    }

    /// The output written whole.
    pub fn y(&self) -> Arg {
        Arg::Out(self.rec.y, self.node.shape.elements())
    }

    pub fn param(&self, i: usize) -> ParamId {
        self.rec.params[i]
    }

    /// The fused activation as an argument.
    pub fn act(&self) -> Arg {
        Arg::Act(self.rec.act)
    }

    /// The same step in the training and the inference pass.
    pub fn both(&mut self, kernel: &'static str, args: Vec<Arg>) {
        self.train(kernel, args.clone());
        self.infer(kernel, args);
    }

    pub fn train(&mut self, kernel: &'static str, args: Vec<Arg>) {
        self.p.train_forward.push(Step::new(self.id, kernel, args));
    }

    pub fn infer(&mut self, kernel: &'static str, args: Vec<Arg>) {
        self.p.infer_forward.push(Step::new(self.id, kernel, args));
    }

    /// A further tensor of this node, named `<layer>.<suffix>`.
    pub fn extra_tensor(&mut self, suffix: &str, shape: &[usize]) -> TensorId {
        let t = new_tensor(self.p, format!("{}.{suffix}", self.node.name), shape);
        self.rec.extra.push(t);
        t
    }

    /// Declares the output tensor a network input.
    pub fn declare_input(&mut self) {
        self.p.inputs.push(Input { name: self.node.name.clone(), tensor: self.rec.y });
    }

    /// A new argmax slot of `len` indices per sample.
    pub fn argmax_slot(&mut self, len: usize) -> usize {
        self.p.argmax_slots.push(len);
        self.rec.slot = self.p.argmax_slots.len() - 1;
        self.rec.slot
    }

    /// A new statistics slot for `channels` channels.
    pub fn stats_slot(&mut self, channels: usize) -> usize {
        self.p.stat_slots.push(channels);
        self.rec.slot = self.p.stat_slots.len() - 1;
        self.rec.slot
    }

    /// This node's number among the layers that draw masks, kept for its
    /// backward pass.
    pub fn mask_layer(&mut self) -> u16 {
        let layer = self.mask_layer.unwrap_or_else(|| unreachable!("the op draws a mask"));
        self.rec.layer = layer;
        layer
    }
}

/// Channels and the product of the remaining dims of a per-sample shape.
pub fn channels_inner(shape: &[usize]) -> (usize, usize) {
    (shape.first().copied().unwrap_or(1), shape.iter().skip(1).product())
}
