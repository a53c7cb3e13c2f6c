//! `concat(a, b, ...)`: concatenation along the channel axis; every other
//! axis must agree.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::export::onnx::{int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::Arg;

pub const DEF: OpDef =
    OpDef { name: "concat", args: &[], arity: Arity::Many, build: |_| Op::new(Concat) };

#[derive(Debug)]
pub struct Concat;

impl OpKind for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let rest_matches =
            inputs.iter().all(|s| s.rank() == x.rank() && s.dims().get(1..) == x.dims().get(1..));
        if rest_matches && x.rank() > 0 {
            let mut dims = x.dims().to_vec();
            dims[0] = inputs.iter().map(|s| s.dims()[0]).sum();
            Ok(Shape(dims))
        } else {
            let shapes: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
            Err(OpError::new(
                format!("shape mismatch: cannot concat {}", shapes.join(" and ")),
                "all but the channel axis must agree",
            ))
        }
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let inputs: Vec<String> = (0..cx.inputs()).map(|i| cx.x(i)).collect();
        cx.output("Concat", inputs, vec![int("axis", 1)]);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let inner = channels_inner(cx.node.shape.dims()).1;
        let parts = (0..cx.rec.xs.len())
            .map(|k| (cx.rec.xs[k], cx.x_shape(k).dims()[0], cx.x_shape(k).elements()))
            .collect();
        let args = vec![Arg::Batch, Arg::Usize(inner), Arg::Parts { parts, write: false }, cx.y()];
        cx.both("concat_forward", args);
    }

    /// The split kernel writes every part; a part that needs no gradient (a
    /// network input) gets a scratch buffer.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let inner = channels_inner(cx.g.node(cx.node).shape.dims()).1;
        let mut parts = Vec::new();
        let mut targets = Vec::new();
        for k in 0..cx.rec.xs.len() {
            let (c, len) = (cx.x_shape(k).dims()[0], cx.x_len(k));
            if cx.needs_grad(k) {
                let t = cx.target(k);
                parts.push((t.write, c, len));
                targets.push((t, len));
            } else {
                parts.push((cx.scratch(k), c, len));
            }
        }
        let args = vec![Arg::Batch, Arg::Usize(inner), cx.dy(), Arg::Parts { parts, write: true }];
        cx.emit("concat_backward", args);
        for (t, len) in targets {
            cx.finish(t, len);
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (n, total) = (cx.n, y.len() / cx.n.max(1));
        let mut at = 0;
        for t in &cx.xs {
            let part = t.len() / n.max(1);
            for s in 0..n {
                y[s * total + at..s * total + at + part]
                    .copy_from_slice(&t[s * part..(s + 1) * part]);
            }
            at += part;
        }
        Ok(())
    }
}
