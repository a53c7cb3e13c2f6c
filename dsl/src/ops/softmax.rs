//! `softmax`: over the channel axis (axis 0 of a sample), as PyTorch's
//! `softmax(dim=1)` on a batch.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::Arg;

pub const DEF: OpDef =
    OpDef { name: "softmax", args: &[], arity: Arity::One, build: |_| Op::new(Softmax) };

#[derive(Debug)]
pub struct Softmax;

impl OpKind for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(3)
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let args = vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), cx.x(0), cx.y()];
        cx.both("softmax_forward", args);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let (y, dy) = (cx.y(), cx.dy());
        cx.grad_into(0, "softmax_backward", |dx| {
            vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), y, dy, dx]
        });
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let x = cx.xs[0];
        for s in 0..cx.n {
            for p in 0..inner {
                let at = |k: usize| (s * c + k) * inner + p;
                let max = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..c).map(|k| (x[at(k)] - max).exp()).sum();
                for k in 0..c {
                    y[at(k)] = (x[at(k)] - max).exp() / sum;
                }
            }
        }
        Ok(())
    }
}
