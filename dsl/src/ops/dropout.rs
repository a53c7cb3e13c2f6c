//! `dropout(p)`: inverted dropout in training, the identity at inference.
//! Masks are regenerated from a counter-based RNG keyed on the seed, the
//! step and the layer, never stored.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{pos, ArgSpec, Kind, Lit};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::Arg;

const ARGS: &[ArgSpec] = &[pos("p", Kind::Fraction, Lit::Float(0.5))];

pub const DEF: OpDef = OpDef {
    name: "dropout",
    args: ARGS,
    arity: Arity::One,
    build: |a| Op::new(Dropout { p: a.float("p").unwrap_or_default() }),
};

#[derive(Debug)]
pub struct Dropout {
    pub p: f64,
}

impl OpKind for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn stem(&self) -> &'static str {
        "drop"
    }

    fn detail(&self) -> String {
        format!("p={}", self.p)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    /// `Dropout` without `training_mode` is the identity, as inference is.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let ratio = cx.scalar_const(self.p);
        let x = cx.x(0);
        cx.output("Dropout", vec![x, ratio], Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let layer = cx.mask_layer();
        let per_sample = Arg::Usize(cx.x_shape(0).elements());
        let (p, layer) = (Arg::F32(self.p), Arg::U16(layer));
        cx.train("dropout_forward", vec![p, Arg::Masks, layer, per_sample, cx.x(0), cx.y()]);
        cx.infer("copy", vec![cx.x(0), cx.y()]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (p, layer, dy) = (Arg::F32(self.p), Arg::U16(cx.rec.layer), cx.dy());
        let per_sample = Arg::Usize(cx.x_len(0));
        cx.grad_into(0, "dropout_backward", |dx| vec![p, Arg::Masks, layer, per_sample, dy, dx]);
    }

    fn draws_mask(&self) -> bool {
        true
    }

    /// Element `i` of the batch scaled by its mask's factor.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        for (i, (y, &x)) in y.iter_mut().zip(cx.xs[0]).enumerate() {
            *y = x * cx.mask_scale(i as u64, self.p);
        }
        Ok(())
    }
}
