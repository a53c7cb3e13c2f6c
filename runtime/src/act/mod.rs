//! Activations and softmax, forward and backward, as PyTorch defines them.
//!
//! Backward passes take the saved forward OUTPUT `y`, not the input: the
//! output is what the forward pass leaves in memory anyway (and in-place
//! forwards destroy the input), and for every activation here but the
//! gated ones ([`gated`]) the derivative is a function of `y`. Those
//! (GELU, SiLU, hardswish) have their backward from the input only, and the
//! output-based entry points refuse them with [`Error::NeedsInput`]; the
//! `*_from_input` ones serve every activation. ReLU and leaky ReLU follow
//! PyTorch at 0: the gradient there is that of the negative side (`0`,
//! `slope`), and so do ELU (`alpha`), hardtanh and hardsigmoid (0 at
//! their bounds).
//!
//! Shapes are flat buffers plus explicit dimensions; every kernel checks
//! lengths before touching memory and returns a [`LenError`] naming the
//! buffer. Nothing here allocates.

// Its vectorised kernels call functions compiled for AVX2 and AVX-512.
#[allow(unsafe_code)]
pub mod gated;
// Likewise.
#[allow(unsafe_code)]
mod lanes;
mod math;

use crate::error::{check_len, Error, LenError};
pub use crate::gemm::Activation;
use crate::isa::Isa;
pub use gated::{
    gated_backward_from_input, gated_backward_from_input_in_place,
    gated_backward_from_input_in_place_on, gated_backward_from_input_on, gated_forward,
    gated_forward_in_place, gated_forward_in_place_on, gated_forward_on, Gated,
};

/// `n·c·hw` without overflow panics: an impossible product saturates, and
/// then no buffer can match it, so the caller gets a length error.
pub(crate) fn numel(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}

/// `max(x, 0)`, passing NaN through as PyTorch does.
#[inline(always)]
pub fn relu_scalar(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `x` if `x > 0`, else `slope·x`.
#[inline(always)]
pub fn leaky_relu_scalar(slope: f32, x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        slope * x
    }
}

/// `1 / (1 + e^-x)`, evaluated so that `e^|x|` never overflows into a NaN
/// or loses the small tail for very negative `x`.
#[inline(always)]
pub fn sigmoid_scalar(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `x` clamped to `[min, max]`, passing NaN through as PyTorch's
/// `hardtanh` does.
#[inline(always)]
pub fn hardtanh_scalar(min: f32, max: f32, x: f32) -> f32 {
    if x < min {
        min
    } else if x > max {
        max
    } else {
        x
    }
}

/// `min(max(x + 3, 0), 6) / 6`, PyTorch's `hardsigmoid` to the bit.
#[inline(always)]
pub fn hardsigmoid_scalar(x: f32) -> f32 {
    hardtanh_scalar(0.0, 6.0, x + 3.0) / 6.0
}

/// `x` if `x > 0`, else `alpha·(eˣ − 1)`, with an `eˣ − 1` that keeps its
/// digits near 0 and vectorises. The exponential's argument is clamped to
/// the negative side, whose result is the one kept.
#[inline(always)]
pub fn elu_scalar(alpha: f32, x: f32) -> f32 {
    let negative_side = if x > 0.0 { 0.0 } else { x };
    let e = alpha * math::expm1(negative_side);
    if x > 0.0 {
        x
    } else {
        e
    }
}

/// `act(x)` for one element.
#[inline(always)]
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => relu_scalar(x),
        Activation::LeakyRelu(slope) => leaky_relu_scalar(slope, x),
        Activation::Sigmoid => sigmoid_scalar(x),
        Activation::Tanh => x.tanh(),
        Activation::HardTanh(min, max) => hardtanh_scalar(min, max, x),
        Activation::HardSigmoid => hardsigmoid_scalar(x),
        Activation::Elu(alpha) => elu_scalar(alpha, x),
        Activation::Gated(g) => g.forward(x),
    }
}

/// `act'(x)` written in terms of `y = act(x)`.
///
/// For leaky ReLU this needs `slope ≥ 0`: only then does `y > 0` mean
/// `x > 0` (PyTorch rejects in-place leaky ReLU with a negative slope in
/// autograd for the same reason). Use [`leaky_relu_backward_from_input`]
/// otherwise. A gated activation has no such formula: NaN, so that a
/// caller that skipped [`Activation::needs_input`] sees it rather than a
/// plausible wrong gradient (every slice kernel here refuses them first).
#[inline(always)]
pub fn derivative_from_output(act: Activation, y: f32) -> f32 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu(slope) => {
            if y > 0.0 {
                1.0
            } else {
                slope
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
        // `y` is strictly inside `(min, max)` exactly where `x` is.
        Activation::HardTanh(min, max) => inside(min, max, y, 1.0),
        // Likewise but at x = 3 − 2⁻²², whose x + 3 rounds to 6: PyTorch's
        // forward gives 1 there too, but its gradient 1/6 where this is 0.
        Activation::HardSigmoid => inside(0.0, 1.0, y, 1.0 / 6.0),
        Activation::Elu(alpha) => {
            if y > 0.0 {
                1.0
            } else {
                y + alpha
            }
        }
        Activation::Gated(_) => f32::NAN,
    }
}

/// `act'(x)` from the input `x`, for every activation; at ReLU's kink and
/// for NaN the same choices as the output-based one (the negative side).
#[inline(always)]
pub fn derivative_from_input(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                1.0
            } else {
                slope
            }
        }
        Activation::Sigmoid => {
            let s = sigmoid_scalar(x);
            s * (1.0 - s)
        }
        Activation::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
        Activation::HardTanh(min, max) => inside(min, max, x, 1.0),
        Activation::HardSigmoid => inside(-3.0, 3.0, x, 1.0 / 6.0),
        Activation::Elu(alpha) => {
            let negative_side = if x > 0.0 { 0.0 } else { x };
            let e = alpha * math::exp(negative_side);
            if x > 0.0 {
                1.0
            } else {
                e
            }
        }
        Activation::Gated(g) => g.derivative(x),
    }
}

/// `slope` strictly inside `(lo, hi)`, else 0: PyTorch's `hardtanh` and
/// `hardsigmoid` backwards, which pass no gradient at the bounds.
#[inline(always)]
fn inside(lo: f32, hi: f32, v: f32, slope: f32) -> f32 {
    if v > lo && v < hi {
        slope
    } else {
        0.0
    }
}

/// The error the output-based backward kernels give for an activation
/// whose derivative needs its input.
fn refuse_gated(op: &'static str, act: Activation) -> Result<(), Error> {
    if act.needs_input() {
        Err(Error::NeedsInput { op })
    } else {
        Ok(())
    }
}

/// Expands `$body` once per activation, with `$f` bound to a closure that
/// applies that one variant (`$fun(variant, x)`, with `$fun` [`activate`]
/// or [`derivative_from_output`]). Inside each closure the variant is a
/// constant, so the `match` folds away and every loop is compiled, and
/// vectorised, for one function; with the `match` inside the loop, the
/// loops ran at a fraction of memory speed.
macro_rules! per_activation {
    ($act:expr, $fun:path, |$f:ident| $body:expr) => {{
        use $crate::gemm::Activation as A;
        match $act {
            A::Identity => {
                let $f = |v: f32| $fun(A::Identity, v);
                $body
            }
            A::Relu => {
                let $f = |v: f32| $fun(A::Relu, v);
                $body
            }
            A::LeakyRelu(slope) => {
                let $f = move |v: f32| $fun(A::LeakyRelu(slope), v);
                $body
            }
            A::Sigmoid => {
                let $f = |v: f32| $fun(A::Sigmoid, v);
                $body
            }
            A::Tanh => {
                let $f = |v: f32| $fun(A::Tanh, v);
                $body
            }
            A::HardTanh(min, max) => {
                let $f = move |v: f32| $fun(A::HardTanh(min, max), v);
                $body
            }
            A::HardSigmoid => {
                let $f = |v: f32| $fun(A::HardSigmoid, v);
                $body
            }
            A::Elu(alpha) => {
                let $f = move |v: f32| $fun(A::Elu(alpha), v);
                $body
            }
            A::Gated(g) => $crate::act::gated::per_gate!(g, |G| {
                let $f = |v: f32| $fun(A::Gated(<G as $crate::act::gated::Gate>::WHICH), v);
                $body
            }),
        }
    }};
}

pub(crate) use per_activation;

/// `y = act(x)` elementwise, on the best instruction set this CPU has.
pub fn forward(act: Activation, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    forward_on(Isa::best(), act, x, y)
}

/// [`forward`] on the kernels of `isa` (the portable ones if the CPU lacks
/// it), so that tests can run every path.
pub fn forward_on(isa: Isa, act: Activation, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    check_len("activation_forward", "y", y.len(), x.len())?;
    if let Activation::Gated(g) = act {
        return gated::gated_forward_on(isa, g, x, y);
    }
    per_activation!(act, activate, |f| crate::par::zip2(y, x, |y, x| lanes::map_on(isa, f, x, y)));
    Ok(())
}

/// `x = act(x)` elementwise; the buffer then holds the `y` that
/// [`backward`] needs.
pub fn forward_in_place(act: Activation, x: &mut [f32]) {
    forward_in_place_on(Isa::best(), act, x)
}

/// [`forward_in_place`] on the kernels of `isa`.
pub fn forward_in_place_on(isa: Isa, act: Activation, x: &mut [f32]) {
    if let Activation::Gated(g) = act {
        return gated::gated_forward_in_place_on(isa, g, x);
    }
    per_activation!(act, activate, |f| crate::par::each(x, |x| lanes::map_in_place_on(isa, f, x)));
}

/// `row = act(row + bias)` (or `act(row)`), in one pass on the best
/// instruction set this CPU has: a GEMM tile's epilogue, one row of C at a
/// time.
pub(crate) fn bias_activate_row(act: Activation, bias: Option<f32>, row: &mut [f32]) {
    let isa = Isa::best();
    match (act, bias) {
        (Activation::Identity, None) => {}
        (Activation::Gated(g), _) => {
            if let Some(b) = bias {
                row.iter_mut().for_each(|v| *v += b);
            }
            gated::forward_row(g, row)
        }
        (_, Some(b)) => {
            per_activation!(act, activate, |f| lanes::map_in_place_on(isa, move |v| f(v + b), row))
        }
        (_, None) => per_activation!(act, activate, |f| lanes::map_in_place_on(isa, f, row)),
    }
}

/// `dx = dy · act'(x)`, with the derivative taken from the saved output `y`.
/// `dx` may not alias `dy`; see [`backward_in_place`] for that. A gated
/// activation is [`Error::NeedsInput`]: see [`backward_from_input`].
pub fn backward(act: Activation, y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    backward_on(Isa::best(), act, y, dy, dx)
}

/// [`backward`] on the kernels of `isa`.
pub fn backward_on(
    isa: Isa,
    act: Activation,
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    refuse_gated("activation_backward", act)?;
    Ok(backward_from_output(isa, act, y, dy, dx)?)
}

/// [`backward`] of an activation known not to be gated.
fn backward_from_output(
    isa: Isa,
    act: Activation,
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    check_len("activation_backward", "dy", dy.len(), y.len())?;
    check_len("activation_backward", "dx", dx.len(), y.len())?;
    per_activation!(act, derivative_from_output, |d| crate::par::zip3(dx, dy, y, |dx, dy, y| {
        lanes::scale_on(isa, d, y, dy, dx)
    }));
    Ok(())
}

/// [`backward`] overwriting the incoming gradient: `g = g · act'(y)`.
pub fn backward_in_place(act: Activation, y: &[f32], g: &mut [f32]) -> Result<(), Error> {
    refuse_gated("activation_backward", act)?;
    Ok(backward_in_place_from_output(Isa::best(), act, y, g)?)
}

/// [`backward_in_place`] of an activation known not to be gated.
fn backward_in_place_from_output(
    isa: Isa,
    act: Activation,
    y: &[f32],
    g: &mut [f32],
) -> Result<(), LenError> {
    check_len("activation_backward", "dy", g.len(), y.len())?;
    per_activation!(act, derivative_from_output, |d| crate::par::zip2(g, y, |g, y| {
        lanes::scale_in_place_on(isa, d, y, g)
    }));
    Ok(())
}

/// `dx = dy · act'(x)` from the forward's INPUT `x`: every activation,
/// gated ones included. `dx` may not alias `dy`.
pub fn backward_from_input(
    act: Activation,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    backward_from_input_on(Isa::best(), act, x, dy, dx)
}

/// [`backward_from_input`] on the kernels of `isa`.
pub fn backward_from_input_on(
    isa: Isa,
    act: Activation,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    if let Activation::Gated(g) = act {
        return gated::gated_backward_from_input_on(isa, g, x, dy, dx);
    }
    check_len("activation_backward_from_input", "dy", dy.len(), x.len())?;
    check_len("activation_backward_from_input", "dx", dx.len(), x.len())?;
    per_activation!(act, derivative_from_input, |d| crate::par::zip3(dx, dy, x, |dx, dy, x| {
        lanes::scale_on(isa, d, x, dy, dx)
    }));
    Ok(())
}

/// [`backward_from_input`] overwriting the incoming gradient:
/// `d = d · act'(x)`.
pub fn backward_from_input_in_place(
    act: Activation,
    x: &[f32],
    d: &mut [f32],
) -> Result<(), LenError> {
    if let Activation::Gated(g) = act {
        return gated_backward_from_input_in_place(g, x, d);
    }
    check_len("activation_backward_from_input", "d", d.len(), x.len())?;
    let isa = Isa::best();
    per_activation!(act, derivative_from_input, |f| crate::par::zip2(d, x, |d, x| {
        lanes::scale_in_place_on(isa, f, x, d)
    }));
    Ok(())
}

macro_rules! named_activation {
    ($act:expr, $fwd:ident, $fwd_in_place:ident, $bwd:ident, $bwd_in_place:ident, $doc:literal) => {
        #[doc = concat!("`y = ", $doc, "(x)` elementwise.")]
        pub fn $fwd(x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
            forward($act, x, y)
        }
        #[doc = concat!("`x = ", $doc, "(x)` elementwise.")]
        pub fn $fwd_in_place(x: &mut [f32]) {
            forward_in_place($act, x)
        }
        #[doc = concat!("`dx = dy · ", $doc, "'(x)`, from the saved output `y`.")]
        pub fn $bwd(y: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<(), LenError> {
            backward_from_output(Isa::best(), $act, y, dy, dx)
        }
        #[doc = concat!("`g = g · ", $doc, "'(x)`, from the saved output `y`.")]
        pub fn $bwd_in_place(y: &[f32], g: &mut [f32]) -> Result<(), LenError> {
            backward_in_place_from_output(Isa::best(), $act, y, g)
        }
    };
}

named_activation!(
    Activation::Relu,
    relu,
    relu_in_place,
    relu_backward,
    relu_backward_in_place,
    "relu"
);
named_activation!(
    Activation::Sigmoid,
    sigmoid,
    sigmoid_in_place,
    sigmoid_backward,
    sigmoid_backward_in_place,
    "sigmoid"
);
named_activation!(
    Activation::Tanh,
    tanh,
    tanh_in_place,
    tanh_backward,
    tanh_backward_in_place,
    "tanh"
);

/// `y = leaky_relu(x)` with negative slope `slope` (PyTorch's
/// `negative_slope`, default 0.01).
pub fn leaky_relu(slope: f32, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    forward(Activation::LeakyRelu(slope), x, y)
}

/// `x = leaky_relu(x)` in place.
pub fn leaky_relu_in_place(slope: f32, x: &mut [f32]) {
    forward_in_place(Activation::LeakyRelu(slope), x)
}

/// `dx = dy · leaky_relu'(x)` from the saved output `y`; needs `slope ≥ 0`
/// (see [`derivative_from_output`]).
pub fn leaky_relu_backward(
    slope: f32,
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    backward_from_output(Isa::best(), Activation::LeakyRelu(slope), y, dy, dx)
}

/// `g = g · leaky_relu'(x)` from the saved output `y`; needs `slope ≥ 0`.
pub fn leaky_relu_backward_in_place(slope: f32, y: &[f32], g: &mut [f32]) -> Result<(), LenError> {
    backward_in_place_from_output(Isa::best(), Activation::LeakyRelu(slope), y, g)
}

/// `dx = dy · leaky_relu'(x)` from the INPUT `x`: correct for any slope,
/// including negative ones, where the output does not tell the sides apart.
pub fn leaky_relu_backward_from_input(
    slope: f32,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    check_len("leaky_relu_backward", "dy", dy.len(), x.len())?;
    check_len("leaky_relu_backward", "dx", dx.len(), x.len())?;
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        *dx = if x > 0.0 { dy } else { dy * slope };
    }
    Ok(())
}

/// Softmax over the channel axis of `[n, c, hw]` (PyTorch's
/// `softmax(x, dim=1)`; `hw = 1` for `[n, c]` logits).
///
/// The maximum over the channels is subtracted first, so logits of ±1000
/// give exact results instead of `inf / inf`. `c = 0` is an empty op.
pub fn softmax(n: usize, c: usize, hw: usize, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("softmax", "x", x.len(), len)?;
    check_len("softmax", "y", y.len(), len)?;
    y.copy_from_slice(x);
    softmax_rows(c, hw, y);
    Ok(())
}

/// [`softmax`] overwriting its input.
pub fn softmax_in_place(n: usize, c: usize, hw: usize, x: &mut [f32]) -> Result<(), LenError> {
    check_len("softmax", "x", x.len(), numel(&[n, c, hw]))?;
    softmax_rows(c, hw, x);
    Ok(())
}

/// Softmax in place over every channel fibre of a checked `[_, c, hw]`
/// buffer. The channels of one position are `hw` apart; with `hw = 1`
/// (the common `[n, classes]` case) that is a contiguous row.
fn softmax_rows(c: usize, hw: usize, x: &mut [f32]) {
    if c == 0 || hw == 0 {
        return;
    }
    for sample in x.chunks_exact_mut(c * hw) {
        for s in 0..hw {
            let fibre = || (s..c * hw).step_by(hw);
            let max = fibre().map(|i| sample[i]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for i in fibre() {
                let e = (sample[i] - max).exp();
                sample[i] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for i in fibre() {
                sample[i] *= inv;
            }
        }
    }
}

/// The softmax VJP from the saved output `y`:
/// `dx_c = y_c · (dy_c − Σ_k dy_k·y_k)` over each channel fibre.
pub fn softmax_backward(
    n: usize,
    c: usize,
    hw: usize,
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("softmax_backward", "y", y.len(), len)?;
    check_len("softmax_backward", "dy", dy.len(), len)?;
    check_len("softmax_backward", "dx", dx.len(), len)?;
    if c == 0 || hw == 0 {
        return Ok(());
    }
    let stride = c * hw;
    for ((y, dy), dx) in
        y.chunks_exact(stride).zip(dy.chunks_exact(stride)).zip(dx.chunks_exact_mut(stride))
    {
        for s in 0..hw {
            let fibre = || (s..stride).step_by(hw);
            let dot: f32 = fibre().map(|i| dy[i] * y[i]).sum();
            for i in fibre() {
                dx[i] = y[i] * (dy[i] - dot);
            }
        }
    }
    Ok(())
}

/// Log-softmax over the channel axis of `[n, c, hw]` (PyTorch's
/// `log_softmax(x, dim=1)`): `y_c = (x_c − m) − ln Σ_k e^(x_k − m)` with
/// `m` the fibre's maximum, so no exponential overflows and the largest
/// logit's term is exactly 1, keeping the logarithm's argument in
/// `[1, c]`: no `ln 0` for logits far below the maximum, whose `y` is then
/// their exact distance below it.
pub fn log_softmax(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("log_softmax", "x", x.len(), len)?;
    check_len("log_softmax", "y", y.len(), len)?;
    if c == 0 || hw == 0 {
        return Ok(());
    }
    let stride = c * hw;
    for (x, y) in x.chunks_exact(stride).zip(y.chunks_exact_mut(stride)) {
        if hw == 1 {
            log_softmax_row(x, y);
            continue;
        }
        for s in 0..hw {
            let fibre = || (s..stride).step_by(hw);
            let max = fibre().map(|i| x[i]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = fibre().map(|i| math::exp(x[i] - max)).sum();
            let log_sum = sum.ln();
            for i in fibre() {
                y[i] = (x[i] - max) - log_sum;
            }
        }
    }
    Ok(())
}

/// [`log_softmax`] of one contiguous row (`hw = 1`, logits): the maximum
/// and the sum over lanes of eight running side by side, and the
/// exponential the vectorisable one, so that every loop vectorises.
fn log_softmax_row(x: &[f32], y: &mut [f32]) {
    const LANES: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let (whole, tail) = x.as_chunks::<LANES>();
    for chunk in whole {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m || v.is_nan() { v } else { *m };
        }
    }
    let max =
        tail.iter().chain(&lanes).fold(
            f32::NEG_INFINITY,
            |m, &v| {
                if v > m || v.is_nan() {
                    v
                } else {
                    m
                }
            },
        );
    // The shifted logits go to `y` first, then their exponentials are
    // summed from there.
    for (y, &v) in y.iter_mut().zip(x) {
        *y = v - max;
    }
    let mut sums = [0.0f32; LANES];
    let (whole, tail) = y.as_chunks::<LANES>();
    for chunk in whole {
        for (s, &v) in sums.iter_mut().zip(chunk) {
            *s += math::exp(v);
        }
    }
    let sum = tail.iter().map(|&v| math::exp(v)).sum::<f32>() + sums.iter().sum::<f32>();
    let log_sum = sum.ln();
    for y in y.iter_mut() {
        *y -= log_sum;
    }
}

/// The log-softmax VJP from the saved output `y`:
/// `dx_c = dy_c − e^(y_c) · Σ_k dy_k` over each channel fibre.
pub fn log_softmax_backward(
    n: usize,
    c: usize,
    hw: usize,
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("log_softmax_backward", "y", y.len(), len)?;
    check_len("log_softmax_backward", "dy", dy.len(), len)?;
    check_len("log_softmax_backward", "dx", dx.len(), len)?;
    if c == 0 || hw == 0 {
        return Ok(());
    }
    let stride = c * hw;
    for ((y, dy), dx) in
        y.chunks_exact(stride).zip(dy.chunks_exact(stride)).zip(dx.chunks_exact_mut(stride))
    {
        if hw == 1 {
            let total: f32 = dy.iter().sum();
            for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
                *dx = dy - math::exp(y) * total;
            }
            continue;
        }
        for s in 0..hw {
            let fibre = || (s..stride).step_by(hw);
            let total: f32 = fibre().map(|i| dy[i]).sum();
            for i in fibre() {
                dx[i] = dy[i] - math::exp(y[i]) * total;
            }
        }
    }
    Ok(())
}

/// `x = act(x + bias[channel])` over NCHW `[n, c, hw]` in one pass: the
/// epilogue of a convolution or dense layer when the GEMM could not fuse it
/// (for `[n, features]` use `hw = 1`).
pub fn bias_add_act(
    n: usize,
    c: usize,
    hw: usize,
    bias: &[f32],
    act: Activation,
    x: &mut [f32],
) -> Result<(), LenError> {
    check_len("bias_add_act", "bias", bias.len(), c)?;
    check_len("bias_add_act", "x", x.len(), numel(&[n, c, hw]))?;
    if hw == 0 {
        return Ok(());
    }
    // One loop per activation, as in `forward`, so a gated one is not a
    // `match` per element.
    per_activation!(act, activate, |f| {
        for (i, channel) in x.chunks_exact_mut(hw).enumerate() {
            let b = bias[i % c];
            for x in channel {
                *x = f(*x + b);
            }
        }
    });
    Ok(())
}

/// `y = act(x + bias[channel])` over NCHW `[n, c, hw]`, out of place.
#[allow(clippy::too_many_arguments)]
pub fn bias_add_act_to(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    bias: &[f32],
    act: Activation,
    y: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("bias_add_act", "bias", bias.len(), c)?;
    check_len("bias_add_act", "x", x.len(), len)?;
    check_len("bias_add_act", "y", y.len(), len)?;
    if hw == 0 {
        return Ok(());
    }
    per_activation!(act, activate, |f| {
        for (i, (y, x)) in y.chunks_exact_mut(hw).zip(x.chunks_exact(hw)).enumerate() {
            let b = bias[i % c];
            for (y, &x) in y.iter_mut().zip(x) {
                *y = f(x + b);
            }
        }
    });
    Ok(())
}

/// The backward of [`bias_add_act`] in one pass: `dz = dy · act'(z)` from
/// the saved output `y`, and `dbias[c] = Σ_{n, hw} dz` (overwritten, not
/// accumulated). `dz` is the gradient for whatever produced `x`. A gated
/// activation is [`Error::NeedsInput`].
#[allow(clippy::too_many_arguments)]
pub fn bias_act_backward(
    n: usize,
    c: usize,
    hw: usize,
    act: Activation,
    y: &[f32],
    dy: &[f32],
    dz: &mut [f32],
    dbias: &mut [f32],
) -> Result<(), Error> {
    refuse_gated("bias_act_backward", act)?;
    let len = numel(&[n, c, hw]);
    check_len("bias_act_backward", "y", y.len(), len)?;
    check_len("bias_act_backward", "dy", dy.len(), len)?;
    check_len("bias_act_backward", "dz", dz.len(), len)?;
    check_len("bias_act_backward", "dbias", dbias.len(), c)?;
    dbias.fill(0.0);
    if hw == 0 {
        return Ok(());
    }
    let rows = y.chunks_exact(hw).zip(dy.chunks_exact(hw)).zip(dz.chunks_exact_mut(hw));
    for (i, ((y, dy), dz)) in rows.enumerate() {
        let mut partial = 0.0f32;
        for ((dz, &dy), &y) in dz.iter_mut().zip(dy).zip(y) {
            *dz = dy * derivative_from_output(act, y);
            partial += *dz;
        }
        dbias[i % c] += partial;
    }
    Ok(())
}
