//! Elementwise activations: `relu`, `leaky_relu(slope)`, `sigmoid`, `tanh`,
//! `gelu`, `silu`, `relu6`, `hardtanh(min_val, max_val)`, `hardsigmoid`,
//! `hardswish` and `elu(alpha)`. One table row each: its name, its
//! arguments, the runtime's `Activation` variant, whether its derivative
//! needs its input, its f64 definition and its cost. Layers that can (conv, dense, batch
//! norm, a binary add) apply an activation in their own store.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::export::onnx::{float, OnnxCx};
use crate::import::onnx::proto::Attribute;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Act, Arg};

/// One elementwise activation.
#[derive(Debug)]
pub struct Spec {
    name: &'static str,
    /// The stem of automatic layer names, which must not end in a digit
    /// (`relu6_1`, not `relu61`).
    stem: &'static str,
    /// The arguments the source may write (leaky ReLU's slope).
    args: &'static [ArgSpec],
    /// The runtime's `Activation` variant (of `Gated` when `gated`).
    variant: &'static str,
    /// `x·g(x)`, whose derivative needs `x`.
    gated: bool,
    /// `f(x, args)` in f64, the unused arguments 0.
    f: fn(f64, [f64; 2]) -> f64,
    /// Floating-point operations per element.
    flops: u64,
    /// Its form in the layer table, where the name does not say it all.
    detail: &'static str,
    /// Its ONNX nodes (opset 17), given its arguments.
    onnx: fn(&mut OnnxCx<'_>, [f64; 2]),
}

/// Non-negative: the backward reads the derivative from the output, which
/// only then tells the two sides apart.
const SLOPE: &[ArgSpec] = &[pos("slope", Kind::NonNegative, Lit::Float(0.01))];
const APPROXIMATE: &[ArgSpec] =
    &[named("approximate", Kind::Word(&["none", "tanh"]), Lit::Word("none"))];
/// PyTorch's `nn.Hardtanh(min_val=-1.0, max_val=1.0)`; `infer` checks
/// that `min_val < max_val`, as PyTorch asserts.
const BOUNDS: &[ArgSpec] =
    &[pos("min_val", Kind::Float, Lit::Float(-1.0)), pos("max_val", Kind::Float, Lit::Float(1.0))];
/// Positive: only then is the output positive exactly where the input
/// is, so that the backward can read the derivative from it.
const ALPHA: &[ArgSpec] = &[pos("alpha", Kind::Positive, Lit::Float(1.0))];

const fn def(spec: &'static Spec, build: fn(&Bound) -> Op) -> OpDef {
    OpDef { name: spec.name, args: spec.args, arity: Arity::One, build }
}

fn build(spec: &'static Spec, a: &Bound) -> Op {
    let mut args = [None; 2];
    for (slot, arg) in args.iter_mut().zip(spec.args) {
        *slot = a.float(arg.name);
    }
    Op::new(Activation { spec, args })
}

static RELU_SPEC: Spec = Spec {
    name: "relu",
    stem: "relu",
    args: &[],
    variant: "Relu",
    gated: false,
    f: |x, _| x.max(0.0),
    flops: 1,
    detail: "",
    onnx: |cx, _| unary(cx, "Relu", Vec::new()),
};
static LEAKY_RELU_SPEC: Spec = Spec {
    name: "leaky_relu",
    stem: "leaky_relu",
    args: SLOPE,
    variant: "LeakyRelu",
    gated: false,
    f: |x, [slope, _]| if x > 0.0 { x } else { slope * x },
    flops: 1,
    detail: "",
    onnx: |cx, [slope, _]| unary(cx, "LeakyRelu", vec![float("alpha", slope)]),
};
static SIGMOID_SPEC: Spec = Spec {
    name: "sigmoid",
    stem: "sigmoid",
    args: &[],
    variant: "Sigmoid",
    gated: false,
    f: |x, _| sigmoid(x),
    flops: 1,
    detail: "",
    onnx: |cx, _| unary(cx, "Sigmoid", Vec::new()),
};
static TANH_SPEC: Spec = Spec {
    name: "tanh",
    stem: "tanh",
    args: &[],
    variant: "Tanh",
    gated: false,
    f: |x, _| x.tanh(),
    flops: 1,
    detail: "",
    onnx: |cx, _| unary(cx, "Tanh", Vec::new()),
};
/// `x·Φ(x)`, PyTorch's exact (erf) form.
static GELU_SPEC: Spec = Spec {
    name: "gelu",
    stem: "gelu",
    args: APPROXIMATE,
    variant: "Gelu",
    gated: true,
    f: |x, _| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
    flops: 5,
    detail: "",
    onnx: |cx, _| gelu_erf(cx),
};
/// `x·Φ(x)` with Φ by PyTorch's tanh formula, `approximate: tanh`.
static GELU_TANH_SPEC: Spec = Spec {
    name: "gelu",
    stem: "gelu",
    args: APPROXIMATE,
    variant: "GeluTanh",
    gated: true,
    f: |x, _| {
        let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + inner.tanh())
    },
    flops: 9,
    detail: "approximate: tanh",
    onnx: |cx, _| gelu_tanh(cx),
};
/// `x·σ(x)`.
static SILU_SPEC: Spec = Spec {
    name: "silu",
    stem: "silu",
    args: &[],
    variant: "Silu",
    gated: true,
    f: |x, _| x * sigmoid(x),
    flops: 2,
    detail: "",
    onnx: |cx, _| silu(cx),
};
/// `min(max(x, 0), 6)`: the runtime's hardtanh on `[0, 6]`, as PyTorch's
/// `relu6` is.
static RELU6_SPEC: Spec = Spec {
    name: "relu6",
    stem: "relu6_",
    args: &[],
    variant: "HardTanh",
    gated: false,
    f: |x, _| clamp(x, 0.0, 6.0),
    flops: 2,
    detail: "",
    onnx: |cx, _| clip(cx, 0.0, 6.0),
};
/// `min(max(x, min_val), max_val)`.
static HARDTANH_SPEC: Spec = Spec {
    name: "hardtanh",
    stem: "hardtanh",
    args: BOUNDS,
    variant: "HardTanh",
    gated: false,
    f: |x, [min, max]| clamp(x, min, max),
    flops: 2,
    detail: "",
    onnx: |cx, [min, max]| clip(cx, min, max),
};
/// `relu6(x + 3) / 6`.
static HARDSIGMOID_SPEC: Spec = Spec {
    name: "hardsigmoid",
    stem: "hardsigmoid",
    args: &[],
    variant: "HardSigmoid",
    gated: false,
    f: |x, _| clamp(x + 3.0, 0.0, 6.0) / 6.0,
    flops: 4,
    detail: "",
    onnx: |cx, _| unary(cx, "HardSigmoid", vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)]),
};
/// `x·relu6(x + 3) / 6`.
static HARDSWISH_SPEC: Spec = Spec {
    name: "hardswish",
    stem: "hardswish",
    args: &[],
    variant: "HardSwish",
    gated: true,
    f: |x, _| x * clamp(x + 3.0, 0.0, 6.0) / 6.0,
    flops: 5,
    detail: "",
    onnx: |cx, _| unary(cx, "HardSwish", Vec::new()),
};
/// `x` where `x > 0`, else `alpha·(eˣ − 1)`.
static ELU_SPEC: Spec = Spec {
    name: "elu",
    stem: "elu",
    args: ALPHA,
    variant: "Elu",
    gated: false,
    f: |x, [alpha, _]| if x > 0.0 { x } else { alpha * x.exp_m1() },
    flops: 3,
    detail: "",
    onnx: |cx, [alpha, _]| unary(cx, "Elu", vec![float("alpha", alpha)]),
};

pub const RELU: OpDef = def(&RELU_SPEC, |a| build(&RELU_SPEC, a));
pub const LEAKY_RELU: OpDef = def(&LEAKY_RELU_SPEC, |a| build(&LEAKY_RELU_SPEC, a));
pub const SIGMOID: OpDef = def(&SIGMOID_SPEC, |a| build(&SIGMOID_SPEC, a));
pub const TANH: OpDef = def(&TANH_SPEC, |a| build(&TANH_SPEC, a));
pub const GELU: OpDef = def(&GELU_SPEC, |a| match a.word("approximate") {
    Some("tanh") => build(&GELU_TANH_SPEC, a),
    _ => build(&GELU_SPEC, a),
});
pub const SILU: OpDef = def(&SILU_SPEC, |a| build(&SILU_SPEC, a));
pub const RELU6: OpDef =
    def(&RELU6_SPEC, |_| Op::new(Activation { spec: &RELU6_SPEC, args: [Some(0.0), Some(6.0)] }));
pub const HARDTANH: OpDef = def(&HARDTANH_SPEC, |a| build(&HARDTANH_SPEC, a));
pub const HARDSIGMOID: OpDef = def(&HARDSIGMOID_SPEC, |a| build(&HARDSIGMOID_SPEC, a));
pub const HARDSWISH: OpDef = def(&HARDSWISH_SPEC, |a| build(&HARDSWISH_SPEC, a));
pub const ELU: OpDef = def(&ELU_SPEC, |a| build(&ELU_SPEC, a));

/// A one-node activation.
fn unary(cx: &mut OnnxCx<'_>, op: &str, attrs: Vec<Attribute>) {
    let x = cx.x(0);
    cx.output(op, vec![x], attrs);
}

/// `Clip` with its bounds as inputs, as from opset 11.
fn clip(cx: &mut OnnxCx<'_>, min: f64, max: f64) {
    let (x, min, max) = (cx.x(0), cx.scalar_const(min), cx.scalar_const(max));
    cx.output("Clip", vec![x, min, max], Vec::new());
}

/// `x·σ(x)`, as PyTorch exports SiLU.
fn silu(cx: &mut OnnxCx<'_>) {
    let x = cx.x(0);
    let gate = cx.node("Sigmoid", vec![x.clone()], Vec::new());
    cx.output("Mul", vec![x, gate], Vec::new());
}

/// `x·(erf(x/√2) + 1)·½`, PyTorch's export of the exact GELU (opset 17
/// has no `Gelu`).
fn gelu_erf(cx: &mut OnnxCx<'_>) {
    let x = cx.x(0);
    let sqrt2 = cx.scalar_const(std::f64::consts::SQRT_2);
    let scaled = cx.node("Div", vec![x.clone(), sqrt2], Vec::new());
    let erf = cx.node("Erf", vec![scaled], Vec::new());
    let one = cx.scalar_const(1.0);
    let gate = cx.node("Add", vec![erf, one], Vec::new());
    let gated = cx.node("Mul", vec![x, gate], Vec::new());
    let half = cx.scalar_const(0.5);
    cx.output("Mul", vec![gated, half], Vec::new());
}

/// `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, PyTorch's export of
/// `gelu(approximate: tanh)`.
fn gelu_tanh(cx: &mut OnnxCx<'_>) {
    let x = cx.x(0);
    let square = cx.node("Mul", vec![x.clone(), x.clone()], Vec::new());
    let cube = cx.node("Mul", vec![x.clone(), square], Vec::new());
    let kappa = cx.scalar_const(0.044715);
    let cubic = cx.node("Mul", vec![kappa, cube], Vec::new());
    let inner = cx.node("Add", vec![x.clone(), cubic], Vec::new());
    let beta = cx.scalar_const((2.0 / std::f64::consts::PI).sqrt());
    let inner = cx.node("Mul", vec![beta, inner], Vec::new());
    let tanh = cx.node("Tanh", vec![inner], Vec::new());
    let one = cx.scalar_const(1.0);
    let gate = cx.node("Add", vec![one, tanh], Vec::new());
    let gated = cx.node("Mul", vec![x, gate], Vec::new());
    let half = cx.scalar_const(0.5);
    cx.output("Mul", vec![half, gated], Vec::new());
}

/// `x` clamped to `[min, max]` (`f64::clamp` would panic on bounds the
/// checker has not seen yet).
fn clamp(x: f64, min: f64, max: f64) -> f64 {
    if x < min {
        min
    } else if x > max {
        max
    } else {
        x
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// erf in f64 to about 1e-15: its Taylor series near 0, a continued
/// fraction of erfc beyond (the interpreter's oracle needs no speed).
pub(crate) fn erf(x: f64) -> f64 {
    let a = x.abs();
    if a < 2.5 {
        // erf(x) = 2/√π Σ (-1)^k x^(2k+1) / (k! (2k+1))
        let (mut term, mut sum, x2) = (a, a, a * a);
        for k in 1..80 {
            term *= -x2 / k as f64;
            let add = term / (2 * k + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        (2.0 / std::f64::consts::PI.sqrt() * sum).copysign(x)
    } else {
        // erfc(a) = e^(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
        let mut frac = 0.0;
        for k in (1..60).rev() {
            frac = (k as f64 / 2.0) / (a + frac);
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + frac);
        (1.0 - erfc).copysign(x)
    }
}

/// An elementwise activation with its arguments.
#[derive(Debug)]
pub struct Activation {
    spec: &'static Spec,
    args: [Option<f64>; 2],
}

impl OpKind for Activation {
    fn name(&self) -> &'static str {
        self.spec.name
    }

    fn stem(&self) -> &'static str {
        self.spec.stem
    }

    fn detail(&self) -> String {
        let written: Vec<String> =
            self.args.iter().take(self.spec.args.len()).flatten().map(|a| format!("{a}")).collect();
        if written.is_empty() {
            self.spec.detail.to_string()
        } else {
            written.join(", ")
        }
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        if let [Some(min), Some(max)] = self.args {
            if min >= max {
                return Err(OpError::new(
                    format!("`{}` needs min_val < max_val, found {min} and {max}", self.spec.name),
                    "empty range",
                )
                .at("max_val"));
            }
        }
        Ok(first(inputs))
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(self.spec.flops)
    }

    fn activation(&self) -> Option<Act> {
        Some(Act {
            name: self.spec.name,
            variant: self.spec.variant,
            gated: self.spec.gated,
            args: self.args,
        })
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        (self.spec.onnx)(cx, self.args.map(|a| a.unwrap_or(0.0)));
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let act = self.activation().map_or(Arg::Act(Act::IDENTITY), Arg::Act);
        let args = vec![act, cx.x(0), cx.y()];
        cx.both("activation_forward", args);
    }

    /// In place on the output's gradient, which then becomes the input's.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        if !cx.needs_grad(0) {
            return;
        }
        let Some(act) = self.activation() else { return };
        let d = Arg::InOut(cx.gy, cx.y_len());
        if act.derivative_needs_input() {
            let x = cx.x(0);
            cx.emit("activation_backward_from_input_in_place", vec![Arg::Act(act), x, d]);
        } else {
            let y = cx.y();
            cx.emit("activation_backward_in_place", vec![Arg::Act(act), y, d]);
        }
        cx.pass_through(0);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let args = self.args.map(|a| a.unwrap_or(0.0));
        for (o, &v) in y.iter_mut().zip(cx.xs[0]) {
            *o = (self.spec.f)(v, args);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_matches_known_values() {
        // Values from Abramowitz and Stegun, table 7.1, and erf(∞) = 1.
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (6.0, 1.0),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}, want {want}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-14);
        }
    }
}
