//! `add(a, b, ...)` and `a + b`: the elementwise sum of tensors of one
//! shape, as residual joins use it. A binary add applies a following
//! activation in its store; more operands are accumulated after it.

use super::{same_shapes, Arity, Op, OpDef, OpError, OpKind};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::Arg;

pub const DEF: OpDef = OpDef { name: "add", args: &[], arity: Arity::Many, build: |_| Op::add() };

#[derive(Debug)]
pub struct Add;

impl OpKind for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        same_shapes(inputs, "add", "+").map_err(|e| {
            e.help(
                "project the shortcut, e.g. `conv2d(c, kernel: 1, stride: s)`, so the shapes agree",
            )
        })
    }

    fn flops(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(inputs.len().saturating_sub(1) as u64)
    }

    /// An n-ary add ends in accumulations, after which the activation would
    /// have to come, so only a binary one absorbs it.
    fn absorbs_activation(&self, inputs: usize) -> bool {
        inputs == 2
    }

    /// `Add` of two, `Sum` of more.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let inputs: Vec<String> = (0..cx.inputs()).map(|i| cx.x(i)).collect();
        let op = if inputs.len() == 2 { "Add" } else { "Sum" };
        cx.output(op, inputs, Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let args = vec![cx.x(0), cx.x(1), cx.act(), cx.y()];
        cx.both("add", args);
        let y = Arg::InOut(cx.rec.y, cx.node.shape.elements());
        for k in 2..cx.node.inputs.len() {
            let args = vec![y.clone(), cx.x(k)];
            cx.both("add_assign", args);
        }
    }

    /// The gradient flows unchanged to every operand: the later ones get a
    /// copy (or an accumulation), then the first takes the buffer.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        for k in 1..cx.rec.xs.len() {
            cx.copy_through(k);
        }
        cx.pass_through(0);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        for (i, v) in y.iter_mut().enumerate() {
            *v = cx.xs.iter().map(|t| t[i]).sum();
        }
        Ok(())
    }
}
