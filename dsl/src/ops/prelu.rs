//! `prelu(num_parameters: 1, init: 0.25)`: PyTorch's `nn.PReLU`, `x` where
//! `x > 0`, else `a·x`, with the slopes `a` learned: one for the whole
//! tensor (`num_parameters: 1`) or one per channel (`num_parameters: C`,
//! axis 0 of a sample, as PyTorch takes dim 1 of a batch). Its parameter
//! is `weight [num_parameters]`, PyTorch's name and layout.

use super::{Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::Arg;

const ARGS: &[ArgSpec] =
    &[pos("num_parameters", Kind::Size, Lit::Int(1)), named("init", Kind::Float, Lit::Float(0.25))];

pub const DEF: OpDef = OpDef {
    name: "prelu",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(Prelu {
            num_parameters: a.int("num_parameters").unwrap_or(1),
            init: a.float("init").unwrap_or(0.25),
        })
    },
};

#[derive(Debug)]
pub struct Prelu {
    pub num_parameters: usize,
    pub init: f64,
}

impl Prelu {
    /// The kernel's `[c, inner]` view of a sample: its channels and the
    /// rest, or one channel of everything when one slope serves them all.
    fn slope_groups(&self, x: &Shape) -> (usize, usize) {
        if self.num_parameters == 1 {
            (1, x.elements())
        } else {
            channels_inner(x.dims())
        }
    }
}

impl OpKind for Prelu {
    fn name(&self) -> &'static str {
        "prelu"
    }

    fn detail(&self) -> String {
        format!("{}", self.num_parameters)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let channels = x.dims().first().copied().unwrap_or(1);
        if self.num_parameters != 1 && self.num_parameters != channels {
            return Err(OpError::new(
                format!(
                    "`prelu` has {} slopes for an input of {channels} channels",
                    self.num_parameters
                ),
                format!("expects 1 or {channels}"),
            )
            .at("num_parameters")
            .help("PReLU has one slope for every channel, or one per channel"));
        }
        Ok(x)
    }

    fn params(&self, _: &[&Shape]) -> Vec<ParamSpec> {
        vec![ParamSpec::learnable("weight", vec![self.num_parameters], Init::Constant(self.init))]
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        out.elements() as u64
    }

    /// ONNX broadcasts the slopes from the right, so per-channel slopes of
    /// `[C, H, W]` become `[C, 1, 1]`, as PyTorch exports them.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let rank = cx.x_shape(0).rank();
        let mut slope = cx.param("weight");
        if self.num_parameters != 1 && rank > 1 {
            let axes: Vec<i64> = (1..rank as i64).collect();
            let axes = cx.ints_const(&axes);
            slope = cx.node("Unsqueeze", vec![slope, axes], Vec::new());
        }
        let x = cx.x(0);
        cx.output("PRelu", vec![x, slope], Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let (c, inner) = self.slope_groups(cx.x_shape(0));
        let weight = Arg::Param(cx.param(0));
        let args = vec![Arg::Batch, Arg::Usize(c), Arg::Usize(inner), weight, cx.x(0), cx.y()];
        cx.both("prelu_forward", args);
    }

    /// From the input: a slope may be negative, and then the output does
    /// not tell the sides apart. The slopes' gradient is always written;
    /// the input's only where it needs one.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (c, inner) = self.slope_groups(cx.x_shape(0));
        let weight = cx.rec.params[0];
        let len = cx.x_len(0);
        let target = cx.needs_grad(0).then(|| cx.target(0));
        let dx = Arg::opt(target.map(|t| Arg::Out(t.write, len)));
        let args = vec![
            Arg::Batch,
            Arg::Usize(c),
            Arg::Usize(inner),
            cx.x(0),
            Arg::Param(weight),
            cx.dy(),
            dx,
            Arg::Grad(weight),
        ];
        cx.emit("prelu_backward", args);
        if let Some(t) = target {
            cx.finish(t, len);
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = self.slope_groups(&Shape(cx.x_shapes[0].to_vec()));
        let weight = cx.param("weight")?;
        for (i, (o, &v)) in y.iter_mut().zip(cx.xs[0]).enumerate() {
            let a = weight[(i / inner.max(1)) % c];
            *o = if v > 0.0 { v } else { a * v };
        }
        Ok(())
    }
}
