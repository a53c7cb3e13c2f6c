//! Gated activations `f(x) = x·g(x)` (GELU, its tanh form, SiLU,
//! hardswish): forward,
//! and backward from the INPUT, vectorised for each instruction set.
//!
//! Their derivative `f'(x) = g(x) + x·g'(x)` is a function of `x`, not of
//! `y = f(x)` (GELU and SiLU are not monotonic, so `y` does not even tell
//! `x` apart), so unlike the other activations their backward reads the
//! pre-activation. The compiler fuses them into forward kernels only at
//! inference; in training each is a step of its own.
//!
//! Every function here is built from `+ − × ÷`, comparisons and bit moves
//! on `f32`, with an `exp` of our own: `f32::exp` is a scalar libm call,
//! which would keep every loop over it scalar. So one generic loop body per
//! kernel vectorises under each instruction set; the entry points compiled
//! for AVX-512 and AVX2 are chosen at run time ([`Isa`]). Rust never fuses
//! a multiply and an add by itself, so every path computes the same bits,
//! and the fused GEMM epilogues (which use the scalar [`Gated::forward`])
//! agree with the unfused kernels bit for bit.
//!
//! Adding an activation of this form: a variant of [`Gated`], a gate type
//! implementing `Gate` beside the others, its arm in `per_gate!`, and its
//! formulas in `reference/act.rs`.

use super::math::exp;
use crate::error::{check_len, LenError};
use crate::isa::Isa;

/// An activation `f(x) = x·g(x)` whose derivative needs its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gated {
    /// PyTorch's default `gelu`: `x·Φ(x) = ½·x·(1 + erf(x/√2))`.
    Gelu,
    /// `gelu(approximate='tanh')`: `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh,
    /// `silu` (swish): `x·σ(x)`.
    Silu,
    /// `hardswish`: `x·min(max(x + 3, 0), 6)/6`.
    HardSwish,
}

/// The arithmetic of one gated activation on one element. Implemented by
/// a zero-sized type per [`Gated`] variant, so that each loop is compiled
/// for one activation with nothing to decide per element.
pub(crate) trait Gate {
    /// The variant this type computes.
    const WHICH: Gated;
    /// `f(x) = x·g(x)`.
    fn forward(x: f32) -> f32;
    /// `f'(x) = g(x) + x·g'(x)`.
    fn derivative(x: f32) -> f32;
}

/// Expands `$body` once per [`Gated`] variant, with the type `$G` bound to
/// that variant's [`Gate`].
macro_rules! per_gate {
    ($g:expr, |$G:ident| $body:expr) => {
        match $g {
            $crate::act::Gated::Gelu => {
                type $G = $crate::act::gated::GeluGate;
                $body
            }
            $crate::act::Gated::GeluTanh => {
                type $G = $crate::act::gated::GeluTanhGate;
                $body
            }
            $crate::act::Gated::Silu => {
                type $G = $crate::act::gated::SiluGate;
                $body
            }
            $crate::act::Gated::HardSwish => {
                type $G = $crate::act::gated::HardSwishGate;
                $body
            }
        }
    };
}

pub(crate) use per_gate;

impl Gated {
    /// `f(x)` for one element: the same bits as the vectorised kernels.
    #[inline(always)]
    pub fn forward(self, x: f32) -> f32 {
        per_gate!(self, |G| G::forward(x))
    }

    /// `f'(x)` for one element, from the input `x`.
    #[inline(always)]
    pub fn derivative(self, x: f32) -> f32 {
        per_gate!(self, |G| G::derivative(x))
    }
}

/// `(σ(z), σ(z)·σ(−z))` given `e = e^{−|z|}` and whether `z < 0`: both from
/// the one exponential that cannot overflow, so neither loses its tail.
#[inline(always)]
fn sigmoid_parts(e: f32, negative: bool) -> (f32, f32) {
    let inv = 1.0 / (1.0 + e);
    let s = if negative { e * inv } else { inv };
    (s, e * inv * inv)
}

/// `erfc(z)` for `z ≥ 0` with `h = z²` given, by the Chebyshev fit of
/// Numerical Recipes' `erfcc` (fractional error below 1.2e-7 everywhere):
/// one formula over the whole range, so no per-lane choice of interval.
#[inline(always)]
fn erfc_nonneg(z: f32, h: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77;
    let p = p * t - 0.822_152_23;
    let p = p * t + 1.488_515_9;
    let p = p * t - 1.135_204;
    let p = p * t + 0.278_868_07;
    let p = p * t - 0.186_288_06;
    let p = p * t + 0.096_784_18;
    let p = p * t + 0.374_091_96;
    let p = p * t + 1.000_023_7;
    t * exp(p * t - 1.265_512_2 - h)
}

/// [`Gated::Gelu`]: `g = Φ`, `g' = φ`, the standard normal's CDF and density.
#[derive(Debug)]
pub(crate) struct GeluGate;

impl GeluGate {
    /// `(Φ(x), x²/2)`. Φ comes from `erfc(|x|/√2)` on both sides, so the
    /// negative side keeps its relative accuracy instead of being
    /// `1 + erf` with erf near −1.
    #[inline(always)]
    fn cdf(x: f32) -> (f32, f32) {
        let h = 0.5 * x * x;
        let half_tail = 0.5 * erfc_nonneg(x.abs() * std::f32::consts::FRAC_1_SQRT_2, h);
        (if x < 0.0 { half_tail } else { 1.0 - half_tail }, h)
    }
}

impl Gate for GeluGate {
    const WHICH: Gated = Gated::Gelu;

    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x * Self::cdf(x).0
    }

    #[inline(always)]
    fn derivative(x: f32) -> f32 {
        /// `1/√(2π)`.
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let (cdf, h) = Self::cdf(x);
        cdf + x * (INV_SQRT_2PI * exp(-h))
    }
}

/// [`Gated::GeluTanh`]: `½(1 + tanh u) = σ(2u)` with
/// `u = √(2/π)·(x + 0.044715·x³)`, so `g' = 2·σ(2u)·σ(−2u)·u'`.
#[derive(Debug)]
pub(crate) struct GeluTanhGate;

impl GeluTanhGate {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const CUBIC: f32 = 0.044_715;

    /// `(σ(2u), σ(2u)·σ(−2u), u')`. Past |x| = 16, `e^{−2|u|}` is 0 in f32
    /// anyway; clamping there keeps `x³` and `u'` finite, so a huge `x`
    /// multiplies a 0 rather than an infinity.
    #[inline(always)]
    fn parts(x: f32) -> (f32, f32, f32) {
        let xc = x.clamp(-16.0, 16.0);
        let x2 = xc * xc;
        let two_u_abs = 2.0 * Self::SQRT_2_OVER_PI * xc.abs() * (1.0 + Self::CUBIC * x2);
        let (s, ss) = sigmoid_parts(exp(-two_u_abs), x < 0.0);
        (s, ss, Self::SQRT_2_OVER_PI * (1.0 + 3.0 * Self::CUBIC * x2))
    }
}

impl Gate for GeluTanhGate {
    const WHICH: Gated = Gated::GeluTanh;

    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x * Self::parts(x).0
    }

    #[inline(always)]
    fn derivative(x: f32) -> f32 {
        let (s, ss, du) = Self::parts(x);
        s + x * (2.0 * ss * du)
    }
}

/// [`Gated::Silu`]: `g = σ`, `g' = σ(x)·σ(−x)`.
#[derive(Debug)]
pub(crate) struct SiluGate;

impl Gate for SiluGate {
    const WHICH: Gated = Gated::Silu;

    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x * sigmoid_parts(exp(-x.abs()), x < 0.0).0
    }

    #[inline(always)]
    fn derivative(x: f32) -> f32 {
        let (s, ss) = sigmoid_parts(exp(-x.abs()), x < 0.0);
        s + x * ss
    }
}

/// [`Gated::HardSwish`]: `g = hardsigmoid`, so `f' = g + x/6` on
/// `(−3, 3)`, `x/3 + 1/2`. The bounds follow PyTorch's
/// `hardswish_backward`: 0 below −3, `x/3 + 1/2` on `[−3, 3]` (so −1/2 at
/// −3 and 3/2 at 3, the one-sided slopes of neither side), 1 above 3.
#[derive(Debug)]
pub(crate) struct HardSwishGate;

impl Gate for HardSwishGate {
    const WHICH: Gated = Gated::HardSwish;

    /// `(x · relu6(x + 3)) / 6`, in PyTorch's order of operations.
    #[inline(always)]
    fn forward(x: f32) -> f32 {
        x * crate::act::hardtanh_scalar(0.0, 6.0, x + 3.0) / 6.0
    }

    #[inline(always)]
    fn derivative(x: f32) -> f32 {
        let middle = x / 3.0 + 0.5;
        if x < -3.0 {
            0.0
        } else if x > 3.0 {
            1.0
        } else {
            middle
        }
    }
}

// The loop bodies, each compiled once per instruction set by
// `multiversioned!`. Plain loops over slices: LLVM vectorises them to the
// width of whatever features the function it is inlined into has.

#[inline(always)]
fn forward_body<G: Gate>(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = G::forward(x);
    }
}

#[inline(always)]
fn forward_in_place_body<G: Gate>(x: &mut [f32]) {
    for x in x.iter_mut() {
        *x = G::forward(*x);
    }
}

#[inline(always)]
fn backward_body<G: Gate>(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        *dx = dy * G::derivative(x);
    }
}

#[inline(always)]
fn backward_in_place_body<G: Gate>(x: &[f32], d: &mut [f32]) {
    for (d, &x) in d.iter_mut().zip(x) {
        *d *= G::derivative(x);
    }
}

/// `fn $name<G>(isa, args)`: `$body::<G>(args)` compiled for AVX-512F, for
/// AVX2 + FMA and for the baseline, run on `isa` if this CPU has it and on
/// the baseline otherwise.
macro_rules! multiversioned {
    ($name:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
        fn $name<G: Gate>(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<G: Gate>($($arg: $ty),*) {
                    $body::<G>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<G: Gate>($($arg: $ty),*) {
                    $body::<G>($($arg),*)
                }
                let isa = isa.if_supported();
                if isa == Isa::Avx512 {
                    // SAFETY: `if_supported` returns AVX-512 only on a CPU
                    // that has AVX-512F.
                    return unsafe { avx512::<G>($($arg),*) };
                }
                if isa == Isa::Avx2 {
                    // SAFETY: likewise, AVX2 only with AVX2 and FMA.
                    return unsafe { avx2::<G>($($arg),*) };
                }
            }
            let _ = isa;
            $body::<G>($($arg),*)
        }
    };
}

multiversioned!(forward_on => forward_body(x: &[f32], y: &mut [f32]));
multiversioned!(forward_in_place_on => forward_in_place_body(x: &mut [f32]));
multiversioned!(backward_on => backward_body(x: &[f32], dy: &[f32], dx: &mut [f32]));
multiversioned!(backward_in_place_on => backward_in_place_body(x: &[f32], d: &mut [f32]));

/// `row = f(row)` compiled into the caller, for the fused epilogues of
/// GEMMs and dense layers: a loop with the activation fixed, vectorised for
/// whatever instruction set the caller is compiled for.
#[inline(always)]
pub(crate) fn forward_row(g: Gated, row: &mut [f32]) {
    per_gate!(g, |G| forward_in_place_body::<G>(row))
}

/// `y = f(x)` elementwise, on the best instruction set this CPU has.
pub fn gated_forward(g: Gated, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    gated_forward_on(Isa::best(), g, x, y)
}

/// [`gated_forward`] on the kernels of `isa` (the portable ones if the CPU
/// lacks it), so that tests can run every path.
pub fn gated_forward_on(isa: Isa, g: Gated, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    check_len("gated_forward", "y", y.len(), x.len())?;
    per_gate!(g, |G| crate::par::zip2(y, x, |y, x| forward_on::<G>(isa, x, y)));
    Ok(())
}

/// `x = f(x)` elementwise. The input is gone afterwards, so this is for
/// inference: training keeps `x` for [`gated_backward_from_input`].
pub fn gated_forward_in_place(g: Gated, x: &mut [f32]) {
    gated_forward_in_place_on(Isa::best(), g, x)
}

/// [`gated_forward_in_place`] on the kernels of `isa`.
pub fn gated_forward_in_place_on(isa: Isa, g: Gated, x: &mut [f32]) {
    per_gate!(g, |G| crate::par::each(x, |x| forward_in_place_on::<G>(isa, x)));
}

/// `dx = dy · f'(x)` from the forward's input `x`.
pub fn gated_backward_from_input(
    g: Gated,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    gated_backward_from_input_on(Isa::best(), g, x, dy, dx)
}

/// [`gated_backward_from_input`] on the kernels of `isa`.
pub fn gated_backward_from_input_on(
    isa: Isa,
    g: Gated,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "gated_backward_from_input";
    check_len(OP, "dy", dy.len(), x.len())?;
    check_len(OP, "dx", dx.len(), x.len())?;
    per_gate!(g, |G| crate::par::zip3(dx, x, dy, |dx, x, dy| backward_on::<G>(isa, x, dy, dx)));
    Ok(())
}

/// `d = d · f'(x)` in place: the incoming gradient becomes the outgoing one.
pub fn gated_backward_from_input_in_place(
    g: Gated,
    x: &[f32],
    d: &mut [f32],
) -> Result<(), LenError> {
    gated_backward_from_input_in_place_on(Isa::best(), g, x, d)
}

/// [`gated_backward_from_input_in_place`] on the kernels of `isa`.
pub fn gated_backward_from_input_in_place_on(
    isa: Isa,
    g: Gated,
    x: &[f32],
    d: &mut [f32],
) -> Result<(), LenError> {
    check_len("gated_backward_from_input", "d", d.len(), x.len())?;
    per_gate!(g, |G| crate::par::zip2(d, x, |d, x| backward_in_place_on::<G>(isa, x, d)));
    Ok(())
}
