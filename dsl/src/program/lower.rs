//! Lowering: the checked graph becomes the forward steps of a program, with
//! one tensor per node output (flatten aliases its input), one parameter per
//! learnable tensor or buffer, and epilogue fusion: a conv or dense layer
//! whose only consumer is an activation computes that activation in its
//! GEMM's store. Then autodiff adds the backward steps, and the passes run.

use super::{
    autodiff, passes, verify, Act, Init, LossStep, ParamId, ParamInfo, Program, Step, StepKind,
    TensorId, TensorInfo, Window,
};
use crate::ir::{Graph, NodeId, Op, Pool2d};

/// Lowers a checked graph into an optimised, verified program.
pub fn lower(g: &Graph) -> Program {
    let mut l = Lowering {
        g,
        p: empty_program(g),
        tensor_of: vec![None; g.nodes.len()],
        dropout_layers: 0,
    };
    l.forward();
    let p = autodiff::differentiate(l.p);
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
        input: TensorId(0),
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

struct Lowering<'g> {
    g: &'g Graph,
    p: Program,
    tensor_of: Vec<Option<TensorId>>,
    dropout_layers: u32,
}

fn act_of(op: &Op) -> Option<Act> {
    match op {
        Op::Relu => Some(Act::Relu),
        Op::LeakyRelu { slope } => Some(Act::LeakyRelu(*slope)),
        Op::Sigmoid => Some(Act::Sigmoid),
        Op::Tanh => Some(Act::Tanh),
        _ => None,
    }
}

fn window(
    x: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
) -> Window {
    Window {
        c: x[0],
        h: x[1],
        w: x[2],
        kh: kernel[0],
        kw: kernel[1],
        sh: stride[0],
        sw: stride[1],
        ph: pad[0],
        pw: pad[1],
        dh: dilation[0],
        dw: dilation[1],
    }
}

fn pool_window(x: &[usize], p: &Pool2d) -> Window {
    window(x, p.kernel, p.stride, p.pad, [1, 1])
}

/// Channels and the product of the remaining dims of a per-sample shape.
fn channels_inner(shape: &[usize]) -> (usize, usize) {
    (shape.first().copied().unwrap_or(1), shape.iter().skip(1).product())
}

impl Lowering<'_> {
    fn tensor(&mut self, name: String, shape: &[usize]) -> TensorId {
        self.p.tensors.push(TensorInfo { name, shape: shape.to_vec() });
        TensorId(self.p.tensors.len() - 1)
    }

    fn param(
        &mut self,
        node: &str,
        suffix: &str,
        shape: Vec<usize>,
        learnable: bool,
        init: Init,
    ) -> ParamId {
        self.p.params.push(ParamInfo { name: format!("{node}.{suffix}"), shape, learnable, init });
        ParamId(self.p.params.len() - 1)
    }

    fn input_of(&self, id: NodeId, i: usize) -> TensorId {
        let src = self.g.node(id).inputs[i];
        self.tensor_of[src.0]
            .unwrap_or_else(|| unreachable!("inputs are lowered before their consumers"))
    }

    fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        self.g
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.contains(&id))
            .map(|(i, _)| NodeId(i))
            .collect()
    }

    /// The activation node fused into `id`'s store, if `id`'s only consumer
    /// is an activation and `id` is neither the output nor the loss input.
    fn fused_activation(&self, id: NodeId) -> Option<NodeId> {
        let special =
            |n: NodeId| n == self.g.output || self.g.loss.as_ref().is_some_and(|l| l.input == n);
        match self.consumers(id).as_slice() {
            [only] if act_of(&self.g.node(*only).op).is_some() && !special(id) => Some(*only),
            _ => None,
        }
    }

    fn push(&mut self, node: NodeId, kind: StepKind) {
        let infer = match &kind {
            StepKind::Dropout { x, y, .. } => StepKind::Copy { x: *x, y: *y },
            StepKind::MaxPool { x, y, win, .. } => {
                StepKind::MaxPoolInfer { x: *x, y: *y, win: *win }
            }
            StepKind::BatchNormTrain {
                x, y, act, gamma, beta, mean, var, c, inner, eps, ..
            } => StepKind::BatchNormInfer {
                x: *x,
                y: *y,
                act: *act,
                gamma: *gamma,
                beta: *beta,
                mean: *mean,
                var: *var,
                c: *c,
                inner: *inner,
                eps: *eps,
            },
            other => other.clone(),
        };
        self.p.infer_forward.push(Step { node, kind: infer });
        self.p.train_forward.push(Step { node, kind });
    }

    fn forward(&mut self) {
        let g = self.g;
        let mut fused: Vec<bool> = vec![false; g.nodes.len()];
        for (i, node) in g.nodes.iter().enumerate() {
            let id = NodeId(i);
            if fused[i] {
                continue;
            }
            let x_shape: Vec<usize> =
                node.inputs.first().map(|&s| g.node(s).shape.0.clone()).unwrap_or_default();
            // Conv, dense, batch norm and a binary add (a residual join)
            // absorb a following activation: their step writes the
            // activation's tensor, named after the activation node. An n-ary
            // add ends in accumulations, after which the activation would
            // have to come, so it does not.
            let absorbs = match node.op {
                Op::Conv2d(_) | Op::Dense { .. } | Op::BatchNorm { .. } => true,
                Op::Add => node.inputs.len() == 2,
                _ => false,
            };
            let fuse = absorbs.then(|| self.fused_activation(id)).flatten();
            let (out_node, act) = match fuse {
                Some(a) => {
                    fused[a.0] = true;
                    (a, act_of(&g.node(a).op).unwrap_or(Act::Identity))
                }
                None => (id, Act::Identity),
            };
            if matches!(node.op, Op::Flatten) {
                self.tensor_of[i] = Some(self.input_of(id, 0));
                continue;
            }
            // A fused layer's tensor keeps the layer's name: `conv1`, not `relu1`.
            let y = self.tensor(node.name.clone(), &g.node(out_node).shape.0);
            self.tensor_of[i] = Some(y);
            self.tensor_of[out_node.0] = Some(y);
            let name = node.name.clone();
            let kind = match &node.op {
                Op::Input => {
                    self.p.input = y;
                    continue;
                }
                Op::Conv2d(c) => {
                    let win = window(&x_shape, c.kernel, c.stride, c.pad, c.dilation);
                    let fan_in = x_shape[0] / c.groups * c.kernel[0] * c.kernel[1];
                    let w = self.param(
                        &name,
                        "weight",
                        vec![c.out_channels, x_shape[0] / c.groups, c.kernel[0], c.kernel[1]],
                        true,
                        Init::UniformFanIn { fan_in },
                    );
                    let b = c.bias.then(|| {
                        self.param(
                            &name,
                            "bias",
                            vec![c.out_channels],
                            true,
                            Init::UniformFanIn { fan_in },
                        )
                    });
                    StepKind::Conv {
                        x: self.input_of(id, 0),
                        y,
                        w,
                        b,
                        act,
                        win,
                        o: c.out_channels,
                        groups: c.groups,
                    }
                }
                Op::Dense { units, bias } => {
                    let input = x_shape[0];
                    let w = self.param(
                        &name,
                        "weight",
                        vec![*units, input],
                        true,
                        Init::UniformFanIn { fan_in: input },
                    );
                    let b = bias.then(|| {
                        self.param(
                            &name,
                            "bias",
                            vec![*units],
                            true,
                            Init::UniformFanIn { fan_in: input },
                        )
                    });
                    StepKind::Dense { x: self.input_of(id, 0), y, w, b, act, input, output: *units }
                }
                Op::MaxPool(p) => {
                    self.p.argmax_slots.push(node.shape.elements());
                    let argmax = self.p.argmax_slots.len() - 1;
                    StepKind::MaxPool {
                        x: self.input_of(id, 0),
                        y,
                        argmax,
                        win: pool_window(&x_shape, p),
                    }
                }
                Op::AvgPool(p) => {
                    StepKind::AvgPool { x: self.input_of(id, 0), y, win: pool_window(&x_shape, p) }
                }
                Op::GlobalAvgPool => StepKind::GlobalAvgPool {
                    x: self.input_of(id, 0),
                    y,
                    c: x_shape[0],
                    hw: x_shape[1] * x_shape[2],
                },
                Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh => StepKind::Activation {
                    act: act_of(&node.op).unwrap_or(Act::Identity),
                    x: self.input_of(id, 0),
                    y,
                },
                Op::Softmax => {
                    let (c, inner) = channels_inner(&x_shape);
                    StepKind::Softmax { x: self.input_of(id, 0), y, c, inner }
                }
                Op::Dropout { p } => {
                    self.dropout_layers += 1;
                    StepKind::Dropout {
                        x: self.input_of(id, 0),
                        y,
                        p: *p,
                        layer: self.dropout_layers,
                    }
                }
                Op::Lrn { size, alpha, beta, k } => {
                    let (c, inner) = channels_inner(&x_shape);
                    let scale = self.tensor(format!("{name}.scale"), &x_shape);
                    StepKind::Lrn {
                        x: self.input_of(id, 0),
                        y,
                        scale,
                        c,
                        inner,
                        size: *size,
                        alpha: *alpha,
                        beta: *beta,
                        k: *k,
                    }
                }
                Op::BatchNorm { eps, momentum } => {
                    let (c, inner) = channels_inner(&x_shape);
                    let gamma = self.param(&name, "weight", vec![c], true, Init::Ones);
                    let beta = self.param(&name, "bias", vec![c], true, Init::Zeros);
                    let mean = self.param(&name, "running_mean", vec![c], false, Init::Zeros);
                    let var = self.param(&name, "running_var", vec![c], false, Init::Ones);
                    self.p.stat_slots.push(c);
                    let slot = self.p.stat_slots.len() - 1;
                    StepKind::BatchNormTrain {
                        x: self.input_of(id, 0),
                        y,
                        act,
                        gamma,
                        beta,
                        mean,
                        var,
                        slot,
                        c,
                        inner,
                        eps: *eps,
                        momentum: *momentum,
                    }
                }
                Op::Add => {
                    // An n-ary add is a binary add and then accumulations.
                    let (a, b) = (self.input_of(id, 0), self.input_of(id, 1));
                    self.push(id, StepKind::Add { a, b, y, act });
                    for k in 2..node.inputs.len() {
                        let x = self.input_of(id, k);
                        self.push(id, StepKind::AddAssign { acc: y, x });
                    }
                    continue;
                }
                Op::Concat => {
                    let inner = channels_inner(&node.shape.0).1;
                    let parts = (0..node.inputs.len())
                        .map(|k| (self.input_of(id, k), g.node(node.inputs[k]).shape.0[0]))
                        .collect();
                    StepKind::Concat { parts, y, inner }
                }
                Op::Flatten => unreachable!("handled above"),
            };
            self.push(id, kind);
        }
        let output = self.tensor_of[g.output.0]
            .unwrap_or_else(|| unreachable!("the output node is lowered"));
        self.p.output = output;
        self.p.train_output = output;
        if let Some(loss) = &g.loss {
            let input = self.tensor_of[loss.input.0]
                .unwrap_or_else(|| unreachable!("the loss input is lowered"));
            let shape = self.p.tensor(input).shape.clone();
            let grad = self.tensor(format!("d.{}", self.p.tensor(input).name), &shape);
            self.p.loss = Some(LossStep { kind: loss.kind, input, grad, node: loss.input });
        }
    }
}
