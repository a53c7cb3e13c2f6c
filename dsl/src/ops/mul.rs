//! `mul(a, b)`, or `a * b`: the elementwise product of two tensors of one
//! shape, or of a `[C, ...]` tensor by a per-channel scale `[C]` or
//! `[C, 1, ...]` (either operand may be the scale), as squeeze-and-excitation
//! blocks scale features by their gates. The scale's gradient sums over the
//! cells of each channel.

use super::{same_shapes, Arity, Op, OpDef, OpError, OpKind};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::{Target, VjpCx};
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::{Arg, Geometry};

pub const DEF: OpDef = OpDef { name: "mul", args: &[], arity: Arity::Two, build: |_| Op::new(Mul) };

#[derive(Debug)]
pub struct Mul;

/// Whether `scale` is a per-channel scale of `x`: `[C]`, or `[C, 1, ...]`
/// of `x`'s rank, with `x` `[C, ...]` of rank 2 or more and not `scale`'s
/// own shape.
fn scales_channels(x: &Shape, scale: &Shape) -> bool {
    let (xd, sd) = (x.dims(), scale.dims());
    let ones = sd.get(1..).is_some_and(|rest| rest.iter().all(|&d| d == 1));
    x.rank() >= 2
        && x != scale
        && sd.first() == xd.first()
        && (scale.rank() == 1 || (scale.rank() == x.rank() && ones))
}

impl Mul {
    /// The operand that the other scales per channel (0 or 1), if the two
    /// shapes differ that way.
    fn scaled(a: &Shape, b: &Shape) -> Option<usize> {
        if scales_channels(a, b) {
            Some(0)
        } else if scales_channels(b, a) {
            Some(1)
        } else {
            None
        }
    }

    fn channel_scale(x: &Shape) -> Arg {
        let (c, inner) = channels_inner(x.dims());
        Arg::Shape(Geometry::ChannelScale { c, inner })
    }
}

impl OpKind for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        if let [a, b] = inputs {
            if let Some(big) = Mul::scaled(a, b) {
                return Ok(inputs[big].clone());
            }
        }
        same_shapes(inputs, "multiply", "mul").map_err(|e| {
            if inputs.iter().any(|s| s.rank() >= 2) {
                e.help("a per-channel scale of a [C, H, W] tensor is [C] or [C, 1, 1]")
            } else {
                e
            }
        })
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        out.elements() as u64
    }

    /// A per-channel scale `[C]` gets unit dims to broadcast from the right.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let mut inputs = vec![cx.x(0), cx.x(1)];
        if let Some(big) = Mul::scaled(cx.x_shape(0), cx.x_shape(1)) {
            let (rank, scale_rank) = (cx.x_shape(big).rank(), cx.x_shape(1 - big).rank());
            if scale_rank < rank {
                let axes: Vec<i64> = (1 + scale_rank as i64..=rank as i64).collect();
                let axes = cx.ints_const(&axes);
                let scale = inputs[1 - big].clone();
                inputs[1 - big] = cx.node("Unsqueeze", vec![scale, axes], Vec::new());
            }
        }
        cx.output("Mul", inputs, Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        match Mul::scaled(cx.x_shape(0), cx.x_shape(1)) {
            None => {
                let args = vec![cx.x(0), cx.x(1), cx.y()];
                cx.both("mul", args);
            }
            Some(big) => {
                let shape = Mul::channel_scale(cx.x_shape(big));
                let args = vec![shape, cx.x(big), cx.x(1 - big), cx.y()];
                cx.both("mul_channels", args);
            }
        }
    }

    /// `da = dy ⊙ b` and `db = dy ⊙ a`, in one step; a per-channel scale's
    /// gradient is `Σ dy ⊙ x` over each channel's cells.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let targets: Vec<_> = (0..2).map(|i| cx.needs_grad(i).then(|| cx.target(i))).collect();
        if targets.iter().all(Option::is_none) {
            return;
        }
        let lens = [cx.x_len(0), cx.x_len(1)];
        let out = |i: usize, t: &Option<Target>| Arg::opt(t.map(|t| Arg::Out(t.write, lens[i])));
        match Mul::scaled(cx.x_shape(0), cx.x_shape(1)) {
            None => {
                let (da, db) = (out(0, &targets[0]), out(1, &targets[1]));
                let args = vec![cx.x(0), cx.x(1), cx.dy(), da, db];
                cx.emit("mul_backward", args);
            }
            Some(big) => {
                let shape = Mul::channel_scale(cx.x_shape(big));
                let (dx, ds) = (out(big, &targets[big]), out(1 - big, &targets[1 - big]));
                let args = vec![shape, cx.x(big), cx.x(1 - big), cx.dy(), dx, ds];
                cx.emit("mul_channels_backward", args);
            }
        }
        for (i, t) in targets.into_iter().enumerate() {
            if let Some(t) = t {
                cx.finish(t, lens[i]);
            }
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let shapes = (Shape(cx.x_shapes[0].to_vec()), Shape(cx.x_shapes[1].to_vec()));
        match Mul::scaled(&shapes.0, &shapes.1) {
            None => {
                for (i, v) in y.iter_mut().enumerate() {
                    *v = cx.xs[0][i] * cx.xs[1][i];
                }
            }
            Some(big) => {
                // Value `i` of the big operand is in plane `i / inner`,
                // the scale's value `(sample, channel)`.
                let inner = channels_inner(cx.x_shapes[big]).1;
                for (i, v) in y.iter_mut().enumerate() {
                    *v = cx.xs[big][i] * cx.xs[1 - big][i / inner];
                }
            }
        }
        Ok(())
    }
}
