//! The f64 interpreter: runs a checked graph directly from the definitions
//! of its ops, in double precision, with no fusion, no memory plan and no
//! runtime. It is the oracle that generated code is tested against, forward
//! and (through finite differences of its loss) backward.
//!
//! Conventions are PyTorch's, as in `ir::op`. Batch norm runs in training
//! mode (batch statistics) or inference mode (running statistics); dropout
//! is the identity (an oracle cannot share the generated code's masks).

use crate::ir::{Graph, LossKind, NodeId, Op, Pool2d};
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

/// Runs the graph on a batch of `n` samples (`x` holds `n` inputs) and
/// returns every node's output, `n·len` values each.
pub fn run(
    g: &Graph,
    w: &Weights,
    x: &[f64],
    n: usize,
    mode: Mode,
) -> Result<Vec<Vec<f64>>, InterpError> {
    let param = |node: &str, suffix: &str| -> Result<&Vec<f64>, InterpError> {
        w.get(&format!("{node}.{suffix}"))
            .ok_or_else(|| InterpError(format!("no weights for `{node}.{suffix}`")))
    };
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let ins: Vec<&Vec<f64>> = node.inputs.iter().map(|i| &out[i.0]).collect();
        let xs: Vec<&[usize]> = node.inputs.iter().map(|&i| g.node(i).shape.dims()).collect();
        let len = node.shape.elements();
        let mut y = vec![0.0; n * len];
        match &node.op {
            Op::Input => {
                if x.len() != n * len {
                    return Err(InterpError(format!(
                        "input has {} values, expected {}",
                        x.len(),
                        n * len
                    )));
                }
                y.copy_from_slice(x);
            }
            Op::Conv2d(c) => {
                let (ci, h, wd) = (xs[0][0], xs[0][1], xs[0][2]);
                let (o, oh, ow) = (node.shape.0[0], node.shape.0[1], node.shape.0[2]);
                let (cg, og) = (ci / c.groups, o / c.groups);
                let wt = param(&node.name, "weight")?;
                let b = if c.bias { Some(param(&node.name, "bias")?) } else { None };
                for s in 0..n {
                    for oc in 0..o {
                        let g0 = oc / og;
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut acc = b.map_or(0.0, |b| b[oc]);
                                for k in 0..cg {
                                    for i in 0..c.kernel[0] {
                                        for j in 0..c.kernel[1] {
                                            let iy = (oy * c.stride[0] + i * c.dilation[0])
                                                as isize
                                                - c.pad[0] as isize;
                                            let ix = (ox * c.stride[1] + j * c.dilation[1])
                                                as isize
                                                - c.pad[1] as isize;
                                            if iy < 0
                                                || ix < 0
                                                || iy >= h as isize
                                                || ix >= wd as isize
                                            {
                                                continue;
                                            }
                                            let xv = ins[0][((s * ci + g0 * cg + k) * h
                                                + iy as usize)
                                                * wd
                                                + ix as usize];
                                            acc += wt[((oc * cg + k) * c.kernel[0] + i)
                                                * c.kernel[1]
                                                + j]
                                                * xv;
                                        }
                                    }
                                }
                                y[((s * o + oc) * oh + oy) * ow + ox] = acc;
                            }
                        }
                    }
                }
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                pool(&node.op, p, ins[0], xs[0], node.shape.dims(), n, &mut y)
            }
            Op::GlobalAvgPool => {
                let (c, hw) = (xs[0][0], xs[0][1] * xs[0][2]);
                for (i, v) in y.iter_mut().enumerate() {
                    *v = ins[0][i * hw..(i + 1) * hw].iter().sum::<f64>() / hw as f64;
                }
                let _ = c;
            }
            Op::Dense { units, bias } => {
                let input = xs[0][0];
                let wt = param(&node.name, "weight")?;
                let b = if *bias { Some(param(&node.name, "bias")?) } else { None };
                for s in 0..n {
                    for u in 0..*units {
                        let dot: f64 =
                            (0..input).map(|i| wt[u * input + i] * ins[0][s * input + i]).sum();
                        y[s * units + u] = dot + b.map_or(0.0, |b| b[u]);
                    }
                }
            }
            Op::Flatten | Op::Dropout { .. } => y.copy_from_slice(ins[0]),
            Op::Relu => map(&mut y, ins[0], |v| v.max(0.0)),
            Op::LeakyRelu { slope } => map(&mut y, ins[0], |v| if v > 0.0 { v } else { slope * v }),
            Op::Sigmoid => map(&mut y, ins[0], |v| 1.0 / (1.0 + (-v).exp())),
            Op::Tanh => map(&mut y, ins[0], f64::tanh),
            Op::Softmax => {
                let (c, inner) = (xs[0][0], xs[0].iter().skip(1).product::<usize>());
                for s in 0..n {
                    for p in 0..inner {
                        let at = |k: usize| (s * c + k) * inner + p;
                        let max = (0..c).map(|k| ins[0][at(k)]).fold(f64::NEG_INFINITY, f64::max);
                        let sum: f64 = (0..c).map(|k| (ins[0][at(k)] - max).exp()).sum();
                        for k in 0..c {
                            y[at(k)] = (ins[0][at(k)] - max).exp() / sum;
                        }
                    }
                }
            }
            Op::Lrn { size, alpha, beta, k } => {
                let (c, inner) = (xs[0][0], xs[0].iter().skip(1).product::<usize>());
                for s in 0..n {
                    for ch in 0..c {
                        let lo = ch.saturating_sub(size / 2);
                        let hi = (ch + (size - 1) / 2).min(c - 1);
                        for p in 0..inner {
                            let sq: f64 =
                                (lo..=hi).map(|q| ins[0][(s * c + q) * inner + p].powi(2)).sum();
                            let at = (s * c + ch) * inner + p;
                            y[at] = ins[0][at] / (k + alpha / *size as f64 * sq).powf(*beta);
                        }
                    }
                }
            }
            Op::BatchNorm { eps, .. } => {
                let (c, inner) = (xs[0][0], xs[0].iter().skip(1).product::<usize>());
                let (gamma, beta) = (param(&node.name, "weight")?, param(&node.name, "bias")?);
                for ch in 0..c {
                    let idx = |s: usize, p: usize| (s * c + ch) * inner + p;
                    let (mean, var) = match mode {
                        Mode::Train => {
                            let count = (n * inner) as f64;
                            let mean = (0..n)
                                .flat_map(|s| (0..inner).map(move |p| (s, p)))
                                .map(|(s, p)| ins[0][idx(s, p)])
                                .sum::<f64>()
                                / count;
                            let var = (0..n)
                                .flat_map(|s| (0..inner).map(move |p| (s, p)))
                                .map(|(s, p)| (ins[0][idx(s, p)] - mean).powi(2))
                                .sum::<f64>()
                                / count;
                            (mean, var)
                        }
                        Mode::Infer => (
                            param(&node.name, "running_mean")?[ch],
                            param(&node.name, "running_var")?[ch],
                        ),
                    };
                    for s in 0..n {
                        for p in 0..inner {
                            y[idx(s, p)] = (ins[0][idx(s, p)] - mean) / (var + eps).sqrt()
                                * gamma[ch]
                                + beta[ch];
                        }
                    }
                }
            }
            Op::Add => {
                for (i, v) in y.iter_mut().enumerate() {
                    *v = ins.iter().map(|t| t[i]).sum();
                }
            }
            Op::Concat => {
                let total = len;
                let mut at = 0;
                for t in &ins {
                    let part = t.len() / n.max(1);
                    for s in 0..n {
                        y[s * total + at..s * total + at + part]
                            .copy_from_slice(&t[s * part..(s + 1) * part]);
                    }
                    at += part;
                }
            }
        }
        out.push(y);
    }
    Ok(out)
}

fn map(y: &mut [f64], x: &[f64], f: impl Fn(f64) -> f64) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f(v);
    }
}

fn pool(op: &Op, p: &Pool2d, x: &[f64], xs: &[usize], ys: &[usize], n: usize, y: &mut [f64]) {
    let (c, h, w) = (xs[0], xs[1], xs[2]);
    let (oh, ow) = (ys[1], ys[2]);
    for s in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    let mut sum = 0.0;
                    for i in 0..p.kernel[0] {
                        for j in 0..p.kernel[1] {
                            let iy = (oy * p.stride[0] + i) as isize - p.pad[0] as isize;
                            let ix = (ox * p.stride[1] + j) as isize - p.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x[((s * c + ch) * h + iy as usize) * w + ix as usize];
                            best = best.max(v);
                            sum += v;
                        }
                    }
                    y[((s * c + ch) * oh + oy) * ow + ox] = match op {
                        Op::MaxPool(_) => best,
                        // PyTorch's default counts padding in the divisor.
                        _ => sum / (p.kernel[0] * p.kernel[1]) as f64,
                    };
                }
            }
        }
    }
}

/// The mean loss of the batch, as the generated code defines it.
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
    match loss.kind {
        LossKind::CrossEntropy => {
            let mut total = 0.0;
            for s in 0..n {
                let row = &y[s * len..(s + 1) * len];
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                let label =
                    *labels.get(s).ok_or_else(|| InterpError("too few labels".into()))? as usize;
                total += lse
                    - row
                        .get(label)
                        .ok_or_else(|| InterpError(format!("label {label} out of range")))?;
            }
            Ok(total / n as f64)
        }
        LossKind::Mse => {
            Ok(y.iter().zip(targets).map(|(a, t)| 0.5 * (t - a).powi(2)).sum::<f64>() / n as f64)
        }
    }
}

/// The output node's values.
pub fn output<'a>(g: &Graph, outputs: &'a [Vec<f64>]) -> &'a [f64] {
    &outputs[g.output.0]
}

/// The node of a layer by name.
pub fn node_named(g: &Graph, name: &str) -> Option<NodeId> {
    g.nodes.iter().position(|n| n.name == name).map(NodeId)
}
