//! `input x: [...]`: a network input. It has no inputs of its own; the
//! generated methods take one argument per input, in declaration order.

use super::{first, OpError, OpKind};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;

#[derive(Debug)]
pub struct Input;

impl OpKind for Input {
    fn name(&self) -> &'static str {
        "input"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    fn is_input(&self) -> bool {
        true
    }

    /// The exporter declares inputs as the graph's; there is no node.
    fn onnx(&self, _: &mut OnnxCx<'_>) -> Result<(), OpError> {
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        cx.declare_input();
    }

    /// An input's gradient is not computed.
    fn vjp(&self, _: &mut VjpCx<'_>) {}

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let x = cx.feed()?;
        if x.len() != y.len() {
            return Err(InterpError(format!(
                "input `{}` has {} values, expected {}",
                cx.name,
                x.len(),
                y.len()
            )));
        }
        y.copy_from_slice(x);
        Ok(())
    }
}
