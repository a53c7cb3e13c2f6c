//! `batch_norm(eps, momentum)`: over the channel axis, PyTorch's
//! `BatchNorm1d`/`2d`: batch statistics in training (saved for the
//! backward, and folded into the running statistics), running statistics
//! at inference. A following activation is applied in its store.

use super::{expect_channels, first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, ArgSpec, Kind, Lit};
use crate::export::onnx::{float, OnnxCx};
use crate::interp::{EvalCx, InterpError, Mode};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    named("eps", Kind::Positive, Lit::Float(1e-5)),
    named("momentum", Kind::Fraction, Lit::Float(0.1)),
];

pub const DEF: OpDef = OpDef {
    name: "batch_norm",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(BatchNorm {
            eps: a.float("eps").unwrap_or_default(),
            momentum: a.float("momentum").unwrap_or_default(),
        })
    },
};

#[derive(Debug)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm {
    fn geometry(&self, x: &Shape) -> Arg {
        let (c, inner) = channels_inner(x.dims());
        Arg::Shape(Geometry::BatchNorm { c, inner, eps: self.eps, momentum: self.momentum })
    }
}

impl OpKind for BatchNorm {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn stem(&self) -> &'static str {
        "bn"
    }

    fn detail(&self) -> String {
        format!("eps={:e} momentum={}", self.eps, self.momentum)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        expect_channels("batch_norm", &first(inputs))
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        let c = first(inputs).dims().first().copied().unwrap_or(0);
        vec![
            ParamSpec::learnable("weight", vec![c], Init::Ones),
            ParamSpec::learnable("bias", vec![c], Init::Zeros),
            ParamSpec::buffer("running_mean", vec![c], Init::Zeros),
            ParamSpec::buffer("running_var", vec![c], Init::Ones),
        ]
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(2)
    }

    fn absorbs_activation(&self, _: usize) -> bool {
        true
    }

    /// Inference form: the running statistics; ONNX's momentum weighs the
    /// running statistic, PyTorch's the batch's.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let inputs = ["weight", "bias", "running_mean", "running_var"].map(|p| cx.param(p));
        let x = cx.x(0);
        let attrs = vec![float("epsilon", self.eps), float("momentum", 1.0 - self.momentum)];
        cx.output("BatchNormalization", [vec![x], inputs.to_vec()].concat(), attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let slot = cx.stats_slot(channels_inner(cx.x_shape(0).dims()).0);
        let [gamma, beta, mean, var] = [0, 1, 2, 3].map(|i| cx.param(i));
        let (x, y, act) = (cx.x(0), cx.y(), cx.act());
        let (g, b) = (Arg::Param(gamma), Arg::Param(beta));
        cx.train(
            "batch_norm_forward_train",
            vec![
                shape.clone(),
                Arg::Layer(cx.node.name.clone()),
                act.clone(),
                x.clone(),
                g.clone(),
                b.clone(),
                Arg::Buffer(mean),
                Arg::Buffer(var),
                Arg::Stats { slot, write: true },
                y.clone(),
            ],
        );
        let args = vec![shape, act, x, g, b, Arg::Param(mean), Arg::Param(var), y];
        cx.infer("batch_norm_forward_infer", args);
    }

    /// The kernel always computes dx; where the input needs no gradient (a
    /// network input) it goes to a scratch tensor that the memory plan
    /// reuses at once. The parameters' gradients are the sums dx is made
    /// of, so a frozen batch norm still writes them (and takes no step).
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let [gamma, beta] = [cx.rec.params[0], cx.rec.params[1]];
        let stats = Arg::Stats { slot: cx.rec.slot, write: false };
        let head = vec![shape, cx.x(0), Arg::Param(gamma), stats, cx.dy()];
        let tail = [Arg::Grad(gamma), Arg::Grad(beta)];
        if cx.needs_grad(0) {
            cx.grad_into(0, "batch_norm_backward", |dx| {
                head.into_iter().chain([dx]).chain(tail).collect()
            });
        } else {
            let dx = Arg::Out(cx.scratch(0), cx.x_len(0));
            cx.emit("batch_norm_backward", head.into_iter().chain([dx]).chain(tail).collect());
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let (x, n) = (cx.xs[0], cx.n);
        let (gamma, beta) = (cx.param("weight")?, cx.param("bias")?);
        for ch in 0..c {
            let idx = |s: usize, p: usize| (s * c + ch) * inner + p;
            let values = || (0..n).flat_map(|s| (0..inner).map(move |p| x[idx(s, p)]));
            let (mean, var) = match cx.mode {
                Mode::Train => {
                    let count = (n * inner) as f64;
                    let mean = values().sum::<f64>() / count;
                    (mean, values().map(|v| (v - mean).powi(2)).sum::<f64>() / count)
                }
                Mode::Infer => (cx.param("running_mean")?[ch], cx.param("running_var")?[ch]),
            };
            for s in 0..n {
                for p in 0..inner {
                    let at = idx(s, p);
                    y[at] = (x[at] - mean) / (var + self.eps).sqrt() * gamma[ch] + beta[ch];
                }
            }
        }
        Ok(())
    }
}
