//! Pooling: `max_pool(kernel, stride, pad, ceil_mode)`, `avg_pool(kernel,
//! stride, pad, ceil_mode, count_include_pad)` as PyTorch's `MaxPool2d` and
//! `AvgPool2d`, `adaptive_avg_pool(height, width)` (`AdaptiveAvgPool2d`) and
//! `global_avg_pool` (`[C, H, W] -> [C]`). Max pooling saves the argmax of
//! each window in training, for its backward.

use super::conv::{pair, window, window_out};
use super::{expect_image, first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::export::onnx::{int, ints, pads, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::{Shape, MAX_ELEMENTS};
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};

const MAX_ARGS: &[ArgSpec] = &[
    pos("kernel", Kind::Pair, Lit::Required),
    pos("stride", Kind::Pair, Lit::Absent),
    named("pad", Kind::PairCount, Lit::Int(0)),
    named("ceil_mode", Kind::Bool, Lit::Bool(false)),
];

const AVG_ARGS: &[ArgSpec] = &[
    pos("kernel", Kind::Pair, Lit::Required),
    pos("stride", Kind::Pair, Lit::Absent),
    named("pad", Kind::PairCount, Lit::Int(0)),
    named("ceil_mode", Kind::Bool, Lit::Bool(false)),
    named("count_include_pad", Kind::Bool, Lit::Bool(true)),
];

pub const MAX_POOL: OpDef = OpDef {
    name: "max_pool",
    args: MAX_ARGS,
    arity: Arity::One,
    build: |a| build(PoolKind::Max, a),
};
pub const AVG_POOL: OpDef = OpDef {
    name: "avg_pool",
    args: AVG_ARGS,
    arity: Arity::One,
    build: |a| build(PoolKind::Avg, a),
};
pub const ADAPTIVE_AVG_POOL: OpDef = OpDef {
    name: "adaptive_avg_pool",
    args: &[pos("height", Kind::Size, Lit::Required), pos("width", Kind::Size, Lit::Absent)],
    arity: Arity::One,
    build: |a| {
        let height = a.int("height").unwrap_or_default();
        Op::new(AdaptiveAvgPool { out: [height, a.int("width").unwrap_or(height)] })
    },
};
pub const GLOBAL_AVG_POOL: OpDef = OpDef {
    name: "global_avg_pool",
    args: &[],
    arity: Arity::One,
    build: |_| Op::new(GlobalAvgPool),
};

/// The stride defaults to the kernel, as in PyTorch. Max pooling has no
/// divisor, so `count_include_pad` is PyTorch's default there.
fn build(kind: PoolKind, a: &Bound) -> Op {
    let kernel = a.pair("kernel").unwrap_or_default();
    Op::new(Pool2d {
        kind,
        kernel,
        stride: a.pair("stride").unwrap_or(kernel),
        pad: a.pair("pad").unwrap_or_default(),
        ceil_mode: a.bool("ceil_mode").unwrap_or_default(),
        count_include_pad: a.bool("count_include_pad").unwrap_or(true),
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
    /// Output extents round up; a last window may run past the padding.
    pub ceil_mode: bool,
    /// Padding cells count in an average's divisor.
    pub count_include_pad: bool,
}

impl Pool2d {
    fn geometry(&self, x: &Shape) -> Arg {
        Arg::Shape(Geometry::Pool {
            win: window(x.dims(), self.kernel, self.stride, self.pad, [1, 1]),
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
        })
    }

    /// The output extents: PyTorch's floor rule, or its ceil rule.
    fn extents(&self, x: &Shape) -> Result<[usize; 2], OpError> {
        let name = self.name();
        if !self.ceil_mode {
            return window_out(name, x, self.kernel, self.stride, self.pad, [1, 1]);
        }
        let (_, h, w) = expect_image(name, x)?;
        let mut out = [0; 2];
        for (axis, extent) in [h, w].into_iter().enumerate() {
            let (k, s, p) = (self.kernel[axis], self.stride[axis], self.pad[axis]);
            out[axis] = ceil_extent(extent, k, s, p).ok_or_else(|| {
                OpError::new(
                    format!(
                        "`{name}` kernel is larger than its input in ceil mode: {k} > {} ({extent} + 2·{p} padding + stride {s} − 1)",
                        extent + 2 * p + s - 1
                    ),
                    format!("input is {x}"),
                )
                .at("kernel")
                .help("use a smaller kernel, more padding, or remove a pooling layer before this one")
            })?;
        }
        Ok(out)
    }

    /// The divisor of an average window from its cell counts.
    fn divisor(&self, padded_cells: usize, input_cells: usize) -> f64 {
        if self.count_include_pad {
            padded_cells as f64
        } else {
            input_cells as f64
        }
    }
}

/// PyTorch's ceil-mode extent, `⌈(input + 2·pad − kernel) / stride⌉ + 1`,
/// less one if the last window would start in the right padding; `None`
/// when no window fits (the numerator is negative).
fn ceil_extent(input: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let room = (input + 2 * pad + stride - 1).checked_sub(kernel)?;
    let out = room / stride + 1;
    Some(if (out - 1) * stride >= input + pad { out - 1 } else { out })
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
        let mut s = format!("{kh}x{kw} s{} p{}", pair(self.stride), pair(self.pad));
        if self.ceil_mode {
            s.push_str(" ceil");
        }
        if !self.count_include_pad {
            s.push_str(" pad-uncounted");
        }
        s
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
        let [h, w] = self.extents(&x)?;
        Ok(Shape(vec![channels, h, w]))
    }

    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul((self.kernel[0] * self.kernel[1]) as u64)
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let mut attrs = vec![
            ints("kernel_shape", &self.kernel),
            ints("strides", &self.stride),
            pads(self.pad),
            int("ceil_mode", i64::from(self.ceil_mode)),
        ];
        let op = match self.kind {
            PoolKind::Max => "MaxPool",
            PoolKind::Avg => {
                attrs.push(int("count_include_pad", i64::from(self.count_include_pad)));
                "AveragePool"
            }
        };
        let x = cx.x(0);
        cx.output(op, vec![x], attrs);
        Ok(())
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

    /// Each window cell by cell: cells past the padded input (a ceil-mode
    /// window's) do not exist, padding cells are `-inf` for the max and
    /// zeros for the average, counted in its divisor or not.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (x, xs) = (cx.xs[0], cx.x_shapes[0]);
        let (c, h, w) = (xs[0], xs[1], xs[2]);
        let (oh, ow) = (cx.y_shape[1], cx.y_shape[2]);
        let (padded_h, padded_w) = (h + 2 * self.pad[0], w + 2 * self.pad[1]);
        for plane in 0..cx.n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut best, mut sum) = (f64::NEG_INFINITY, 0.0);
                    let (mut padded_cells, mut input_cells) = (0, 0);
                    for i in 0..self.kernel[0] {
                        for j in 0..self.kernel[1] {
                            let (py, px) = (oy * self.stride[0] + i, ox * self.stride[1] + j);
                            if py >= padded_h || px >= padded_w {
                                continue;
                            }
                            padded_cells += 1;
                            let iy = py.checked_sub(self.pad[0]).filter(|&iy| iy < h);
                            let ix = px.checked_sub(self.pad[1]).filter(|&ix| ix < w);
                            let (Some(iy), Some(ix)) = (iy, ix) else { continue };
                            input_cells += 1;
                            let v = x[(plane * h + iy) * w + ix];
                            best = best.max(v);
                            sum += v;
                        }
                    }
                    y[(plane * oh + oy) * ow + ox] = match self.kind {
                        PoolKind::Max => best,
                        PoolKind::Avg => sum / self.divisor(padded_cells, input_cells),
                    };
                }
            }
        }
        Ok(())
    }
}

/// `[C, H, W] -> [C, height, width]`: each output the mean of its bin,
/// PyTorch's `[⌊i·H/height⌋, ⌈(i+1)·H/height⌉)` on each axis.
#[derive(Debug)]
pub struct AdaptiveAvgPool {
    /// The output's height and width.
    pub out: [usize; 2],
}

/// The input bin of output `i` of `out` on an axis of `len`.
fn bin(i: usize, out: usize, len: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

impl AdaptiveAvgPool {
    fn geometry(&self, x: &Shape) -> Arg {
        let d = x.dims();
        let [oh, ow] = self.out;
        Arg::Shape(Geometry::AdaptivePool { c: d[0], h: d[1], w: d[2], oh, ow })
    }
}

impl OpKind for AdaptiveAvgPool {
    fn name(&self) -> &'static str {
        "adaptive_avg_pool"
    }

    fn stem(&self) -> &'static str {
        "pool"
    }

    fn detail(&self) -> String {
        format!("{}x{}", self.out[0], self.out[1])
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let (c, _, _) = expect_image("adaptive_avg_pool", &x)?;
        let [oh, ow] = self.out;
        let elements = c.checked_mul(oh).and_then(|v| v.checked_mul(ow));
        if elements.is_none_or(|e| e > MAX_ELEMENTS) {
            return Err(OpError::new(
                format!("`adaptive_avg_pool` output [{c}, {oh}, {ow}] is too large"),
                format!("more than {MAX_ELEMENTS} elements per sample"),
            )
            .at("height"));
        }
        Ok(Shape(vec![c, oh, ow]))
    }

    /// One add per input cell of each bin.
    fn flops(&self, inputs: &[&Shape], _: &Shape) -> u64 {
        let d = first(inputs).dims().to_vec();
        let cells = |out: usize, len: usize| -> u64 {
            (0..out).map(|i| bin(i, out, len)).map(|(a, b)| (b - a) as u64).sum()
        };
        let [oh, ow] = self.out;
        (d[0] as u64).saturating_mul(cells(oh, d[1])).saturating_mul(cells(ow, d[2]))
    }

    /// Bins of one size are PyTorch's adaptive bins exactly when the
    /// output divides the input; ONNX has no op for uneven ones.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let d = cx.x_shape(0).dims().to_vec();
        let [h, w] = self.out;
        if !d[1].is_multiple_of(h) || !d[2].is_multiple_of(w) {
            return Err(OpError::new(
                format!(
                    "its {h}x{w} bins of a {}x{} input are uneven, and no ONNX op computes them",
                    d[1], d[2]
                ),
                format!("input is {}", cx.x_shape(0)),
            )
            .help("give an output size that divides the input's, which exports as `AveragePool`"));
        }
        let kernel = [d[1] / h, d[2] / w];
        let attrs = vec![ints("kernel_shape", &kernel), ints("strides", &kernel)];
        let x = cx.x(0);
        cx.output("AveragePool", vec![x], attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        cx.both("adaptive_avg_pool_forward", vec![shape, cx.x(0), cx.y()]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (shape, dy) = (self.geometry(cx.x_shape(0)), cx.dy());
        cx.grad_into(0, "adaptive_avg_pool_backward", |dx| vec![shape, dy, dx]);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (x, xs) = (cx.xs[0], cx.x_shapes[0]);
        let (c, h, w) = (xs[0], xs[1], xs[2]);
        let [oh, ow] = self.out;
        for plane in 0..cx.n * c {
            for oy in 0..oh {
                let (r0, r1) = bin(oy, oh, h);
                for ox in 0..ow {
                    let (c0, c1) = bin(ox, ow, w);
                    let sum: f64 = (r0..r1)
                        .flat_map(|r| &x[(plane * h + r) * w + c0..(plane * h + r) * w + c1])
                        .sum();
                    y[(plane * oh + oy) * ow + ox] = sum / ((r1 - r0) * (c1 - c0)) as f64;
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

    /// ONNX keeps the unit spatial dims, which the `[C]` output drops.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let x = cx.x(0);
        let pooled = cx.node("GlobalAveragePool", vec![x], Vec::new());
        cx.output("Flatten", vec![pooled], vec![int("axis", 1)]);
        Ok(())
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
