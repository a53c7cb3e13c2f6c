//! Weight initialisers as `torch.nn.init` defines them (LeCun, Xavier/Glorot,
//! He/Kaiming; uniform and normal), plus PyTorch's default initialisation of
//! `nn.Linear` and `nn.Conv2d`, which is what a generated `new(seed)` uses.
//!
//! Every initialiser draws from the counter-based RNG keyed by
//! `(seed, stream)`: give each tensor its own stream (its index in the
//! network, say) and the weights are the same on every run and platform.
//! Uniforms use the stream's uniform sequence and normals its normal one.

use crate::error::{check_len, LenError};
use crate::rng;

/// The fans of a weight tensor, as `torch.nn.init._calculate_fan_in_and_fan_out`
/// computes them: `fan_in = shape[1]·receptive`, `fan_out = shape[0]·receptive`
/// with `receptive` the product of the dimensions after the first two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fans {
    pub fan_in: usize,
    pub fan_out: usize,
    /// `shape[0]`: the output features or channels, the length of the bias.
    pub outputs: usize,
    /// The number of elements of the weight.
    pub numel: usize,
}

impl Fans {
    /// A dense weight `[out_features, in_features]`.
    pub fn dense(out_features: usize, in_features: usize) -> Self {
        Fans::from_dims(out_features, in_features, 1)
    }

    /// A convolution weight `[out_channels, in_channels / groups, kh, kw]`:
    /// `fan_in = in_channels/groups · kh · kw`, `fan_out = out_channels · kh · kw`
    /// (PyTorch ignores groups in `fan_out`, and so do we).
    pub fn conv2d(out_channels: usize, in_per_group: usize, kh: usize, kw: usize) -> Self {
        Fans::from_dims(out_channels, in_per_group, kh.saturating_mul(kw))
    }

    /// Any weight shape with at least two dimensions; `None` for fewer,
    /// where PyTorch raises.
    pub fn of_shape(shape: &[usize]) -> Option<Self> {
        match shape {
            [out, inp, rest @ ..] => Some(Fans::from_dims(
                *out,
                *inp,
                rest.iter().fold(1usize, |a, &d| a.saturating_mul(d)),
            )),
            _ => None,
        }
    }

    fn from_dims(out: usize, inp: usize, receptive: usize) -> Self {
        Fans {
            fan_in: inp.saturating_mul(receptive),
            fan_out: out.saturating_mul(receptive),
            outputs: out,
            numel: out.saturating_mul(inp).saturating_mul(receptive),
        }
    }

    fn get(&self, mode: FanMode) -> usize {
        match mode {
            FanMode::FanIn => self.fan_in,
            FanMode::FanOut => self.fan_out,
        }
    }
}

/// Which fan Kaiming initialisation preserves the variance of: `FanIn` for
/// the forward pass (PyTorch's default), `FanOut` for the backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// The nonlinearity that follows a layer, for [`gain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity, convolutions and sigmoid all have gain 1 in PyTorch.
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    /// Leaky ReLU with this negative slope.
    LeakyRelu(f64),
    Selu,
}

/// `torch.nn.init.calculate_gain`: 1 for linear and sigmoid, 5/3 for tanh,
/// √2 for ReLU, √(2/(1 + slope²)) for leaky ReLU, 3/4 for SELU.
pub fn gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `w ~ U(−bound, bound)`, as `tensor.uniform_(-bound, bound)`:
/// `−bound + 2·bound·u` with `u` in [0, 1).
pub fn uniform(w: &mut [f32], bound: f64, seed: u64, stream: u64) {
    rng::fill_uniform(seed, stream, w);
    let (low, width) = (-bound as f32, (2.0 * bound) as f32);
    for w in w.iter_mut() {
        *w = low + width * *w;
    }
}

/// `w ~ N(0, std²)`.
pub fn normal(w: &mut [f32], std: f64, seed: u64, stream: u64) {
    rng::fill_normal(seed, stream, w);
    let std = std as f32;
    for w in w.iter_mut() {
        *w *= std;
    }
}

/// `1/√fan`, with PyTorch's zero for an empty fan rather than infinity.
fn inv_sqrt(fan: usize) -> f64 {
    if fan == 0 {
        0.0
    } else {
        1.0 / (fan as f64).sqrt()
    }
}

/// `torch.nn.init.xavier_uniform_(w, gain)`: `U(−a, a)` with
/// `a = gain · √(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(
    w: &mut [f32],
    fans: Fans,
    gain: f64,
    seed: u64,
    stream: u64,
) -> Result<(), LenError> {
    check_len("xavier_uniform", "weight", w.len(), fans.numel)?;
    let std = gain * 2f64.sqrt() * inv_sqrt(fans.fan_in.saturating_add(fans.fan_out));
    uniform(w, 3f64.sqrt() * std, seed, stream);
    Ok(())
}

/// `torch.nn.init.xavier_normal_(w, gain)`: `N(0, std²)` with
/// `std = gain · √(2 / (fan_in + fan_out))`.
pub fn xavier_normal(
    w: &mut [f32],
    fans: Fans,
    gain: f64,
    seed: u64,
    stream: u64,
) -> Result<(), LenError> {
    check_len("xavier_normal", "weight", w.len(), fans.numel)?;
    let std = gain * 2f64.sqrt() * inv_sqrt(fans.fan_in.saturating_add(fans.fan_out));
    normal(w, std, seed, stream);
    Ok(())
}

/// `torch.nn.init.kaiming_uniform_(w, mode, gain)`: `U(−b, b)` with
/// `b = gain · √3 / √fan`. PyTorch's `(a, nonlinearity)` arguments become
/// `gain(Nonlinearity::LeakyRelu(a))` or `gain(Nonlinearity::Relu)`.
pub fn kaiming_uniform(
    w: &mut [f32],
    fans: Fans,
    mode: FanMode,
    gain: f64,
    seed: u64,
    stream: u64,
) -> Result<(), LenError> {
    check_len("kaiming_uniform", "weight", w.len(), fans.numel)?;
    uniform(w, 3f64.sqrt() * gain * inv_sqrt(fans.get(mode)), seed, stream);
    Ok(())
}

/// `torch.nn.init.kaiming_normal_(w, mode, gain)`: `N(0, std²)` with
/// `std = gain / √fan`.
pub fn kaiming_normal(
    w: &mut [f32],
    fans: Fans,
    mode: FanMode,
    gain: f64,
    seed: u64,
    stream: u64,
) -> Result<(), LenError> {
    check_len("kaiming_normal", "weight", w.len(), fans.numel)?;
    normal(w, gain * inv_sqrt(fans.get(mode)), seed, stream);
    Ok(())
}

/// LeCun uniform (`jax.nn.initializers.lecun_uniform`; PyTorch has none):
/// `U(−b, b)` with `b = √(3 / fan_in)`, i.e. variance `1/fan_in`.
pub fn lecun_uniform(w: &mut [f32], fans: Fans, seed: u64, stream: u64) -> Result<(), LenError> {
    check_len("lecun_uniform", "weight", w.len(), fans.numel)?;
    uniform(w, 3f64.sqrt() * inv_sqrt(fans.fan_in), seed, stream);
    Ok(())
}

/// LeCun normal: `N(0, 1/fan_in)`. Untruncated, unlike JAX's
/// `lecun_normal`, which draws from a truncated normal of the same variance.
pub fn lecun_normal(w: &mut [f32], fans: Fans, seed: u64, stream: u64) -> Result<(), LenError> {
    check_len("lecun_normal", "weight", w.len(), fans.numel)?;
    normal(w, inv_sqrt(fans.fan_in), seed, stream);
    Ok(())
}

/// The default weight of `nn.Linear` and `nn.Conv2d`:
/// `kaiming_uniform_(w, a=√5)`, whose gain √(1/3) makes the bound exactly
/// `1/√fan_in`.
pub fn default_weight(w: &mut [f32], fans: Fans, seed: u64, stream: u64) -> Result<(), LenError> {
    check_len("default_weight", "weight", w.len(), fans.numel)?;
    uniform(w, inv_sqrt(fans.fan_in), seed, stream);
    Ok(())
}

/// The default bias of `nn.Linear` and `nn.Conv2d`: `U(−b, b)` with
/// `b = 1/√fan_in` of the WEIGHT (0 when the fan is empty); `bias` has
/// `fans.outputs` elements.
pub fn default_bias(bias: &mut [f32], fans: Fans, seed: u64, stream: u64) -> Result<(), LenError> {
    check_len("default_bias", "bias", bias.len(), fans.outputs)?;
    uniform(bias, inv_sqrt(fans.fan_in), seed, stream);
    Ok(())
}

/// How a generated model starts one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    /// [`uniform`] in `[-bound, bound)`.
    Uniform(f64),
    /// Every value the same.
    Fill(f32),
}

impl Start {
    /// Starts `values`, drawing from RNG stream `stream` of `seed`.
    pub fn apply(self, values: &mut [f32], seed: u64, stream: u64) {
        match self {
            Start::Uniform(bound) => uniform(values, bound, seed, stream),
            Start::Fill(v) => values.fill(v),
        }
    }
}
