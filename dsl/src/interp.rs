//! The f64 interpreter: runs a checked graph directly from the definitions
//! of its ops, in double precision, with no fusion, no memory plan and no
//! runtime. It is the oracle that generated code is tested against, forward
//! and (through finite differences of its loss) backward.
//!
//! It also takes optimizer steps ([`apply_optimizer`]) from given
//! gradients, with the `train` statements' multipliers and the optimizer's
//! clipping, for checking generated training steps.
//!
//! Conventions are PyTorch's, as in `ops`. Batch norm runs in training
//! mode (batch statistics) or inference mode (running statistics); dropout
//! is the identity (an oracle cannot share the generated code's masks).

use crate::ir::{Graph, LossKind, Multipliers, NodeId, Optimizer};
use std::collections::HashMap;

/// Parameters and buffers by `state_dict` name, as flat f64 vectors.
pub type Weights = HashMap<String, Vec<f64>>;

/// Why the interpreter cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterpError(pub String);

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InterpError {}

/// Batch-norm mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, as the training forward pass.
    Train,
    /// Running statistics, as inference.
    Infer,
}

/// Runs the graph on a batch of `n` samples (`inputs` holds `n` samples of
/// each network input, in declaration order) and returns every node's
/// output, `n·len` values each. Dropout and stochastic depth are the
/// identity here, their expectation; [`run_training`] gives them masks.
pub fn run(
    g: &Graph,
    w: &Weights,
    inputs: &[&[f64]],
    n: usize,
    mode: Mode,
) -> Result<Vec<Vec<f64>>, InterpError> {
    run_with(g, w, inputs, n, mode, None, None)
}

/// Whether element (or, for stochastic depth, decision) `index` of the
/// mask of layer `layer` (its number in [`Graph::mask_layers`]) is kept at
/// drop probability `p`. The interpreter has no random numbers of its own:
/// a test passes the runtime's, so that the training pass it computes is
/// the generated code's, masks included.
pub type Keeps<'a> = &'a dyn Fn(u16, u64, f32) -> bool;

/// [`run`] in training mode, with the masks of dropout and stochastic
/// depth decided by `keeps`.
pub fn run_training(
    g: &Graph,
    w: &Weights,
    inputs: &[&[f64]],
    n: usize,
    keeps: Keeps<'_>,
) -> Result<Vec<Vec<f64>>, InterpError> {
    run_with(g, w, inputs, n, Mode::Train, Some(keeps), None)
}

/// [`run_training`] with every node's output moved by `ulps` float32 ulps,
/// up or down by a hash of its place, as float32 rounding inside generated
/// code moves it. How far that moves a result measures how much an
/// ill-conditioned layer (a batch norm over a channel that barely varies)
/// amplifies rounding that no change of the inputs and weights reproduces.
pub fn run_training_rounded(
    g: &Graph,
    w: &Weights,
    inputs: &[&[f64]],
    n: usize,
    keeps: Keeps<'_>,
    ulps: f64,
) -> Result<Vec<Vec<f64>>, InterpError> {
    run_with(g, w, inputs, n, Mode::Train, Some(keeps), Some(ulps))
}

fn run_with(
    g: &Graph,
    w: &Weights,
    inputs: &[&[f64]],
    n: usize,
    mode: Mode,
    keeps: Option<Keeps<'_>>,
    rounding_ulps: Option<f64>,
) -> Result<Vec<Vec<f64>>, InterpError> {
    if inputs.len() != g.inputs.len() {
        return Err(InterpError(format!(
            "{} inputs given, the network has {}",
            inputs.len(),
            g.inputs.len()
        )));
    }
    let mask_layers = g.mask_layers();
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(g.nodes.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let feed = g.inputs.iter().position(|id| id.0 == i).map(|k| inputs[k]);
        let cx = EvalCx {
            name: &node.name,
            xs: node.inputs.iter().map(|i| out[i.0].as_slice()).collect(),
            x_shapes: node.inputs.iter().map(|&i| g.node(i).shape.dims()).collect(),
            y_shape: node.shape.dims(),
            n,
            mode,
            weights: w,
            feed,
            mask: keeps.zip(mask_layers[i]).map(|(keeps, layer)| Mask { keeps, layer }),
        };
        let mut y = vec![0.0; n * node.shape.elements()];
        node.op.eval(&cx, &mut y)?;
        if let Some(ulps) = rounding_ulps {
            round_as_float32(&mut y, i as u64, ulps);
        }
        out.push(y);
    }
    Ok(out)
}

/// Moves each value of node `node`'s output by `ulps` float32 ulps, up or
/// down as a hash of the node and the value's index decides.
fn round_as_float32(y: &mut [f64], node: u64, ulps: f64) {
    let step = ulps * f64::from(f32::EPSILON);
    for (j, v) in y.iter_mut().enumerate() {
        // SplitMix64's finaliser: a well-mixed bit from (node, index).
        let mut h = (node << 32 ^ j as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        *v *= if h & 1 == 0 { 1.0 + step } else { 1.0 - step };
    }
}

/// A masked layer's keep decisions in a training run.
struct Mask<'a> {
    keeps: Keeps<'a>,
    layer: u16,
}

impl std::fmt::Debug for Mask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mask {{ layer: {} }}", self.layer)
    }
}

/// What an op's f64 evaluation works with.
#[derive(Debug)]
pub struct EvalCx<'a> {
    /// The layer name, which prefixes its parameters'.
    pub name: &'a str,
    /// The inputs' values, `n` samples each.
    pub xs: Vec<&'a [f64]>,
    pub x_shapes: Vec<&'a [usize]>,
    pub y_shape: &'a [usize],
    pub n: usize,
    pub mode: Mode,
    weights: &'a Weights,
    feed: Option<&'a [f64]>,
    mask: Option<Mask<'a>>,
}

impl<'a> EvalCx<'a> {
    /// The layer's parameter `<layer>.<suffix>`.
    pub fn param(&self, suffix: &str) -> Result<&'a Vec<f64>, InterpError> {
        let key = format!("{}.{suffix}", self.name);
        self.weights.get(&key).ok_or_else(|| InterpError(format!("no weights for `{key}`")))
    }

    /// The factor of mask element `index` at drop probability `p`:
    /// `1/(1 − p)` if kept, else 0; 1 (the expectation) when the run has
    /// no masks. `p` is rounded to f32 as the generated code's is.
    pub fn mask_scale(&self, index: u64, p: f64) -> f64 {
        let p = p as f32;
        match &self.mask {
            None => 1.0,
            Some(m) if (m.keeps)(m.layer, index, p) && p < 1.0 => 1.0 / (1.0 - f64::from(p)),
            Some(_) => 0.0,
        }
    }

    /// The values fed to a network input.
    pub fn feed(&self) -> Result<&'a [f64], InterpError> {
        self.feed.ok_or_else(|| InterpError(format!("`{}` is not a network input", self.name)))
    }
}

/// The mean loss of the batch, as the generated code defines it: `labels`
/// for cross-entropy, `targets` (the scored tensor's shape, `n` samples)
/// for the others.
pub fn loss(
    g: &Graph,
    outputs: &[Vec<f64>],
    n: usize,
    labels: &[u32],
    targets: &[f64],
) -> Result<f64, InterpError> {
    let loss = g.loss.as_ref().ok_or_else(|| InterpError("the network has no loss".into()))?;
    let y = &outputs[loss.input.0];
    let len = g.node(loss.input).shape.elements();
    if !loss.kind.takes_labels() && targets.len() != y.len() {
        return Err(InterpError(format!("{} targets for {} outputs", targets.len(), y.len())));
    }
    let elements = y.len() as f64;
    let pairs = y.iter().zip(targets).map(|(&y, &t)| (y, t));
    match &loss.kind {
        LossKind::CrossEntropy { label_smoothing, weight } => {
            cross_entropy(y, len, n, labels, *label_smoothing, weight.as_deref())
        }
        LossKind::Mse => Ok(pairs.map(|(y, t)| 0.5 * (t - y).powi(2)).sum::<f64>() / n as f64),
        LossKind::BceWithLogits { pos_weight } => {
            let total: f64 = pairs
                .enumerate()
                .map(|(i, (x, t))| {
                    let pw = pos_weight.as_ref().map_or(1.0, |pw| pw[(i % len) % pw.len()]);
                    // −[pw·t·log σ(x) + (1 − t)·log(1 − σ(x))], with log σ(x) = −softplus(−x).
                    pw * t * softplus(-x) + (1.0 - t) * softplus(x)
                })
                .sum();
            Ok(total / elements)
        }
        LossKind::SmoothL1 { beta } => {
            let total: f64 = pairs
                .map(|(y, t)| {
                    let d = (y - t).abs();
                    if d < *beta {
                        0.5 * d * d / beta
                    } else {
                        d - 0.5 * beta
                    }
                })
                .sum();
            Ok(total / elements)
        }
        LossKind::Huber { delta } => {
            let total: f64 = pairs
                .map(|(y, t)| {
                    let d = (y - t).abs();
                    if d < *delta {
                        0.5 * d * d
                    } else {
                        delta * (d - 0.5 * delta)
                    }
                })
                .sum();
            Ok(total / elements)
        }
    }
}

/// `log(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `F.cross_entropy` from its definition: the weighted negative
/// log-likelihood and the weighted mean over classes of `−log p`, mixed by
/// `eps` and divided by the labels' total weight.
fn cross_entropy(
    y: &[f64],
    classes: usize,
    n: usize,
    labels: &[u32],
    eps: f64,
    weight: Option<&[f64]>,
) -> Result<f64, InterpError> {
    let w = |c: usize| weight.map_or(1.0, |w| w[c]);
    let (mut total, mut total_weight) = (0.0, 0.0);
    for s in 0..n {
        let row = &y[s * classes..(s + 1) * classes];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let label = *labels.get(s).ok_or_else(|| InterpError("too few labels".into()))? as usize;
        let x = row.get(label).ok_or_else(|| InterpError(format!("label {label} out of range")))?;
        let smooth: f64 = row.iter().enumerate().map(|(c, v)| w(c) * (lse - v)).sum();
        total += (1.0 - eps) * w(label) * (lse - x) + eps / classes as f64 * smooth;
        total_weight += w(label);
    }
    Ok(total / total_weight)
}

/// The output node's values.
pub fn output<'a>(g: &Graph, outputs: &'a [Vec<f64>]) -> &'a [f64] {
    &outputs[g.output.0]
}

/// The node of a layer by name.
pub fn node_named(g: &Graph, name: &str) -> Option<NodeId> {
    g.nodes.iter().position(|n| n.name == name).map(NodeId)
}

/// An optimizer's state by parameter name: SGD's momentum buffer, or Adam's
/// two moments.
pub type OptimizerState = HashMap<String, (Vec<f64>, Vec<f64>)>;

/// One step of the network's optimizer on `weights` from `grads` (by
/// name), at 1-based `step`, as PyTorch takes it: `clip_grad_norm_` over
/// the gradients of every learnable parameter of an unfrozen layer, then
/// each tensor's step with `lr·lr_mult` and `weight_decay·decay_mult`;
/// frozen layers take none.
pub fn apply_optimizer(
    g: &Graph,
    weights: &mut Weights,
    grads: &Weights,
    state: &mut OptimizerState,
    step: u64,
) -> Result<(), InterpError> {
    let opt = g.optimizer.as_ref().ok_or_else(|| InterpError("no optimizer".into()))?;
    let mut stepped: Vec<(String, Multipliers)> = Vec::new();
    for (node, m) in g.nodes.iter().zip(&g.multipliers) {
        for spec in g.params_of(node).iter().filter(|p| p.learnable && !m.frozen()) {
            stepped.push((format!("{}.{}", node.name, spec.name), *m));
        }
    }
    let grad_of = |name: &str| {
        grads.get(name).ok_or_else(|| InterpError(format!("no gradient for `{name}`")))
    };
    let clip_norm = match opt {
        Optimizer::Sgd { clip_norm, .. } | Optimizer::Adam { clip_norm, .. } => *clip_norm,
    };
    let mut scale = 1.0;
    if let Some(max_norm) = clip_norm {
        let mut squares = 0.0;
        for (name, _) in &stepped {
            squares += grad_of(name)?.iter().map(|v| v * v).sum::<f64>();
        }
        scale = (max_norm / (squares.sqrt() + 1e-6)).min(1.0);
    }
    for (name, m) in &stepped {
        let g = grad_of(name)?;
        let p =
            weights.get_mut(name).ok_or_else(|| InterpError(format!("no weights for `{name}`")))?;
        let (a, b) =
            state.entry(name.clone()).or_insert_with(|| (vec![0.0; p.len()], vec![0.0; p.len()]));
        for i in 0..p.len() {
            let grad = g[i] * scale;
            match *opt {
                Optimizer::Sgd { lr, momentum, nesterov, weight_decay, .. } => {
                    let d = grad + weight_decay * m.decay * p[i];
                    a[i] = momentum * a[i] + d;
                    let d = match (momentum == 0.0, nesterov) {
                        (true, _) => d,
                        (false, true) => d + momentum * a[i],
                        (false, false) => a[i],
                    };
                    p[i] -= lr * m.lr * d;
                }
                Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, decoupled, .. } => {
                    let (lr, wd) = (lr * m.lr, weight_decay * m.decay);
                    let grad = if decoupled {
                        p[i] *= 1.0 - lr * wd;
                        grad
                    } else {
                        grad + wd * p[i]
                    };
                    a[i] = beta1 * a[i] + (1.0 - beta1) * grad;
                    b[i] = beta2 * b[i] + (1.0 - beta2) * grad * grad;
                    let m_hat = a[i] / (1.0 - beta1.powi(step as i32));
                    let v_hat = b[i] / (1.0 - beta2.powi(step as i32));
                    p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rounded_run_moves_every_value_by_the_ulps_asked_both_ways() {
        let source = "network n { input x: [64]\n  y = x -> relu\n  loss mse(y) }";
        let g = crate::check_source("n.net", source).expect("valid").graphs.remove(0);
        let x: Vec<f64> = (0..128).map(|i| 1.0 + f64::from(i) / 7.0).collect();
        let keeps = |_: u16, _: u64, _: f32| true;
        let exact = run_training(&g, &Weights::new(), &[&x], 2, &keeps).expect("runs");
        let rounded =
            run_training_rounded(&g, &Weights::new(), &[&x], 2, &keeps, 3.0).expect("runs");
        let step = 3.0 * f64::from(f32::EPSILON);
        let (mut ups, mut downs) = (0, 0);
        for (&r, &e) in rounded[0].iter().zip(&exact[0]) {
            let factor = r / e - 1.0;
            assert!((factor.abs() - step).abs() < 1e-15, "{r} against {e}");
            if factor > 0.0 {
                ups += 1
            } else {
                downs += 1
            }
        }
        assert!(ups > 40 && downs > 40, "{ups} up and {downs} down");
        // The relu's output moves by its input's movement and its own.
        for (&r, &e) in rounded[1].iter().zip(&exact[1]) {
            assert!((r / e - 1.0).abs() <= 2.0 * step + step * step + 1e-15);
        }
    }
}
