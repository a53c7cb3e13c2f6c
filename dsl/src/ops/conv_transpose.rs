//! `conv_transpose2d(channels, kernel, stride, pad, output_pad, groups,
//! dilation, bias)`: the transposed 2-D convolution as PyTorch's
//! `nn.ConvTranspose2d`, weight `[C, O/groups, kh, kw]`, output
//! `(H − 1)·s − 2·p + d·(k − 1) + output_pad + 1`. The runtime computes it
//! with the passes of the conv it transposes.

use super::conv::{pair, window};
use super::{expect_image, first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Bound, Kind, Lit};
use crate::export::onnx::{int, ints, pads, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};
use std::fmt::Write as _;

const ARGS: &[ArgSpec] = &[
    pos("channels", Kind::Size, Lit::Required),
    pos("kernel", Kind::Pair, Lit::Required),
    named("stride", Kind::Pair, Lit::Int(1)),
    named("pad", Kind::PairCount, Lit::Int(0)),
    named("output_pad", Kind::PairCount, Lit::Int(0)),
    named("groups", Kind::Size, Lit::Int(1)),
    named("dilation", Kind::Pair, Lit::Int(1)),
    named("bias", Kind::Bool, Lit::Bool(true)),
];

pub const DEF: OpDef = OpDef { name: "conv_transpose2d", args: ARGS, arity: Arity::One, build };

fn build(a: &Bound) -> Op {
    Op::new(ConvTranspose2d {
        out_channels: a.int("channels").unwrap_or_default(),
        kernel: a.pair("kernel").unwrap_or_default(),
        stride: a.pair("stride").unwrap_or_default(),
        pad: a.pair("pad").unwrap_or_default(),
        output_pad: a.pair("output_pad").unwrap_or_default(),
        groups: a.int("groups").unwrap_or_default(),
        dilation: a.pair("dilation").unwrap_or_default(),
        bias: a.bool("bias").unwrap_or_default(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTranspose2d {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub output_pad: [usize; 2],
    pub groups: usize,
    pub dilation: [usize; 2],
    pub bias: bool,
}

impl ConvTranspose2d {
    fn geometry(&self, x: &Shape) -> Arg {
        let win = window(x.dims(), self.kernel, self.stride, self.pad, self.dilation);
        Arg::Shape(Geometry::ConvTranspose {
            win,
            o: self.out_channels,
            oph: self.output_pad[0],
            opw: self.output_pad[1],
            groups: self.groups,
        })
    }

    /// PyTorch's fan-in of a transposed conv's weight `[C, O/groups, kh,
    /// kw]`: its second dimension times the window (`_ConvNd` computes it
    /// from the weight's shape alone).
    fn fan_in(&self) -> usize {
        self.out_channels / self.groups.max(1) * self.kernel[0] * self.kernel[1]
    }

    /// The output extent along `axis` before the padding crops it, or
    /// `None` if it overflows.
    fn uncropped_extent(&self, axis: usize, input: usize) -> Option<usize> {
        let span = self.dilation[axis].checked_mul(self.kernel[axis] - 1)?;
        (input.checked_sub(1)?)
            .checked_mul(self.stride[axis])?
            .checked_add(span)?
            .checked_add(self.output_pad[axis])?
            .checked_add(1)
    }

    /// `output_pad` below the stride or the dilation on both axes, as
    /// PyTorch requires, or the error naming it.
    fn check_output_pad(&self) -> Result<(), OpError> {
        for axis in 0..2 {
            let limit = self.stride[axis].max(self.dilation[axis]);
            if self.output_pad[axis] >= limit {
                return Err(OpError::new(
                    format!(
                        "`output_pad: {}` must be smaller than the stride or the dilation",
                        pair(self.output_pad)
                    ),
                    format!("stride {}, dilation {}", pair(self.stride), pair(self.dilation)),
                )
                .at("output_pad")
                .help(format!(
                    "use an `output_pad` below {limit}, the larger of the two; it picks one of the \
                     output sizes that give this input size"
                )));
            }
        }
        Ok(())
    }
}

impl OpKind for ConvTranspose2d {
    fn name(&self) -> &'static str {
        "conv_transpose2d"
    }

    fn stem(&self) -> &'static str {
        "deconv"
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
        if self.output_pad != [0, 0] {
            let _ = write!(s, " op{}", pair(self.output_pad));
        }
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
        let (channels, h, w) = expect_image("conv_transpose2d", &x)?;
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
        self.check_output_pad()?;
        let mut out = [0; 2];
        for (axis, extent) in [h, w].into_iter().enumerate() {
            let uncropped = self.uncropped_extent(axis, extent);
            let cropped = uncropped.and_then(|e| e.checked_sub(self.pad[axis].checked_mul(2)?));
            out[axis] = cropped.filter(|&e| e > 0).ok_or_else(|| {
                let made = uncropped.map_or("too many".to_string(), |e| e.to_string());
                OpError::new(
                    format!(
                        "`pad: {}` crops the whole output: `conv_transpose2d` makes {made} {} and the padding removes 2·{}",
                        pair(self.pad),
                        ["rows", "columns"][axis],
                        self.pad[axis]
                    ),
                    format!("input is {x}"),
                )
                .at("pad")
                .help("use less padding")
            })?;
        }
        Ok(Shape(vec![self.out_channels, out[0], out[1]]))
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        let channels = first(inputs).dims().first().copied().unwrap_or(0);
        let init = Init::UniformFanIn { fan_in: self.fan_in() };
        let og = self.out_channels / self.groups.max(1);
        let mut p = vec![ParamSpec::learnable(
            "weight",
            vec![channels, og, self.kernel[0], self.kernel[1]],
            init,
        )];
        if self.bias {
            p.push(ParamSpec::learnable("bias", vec![self.out_channels], init));
        }
        p
    }

    /// Every input value times its window of `O/groups` output channels,
    /// those that land in the cropped padding included, as conv2d's count
    /// is read the other way round.
    fn macs(&self, inputs: &[&Shape], _out: &Shape) -> u64 {
        (first(inputs).elements() as u64).saturating_mul(self.fan_in() as u64)
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
            ints("output_padding", &self.output_pad),
            ints("dilations", &self.dilation),
            int("group", self.groups as i64),
        ];
        cx.output("ConvTranspose", inputs, attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let bias = self.bias.then(|| Arg::Param(cx.param(1)));
        let args = vec![shape, cx.x(0), Arg::Param(cx.param(0)), Arg::opt(bias), cx.act(), cx.y()];
        cx.both("conv_transpose2d_forward", args);
    }

    /// Weights first, as conv2d's: backward-data reads the weights after.
    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let (w, b) = (cx.rec.params[0], self.bias.then(|| Arg::Grad(cx.rec.params[1])));
        let args = vec![shape.clone(), cx.x(0), cx.dy(), Arg::Grad(w), Arg::opt(b)];
        cx.emit("conv_transpose2d_backward_weights", args);
        let dy = cx.dy();
        cx.grad_into(0, "conv_transpose2d_backward_data", |dx| vec![shape, dy, Arg::Param(w), dx]);
    }

    /// `y[o, h·s − p + i·d, w·s − p + j·d] += weight[c, o mod O/G, i, j] ·
    /// x[c, h, w]` over the input channels `c` of `o`'s group, plus the bias.
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (xs, x) = (cx.x_shapes[0], cx.xs[0]);
        let (ci, h, wd) = (xs[0], xs[1], xs[2]);
        let (o, oh, ow) = (cx.y_shape[0], cx.y_shape[1], cx.y_shape[2]);
        let (cg, og) = (ci / self.groups, o / self.groups);
        let [kh, kw] = self.kernel;
        let wt = cx.param("weight")?;
        let b = if self.bias { Some(cx.param("bias")?) } else { None };
        for (p, plane) in y.chunks_mut(oh * ow).enumerate() {
            plane.fill(b.map_or(0.0, |b| b[p % o]));
        }
        for s in 0..cx.n {
            for c in 0..ci {
                let g = c / cg;
                for iy in 0..h {
                    for ix in 0..wd {
                        let xv = x[((s * ci + c) * h + iy) * wd + ix];
                        for k in 0..og {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let oy = (iy * self.stride[0] + i * self.dilation[0]) as isize
                                        - self.pad[0] as isize;
                                    let ox = (ix * self.stride[1] + j * self.dilation[1]) as isize
                                        - self.pad[1] as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let yi = ((s * o + g * og + k) * oh + oy as usize) * ow
                                        + ox as usize;
                                    y[yi] += wt[((c * og + k) * kh + i) * kw + j] * xv;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
