//! PyTorch's `LocalResponseNorm`, which its exporter writes as a
//! decomposition rather than an `LRN` node:
//!
//! ```text
//! s = Mul(x, x)
//! r = Reshape(s, [N, 1, C, H, W])
//! p = Pad(r, [0, 0, size/2, 0, 0,  0, 0, (size-1)/2, 0, 0])
//! a = AveragePool(p, kernel [size, 1, 1], strides 1)
//! q = If(a's dim 1 is 1) { Squeeze(a, [1]) } else { Identity(a) }
//! d = Reshape(q, [N, C, H, W])
//! y = Div(x, Pow(Add(Mul(d, alpha), k), beta))
//! ```
//!
//! The window's mean times `alpha` is `alpha/size · Σ x²`, `lrn`'s own
//! convention, and its padding centres the window as `lrn` does (even
//! sizes included). Both branches of the If hold the same values in the
//! same order, so that the Reshape after it gives the same tensor whichever
//! runs. The Reshape targets and pads are shape arithmetic the file defines
//! after the Mul; they are evaluated here, ahead of the walk, from the
//! static shapes. Once the Mul of `x` by itself flows through a Reshape to
//! `[N, 1, C, H, W]` into a Pad, the nodes are taken to be the pattern, and
//! one that does not fit it is an error naming that node.

use super::{map_node, reshaped, Ctx, Values};
use crate::import::onnx::emit::{num, Emitter};
use crate::import::onnx::proto::{Graph, Node};
use crate::import::onnx::{Const, ImportError, Value};
use std::collections::HashMap;

/// How many nodes of shape arithmetic one recognition may evaluate.
const EVALUATION_BUDGET: usize = 256;

/// Op types of the nodes that compute the If's condition from the pooled
/// tensor's shape.
const CONDITION_OPS: &[&str] = &["Shape", "Gather", "Equal", "Constant", "Unsqueeze", "Cast"];

/// Whether the node squares a 4-d tensor, `Mul(x, x)`, which starts the
/// decomposition.
pub(super) fn may_start(ctx: &Ctx<'_>, values: &Values) -> bool {
    match &ctx.node.input[..] {
        [a, b] if ctx.node.op_type == "Mul" && a == b => {
            matches!(values.get(a), Some(Value::Tensor(x)) if x.onnx.len() == 4)
        }
        _ => false,
    }
}

/// The walk along the decomposition: the graph, the values so far and the
/// nodes taken.
struct Walk<'a, 'g> {
    ctx: &'a Ctx<'g>,
    values: &'a Values,
    em: &'a Emitter,
    members: Vec<usize>,
    /// The nodes of shape arithmetic evaluated ahead of the walk.
    evaluated: Vec<usize>,
    budget: usize,
}

impl<'g> Walk<'_, 'g> {
    /// The context of node `index`, for its attributes and its errors.
    fn at(&self, index: usize) -> Ctx<'g> {
        let graph = self.ctx.graph;
        Ctx { node: &graph.node[index], index, opset: self.ctx.opset, graph }
    }

    /// The one node after the last member that reads `name`, when nothing
    /// else does.
    fn next(&self, name: &str) -> Option<(usize, &'g Node)> {
        if self.em.uses_of(name) != 1 {
            return None;
        }
        let after = self.members.last().copied().unwrap_or(self.ctx.index);
        let graph: &'g Graph = self.ctx.graph;
        graph
            .node
            .iter()
            .enumerate()
            .skip(after + 1)
            .find(|(_, n)| n.input.iter().any(|i| i == name))
    }

    /// [`Walk::next`] of op `op_type`, taken as a member, or an error
    /// naming the node before it (`from`), whose output goes elsewhere.
    fn expect(&mut self, from: usize, op_type: &str) -> Result<(usize, &'g Node), ImportError> {
        let name = out(&self.ctx.graph.node[from]);
        match self.next(name) {
            Some((j, n)) if n.op_type == op_type => {
                self.members.push(j);
                Ok((j, n))
            }
            found => {
                let what = found.map_or("more than one node, or none".to_string(), |(_, n)| {
                    format!("a `{}`", n.op_type)
                });
                Err(self.fault(
                    from,
                    format!("its output goes to {what} where the pattern has {op_type}"),
                ))
            }
        }
    }

    /// An error naming node `index` as a misfit of the pattern.
    fn fault(&self, index: usize, reason: String) -> ImportError {
        self.at(index).unsupported(format!(
            "{reason}, in what looks like PyTorch's LocalResponseNorm decomposition from node `{}`",
            node_name(self.ctx.node, self.ctx.index)
        ))
    }

    /// The constant `name` is, evaluating the shape arithmetic that makes
    /// it if the walk has not reached it yet.
    fn resolve(&mut self, name: &str) -> Option<Const> {
        match self.values.get(name) {
            Some(Value::Const(c)) => return Some(c.clone()),
            Some(Value::Tensor(_)) => return None,
            None => {}
        }
        self.budget = self.budget.checked_sub(1)?;
        let graph = self.ctx.graph;
        let (index, node) = graph.node.iter().enumerate().find(|(_, n)| out(n) == name)?;
        if !(super::folds_constants(&node.op_type) || node.op_type == "Shape") {
            return None;
        }
        let mut scratch = Values::new();
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            let value = match self.values.get(input) {
                Some(Value::Tensor(x)) if node.op_type == "Shape" => Value::Tensor(x.clone()),
                _ => Value::Const(self.resolve(input)?),
            };
            scratch.insert(input.clone(), value);
        }
        let sub = Ctx { node, index, opset: self.ctx.opset, graph };
        let mut em = Emitter::with_uses("ONNX", HashMap::new(), Vec::new());
        let mut absorbed = vec![false; graph.node.len()];
        map_node(&sub, &mut scratch, &mut em, &mut absorbed).ok()?;
        match scratch.remove(name) {
            Some(Value::Const(c)) => {
                self.evaluated.push(index);
                Some(c)
            }
            _ => None,
        }
    }

    /// The one value of the constant input `i` of member `index`.
    fn scalar(&mut self, index: usize, i: usize, what: &str) -> Result<f64, ImportError> {
        let node = &self.ctx.graph.node[index];
        let value = node.input.get(i).and_then(|name| self.resolve(name));
        match value.as_ref().map(|c| &c.values[..]) {
            Some(&[v]) => Ok(v),
            _ => Err(self.fault(index, format!("its {what} is not one constant value"))),
        }
    }
}

/// The LRN that the nodes from `ctx.node` (a `Mul(x, x)`) compute, if
/// they are PyTorch's decomposition: the nodes after the first are marked
/// absorbed, and the value is stored under the Div's output, whose name
/// comes back.
pub(super) fn recognise(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<Option<(Value, String)>, ImportError> {
    let Some(Value::Tensor(x)) = values.get(&ctx.node.input[0]) else { return Ok(None) };
    let x = x.clone();
    let mut walk = Walk {
        ctx,
        values,
        em,
        members: Vec::new(),
        evaluated: Vec::new(),
        budget: EVALUATION_BUDGET,
    };
    let Some((i_view, view)) = walk.next(out(ctx.node)).filter(|(_, n)| n.op_type == "Reshape")
    else {
        return Ok(None);
    };
    let (n, c, h, w) = (x.onnx[0], x.onnx[1], x.onnx[2], x.onnx[3]);
    let target = view.input.get(1).and_then(|t| walk.resolve(t));
    let viewed = target.and_then(|t| reshaped(&walk.at(i_view), &t, &x.onnx).ok());
    if viewed.as_deref() != Some(&[n, 1, c, h, w][..]) {
        return Ok(None);
    }
    walk.members.push(i_view);
    if walk.next(out(view)).is_none_or(|(_, p)| p.op_type != "Pad") {
        return Ok(None);
    }
    let (i_pad, pad) = walk.expect(i_view, "Pad")?;
    let (before, after) = channel_pads(&mut walk, i_pad, pad)?;
    let (i_pool, _) = walk.expect(i_pad, "AveragePool")?;
    let size = window(&walk, i_pool)?;
    if (before, after) != (size / 2, (size - 1) / 2) {
        return Err(walk.fault(
            i_pad,
            format!(
                "it pads the channels by {before} before and {after} after, where a window of \
                 {size} takes {} and {}",
                size / 2,
                (size - 1) / 2
            ),
        ));
    }
    let i_unpooled = unpool(&mut walk, i_pool)?;
    let (i_back, back) = walk.expect(i_unpooled, "Reshape")?;
    let target = back.input.get(1).and_then(|t| walk.resolve(t));
    let restored = target.and_then(|t| reshaped(&walk.at(i_back), &t, &[n, 1, c, h, w]).ok());
    if restored.as_deref() != Some(&x.onnx[..]) {
        return Err(walk.fault(i_back, format!("it does not reshape back to {:?}", x.onnx)));
    }
    let (i_scale, _) = walk.expect(i_back, "Mul")?;
    let alpha = walk.scalar(i_scale, other_input(&walk, i_scale, i_back), "alpha")?;
    let (i_shift, _) = walk.expect(i_scale, "Add")?;
    let k = walk.scalar(i_shift, other_input(&walk, i_shift, i_scale), "k")?;
    let (i_power, power) = walk.expect(i_shift, "Pow")?;
    if power.input.first().map(String::as_str) != Some(out(&ctx.graph.node[i_shift])) {
        return Err(walk.fault(i_power, "it does not raise the sum to a power".into()));
    }
    let beta = walk.scalar(i_power, 1, "beta")?;
    let (i_div, div) = walk.expect(i_power, "Div")?;
    if div.input.first() != ctx.node.input.first() {
        return Err(walk.fault(i_div, "it does not divide the squared tensor".into()));
    }
    let arithmetic = arithmetic_of(&walk);
    for &j in walk.members.iter().chain(&arithmetic) {
        absorbed[j] = true;
    }
    // The stage reads `x` once where the Mul reads it twice and the Div
    // once, and the Shapes sizing the Reshapes are gone.
    let sized =
        arithmetic.iter().filter(|&&j| ctx.graph.node[j].input.first() == ctx.node.input.first());
    em.drop_uses(&x, 2 + sized.count());
    let stage = format!(
        "lrn({size}, alpha: {}, beta: {}, k: {})",
        num(alpha as f32),
        num(beta as f32),
        num(k as f32)
    );
    let x = super::to_onnx_layout(em, x);
    let output = out(div).to_string();
    let uses = em.uses_of(&output);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    Ok(Some((Value::Tensor(em.pipe(&x, stage, uses, onnx, net)), output)))
}

/// The evaluated nodes of shape arithmetic that only the pattern's nodes
/// use, directly or through each other: they go with it.
fn arithmetic_of(walk: &Walk<'_, '_>) -> Vec<usize> {
    let nodes = &walk.ctx.graph.node;
    let mut kept: Vec<usize> = walk.evaluated.clone();
    kept.sort_unstable();
    kept.dedup();
    loop {
        let inside =
            |k: usize| k == walk.ctx.index || walk.members.contains(&k) || kept.contains(&k);
        let only_inside = |j: &usize| {
            let name = out(&nodes[*j]);
            let reads: usize = nodes
                .iter()
                .enumerate()
                .filter(|&(k, _)| inside(k))
                .map(|(_, n)| n.input.iter().filter(|i| *i == name).count())
                .sum();
            reads == walk.em.uses_of(name)
        };
        let next: Vec<usize> = kept.iter().copied().filter(only_inside).collect();
        if next.len() == kept.len() {
            return kept;
        }
        kept = next;
    }
}

/// The Pad's zeros before and after the channels (axis 2 of the 5-d view),
/// the only axis it may pad.
fn channel_pads(
    walk: &mut Walk<'_, '_>,
    i_pad: usize,
    pad: &Node,
) -> Result<(usize, usize), ImportError> {
    let at = walk.at(i_pad);
    let mode =
        at.attr("mode").map_or("constant".into(), |a| String::from_utf8_lossy(&a.s).into_owned());
    if mode != "constant" {
        return Err(walk.fault(i_pad, format!("its mode is {mode}, not constant")));
    }
    let pads = match (walk.ctx.opset, pad.input.get(1)) {
        (..=10, _) => at.ints("pads").map(|p| p.iter().map(|&v| v as f64).collect()),
        (_, Some(name)) => walk.resolve(name).map(|c| c.values),
        (_, None) => None,
    };
    let Some(pads) = pads else {
        return Err(walk.fault(i_pad, "its pads are not a constant the importer computes".into()));
    };
    let fill = pad.input.get(2).filter(|f| !f.is_empty()).map(|f| walk.resolve(f));
    if fill.is_some_and(|f| f.is_none_or(|f| f.values.iter().any(|&v| v != 0.0))) {
        return Err(walk.fault(i_pad, "it pads with a value other than 0".into()));
    }
    if pad.input.get(3).is_some_and(|a| !a.is_empty()) {
        return Err(walk.fault(i_pad, "it names the axes it pads".into()));
    }
    match pads[..] {
        [0.0, 0.0, b, 0.0, 0.0, 0.0, 0.0, e, 0.0, 0.0] if b >= 0.0 && e >= 0.0 => {
            Ok((b as usize, e as usize))
        }
        _ => Err(walk.fault(i_pad, format!("its pads {pads:?} pad more than the channels"))),
    }
}

/// The size of the AveragePool's window over the channels: its kernel must
/// be `[size, 1, 1]` of stride 1, without padding or dilation.
fn window(walk: &Walk<'_, '_>, i_pool: usize) -> Result<usize, ImportError> {
    let at = walk.at(i_pool);
    let ones = |name: &str| at.ints(name).is_none_or(|v| v.iter().all(|&s| s == 1));
    let zeros = at.ints("pads").is_none_or(|v| v.iter().all(|&p| p == 0));
    let auto_pad = at.attr("auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
    match at.ints("kernel_shape") {
        Some(&[size, 1, 1])
            if size >= 1 && ones("strides") && ones("dilations") && zeros && auto_pad =>
        {
            Ok(size as usize)
        }
        kernel => Err(walk.fault(
            i_pool,
            format!(
                "its kernel {kernel:?}, strides, pads or dilations are not a window of the \
                 channels ([size, 1, 1], strides 1, no padding)"
            ),
        )),
    }
}

/// The node that drops the pooled tensor's unit dim 1 (an If between a
/// Squeeze and an Identity, as PyTorch exports `squeeze(1)`, or a Squeeze),
/// its condition's nodes taken as members.
fn unpool(walk: &mut Walk<'_, '_>, i_pool: usize) -> Result<usize, ImportError> {
    let graph = walk.ctx.graph;
    let pooled = out(&graph.node[i_pool]);
    let branch_reads = |n: &Node| {
        n.attribute
            .iter()
            .filter_map(|a| a.g.as_deref())
            .any(|g| g.node.iter().any(|m| m.input.iter().any(|i| i == pooled)))
    };
    let Some((i_if, cond)) = graph
        .node
        .iter()
        .enumerate()
        .skip(i_pool + 1)
        .find(|(_, n)| n.op_type == "If" && branch_reads(n))
    else {
        let (i_squeeze, _) = walk.expect(i_pool, "Squeeze")?;
        return Ok(i_squeeze);
    };
    for name in ["then_branch", "else_branch"] {
        let branch = cond.attribute.iter().find(|a| a.name == name).and_then(|a| a.g.as_deref());
        if !branch.is_some_and(|g| passes_through(g, pooled)) {
            return Err(walk.fault(
                i_if,
                format!("its {name} is not a Squeeze or an Identity of the pooled tensor"),
            ));
        }
    }
    // The nodes from the pooled tensor's Shape to the condition.
    let mut pending = vec![cond.input.first().cloned().unwrap_or_default()];
    let mut reads_of_pooled = 0;
    while let Some(name) = pending.pop() {
        if name == pooled {
            reads_of_pooled += 1;
            continue;
        }
        if matches!(walk.values.get(&name), Some(Value::Const(_))) {
            continue;
        }
        let found =
            graph.node.iter().enumerate().take(i_if).skip(i_pool + 1).find(|(_, n)| out(n) == name);
        let Some((j, n)) = found.filter(|(_, n)| CONDITION_OPS.contains(&n.op_type.as_str()))
        else {
            return Err(walk.fault(
                i_if,
                format!("its condition `{name}` is not computed from the pooled tensor's shape"),
            ));
        };
        if walk.em.uses_of(&name) != 1 {
            return Err(walk.fault(j, "its output is used beside the If's condition".into()));
        }
        walk.members.push(j);
        pending.extend(n.input.iter().filter(|i| !i.is_empty()).cloned());
    }
    if reads_of_pooled != walk.em.uses_of(pooled) {
        return Err(walk.fault(i_pool, "its output is used beside the If".into()));
    }
    walk.members.push(i_if);
    walk.members.sort_unstable();
    Ok(i_if)
}

/// Whether a branch returns the pooled tensor itself, or squeezed: one
/// Identity or Squeeze of it (and the Constants of the Squeeze's axes).
fn passes_through(g: &Graph, pooled: &str) -> bool {
    let [output] = &g.output[..] else { return false };
    let mut passes = g.node.iter().filter(|n| n.op_type != "Constant");
    match (passes.next(), passes.next()) {
        (Some(n), None) => {
            matches!(n.op_type.as_str(), "Identity" | "Squeeze")
                && n.input.first().map(String::as_str) == Some(pooled)
                && out(n) == output.name
        }
        _ => false,
    }
}

/// The input of member `index` that is not `from`'s output.
fn other_input(walk: &Walk<'_, '_>, index: usize, from: usize) -> usize {
    let graph = walk.ctx.graph;
    let from = out(&graph.node[from]);
    usize::from(graph.node[index].input.first().map(String::as_str) == Some(from))
}

fn node_name(n: &Node, index: usize) -> String {
    if n.name.is_empty() {
        format!("#{index}")
    } else {
        n.name.clone()
    }
}

fn out(n: &Node) -> &str {
    n.output.first().map_or("", String::as_str)
}
