//! `reshape([d1, d2, ...])`: the same values in a new per-sample shape, as
//! `x.reshape(n, d1, d2, ...)` in PyTorch. The batch is not written. One dim
//! may be `-1`, inferred from the others. Samples are contiguous, so the
//! output is always the input's memory: like `flatten`, it lowers to no
//! step at all.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{pos, ArgSpec, Kind, Lit};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::{Shape, MAX_ELEMENTS};
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;

const ARGS: &[ArgSpec] = &[pos("shape", Kind::Ints, Lit::Required)];

pub const DEF: OpDef = OpDef {
    name: "reshape",
    args: ARGS,
    arity: Arity::One,
    build: |a| Op::new(Reshape { shape: a.ints("shape").unwrap_or_default() }),
};

#[derive(Debug)]
pub struct Reshape {
    /// As written, `-1` included.
    pub shape: Vec<i64>,
}

impl Reshape {
    fn written(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }

    fn error(&self, message: String, x: &Shape) -> OpError {
        OpError::new(message, format!("input is {x}")).at("shape")
    }
}

impl OpKind for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn detail(&self) -> String {
        self.written()
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let elements = x.elements() as u128;
        if self.shape.is_empty() {
            return Err(self
                .error("`shape` of `reshape` is empty".into(), &x)
                .help("the per-sample shape has at least one dim; the batch is not written"));
        }
        if let Some(bad) = self.shape.iter().find(|&&d| d == 0 || d < -1) {
            return Err(self
                .error(format!("`shape` of `reshape` has the dim {bad}"), &x)
                .help("dims are positive, and one of them may be `-1` to infer it"));
        }
        let inferred = self.shape.iter().filter(|&&d| d == -1).count();
        if inferred > 1 {
            return Err(self.error("`shape` of `reshape` has more than one `-1`".into(), &x));
        }
        // The written dims are at most 2³¹ each, so their product is exact
        // in u128 until it passes the element limit.
        let mut known: u128 = 1;
        for &d in self.shape.iter().filter(|&&d| d > 0) {
            known = known.saturating_mul(d as u128).min(MAX_ELEMENTS as u128 + 1);
        }
        let fits = if inferred == 1 { elements.is_multiple_of(known) } else { elements == known };
        if !fits {
            let message =
                format!("cannot reshape {x} ({elements} values a sample) into {}", self.written());
            let help = format!("the dims must multiply to {elements}; the batch is not written");
            return Err(self.error(message, &x).help(help));
        }
        let dims = self
            .shape
            .iter()
            .map(|&d| if d == -1 { (elements / known) as usize } else { d as usize })
            .collect();
        Ok(Shape(dims))
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    fn is_alias(&self) -> bool {
        true
    }

    /// An alias has no steps: the driver maps it to its input's tensor.
    /// The target shape with the batch and any `-1` resolved.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let dims: Vec<i64> = std::iter::once(cx.batch())
            .chain(cx.y_shape().dims().iter().copied())
            .map(|d| d as i64)
            .collect();
        let shape = cx.ints_const(&dims);
        let x = cx.x(0);
        cx.output("Reshape", vec![x, shape], Vec::new());
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
