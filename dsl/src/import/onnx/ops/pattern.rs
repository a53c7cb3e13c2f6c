//! Activations that ONNX spells as several elementwise nodes (opset 17 has
//! no `Gelu`; PyTorch exports SiLU as `x·σ(x)` and both GELUs as their
//! formulas) are recognised by what they compute rather than by their
//! node order: the elementwise nodes that hang off one tensor, with scalar
//! constants, are evaluated on sample points and compared with the
//! language's own activations. A match becomes one stage.

use super::{Ctx, Values};
use crate::import::onnx::emit::Emitter;
use crate::import::onnx::proto::Node;
use crate::import::onnx::{ImportError, Value};
use crate::interp::{self, Mode};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Elementwise ops the recogniser evaluates.
const ELEMENTWISE: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Erf", "Tanh", "Sigmoid"];

/// The activations recognised, as `.net` stages.
const CANDIDATES: &[&str] = &["gelu", "gelu(approximate: tanh)", "silu"];

/// The most nodes one activation spans.
const MAX_NODES: usize = 16;

/// How far ahead of the first node the others may be.
const LOOKAHEAD: usize = 48;

/// The sample points.
fn probes() -> Vec<f64> {
    (-24..=24).map(|i| f64::from(i) / 4.0).collect()
}

/// Each candidate's values at the sample points, by the interpreter.
fn candidates() -> &'static [(&'static str, Vec<f64>)] {
    static TABLE: OnceLock<Vec<(&'static str, Vec<f64>)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let x = probes();
        CANDIDATES
            .iter()
            .filter_map(|&stage| {
                let source =
                    format!("network P {{\n input x: [{}]\n output x -> {stage}\n}}", x.len());
                let checked = crate::check_source("probe.net", &source).ok()?;
                let g = &checked.graphs[0];
                let out = interp::run(g, &HashMap::new(), &[&x], 1, Mode::Infer).ok()?;
                Some((stage, interp::output(g, &out).to_vec()))
            })
            .collect()
    })
}

/// Whether `op_type` may start a recognised activation.
pub(super) fn may_start(op_type: &str) -> bool {
    ELEMENTWISE.contains(&op_type)
}

/// The activation that the elementwise nodes from `ctx.node` on compute,
/// if they compute one: the nodes after the first are marked absorbed, and
/// the value is stored under the last node's output, whose name comes back.
pub(super) fn recognise(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<Option<(Value, String)>, ImportError> {
    let Some(x_name) = sole_tensor_input(ctx.node, values) else { return Ok(None) };
    let nodes = &ctx.graph.node;
    let mut members = vec![ctx.index];
    let mut produced: Vec<&str> = vec![first_output(ctx.node)];
    let mut found = None;
    let end = nodes.len().min(ctx.index + LOOKAHEAD);
    for j in ctx.index + 1..end {
        if members.len() == MAX_NODES {
            break;
        }
        let n = &nodes[j];
        let joins = n.input.iter().any(|i| produced.contains(&i.as_str()));
        let closed = n
            .input
            .iter()
            .all(|i| produced.contains(&i.as_str()) || *i == x_name || is_scalar(values, i));
        if absorbed[j] || !may_start(&n.op_type) || !joins || !closed || n.output.len() != 1 {
            continue;
        }
        members.push(j);
        produced.push(first_output(n));
        if let Some(stage) = matching(ctx, em, &members, x_name, values) {
            found = Some((members.clone(), stage));
        }
    }
    let Some((members, stage)) = found else { return Ok(None) };
    for &j in &members[1..] {
        absorbed[j] = true;
    }
    let last = first_output(&nodes[*members.last().expect("members")]).to_string();
    let Some(Value::Tensor(x)) = values.get(x_name) else { return Ok(None) };
    // The stage reads `x` once where the nodes read it several times.
    let reads: usize =
        members.iter().map(|&m| nodes[m].input.iter().filter(|i| *i == x_name).count()).sum();
    em.drop_uses(x, reads - 1);
    let uses = em.uses_of(&last);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    let flow = em.pipe(x, stage.to_string(), uses, onnx, net);
    Ok(Some((Value::Tensor(flow), last)))
}

/// The candidate that `members` compute, when only their last output is
/// used outside them.
fn matching(
    ctx: &Ctx<'_>,
    em: &Emitter,
    members: &[usize],
    x_name: &str,
    values: &Values,
) -> Option<&'static str> {
    let nodes = &ctx.graph.node;
    let (last, inner) = members.split_last()?;
    for &m in inner {
        let out = first_output(&nodes[m]);
        let inside: usize = members
            .iter()
            .map(|&k| nodes[k].input.iter().filter(|i| i.as_str() == out).count())
            .sum();
        if em.uses_of(out) != inside {
            return None;
        }
    }
    let x = probes();
    let mut known: HashMap<&str, Vec<f64>> = HashMap::new();
    known.insert(x_name, x.clone());
    for &m in members {
        let n = &nodes[m];
        let args: Vec<Vec<f64>> = n
            .input
            .iter()
            .map(|i| match (known.get(i.as_str()), values.get(i)) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(Value::Const(c))) if c.values.len() == 1 => {
                    Some(vec![c.values[0]; x.len()])
                }
                _ => None,
            })
            .collect::<Option<_>>()?;
        known.insert(first_output(n), evaluate(&n.op_type, &args)?);
    }
    let got = known.get(first_output(&nodes[*last]))?;
    candidates()
        .iter()
        .find(|(_, want)| {
            got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-5 * (1.0 + w.abs()))
        })
        .map(|(stage, _)| *stage)
}

/// One elementwise node on the sample points.
fn evaluate(op_type: &str, args: &[Vec<f64>]) -> Option<Vec<f64>> {
    let unary = |f: fn(f64) -> f64| args.first().map(|a| a.iter().map(|&v| f(v)).collect());
    let binary = |f: fn(f64, f64) -> f64| match args {
        [a, b] => Some(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()),
        _ => None,
    };
    match op_type {
        "Add" => binary(|a, b| a + b),
        "Sub" => binary(|a, b| a - b),
        "Mul" => binary(|a, b| a * b),
        "Div" => binary(|a, b| a / b),
        "Pow" => binary(f64::powf),
        "Erf" => unary(crate::ops::erf),
        "Tanh" => unary(f64::tanh),
        "Sigmoid" => unary(|v| 1.0 / (1.0 + (-v).exp())),
        _ => None,
    }
}

/// The one computed tensor among the node's inputs, the others scalars.
fn sole_tensor_input<'n>(node: &'n Node, values: &Values) -> Option<&'n str> {
    let mut tensor = None;
    for i in &node.input {
        match values.get(i) {
            Some(Value::Tensor(_)) if tensor.is_none() || tensor == Some(i.as_str()) => {
                tensor = Some(i.as_str())
            }
            Some(Value::Const(c)) if c.values.len() == 1 => {}
            _ => return None,
        }
    }
    tensor
}

fn is_scalar(values: &Values, name: &str) -> bool {
    matches!(values.get(name), Some(Value::Const(c)) if c.values.len() == 1)
}

fn first_output(n: &Node) -> &str {
    n.output.first().map_or("", String::as_str)
}
