//! Reference optimizer steps in f64, written as the papers and PyTorch's
//! documentation state them (first-step buffer copy for SGD, bias-corrected
//! moments for Adam), not as the kernels compute them.

/// One `torch.optim.SGD` step (dampening 0). `first` selects PyTorch's
/// `buf = g` on the first step.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    first: bool,
    buf: &mut [f64],
    p: &mut [f64],
    g: &[f64],
) {
    for i in 0..p.len() {
        let mut d = g[i] + weight_decay * p[i];
        if momentum != 0.0 {
            buf[i] = if first { d } else { momentum * buf[i] + d };
            d = if nesterov { d + momentum * buf[i] } else { buf[i] };
        }
        p[i] -= lr * d;
    }
}

/// One Adam (`decoupled = false`) or AdamW (`decoupled = true`) step at
/// 1-based step `t`: `p −= lr · m̂ / (√v̂ + eps)` with `m̂ = m/(1 − β1ᵗ)`,
/// `v̂ = v/(1 − β2ᵗ)`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    t: u64,
    m: &mut [f64],
    v: &mut [f64],
    p: &mut [f64],
    g: &[f64],
) {
    for i in 0..p.len() {
        let mut g = g[i];
        if decoupled {
            p[i] *= 1.0 - lr * weight_decay;
        } else {
            g += weight_decay * p[i];
        }
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let m_hat = m[i] / (1.0 - beta1.powi(t as i32));
        let v_hat = v[i] / (1.0 - beta2.powi(t as i32));
        p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

/// `torch.nn.utils.clip_grad_norm_(max_norm)`: the L2 norm of every
/// gradient taken together; when `max_norm / (norm + 1e-6) < 1`, every
/// gradient is multiplied by it. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Vec<f64>], max_norm: f64) -> f64 {
    let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut().flatten() {
            *g *= coef;
        }
    }
    norm
}
