//! `softmax` and `log_softmax`: over the channel axis (axis 0 of a sample),
//! as PyTorch's `softmax(dim=1)` and `log_softmax(dim=1)` on a batch. Both
//! kernels shift by the maximum so that no exponential overflows, and both
//! backwards read what they need from the output.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::export::onnx::{int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::Arg;

pub const DEF: OpDef = OpDef {
    name: "softmax",
    args: &[],
    arity: Arity::One,
    build: |_| Op::new(Softmax { log: false }),
};
pub const LOG_SOFTMAX: OpDef = OpDef {
    name: "log_softmax",
    args: &[],
    arity: Arity::One,
    build: |_| Op::new(Softmax { log: true }),
};

/// The softmax, or with `log` its logarithm.
#[derive(Debug)]
pub struct Softmax {
    log: bool,
}

impl Softmax {
    /// The runtime kernels, forward and backward.
    fn kernels(&self) -> (&'static str, &'static str) {
        if self.log {
            ("log_softmax_forward", "log_softmax_backward")
        } else {
            ("softmax_forward", "softmax_backward")
        }
    }
}

impl OpKind for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    /// A subtraction, an exponential and a division or an add per element
    /// (the logarithm is one per fibre).
    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(3)
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let op = if self.log { "LogSoftmax" } else { "Softmax" };
        let x = cx.x(0);
        cx.output(op, vec![x], vec![int("axis", 1)]);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let args = vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), cx.x(0), cx.y()];
        cx.both(self.kernels().0, args);
    }

    /// Softmax: `dx = y·(dy − Σ y·dy)`; log-softmax: `dx = dy − e^y·Σ dy`.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (c, inner) = channels_inner(cx.x_shape(0).dims());
        let (y, dy) = (cx.y(), cx.dy());
        cx.grad_into(0, self.kernels().1, |dx| {
            vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), y, dy, dx]
        });
    }

    /// `e^(x_c − m) / Σ_k e^(x_k − m)`, or `x_c − m − ln Σ_k e^(x_k − m)`,
    /// with `m` the maximum.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let x = cx.xs[0];
        for s in 0..cx.n {
            for p in 0..inner {
                let at = |k: usize| (s * c + k) * inner + p;
                let max = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..c).map(|k| (x[at(k)] - max).exp()).sum();
                for k in 0..c {
                    y[at(k)] = if self.log {
                        x[at(k)] - max - sum.ln()
                    } else {
                        (x[at(k)] - max).exp() / sum
                    };
                }
            }
        }
        Ok(())
    }
}
