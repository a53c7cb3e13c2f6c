//! `mul(a, b)`: the elementwise product of two tensors of one shape, as
//! squeeze-and-excitation blocks scale features by their gates.

use super::{same_shapes, Arity, Op, OpDef, OpError, OpKind};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::Arg;

pub const DEF: OpDef = OpDef { name: "mul", args: &[], arity: Arity::Two, build: |_| Op::new(Mul) };

#[derive(Debug)]
pub struct Mul;

impl OpKind for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        same_shapes(inputs, "multiply", "mul")
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        out.elements() as u64
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let args = vec![cx.x(0), cx.x(1), cx.y()];
        cx.both("mul", args);
    }

    /// `da = dy ⊙ b` and `db = dy ⊙ a`, in one pass over `dy`.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let len = cx.y_len();
        let targets: Vec<_> = (0..2).map(|i| cx.needs_grad(i).then(|| cx.target(i))).collect();
        if targets.iter().all(Option::is_none) {
            return;
        }
        let out = |t: &Option<crate::program::autodiff::Target>| {
            Arg::opt(t.map(|t| Arg::Out(t.write, len)))
        };
        let args = vec![cx.x(0), cx.x(1), cx.dy(), out(&targets[0]), out(&targets[1])];
        cx.emit("mul_backward", args);
        for t in targets.into_iter().flatten() {
            cx.finish(t, len);
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        for (i, v) in y.iter_mut().enumerate() {
            *v = cx.xs[0][i] * cx.xs[1][i];
        }
        Ok(())
    }
}
