//! Reverse-mode differentiation of the training forward pass: the forward
//! steps are visited backwards, and each contributes its vector-Jacobian
//! product (one rule per op) to the gradients of its inputs.
//!
//! Gradient buffers are tensors like any other. A tensor used by several
//! steps receives its first contribution directly and later ones through a
//! temporary and an `AddAssign`. An activation's backward works in place, so
//! its input's gradient reuses its output's gradient buffer.

use super::{Program, Step, StepKind, TensorId, TensorInfo};
use std::collections::HashMap;

pub fn differentiate(mut p: Program) -> Program {
    let Some(loss) = p.loss.clone() else { return p };
    let mut ad = Autodiff {
        grad: HashMap::new(),
        steps: Vec::new(),
        tensors: std::mem::take(&mut p.tensors),
        input: p.input,
    };
    ad.grad.insert(loss.input, loss.grad);
    for step in p.train_forward.iter().rev() {
        ad.step(step);
    }
    p.tensors = ad.tensors;
    p.backward = ad.steps;
    p
}

struct Autodiff {
    /// The gradient buffer of each tensor that has one so far.
    grad: HashMap<TensorId, TensorId>,
    steps: Vec<Step>,
    tensors: Vec<TensorInfo>,
    /// The network input needs no gradient.
    input: TensorId,
}

/// Where a step should write a gradient contribution, and whether that
/// contribution must then be added into an existing gradient.
struct Target {
    write: TensorId,
    accumulate_into: Option<TensorId>,
}

impl Autodiff {
    fn new_tensor(&mut self, name: String, like: TensorId) -> TensorId {
        let shape = self.tensors[like.0].shape.clone();
        self.tensors.push(TensorInfo { name, shape });
        TensorId(self.tensors.len() - 1)
    }

    /// The buffer for a contribution to the gradient of `x`.
    fn target(&mut self, x: TensorId) -> Target {
        match self.grad.get(&x) {
            None => {
                let name = format!("d.{}", self.tensors[x.0].name);
                let g = self.new_tensor(name, x);
                self.grad.insert(x, g);
                Target { write: g, accumulate_into: None }
            }
            Some(&g) => {
                let name = format!("d.{}.part", self.tensors[x.0].name);
                let t = self.new_tensor(name, x);
                Target { write: t, accumulate_into: Some(g) }
            }
        }
    }

    fn emit(&mut self, node: crate::ir::NodeId, kind: StepKind) {
        self.steps.push(Step { node, kind });
    }

    fn finish(&mut self, node: crate::ir::NodeId, t: &Target) {
        if let Some(acc) = t.accumulate_into {
            self.emit(node, StepKind::AddAssign { acc, x: t.write });
        }
    }

    fn needs_grad(&self, x: TensorId) -> bool {
        x != self.input
    }

    /// Hands the buffer `g` (no longer needed as its current owner's
    /// gradient) to `x` as its gradient, or adds it into `x`'s gradient.
    fn pass_through(&mut self, node: crate::ir::NodeId, x: TensorId, g: TensorId) {
        if !self.needs_grad(x) {
            return;
        }
        match self.grad.get(&x) {
            None => {
                self.grad.insert(x, g);
            }
            Some(&acc) => self.emit(node, StepKind::AddAssign { acc, x: g }),
        }
    }

    fn step(&mut self, step: &Step) {
        use StepKind::*;
        let node = step.node;
        let y = match step.kind.writes().first() {
            Some(&y) => y,
            None => return,
        };
        // A step whose output does not reach the loss contributes nothing.
        let Some(&gy) = self.grad.get(&y) else { return };
        if let Some(act) = step.kind.fused_activation() {
            self.emit(node, ActivationBackward { act, y, d: gy });
        }
        match &step.kind {
            Conv { x, w, b, win, o, groups, .. } => {
                self.emit(
                    node,
                    ConvBackwardWeights {
                        x: *x,
                        dy: gy,
                        dw: *w,
                        db: *b,
                        win: *win,
                        o: *o,
                        groups: *groups,
                    },
                );
                if self.needs_grad(*x) {
                    let t = self.target(*x);
                    self.emit(
                        node,
                        ConvBackwardData {
                            dy: gy,
                            w: *w,
                            mask: None,
                            dx: t.write,
                            win: *win,
                            o: *o,
                            groups: *groups,
                        },
                    );
                    self.finish(node, &t);
                }
            }
            Dense { x, w, b, input, output, .. } => {
                // Backward-data first: it reads the weights, which an SGD
                // step fused into the weight gradient then changes.
                if self.needs_grad(*x) {
                    let t = self.target(*x);
                    self.emit(
                        node,
                        DenseBackwardData {
                            dy: gy,
                            w: *w,
                            mask: None,
                            dx: t.write,
                            input: *input,
                            output: *output,
                        },
                    );
                    self.finish(node, &t);
                }
                self.emit(
                    node,
                    DenseBackwardWeights {
                        x: *x,
                        dy: gy,
                        dw: *w,
                        db: *b,
                        input: *input,
                        output: *output,
                    },
                );
            }
            MaxPool { x, argmax, win, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                self.emit(
                    node,
                    MaxPoolBackward { dy: gy, argmax: *argmax, dx: t.write, win: *win, act: None },
                );
                self.finish(node, &t);
            }
            AvgPool { x, win, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                self.emit(node, AvgPoolBackward { dy: gy, dx: t.write, win: *win });
                self.finish(node, &t);
            }
            GlobalAvgPool { x, c, hw, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                self.emit(node, GlobalAvgPoolBackward { dy: gy, dx: t.write, c: *c, hw: *hw });
                self.finish(node, &t);
            }
            Activation { act, x, .. } if self.needs_grad(*x) => {
                self.emit(node, ActivationBackward { act: *act, y, d: gy });
                self.pass_through(node, *x, gy);
            }
            Softmax { x, c, inner, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                self.emit(node, SoftmaxBackward { y, dy: gy, dx: t.write, c: *c, inner: *inner });
                self.finish(node, &t);
            }
            Dropout { x, p, layer, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                self.emit(node, DropoutBackward { dy: gy, dx: t.write, p: *p, layer: *layer });
                self.finish(node, &t);
            }
            Lrn { x, scale, c, inner, size, alpha, beta, k, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                let (c, inner, size, alpha, beta, k) = (*c, *inner, *size, *alpha, *beta, *k);
                self.emit(
                    node,
                    LrnBackward {
                        x: *x,
                        y,
                        scale: *scale,
                        dy: gy,
                        dx: t.write,
                        c,
                        inner,
                        size,
                        alpha,
                        beta,
                        k,
                    },
                );
                self.finish(node, &t);
            }
            BatchNormTrain { x, gamma, beta, slot, c, inner, .. } => {
                // The kernel always computes dx; without a consumer it goes
                // to a scratch tensor that the memory plan reuses at once.
                let t = if self.needs_grad(*x) {
                    self.target(*x)
                } else {
                    let name = format!("d.{}.unused", self.tensors[x.0].name);
                    Target { write: self.new_tensor(name, *x), accumulate_into: None }
                };
                self.emit(
                    node,
                    BatchNormBackward {
                        x: *x,
                        gamma: *gamma,
                        slot: *slot,
                        dy: gy,
                        dx: t.write,
                        dgamma: *gamma,
                        dbeta: *beta,
                        c: *c,
                        inner: *inner,
                    },
                );
                self.finish(node, &t);
            }
            Add { a, b, .. } => {
                // The gradient flows unchanged to both operands: the second
                // gets a copy (or an accumulation), the first the buffer.
                if self.needs_grad(*b) {
                    let t = self.target(*b);
                    match t.accumulate_into {
                        Some(acc) => self.emit(node, AddAssign { acc, x: gy }),
                        None => self.emit(node, Copy { x: gy, y: t.write }),
                    }
                }
                self.pass_through(node, *a, gy);
            }
            // `acc += x` in the forward pass (n-ary add): x gets a copy of
            // the gradient; acc keeps it.
            AddAssign { x, .. } if self.needs_grad(*x) => {
                let t = self.target(*x);
                match t.accumulate_into {
                    Some(acc) => self.emit(node, AddAssign { acc, x: gy }),
                    None => self.emit(node, Copy { x: gy, y: t.write }),
                }
            }
            Concat { parts, inner, .. } => {
                // The split kernel writes every part; a part that needs no
                // gradient (the network input) gets a scratch buffer.
                let mut outs = Vec::with_capacity(parts.len());
                let mut targets = Vec::new();
                for &(t, c) in parts {
                    if self.needs_grad(t) {
                        let target = self.target(t);
                        outs.push((target.write, c));
                        targets.push(target);
                    } else {
                        let name = format!("d.{}.unused", self.tensors[t.0].name);
                        outs.push((self.new_tensor(name, t), c));
                    }
                }
                self.emit(node, ConcatBackward { dy: gy, parts: outs, inner: *inner });
                for target in &targets {
                    self.finish(node, target);
                }
            }
            _ => {}
        }
    }
}
