//! Pooling: `max_pool(kernel, stride, pad)`, `avg_pool(kernel, stride, pad)`
//! (padded cells count in the divisor, PyTorch's default) and
//! `global_avg_pool` (`[C, H, W] -> [C]`). Max pooling saves the argmax of
//! each window in training, for its backward.

use super::conv::{pair, window, window_out};
use super::{expect_image, first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    pos("kernel", Kind::Pair, Lit::Required),
    pos("stride", Kind::Pair, Lit::Absent),
    named("pad", Kind::PairCount, Lit::Int(0)),
];

pub const MAX_POOL: OpDef =
    OpDef { name: "max_pool", args: ARGS, arity: Arity::One, build: |a| build(PoolKind::Max, a) };
pub const AVG_POOL: OpDef =
    OpDef { name: "avg_pool", args: ARGS, arity: Arity::One, build: |a| build(PoolKind::Avg, a) };
pub const GLOBAL_AVG_POOL: OpDef = OpDef {
    name: "global_avg_pool",
    args: &[],
    arity: Arity::One,
    build: |_| Op::new(GlobalAvgPool),
};

/// The stride defaults to the kernel, as in PyTorch.
fn build(kind: PoolKind, a: &Bound) -> Op {
    let kernel = a.pair("kernel").unwrap_or_default();
    Op::new(Pool2d {
        kind,
        kernel,
        stride: a.pair("stride").unwrap_or(kernel),
        pad: a.pair("pad").unwrap_or_default(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl Pool2d {
    fn geometry(&self, x: &Shape) -> Arg {
        Arg::Shape(Geometry::Pool(window(x.dims(), self.kernel, self.stride, self.pad, [1, 1])))
    }
}

impl OpKind for Pool2d {
    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool",
            PoolKind::Avg => "avg_pool",
        }
    }

    fn stem(&self) -> &'static str {
        "pool"
    }

    fn detail(&self) -> String {
        let [kh, kw] = self.kernel;
        format!("{kh}x{kw} s{} p{}", pair(self.stride), pair(self.pad))
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let (x, name) = (first(inputs), self.name());
        for axis in 0..2 {
            if self.pad[axis] > self.kernel[axis] / 2 {
                return Err(OpError::new(
                    format!(
                        "`{name}` padding {} is more than half the kernel {}",
                        self.pad[axis], self.kernel[axis]
                    ),
                    "too much padding",
                )
                .at("pad")
                .help("padding of a pooling window may be at most half its size, as in PyTorch"));
            }
        }
        let (channels, _, _) = expect_image(name, &x)?;
        let [h, w] = window_out(name, &x, self.kernel, self.stride, self.pad, [1, 1])?;
        Ok(Shape(vec![channels, h, w]))
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul((self.kernel[0] * self.kernel[1]) as u64)
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        match self.kind {
            PoolKind::Max => {
                let slot = cx.argmax_slot(cx.node.shape.elements());
                let argmax = Arg::Argmax { slot, write: true };
                cx.train("max_pool_forward", vec![shape.clone(), cx.x(0), cx.y(), argmax]);
                // Inference needs no argmax: no backward will read it.
                cx.infer("max_pool_forward_infer", vec![shape, cx.x(0), cx.y()]);
            }
            PoolKind::Avg => cx.both("avg_pool_forward", vec![shape, cx.x(0), cx.y()]),
        }
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (shape, dy) = (self.geometry(cx.x_shape(0)), cx.dy());
        match self.kind {
            PoolKind::Max => {
                let argmax = Arg::Argmax { slot: cx.rec.slot, write: false };
                cx.grad_into(0, "max_pool_backward", |dx| {
                    vec![shape, dy, argmax, Arg::Through(None), dx]
                });
            }
            PoolKind::Avg => cx.grad_into(0, "avg_pool_backward", |dx| vec![shape, dy, dx]),
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (x, xs) = (cx.xs[0], cx.x_shapes[0]);
        let (c, h, w) = (xs[0], xs[1], xs[2]);
        let (oh, ow) = (cx.y_shape[1], cx.y_shape[2]);
        for s in 0..cx.n {
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = f64::NEG_INFINITY;
                        let mut sum = 0.0;
                        for i in 0..self.kernel[0] {
                            for j in 0..self.kernel[1] {
                                let iy = (oy * self.stride[0] + i) as isize - self.pad[0] as isize;
                                let ix = (ox * self.stride[1] + j) as isize - self.pad[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let v = x[((s * c + ch) * h + iy as usize) * w + ix as usize];
                                best = best.max(v);
                                sum += v;
                            }
                        }
                        y[((s * c + ch) * oh + oy) * ow + ox] = match self.kind {
                            PoolKind::Max => best,
                            PoolKind::Avg => sum / (self.kernel[0] * self.kernel[1]) as f64,
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

/// `[C, H, W] -> [C]`, the mean of each plane.
#[derive(Debug)]
pub struct GlobalAvgPool;

impl OpKind for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global_avg_pool"
    }

    fn stem(&self) -> &'static str {
        "pool"
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let (c, _, _) = expect_image("global_avg_pool", &first(inputs))?;
        Ok(Shape(vec![c]))
    }

    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        first(inputs).elements() as u64
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let d = cx.x_shape(0).dims();
        let (c, hw) = (Arg::Usize(d[0]), Arg::Usize(d[1] * d[2]));
        cx.both("global_avg_pool_forward", vec![Arg::Batch, c, hw, cx.x(0), cx.y()]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let d = cx.x_shape(0).dims();
        let (c, hw, dy) = (Arg::Usize(d[0]), Arg::Usize(d[1] * d[2]), cx.dy());
        cx.grad_into(0, "global_avg_pool_backward", |dx| vec![Arg::Batch, c, hw, dy, dx]);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let hw = cx.x_shapes[0][1] * cx.x_shapes[0][2];
        for (i, v) in y.iter_mut().enumerate() {
            *v = cx.xs[0][i * hw..(i + 1) * hw].iter().sum::<f64>() / hw as f64;
        }
        Ok(())
    }
}
