//! The ops of the IR. Each op owns its shape inference, its parameters and its
//! cost, so that adding an op touches one place.
//!
//! Conventions follow PyTorch: NCHW activations, conv weights `[O, C/g, kh, kw]`,
//! dense weights `[out, in]`, pooling rounds down, average pooling counts the
//! padding, softmax and concat work on the channel axis (axis 0 per sample).

use super::Shape;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A network input; it has no inputs of its own.
    Input,
    Conv2d(Conv2d),
    MaxPool(Pool2d),
    /// Average pooling; padded cells count in the divisor (PyTorch's default).
    AvgPool(Pool2d),
    /// `[C, H, W] -> [C]`.
    GlobalAvgPool,
    Dense {
        units: usize,
        bias: bool,
    },
    Flatten,
    Relu,
    LeakyRelu {
        slope: f64,
    },
    Sigmoid,
    Tanh,
    /// Softmax over the channel axis.
    Softmax,
    /// Inverted dropout: identity at inference.
    Dropout {
        p: f64,
    },
    /// Cross-channel local response normalisation, PyTorch's `LocalResponseNorm`:
    /// `b_c = a_c / (k + alpha/size · Σ a²)^beta` over `size` neighbouring channels.
    Lrn {
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    /// Batch normalisation over the channel axis, with running statistics.
    BatchNorm {
        eps: f64,
        momentum: f64,
    },
    /// Elementwise sum of two or more tensors of one shape.
    Add,
    /// Concatenation along the channel axis.
    Concat,
}

/// Why an op cannot take the shapes it was given. The checker attaches spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    pub message: String,
    /// Written under the op.
    pub label: String,
    /// The named argument most to blame, if any, to point at instead of the op.
    pub arg: Option<&'static str>,
    pub help: Option<String>,
}

impl OpError {
    fn new(message: impl Into<String>, label: impl Into<String>) -> Self {
        OpError { message: message.into(), label: label.into(), arg: None, help: None }
    }

    fn at(mut self, arg: &'static str) -> Self {
        self.arg = Some(arg);
        self
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A tensor owned by a layer, named as its `state_dict` suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// `weight`, `bias`, `running_mean` or `running_var`.
    pub name: &'static str,
    pub shape: Shape,
    /// False for buffers such as batch-norm running statistics.
    pub learnable: bool,
}

impl ParamSpec {
    fn learnable(name: &'static str, dims: Vec<usize>) -> Self {
        ParamSpec { name, shape: Shape(dims), learnable: true }
    }

    fn buffer(name: &'static str, dims: Vec<usize>) -> Self {
        ParamSpec { name, shape: Shape(dims), learnable: false }
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

fn expect_image(op: &str, x: &Shape) -> Result<(usize, usize, usize), OpError> {
    match *x.dims() {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(OpError::new(
            format!("`{op}` expects an image input [C, H, W], found {x}"),
            format!("input is {x}"),
        )),
    }
}

fn window_out(
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

impl Op {
    /// The name used in `.net` source.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv2d",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Dense { .. } => "dense",
            Op::Flatten => "flatten",
            Op::Relu => "relu",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Softmax => "softmax",
            Op::Dropout { .. } => "dropout",
            Op::Lrn { .. } => "lrn",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Add => "add",
            Op::Concat => "concat",
        }
    }

    /// The stem of automatic layer names: `conv` gives `conv1`, `conv2`, ...
    pub fn name_stem(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "conv",
            Op::Dense { .. } => "fc",
            Op::BatchNorm { .. } => "bn",
            Op::MaxPool(_) | Op::AvgPool(_) | Op::GlobalAvgPool => "pool",
            Op::Dropout { .. } => "drop",
            Op::LeakyRelu { .. } => "leaky_relu",
            other => other.name(),
        }
    }

    /// Infers the output shape from the input shapes.
    pub fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        match self {
            Op::Input => Ok(x),
            Op::Conv2d(c) => {
                let (channels, _, _) = expect_image("conv2d", &x)?;
                if channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                    return Err(OpError::new(
                        format!(
                            "`groups: {}` must divide both the {channels} input and the {} output channels",
                            c.groups, c.out_channels
                        ),
                        format!("input is {x}"),
                    )
                    .at("groups"));
                }
                let [h, w] = window_out("conv2d", &x, c.kernel, c.stride, c.pad, c.dilation)?;
                Ok(Shape(vec![c.out_channels, h, w]))
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let name = self.name();
                for axis in 0..2 {
                    if p.pad[axis] > p.kernel[axis] / 2 {
                        return Err(OpError::new(
                            format!("`{name}` padding {} is more than half the kernel {}", p.pad[axis], p.kernel[axis]),
                            "too much padding",
                        )
                        .at("pad")
                        .help("padding of a pooling window may be at most half its size, as in PyTorch"));
                    }
                }
                let (channels, _, _) = expect_image(name, &x)?;
                let [h, w] = window_out(name, &x, p.kernel, p.stride, p.pad, [1, 1])?;
                Ok(Shape(vec![channels, h, w]))
            }
            Op::GlobalAvgPool => {
                let (c, _, _) = expect_image("global_avg_pool", &x)?;
                Ok(Shape(vec![c]))
            }
            Op::Dense { units, .. } => match x.rank() {
                1 => Ok(Shape(vec![*units])),
                _ => Err(OpError::new(
                    format!("`dense` expects a flat input [F], found {x}"),
                    format!("input is {x}"),
                )
                .help("insert `-> flatten` before `dense`")),
            },
            Op::Flatten => Ok(Shape(vec![x.elements()])),
            Op::Relu
            | Op::LeakyRelu { .. }
            | Op::Sigmoid
            | Op::Tanh
            | Op::Softmax
            | Op::Dropout { .. } => Ok(x),
            Op::Lrn { .. } | Op::BatchNorm { .. } => match x.rank() {
                1 | 3 => Ok(x),
                _ => Err(OpError::new(
                    format!("`{}` expects [C] or [C, H, W], found {x}", self.name()),
                    format!("input is {x}"),
                )),
            },
            Op::Add => {
                if inputs.iter().all(|s| *s == inputs[0]) {
                    Ok(x)
                } else {
                    let shapes: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
                    Err(OpError::new(
                        format!("shape mismatch: cannot add {}", shapes.join(" and ")),
                        "operands of `+` must have the same shape",
                    )
                    .help("project the shortcut, e.g. `conv2d(c, kernel: 1, stride: s)`, so the shapes agree"))
                }
            }
            Op::Concat => {
                let rest_matches = inputs
                    .iter()
                    .all(|s| s.rank() == x.rank() && s.dims().get(1..) == x.dims().get(1..));
                if rest_matches && x.rank() > 0 {
                    let channels = inputs.iter().map(|s| s.dims()[0]).sum();
                    let mut dims = x.dims().to_vec();
                    dims[0] = channels;
                    Ok(Shape(dims))
                } else {
                    let shapes: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
                    Err(OpError::new(
                        format!("shape mismatch: cannot concat {}", shapes.join(" and ")),
                        "all but the channel axis must agree",
                    ))
                }
            }
        }
    }

    /// Learnable parameters and buffers, in `state_dict` order.
    pub fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        let x = inputs.first().map(|s| s.dims()).unwrap_or_default();
        let channels = x.first().copied().unwrap_or(0);
        match self {
            Op::Conv2d(c) => {
                let mut p = vec![ParamSpec::learnable(
                    "weight",
                    vec![c.out_channels, channels / c.groups.max(1), c.kernel[0], c.kernel[1]],
                )];
                if c.bias {
                    p.push(ParamSpec::learnable("bias", vec![c.out_channels]));
                }
                p
            }
            Op::Dense { units, bias } => {
                let mut p = vec![ParamSpec::learnable("weight", vec![*units, channels])];
                if *bias {
                    p.push(ParamSpec::learnable("bias", vec![*units]));
                }
                p
            }
            Op::BatchNorm { .. } => vec![
                ParamSpec::learnable("weight", vec![channels]),
                ParamSpec::learnable("bias", vec![channels]),
                ParamSpec::buffer("running_mean", vec![channels]),
                ParamSpec::buffer("running_var", vec![channels]),
            ],
            _ => Vec::new(),
        }
    }

    /// Multiply-accumulates per sample: conv and dense only, biases excluded,
    /// the convention of the published counts.
    pub fn macs(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        let x = inputs.first().map(|s| s.dims()).unwrap_or_default();
        let out = out.elements() as u64;
        match self {
            Op::Conv2d(c) => {
                let per_output = (x.first().copied().unwrap_or(0) / c.groups.max(1)) as u64
                    * c.kernel[0] as u64
                    * c.kernel[1] as u64;
                out.saturating_mul(per_output)
            }
            Op::Dense { .. } => out.saturating_mul(x.first().copied().unwrap_or(0) as u64),
            _ => 0,
        }
    }

    /// Floating-point operations per sample at inference. Multiplies and adds
    /// count one each; a transcendental function counts one.
    pub fn flops(&self, inputs: &[&Shape], out_shape: &Shape) -> u64 {
        let out = out_shape.elements() as u64;
        let macs = self.macs(inputs, out_shape);
        match self {
            Op::Conv2d(Conv2d { bias, .. }) | Op::Dense { bias, .. } => {
                macs.saturating_mul(2).saturating_add(if *bias { out } else { 0 })
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                out.saturating_mul((p.kernel[0] * p.kernel[1]) as u64)
            }
            Op::GlobalAvgPool => inputs.first().map_or(0, |s| s.elements() as u64),
            Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh => out,
            Op::Softmax => out.saturating_mul(3),
            Op::BatchNorm { .. } => out.saturating_mul(2),
            Op::Lrn { size, .. } => out.saturating_mul(2 * *size as u64 + 2),
            Op::Add => out.saturating_mul(inputs.len().saturating_sub(1) as u64),
            Op::Input | Op::Flatten | Op::Dropout { .. } | Op::Concat => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(out: usize, k: usize, s: usize, p: usize) -> Op {
        Op::Conv2d(Conv2d {
            out_channels: out,
            kernel: [k, k],
            stride: [s, s],
            pad: [p, p],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        })
    }

    #[test]
    fn conv_follows_pytorch_floor_rule() {
        let x = Shape(vec![3, 227, 227]);
        assert_eq!(conv(96, 11, 4, 0).infer(&[&x]).unwrap(), Shape(vec![96, 55, 55]));
        let x = Shape(vec![3, 224, 224]);
        assert_eq!(conv(64, 7, 2, 3).infer(&[&x]).unwrap(), Shape(vec![64, 112, 112]));
    }

    #[test]
    fn kernel_larger_than_input_is_an_error() {
        let x = Shape(vec![1, 4, 4]);
        let err = conv(1, 5, 1, 0).infer(&[&x]).unwrap_err();
        assert!(err.message.contains("larger than its input"), "{}", err.message);
    }

    #[test]
    fn dilation_widens_the_window() {
        let mut c = Conv2d {
            out_channels: 1,
            kernel: [3, 3],
            stride: [1, 1],
            pad: [0, 0],
            dilation: [2, 2],
            groups: 1,
            bias: false,
        };
        let x = Shape(vec![1, 7, 7]);
        assert_eq!(Op::Conv2d(c.clone()).infer(&[&x]).unwrap(), Shape(vec![1, 3, 3]));
        c.dilation = [4, 4];
        assert!(Op::Conv2d(c).infer(&[&x]).is_err());
    }

    #[test]
    fn concat_adds_channels() {
        let a = Shape(vec![2, 4, 4]);
        let b = Shape(vec![3, 4, 4]);
        assert_eq!(Op::Concat.infer(&[&a, &b]).unwrap(), Shape(vec![5, 4, 4]));
        let c = Shape(vec![3, 4, 5]);
        assert!(Op::Concat.infer(&[&a, &c]).is_err());
    }
}
