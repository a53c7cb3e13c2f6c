//! `flatten`: `[C, H, W] -> [C·H·W]`. The output is the input's memory,
//! so it lowers to no step at all.

use super::{first, Arity, OpDef, OpError, OpKind};
use crate::export::onnx::{int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;

pub const DEF: OpDef =
    OpDef { name: "flatten", args: &[], arity: Arity::One, build: |_| super::Op::new(Flatten) };

#[derive(Debug)]
pub struct Flatten;

impl OpKind for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(Shape(vec![first(inputs).elements()]))
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    fn is_alias(&self) -> bool {
        true
    }

    /// An alias has no steps: the driver maps it to its input's tensor.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let x = cx.x(0);
        cx.output("Flatten", vec![x], vec![int("axis", 1)]);
        Ok(())
    }

    fn lower(&self, _: &mut LowerCx<'_>) {}

    /// Nor a gradient of its own: its input's tensor is its output's.
    fn vjp(&self, _: &mut VjpCx<'_>) {}

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        y.copy_from_slice(cx.xs[0]);
        Ok(())
    }
}
