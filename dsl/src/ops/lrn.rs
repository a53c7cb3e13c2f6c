//! `lrn(size, alpha, beta, k)`: cross-channel local response normalisation,
//! PyTorch's `LocalResponseNorm`: `b_c = a_c / (k + alpha/size · Σ a²)^beta`
//! over `size` neighbouring channels. The training pass keeps the
//! denominators (`scale`) for its backward.

use super::{expect_channels, first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::{float, int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    pos("size", Kind::Size, Lit::Required),
    named("alpha", Kind::Float, Lit::Float(1e-4)),
    named("beta", Kind::Float, Lit::Float(0.75)),
    named("k", Kind::Float, Lit::Float(1.0)),
];

pub const DEF: OpDef = OpDef {
    name: "lrn",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(Lrn {
            size: a.int("size").unwrap_or_default(),
            alpha: a.float("alpha").unwrap_or_default(),
            beta: a.float("beta").unwrap_or_default(),
            k: a.float("k").unwrap_or_default(),
        })
    },
};

#[derive(Debug)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl Lrn {
    fn geometry(&self, x: &Shape) -> Arg {
        let (c, inner) = channels_inner(x.dims());
        let (size, alpha, beta, k) = (self.size, self.alpha, self.beta, self.k);
        Arg::Shape(Geometry::Lrn { c, inner, size, alpha, beta, k })
    }
}

impl OpKind for Lrn {
    fn name(&self) -> &'static str {
        "lrn"
    }

    fn detail(&self) -> String {
        format!("{} a={} b={} k={}", self.size, self.alpha, self.beta, self.k)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        expect_channels("lrn", &first(inputs))
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(2 * self.size as u64 + 2)
    }

    /// ONNX's window of an even size is one channel later than PyTorch's.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        if self.size.is_multiple_of(2) {
            return Err(OpError::new(
                format!(
                    "ONNX's `LRN` of an even size ({}) sums one channel later than PyTorch's",
                    self.size
                ),
                "even size",
            )
            .at("size")
            .help("use an odd `size`, whose window both centre alike"));
        }
        let attrs = vec![
            int("size", self.size as i64),
            float("alpha", self.alpha),
            float("beta", self.beta),
            float("bias", self.k),
        ];
        let x = cx.x(0);
        cx.output("LRN", vec![x], attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let x_shape = cx.x_shape(0).clone();
        let scale = cx.extra_tensor("scale", x_shape.dims());
        let args =
            vec![self.geometry(&x_shape), cx.x(0), cx.y(), Arg::Out(scale, x_shape.elements())];
        cx.both("lrn_forward", args);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let scale = Arg::In(cx.rec.extra[0], cx.x_len(0));
        let (shape, x, y, dy) = (self.geometry(cx.x_shape(0)), cx.x(0), cx.y(), cx.dy());
        cx.grad_into(0, "lrn_backward", |dx| vec![shape, x, y, scale, dy, dx]);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let x = cx.xs[0];
        for s in 0..cx.n {
            for ch in 0..c {
                let lo = ch.saturating_sub(self.size / 2);
                let hi = (ch + (self.size - 1) / 2).min(c - 1);
                for p in 0..inner {
                    let sq: f64 = (lo..=hi).map(|q| x[(s * c + q) * inner + p].powi(2)).sum();
                    let at = (s * c + ch) * inner + p;
                    y[at] = x[at] / (self.k + self.alpha / self.size as f64 * sq).powf(self.beta);
                }
            }
        }
        Ok(())
    }
}
