//! `stochastic_depth(p, mode: row)`: torchvision's `StochasticDepth`. In
//! training each sample (`mode: row`) or the whole batch (`mode: batch`)
//! is kept with probability `1 − p` and scaled by `1/(1 − p)`, or zeroed;
//! at inference it is the identity. As dropout's, its masks are
//! regenerated from the counter-based RNG keyed on the seed, the step and
//! the layer (numbered with the dropout layers), and, in row mode, the
//! sample's index in the batch; they are never stored.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::OnnxCx;
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::Arg;

const ARGS: &[ArgSpec] = &[
    pos("p", Kind::Fraction, Lit::Required),
    named("mode", Kind::Word(&["row", "batch"]), Lit::Word("row")),
];

pub const DEF: OpDef = OpDef {
    name: "stochastic_depth",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(StochasticDepth {
            p: a.float("p").unwrap_or_default(),
            whole_batch: a.word("mode") == Some("batch"),
        })
    },
};

#[derive(Debug)]
pub struct StochasticDepth {
    pub p: f64,
    /// `mode: batch`: one decision for the whole batch.
    pub whole_batch: bool,
}

impl StochasticDepth {
    fn kernels(&self) -> (&'static str, &'static str) {
        if self.whole_batch {
            ("stochastic_depth_batch_forward", "stochastic_depth_batch_backward")
        } else {
            ("stochastic_depth_forward", "stochastic_depth_backward")
        }
    }
}

impl OpKind for StochasticDepth {
    fn name(&self) -> &'static str {
        "stochastic_depth"
    }

    fn stem(&self) -> &'static str {
        "depth"
    }

    fn detail(&self) -> String {
        let mode = if self.whole_batch { "batch" } else { "row" };
        format!("p={} {mode}", self.p)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        Ok(first(inputs))
    }

    /// A multiply per element in training; nothing at inference, which
    /// is what the count is of.
    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    /// The identity, as at inference: ONNX has no stochastic depth.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let x = cx.x(0);
        cx.output("Identity", vec![x], Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let layer = cx.mask_layer();
        let per_sample = cx.x_shape(0).elements();
        let (p, layer) = (Arg::F32(self.p), Arg::U16(layer));
        let args = vec![p, Arg::Masks, layer, Arg::Usize(per_sample), cx.x(0), cx.y()];
        cx.train(self.kernels().0, args);
        cx.infer("copy", vec![cx.x(0), cx.y()]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (p, layer, dy) = (Arg::F32(self.p), Arg::U16(cx.rec.layer), cx.dy());
        let per_sample = Arg::Usize(cx.x_len(0));
        cx.grad_into(0, self.kernels().1, |dx| vec![p, Arg::Masks, layer, per_sample, dy, dx]);
    }

    fn draws_mask(&self) -> bool {
        true
    }

    /// Each sample scaled by its decision's factor: decision `sample` in
    /// row mode, decision 0 for the whole batch.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let per_sample = y.len() / cx.n.max(1);
        if per_sample == 0 {
            return Ok(());
        }
        for (sample, (y, x)) in
            y.chunks_mut(per_sample).zip(cx.xs[0].chunks(per_sample)).enumerate()
        {
            let decision = if self.whole_batch { 0 } else { sample as u64 };
            let scale = cx.mask_scale(decision, self.p);
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale;
            }
        }
        Ok(())
    }
}
