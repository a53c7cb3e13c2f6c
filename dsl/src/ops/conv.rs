//! `conv2d(channels, kernel, stride, pad, dilation, groups, bias)`: 2-D
//! cross-correlation as PyTorch's `nn.Conv2d`, weight `[O, C/groups, kh, kw]`,
//! output sizes by its floor rule. `pad: same` and `pad: valid` are
//! PyTorch's `padding='same'` and `'valid'`. The runtime picks the algorithm.

use super::{expect_image, first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::export::onnx::{int, ints, pads, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::{Precision, Shape};
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry, Window};
use std::fmt::Write as _;

const ARGS: &[ArgSpec] = &[
    pos("channels", Kind::Size, Lit::Required),
    pos("kernel", Kind::Pair, Lit::Required),
    named("stride", Kind::Pair, Lit::Int(1)),
    named("pad", Kind::Padding, Lit::Int(0)),
    named("dilation", Kind::Pair, Lit::Int(1)),
    named("groups", Kind::Size, Lit::Int(1)),
    named("bias", Kind::Bool, Lit::Bool(true)),
];

pub const DEF: OpDef = OpDef { name: "conv2d", args: ARGS, arity: Arity::One, build };

fn build(a: &Bound) -> Op {
    let (kernel, dilation) =
        (a.pair("kernel").unwrap_or_default(), a.pair("dilation").unwrap_or_default());
    let same = a.word("pad") == Some("same");
    // `same` pads half of PyTorch's total d·(k−1) on each side (`infer`
    // refuses an odd total); `valid` is a word, not a pair, so no padding.
    let pad = if same {
        [0, 1].map(|axis| dilation[axis] * kernel[axis].saturating_sub(1) / 2)
    } else {
        a.pair("pad").unwrap_or_default()
    };
    Op::new(Conv2d {
        out_channels: a.int("channels").unwrap_or_default(),
        kernel,
        stride: a.pair("stride").unwrap_or_default(),
        pad,
        dilation,
        groups: a.int("groups").unwrap_or_default(),
        bias: a.bool("bias").unwrap_or_default(),
        same,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
    /// `pad: same`: `pad` holds its resolution, valid for stride 1 and an
    /// even total padding only, which `infer` checks.
    pub same: bool,
}

/// `p` as `3` or `3x5`.
pub fn pair(p: [usize; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        format!("{}x{}", p[0], p[1])
    }
}

/// One spatial output extent, PyTorch's floor rule, or `None` when the
/// (dilated) window does not fit in the padded input.
fn out_extent(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Option<usize> {
    let padded = input.checked_add(pad.checked_mul(2)?)?;
    let span = dilation.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
    let room = padded.checked_sub(span)?;
    Some(room / stride + 1)
}

/// The output extents of a window op, or an error naming it.
pub fn window_out(
    op: &str,
    x: &Shape,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 2], OpError> {
    let (_, h, w) = expect_image(op, x)?;
    let mut out = [0; 2];
    for (axis, extent) in [h, w].into_iter().enumerate() {
        out[axis] = out_extent(extent, kernel[axis], stride[axis], pad[axis], dilation[axis]).ok_or_else(|| {
            let reach = dilation[axis].saturating_mul(kernel[axis].saturating_sub(1)).saturating_add(1);
            let what = if dilation[axis] > 1 { "dilated kernel" } else { "kernel" };
            OpError::new(
                format!(
                    "`{op}` {what} is larger than its input: {reach} > {} ({extent} + 2·{} padding)",
                    extent.saturating_add(pad[axis].saturating_mul(2)),
                    pad[axis]
                ),
                format!("input is {x}"),
            )
            .at("kernel")
            .help("use a smaller kernel, more padding, or remove a pooling layer before this one")
        })?;
    }
    Ok(out)
}

/// The runtime's window geometry of an image input.
pub fn window(
    x: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
) -> Window {
    Window {
        c: x[0],
        h: x[1],
        w: x[2],
        kh: kernel[0],
        kw: kernel[1],
        sh: stride[0],
        sw: stride[1],
        ph: pad[0],
        pw: pad[1],
        dh: dilation[0],
        dw: dilation[1],
    }
}

impl Conv2d {
    fn geometry(&self, x: &Shape) -> Arg {
        let win = window(x.dims(), self.kernel, self.stride, self.pad, self.dilation);
        Arg::Shape(Geometry::Conv { win, o: self.out_channels, groups: self.groups })
    }

    /// Whether a `precision bf16` network runs this conv in bf16, by the
    /// runtime's rule (`Conv2d::bf16_pays`: at least 64 outputs a group and
    /// 16M multiply-adds a sample), decided here so that a conv kept in f32
    /// keeps its f32 steps: the inference cache and the batch-norm fold.
    /// `tests/bf16.rs` holds the two rules to each other.
    pub fn bf16_pays(&self, x: &Shape, y: &Shape) -> bool {
        let (groups, [kh, kw]) = (self.groups.max(1), self.kernel);
        let (og, plane) = (self.out_channels / groups, y.dims()[1..].iter().product::<usize>());
        let patch = x.dims()[0] / groups * kh * kw;
        og >= 64 && og * plane * patch >= 16 << 20
    }

    fn fan_in(&self, channels: usize) -> usize {
        channels / self.groups.max(1) * self.kernel[0] * self.kernel[1]
    }

    /// PyTorch's `padding='same'` keeps the input size: stride 1, and a
    /// total padding `d·(k−1)` per axis that the runtime's symmetric
    /// padding can split evenly (PyTorch puts an odd one's extra cell on
    /// the right and bottom).
    fn check_same(&self) -> Result<(), OpError> {
        if self.stride != [1, 1] {
            return Err(OpError::new(
                format!("`pad: same` needs stride 1, found stride {}", pair(self.stride)),
                format!("not with stride {}", pair(self.stride)),
            )
            .at("pad")
            .help("give the padding as a number: a strided convolution cannot keep the input size, and PyTorch refuses it too"));
        }
        for (axis, what) in ["height", "width"].into_iter().enumerate() {
            let total = self.dilation[axis] * (self.kernel[axis] - 1);
            if total % 2 == 1 {
                return Err(OpError::new(
                    format!(
                        "`pad: same` cannot split an odd padding of {total} across the {what}: the kernel spans {}",
                        total + 1
                    ),
                    "needs an odd kernel span",
                )
                .at("pad")
                .help("netc pads both sides alike; use an odd kernel (or dilation), or give `pad` and crop"));
            }
        }
        Ok(())
    }
}

impl OpKind for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn stem(&self) -> &'static str {
        "conv"
    }

    fn detail(&self) -> String {
        let mut s = format!(
            "{}@{}x{} s{} p{}",
            self.out_channels,
            self.kernel[0],
            self.kernel[1],
            pair(self.stride),
            pair(self.pad)
        );
        if self.dilation != [1, 1] {
            let _ = write!(s, " d{}", pair(self.dilation));
        }
        if self.groups != 1 {
            let _ = write!(s, " g{}", self.groups);
        }
        if !self.bias {
            s.push_str(" nobias");
        }
        s
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let (channels, _, _) = expect_image("conv2d", &x)?;
        if self.same {
            self.check_same()?;
        }
        if !channels.is_multiple_of(self.groups) || !self.out_channels.is_multiple_of(self.groups) {
            return Err(OpError::new(
                format!(
                    "`groups: {}` must divide both the {channels} input and the {} output channels",
                    self.groups, self.out_channels
                ),
                format!("input is {x}"),
            )
            .at("groups"));
        }
        let [h, w] = window_out("conv2d", &x, self.kernel, self.stride, self.pad, self.dilation)?;
        Ok(Shape(vec![self.out_channels, h, w]))
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        let channels = first(inputs).dims().first().copied().unwrap_or(0);
        let init = Init::UniformFanIn { fan_in: self.fan_in(channels) };
        let mut p = vec![ParamSpec::learnable(
            "weight",
            vec![self.out_channels, channels / self.groups.max(1), self.kernel[0], self.kernel[1]],
            init,
        )];
        if self.bias {
            p.push(ParamSpec::learnable("bias", vec![self.out_channels], init));
        }
        p
    }

    fn macs(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        let channels = first(inputs).dims().first().copied().unwrap_or(0);
        (out.elements() as u64).saturating_mul(self.fan_in(channels) as u64)
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
        let attrs = vec![
            ints("kernel_shape", &self.kernel),
            ints("strides", &self.stride),
            pads(self.pad),
            ints("dilations", &self.dilation),
            int("group", self.groups as i64),
        ];
        cx.output("Conv", inputs, attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let bias = self.bias.then(|| Arg::Param(cx.param(1)));
        let args = vec![shape, cx.x(0), Arg::Param(cx.param(0)), Arg::opt(bias), cx.act(), cx.y()];
        if cx.g.precision == Precision::Bf16 && self.bf16_pays(cx.x_shape(0), &cx.node.shape) {
            return cx.both("conv2d_forward_bf16", args);
        }
        cx.train("conv2d_forward", args.clone());
        // Inference keeps each conv's weights prepared across calls.
        let mut cached = args;
        cached.push(Arg::Cache);
        cx.infer("conv2d_forward_cached", cached);
    }

    /// Weights first: no SGD step is fused into a conv's weight gradient,
    /// so backward-data may read the weights after it (dense's order is the
    /// other way round for that reason).
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let (w, b) = (cx.rec.params[0], self.bias.then(|| Arg::Grad(cx.rec.params[1])));
        let y = &cx.g.node(cx.node).shape;
        let bf16 = cx.g.precision == Precision::Bf16 && self.bf16_pays(cx.x_shape(0), y);
        if cx.learns() {
            let args = vec![shape.clone(), cx.x(0), cx.dy(), Arg::Grad(w), Arg::opt(b)];
            let kernel =
                if bf16 { "conv2d_backward_weights_bf16" } else { "conv2d_backward_weights" };
            cx.emit(kernel, args);
        }
        let dy = cx.dy();
        let kernel = if bf16 { "conv2d_backward_data_bf16" } else { "conv2d_backward_data" };
        cx.grad_into(0, kernel, |dx| vec![shape, dy, Arg::Param(w), Arg::ReluMask(None), dx]);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (xs, x) = (cx.x_shapes[0], cx.xs[0]);
        let (ci, h, wd) = (xs[0], xs[1], xs[2]);
        let (o, oh, ow) = (cx.y_shape[0], cx.y_shape[1], cx.y_shape[2]);
        let (cg, og) = (ci / self.groups, o / self.groups);
        let [kh, kw] = self.kernel;
        let wt = cx.param("weight")?;
        let b = if self.bias { Some(cx.param("bias")?) } else { None };
        for s in 0..cx.n {
            for oc in 0..o {
                let g0 = oc / og;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[oc]);
                        for k in 0..cg {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * self.stride[0] + i * self.dilation[0]) as isize
                                        - self.pad[0] as isize;
                                    let ix = (ox * self.stride[1] + j * self.dilation[1]) as isize
                                        - self.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv = x[((s * ci + g0 * cg + k) * h + iy as usize) * wd
                                        + ix as usize];
                                    acc += wt[((oc * cg + k) * kh + i) * kw + j] * xv;
                                }
                            }
                        }
                        y[((s * o + oc) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        Ok(())
    }
}
