//! Reference activations and softmax: the formulas, elementwise, in f64,
//! with derivatives taken from the input rather than the output.

use crate::gemm::{Activation, Gated};
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `act(x)` in f64.
fn activate(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                x
            } else {
                f64::from(slope) * x
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::HardTanh(min, max) => x.clamp(f64::from(min), f64::from(max)),
        Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Elu(alpha) => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Gated(g) => gated(g, x),
    }
}

/// `act'(x)` from the input, PyTorch's choice at 0 (the negative side).
fn derivative(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::LeakyRelu(slope) => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(slope)
            }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
        Activation::Tanh => 1.0 - x.tanh() * x.tanh(),
        // PyTorch passes no gradient at the bounds.
        Activation::HardTanh(min, max) => {
            f64::from(u8::from(f64::from(min) < x && x < f64::from(max)))
        }
        Activation::HardSigmoid => f64::from(u8::from(-3.0 < x && x < 3.0)) / 6.0,
        Activation::Elu(alpha) => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(alpha) * x.exp()
            }
        }
        Activation::Gated(g) => gated_derivative(g, x),
    }
}

/// `erfc(x)` in f64, to about 1e-15 relative: for `|x| < 1.5` one minus
/// the Maclaurin series of erf (its alternating terms stay small there),
/// above that the continued fraction
/// `erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`,
/// which keeps the far tail's relative accuracy; `erfc(−x) = 2 − erfc(x)`.
/// (std has no stable `erf`.)
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 1.5 {
        // erf(x) = 2/√π · Σ (−1)ⁿ x^{2n+1} / (n!·(2n+1)).
        let (mut sum, mut power) = (0.0, x);
        for n in 0..60 {
            sum += power / f64::from(2 * n + 1);
            power *= -x * x / f64::from(n + 1);
        }
        return 1.0 - 2.0 / PI.sqrt() * sum;
    }
    // Evaluated from the inside out, deep enough to converge at x = 1.5.
    let mut fraction = x;
    for k in (1..=2000).rev() {
        fraction = x + f64::from(k) / 2.0 / fraction;
    }
    (-x * x).exp() / PI.sqrt() / fraction
}

/// `erf(x) = 1 − erfc(x)`.
pub fn erf(x: f64) -> f64 {
    1.0 - erfc(x)
}

/// `f(x) = x·g(x)` of a gated activation, by its definition.
pub fn gated(g: Gated, x: f64) -> f64 {
    match g {
        // ½·x·(1 + erf(x/√2)), with 1 + erf(t) written erfc(−t) so that
        // the negative side keeps its digits.
        Gated::Gelu => 0.5 * x * erfc(-x * FRAC_1_SQRT_2),
        Gated::GeluTanh => {
            let u = (2.0 / PI).sqrt() * (x + 0.044715 * x * x * x);
            0.5 * x * (1.0 + u.tanh())
        }
        Gated::Silu => x / (1.0 + (-x).exp()),
        Gated::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// `f'(x) = g(x) + x·g'(x)` of a gated activation, differentiated by hand.
pub fn gated_derivative(g: Gated, x: f64) -> f64 {
    match g {
        Gated::Gelu => {
            let density = (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
            0.5 * erfc(-x * FRAC_1_SQRT_2) + x * density
        }
        Gated::GeluTanh => {
            let k = (2.0 / PI).sqrt();
            let t = (k * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Gated::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        // PyTorch's bounds: the middle formula on the closed [−3, 3].
        Gated::HardSwish => {
            if x < -3.0 {
                0.0
            } else if x > 3.0 {
                1.0
            } else {
                x / 3.0 + 0.5
            }
        }
    }
}

/// `y = act(x)`.
pub fn activation_forward(act: Activation, x: &[f32]) -> Vec<f32> {
    x.iter().map(|&x| activate(act, f64::from(x)) as f32).collect()
}

/// `dx = dy · act'(x)`.
pub fn activation_backward(act: Activation, x: &[f32], dy: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&x, &dy)| (f64::from(dy) * derivative(act, f64::from(x))) as f32)
        .collect()
}

/// Softmax over the channels of `[n, c, hw]` by the definition
/// `exp(x_c) / Σ_k exp(x_k)`, shifted by the max so the oracle itself does
/// not overflow.
pub fn softmax(n: usize, c: usize, hw: usize, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; n * c * hw];
    for i in 0..n {
        for s in 0..hw {
            let at = |k: usize| i * c * hw + k * hw + s;
            let max = (0..c).map(|k| f64::from(x[at(k)])).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..c).map(|k| (f64::from(x[at(k)]) - max).exp()).sum();
            for k in 0..c {
                y[at(k)] = ((f64::from(x[at(k)]) - max).exp() / sum) as f32;
            }
        }
    }
    y
}

/// The softmax VJP through its Jacobian `J_jk = y_j(δ_jk − y_k)`.
pub fn softmax_backward(n: usize, c: usize, hw: usize, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let y = softmax(n, c, hw, x);
    let mut dx = vec![0.0; n * c * hw];
    for i in 0..n {
        for s in 0..hw {
            let at = |k: usize| i * c * hw + k * hw + s;
            for k in 0..c {
                let yk = f64::from(y[at(k)]);
                let sum: f64 = (0..c)
                    .map(|j| {
                        let yj = f64::from(y[at(j)]);
                        let jac = if j == k { yj * (1.0 - yk) } else { -yj * yk };
                        f64::from(dy[at(j)]) * jac
                    })
                    .sum();
                dx[at(k)] = sum as f32;
            }
        }
    }
    dx
}

/// Log-softmax over the channels of `[n, c, hw]` by the definition
/// `x_c − ln Σ_k exp(x_k)`, the sum shifted by the max so that the oracle
/// itself does not overflow.
pub fn log_softmax(n: usize, c: usize, hw: usize, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; n * c * hw];
    for i in 0..n {
        for s in 0..hw {
            let at = |k: usize| i * c * hw + k * hw + s;
            let max = (0..c).map(|k| f64::from(x[at(k)])).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..c).map(|k| (f64::from(x[at(k)]) - max).exp()).sum();
            for k in 0..c {
                y[at(k)] = (f64::from(x[at(k)]) - max - sum.ln()) as f32;
            }
        }
    }
    y
}

/// The log-softmax VJP through its Jacobian `J_jk = δ_jk − softmax_k`.
pub fn log_softmax_backward(n: usize, c: usize, hw: usize, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let p = softmax(n, c, hw, x);
    let mut dx = vec![0.0; n * c * hw];
    for i in 0..n {
        for s in 0..hw {
            let at = |k: usize| i * c * hw + k * hw + s;
            for k in 0..c {
                let pk = f64::from(p[at(k)]);
                let sum: f64 = (0..c)
                    .map(|j| {
                        let jac = if j == k { 1.0 - pk } else { -pk };
                        f64::from(dy[at(j)]) * jac
                    })
                    .sum();
                dx[at(k)] = sum as f32;
            }
        }
    }
    dx
}

/// PReLU over `[n, c, hw]`: `x` where `x > 0`, else `weight[channel]·x`.
pub fn prelu(n: usize, c: usize, hw: usize, weight: &[f32], x: &[f32]) -> Vec<f32> {
    (0..n * c * hw)
        .map(|i| {
            let (v, a) = (f64::from(x[i]), f64::from(weight[(i / hw) % c]));
            (if v > 0.0 { v } else { a * v }) as f32
        })
        .collect()
}

/// PReLU's `(dx, dweight)`, PyTorch's choice at 0 (the negative side).
pub fn prelu_backward(
    n: usize,
    c: usize,
    hw: usize,
    weight: &[f32],
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; n * c * hw];
    let mut dweight = vec![0.0f64; c];
    for i in 0..n * c * hw {
        let (v, g, k) = (f64::from(x[i]), f64::from(dy[i]), (i / hw) % c);
        if v > 0.0 {
            dx[i] = g as f32;
        } else {
            dx[i] = (f64::from(weight[k]) * g) as f32;
            dweight[k] += v * g;
        }
    }
    (dx, dweight.into_iter().map(|v| v as f32).collect())
}

/// `act(x + bias[channel])` over `[n, c, hw]`.
pub fn bias_add_act(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    bias: &[f32],
    act: Activation,
) -> Vec<f32> {
    (0..n * c * hw)
        .map(|i| activate(act, f64::from(x[i]) + f64::from(bias[(i / hw) % c])) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf and erfc against values from an independent implementation
    /// (CPython's `math.erf`, `math.erfc`), on both sides of the switch
    /// between the series and the continued fraction.
    #[test]
    fn erf_matches_known_values() {
        let known = [
            (0.1, 0.1124629160182849, 0.8875370839817152),
            (0.5, 0.5204998778130465, 0.4795001221869535),
            (1.0, 0.8427007929497149, 0.15729920705028513),
            (2.0, 0.9953222650189527, 0.004677734981047265),
            (3.0, 0.9999779095030014, 2.2090496998585438e-05),
            (4.0, 0.9999999845827421, 1.541725790028002e-08),
            (5.0, 0.9999999999984626, 1.5374597944280351e-12),
            (6.0, 1.0, 2.1519736712498916e-17),
            (8.0, 1.0, 1.1224297172982928e-29),
            (10.0, 1.0, 2.088487583762545e-45),
        ];
        for (x, want_erf, want_erfc) in known {
            assert!((erf(x) - want_erf).abs() <= 1e-15, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want_erf).abs() <= 1e-15, "erf(-{x})");
            let rel = (erfc(x) - want_erfc).abs() / want_erfc;
            assert!(rel <= 1e-13, "erfc({x}) = {}, expected {want_erfc}", erfc(x));
            assert!((erfc(-x) - (2.0 - want_erfc)).abs() <= 1e-15, "erfc(-{x})");
        }
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(f64::NAN).is_nan());
    }
}
