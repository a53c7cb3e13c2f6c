//! `log_softmax`: over the channel axis (axis 0 of a sample), as
//! PyTorch's `log_softmax(dim=1)` on a batch, by a kernel that shifts by
//! the maximum so that no exponential overflows.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::Arg;

pub const DEF: OpDef =
    OpDef { name: "log_softmax", args: &[], arity: Arity::One, build: |_| Op::new(LogSoftmax) };

#[derive(Debug)]
pub struct LogSoftmax;

impl OpKind for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    /// A subtraction, an exponential and an add per element (the
    /// logarithm is one per fibre).
    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(3)
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let args = vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), cx.x(0), cx.y()];
        cx.both("log_softmax_forward", args);
    }

    /// `dx = dy − softmax(x)·Σ dy`, the softmax read back from the output
    /// as `e^y`.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let (y, dy) = (cx.y(), cx.dy());
        cx.grad_into(0, "log_softmax_backward", |dx| {
            vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), y, dy, dx]
        });
    }

    /// `x_c − ln Σ_k e^(x_k)`, the sum shifted by the maximum.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let x = cx.xs[0];
        for s in 0..cx.n {
            for p in 0..inner {
                let at = |k: usize| (s * c + k) * inner + p;
                let max = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let log_sum = max + (0..c).map(|k| (x[at(k)] - max).exp()).sum::<f64>().ln();
                for k in 0..c {
                    y[at(k)] = x[at(k)] - log_sum;
                }
            }
        }
        Ok(())
    }
}
