//! `dense(units, bias, in)`: a fully connected layer, PyTorch's
//! `nn.Linear`, weight `[out, in]`. `in:` states the expected input
//! features, checked rather than inferred.

use super::{first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::export::onnx::{int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::{Precision, Shape};
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    pos("units", Kind::Size, Lit::Required),
    named("bias", Kind::Bool, Lit::Bool(true)),
    named("in", Kind::Size, Lit::Absent),
];

pub const DEF: OpDef = OpDef { name: "dense", args: ARGS, arity: Arity::One, build };

fn build(a: &Bound) -> Op {
    Op::new(Dense {
        units: a.int("units").unwrap_or_default(),
        bias: a.bool("bias").unwrap_or_default(),
        expected_in: a.int("in"),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dense {
    pub units: usize,
    pub bias: bool,
    /// The input features `in:` states, if given.
    pub expected_in: Option<usize>,
}

impl Dense {
    fn geometry(&self, x: &Shape) -> Arg {
        Arg::Shape(Geometry::Dense { input: x.elements(), output: self.units })
    }
}

impl OpKind for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn stem(&self) -> &'static str {
        "fc"
    }

    fn detail(&self) -> String {
        format!("{}{}", self.units, if self.bias { "" } else { " nobias" })
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        if x.rank() != 1 {
            return Err(OpError::new(
                format!("`dense` expects a flat input [F], found {x}"),
                format!("input is {x}"),
            )
            .help("insert `-> flatten` before `dense`"));
        }
        match self.expected_in {
            Some(expected) if expected != x.dims()[0] => Err(OpError::new(
                format!(
                    "shape mismatch: `dense` expects {expected} input features, found {}",
                    x.dims()[0]
                ),
                format!("expects [{expected}]"),
            )
            .help("drop `in:` to let it be inferred")),
            _ => Ok(Shape(vec![self.units])),
        }
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        let input = first(inputs).dims().first().copied().unwrap_or(0);
        let init = Init::UniformFanIn { fan_in: input };
        let mut p = vec![ParamSpec::learnable("weight", vec![self.units, input], init)];
        if self.bias {
            p.push(ParamSpec::learnable("bias", vec![self.units], init));
        }
        p
    }

    fn macs(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        let input = first(inputs).dims().first().copied().unwrap_or(0);
        (out.elements() as u64).saturating_mul(input as u64)
    }

    fn flops(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        super::gemm_flops(self.macs(inputs, out), self.bias, out)
    }

    fn absorbs_activation(&self, _: usize) -> bool {
        true
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let mut inputs = vec![cx.x(0), cx.param("weight")];
        if self.bias {
            inputs.push(cx.param("bias"));
        }
        cx.output("Gemm", inputs, vec![int("transB", 1)]);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let bias = self.bias.then(|| Arg::Param(cx.param(1)));
        let args = vec![shape, cx.x(0), Arg::Param(cx.param(0)), Arg::opt(bias), cx.act(), cx.y()];
        let bf16 = cx.g.precision == Precision::Bf16;
        cx.both(if bf16 { "dense_forward_bf16" } else { "dense_forward" }, args);
    }

    /// Backward-data first: it reads the weights, which an SGD step fused
    /// into the weight gradient then changes.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (shape, dy) = (self.geometry(cx.x_shape(0)), cx.dy());
        let w = cx.rec.params[0];
        let data_shape = shape.clone();
        let bf16 = cx.g.precision == Precision::Bf16;
        let kernel = if bf16 { "dense_backward_data_bf16" } else { "dense_backward_data" };
        cx.grad_into(0, kernel, |dx| vec![data_shape, dy, Arg::Param(w), Arg::ReluMask(None), dx]);
        if cx.learns() {
            let b = self.bias.then(|| Arg::Grad(cx.rec.params[1]));
            let args = vec![shape, cx.x(0), cx.dy(), Arg::Grad(w), Arg::opt(b)];
            // In f32 in either precision: its sum runs over the batch, a
            // short k that bf16 tiles would pad, and an SGD step can be
            // fused into it.
            cx.emit("dense_backward_weights", args);
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (input, x) = (cx.x_shapes[0][0], cx.xs[0]);
        let wt = cx.param("weight")?;
        let b = if self.bias { Some(cx.param("bias")?) } else { None };
        for s in 0..cx.n {
            for u in 0..self.units {
                let dot: f64 = (0..input).map(|i| wt[u * input + i] * x[s * input + i]).sum();
                y[s * self.units + u] = dot + b.map_or(0.0, |b| b[u]);
            }
        }
        Ok(())
    }
}
