//! Reference activations and softmax: the formulas, elementwise, in f64,
//! with derivatives taken from the input rather than the output.

use crate::gemm::Activation;

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
