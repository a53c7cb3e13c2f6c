//! The mapping of each ONNX node: a `.net` stage for a layer, or a value
//! computed at import time for constants and shape plumbing.

mod constants;
mod layers;
mod local_response;
mod pattern;

use super::emit::{num, pair, Emitter};
use super::proto::{Attribute, Graph, Node};
use super::{constant, Const, Flow, ImportError, Value};
use std::collections::HashMap;

pub(crate) type Values = HashMap<String, Value>;

/// The node being mapped, where it is, and the opset it follows.
pub(crate) struct Ctx<'a> {
    pub node: &'a Node,
    pub index: usize,
    pub opset: i64,
    pub graph: &'a Graph,
}

impl Ctx<'_> {
    fn unsupported(&self, reason: impl Into<String>) -> ImportError {
        let node = if self.node.name.is_empty() {
            format!("#{}", self.index)
        } else {
            self.node.name.clone()
        };
        ImportError::Unsupported {
            node,
            op_type: self.node.op_type.clone(),
            opset: self.opset,
            reason: reason.into(),
        }
    }

    fn attr(&self, name: &str) -> Option<&Attribute> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }

    fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    fn output(&self) -> Result<&str, ImportError> {
        self.node
            .output
            .first()
            .map(String::as_str)
            .ok_or_else(|| self.unsupported("it has no output"))
    }

    /// Input `i`, when the node has it (an empty name is an absent input).
    fn input<'v>(&self, values: &'v Values, i: usize) -> Result<Option<&'v Value>, ImportError> {
        match self.node.input.get(i) {
            None => Ok(None),
            Some(name) if name.is_empty() => Ok(None),
            Some(name) => values.get(name).map(Some).ok_or_else(|| {
                self.unsupported(format!("its input `{name}` is not defined before it"))
            }),
        }
    }

    fn tensor(&self, values: &Values, i: usize) -> Result<Flow, ImportError> {
        match self.input(values, i)? {
            Some(Value::Tensor(f)) => Ok(f.clone()),
            Some(Value::Const(_)) => Err(self.unsupported(format!(
                "input {i} is a constant where the network's data is expected"
            ))),
            None => Err(self.unsupported(format!("input {i} is missing"))),
        }
    }

    fn konst(&self, values: &Values, i: usize) -> Result<Const, ImportError> {
        self.opt_const(values, i)?.ok_or_else(|| self.unsupported(format!("input {i} is missing")))
    }

    fn opt_const(&self, values: &Values, i: usize) -> Result<Option<Const>, ImportError> {
        match self.input(values, i)? {
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(Value::Tensor(_)) => Err(self.unsupported(format!(
                "input {i} must be a constant (an initializer or folded shape arithmetic)"
            ))),
            None => Ok(None),
        }
    }
}

/// Whether a node of `op_type` of constant inputs is a constant itself,
/// computed at import time.
pub(crate) fn folds_constants(op_type: &str) -> bool {
    matches!(
        op_type,
        "Constant"
            | "Identity"
            | "Cast"
            | "Gather"
            | "Unsqueeze"
            | "Concat"
            | "Reshape"
            | "Add"
            | "Mul"
            | "Sub"
            | "Shape"
            | "ConstantOfShape"
            | "Slice"
            | "Transpose"
    )
}

/// Maps one node, recording its output value.
pub(crate) fn map_node(
    ctx: &Ctx<'_>,
    values: &mut Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<(), ImportError> {
    if !(ctx.node.domain.is_empty() || ctx.node.domain == "ai.onnx") {
        return Err(
            ctx.unsupported(format!("its domain `{}` is not the default one", ctx.node.domain))
        );
    }
    let lrn = if local_response::may_start(ctx, values) {
        local_response::recognise(ctx, values, em, absorbed)?
    } else {
        None
    };
    let folded = if lrn.is_some() {
        lrn
    } else if pattern::may_start(&ctx.node.op_type) {
        pattern::recognise(ctx, values, em, absorbed)?
    } else if ctx.node.op_type == "Reshape" {
        layers::group_norm(ctx, values, em, absorbed)?
    } else {
        None
    };
    if let Some((value, name)) = folded {
        values.insert(name, value);
        return Ok(());
    }
    let mut out = ctx.output()?.to_string();
    let value = match ctx.node.op_type.as_str() {
        "Constant" => Value::Const(constant_node(ctx)?),
        "Identity" => same(ctx, values, em, 0)?,
        "Cast" => cast(ctx, values, em)?,
        "Shape" => Value::Const(shape_of(ctx, values)?),
        "Gather" => Value::Const(gather(ctx, values)?),
        "Unsqueeze" => match ctx.input(values, 0)? {
            Some(Value::Tensor(x)) => layers::unsqueeze(ctx, values, em, x.clone())?,
            _ => Value::Const(unsqueeze(ctx, values)?),
        },
        "Concat" => concat(ctx, values, em)?,
        "Reshape" => reshape(ctx, values, em)?,
        "Flatten" => flatten(ctx, values, em)?,
        "Relu" => activation(ctx, values, em, "relu".into())?,
        "Sigmoid" => activation(ctx, values, em, "sigmoid".into())?,
        "Tanh" => activation(ctx, values, em, "tanh".into())?,
        "LeakyRelu" => {
            let slope = ctx.float("alpha", 0.01);
            let stage = if slope == 0.01 {
                "leaky_relu".into()
            } else {
                format!("leaky_relu(slope: {})", num(slope))
            };
            activation(ctx, values, em, stage)?
        }
        "Clip" => clip(ctx, values, em)?,
        "Dropout" => dropout(ctx, values, em)?,
        "Softmax" => softmax(ctx, values, em, "softmax")?,
        "LogSoftmax" => softmax(ctx, values, em, "log_softmax")?,
        "Conv" => conv(ctx, values, em)?,
        "ConvTranspose" => layers::conv_transpose(ctx, values, em)?,
        "HardSigmoid" => {
            let (alpha, beta) = (ctx.float("alpha", 0.2), ctx.float("beta", 0.5));
            if (alpha - 1.0 / 6.0).abs() > 1e-6 || beta != 0.5 {
                return Err(ctx.unsupported(format!(
                    "alpha {alpha} and beta {beta}: `hardsigmoid` is PyTorch's (1/6, 0.5)"
                )));
            }
            activation(ctx, values, em, "hardsigmoid".into())?
        }
        "HardSwish" => activation(ctx, values, em, "hardswish".into())?,
        "Elu" => {
            let alpha = ctx.float("alpha", 1.0);
            let stage = if alpha == 1.0 { "elu".into() } else { format!("elu({})", num(alpha)) };
            activation(ctx, values, em, stage)?
        }
        "PRelu" => layers::prelu(ctx, values, em)?,
        "LRN" => layers::lrn(ctx, values, em)?,
        "LayerNormalization" => layers::layer_norm(ctx, values, em)?,
        "Resize" | "Upsample" => layers::resize(ctx, values, em)?,
        "Transpose" => match ctx.input(values, 0)? {
            Some(Value::Const(c)) => Value::Const(constants::transpose(ctx, c)?),
            _ => layers::transpose(ctx, values, em)?,
        },
        "Sub" => Value::Const(constants::sub(ctx, values)?),
        "ConstantOfShape" => Value::Const(constants::constant_of_shape(ctx, values)?),
        "Slice" => Value::Const(constants::slice(ctx, values)?),
        "Sum" => layers::sum(ctx, values, em)?,
        "Mul" => match (ctx.input(values, 0)?, ctx.input(values, 1)?) {
            (Some(Value::Const(a)), Some(Value::Const(b))) => {
                Value::Const(elementwise(ctx, a, b, |x, y| x * y)?)
            }
            _ => layers::mul(ctx, values, em)?,
        },
        "MaxPool" => pool(ctx, values, em, false)?,
        "AveragePool" => pool(ctx, values, em, true)?,
        "GlobalAveragePool" => {
            let x = ctx.tensor(values, 0)?;
            if x.onnx.len() != 4 {
                return Err(ctx.unsupported("only 4-d (NCHW) input maps to `global_avg_pool`"));
            }
            let x = to_onnx_layout(em, x);
            let onnx = vec![x.onnx[0], x.onnx[1], 1, 1];
            let net = vec![x.onnx[1]];
            let uses = em.uses_of(&out);
            Value::Tensor(em.pipe(&x, "global_avg_pool".into(), uses, onnx, net))
        }
        "Gemm" => gemm(ctx, values, em)?,
        "MatMul" => {
            let (value, name) = matmul(ctx, values, em, absorbed)?;
            out = name;
            value
        }
        "Add" => add(ctx, values, em)?,
        "BatchNormalization" => batch_norm(ctx, values, em)?,
        _ => return Err(ctx.unsupported("the importer has no mapping for this op")),
    };
    values.insert(out, value);
    Ok(())
}

/// `flow` with its `.net` shape brought back to its ONNX per-sample shape
/// (after `global_avg_pool`, a `[C]` that ONNX keeps as `[C, 1, 1]`).
fn to_onnx_layout(em: &mut Emitter, flow: Flow) -> Flow {
    if flow.net[..] == flow.onnx[1..] {
        return flow;
    }
    let dims: Vec<String> = flow.onnx[1..].iter().map(usize::to_string).collect();
    let net = flow.onnx[1..].to_vec();
    em.pipe(&flow, format!("reshape([{}])", dims.join(", ")), 1, flow.onnx.clone(), net)
}

fn same(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter, i: usize) -> Result<Value, ImportError> {
    match ctx.input(values, i)? {
        Some(Value::Tensor(f)) => Ok(Value::Tensor(em.alias(f, ctx.output()?))),
        Some(Value::Const(c)) => Ok(Value::Const(c.clone())),
        None => Err(ctx.unsupported(format!("input {i} is missing"))),
    }
}

fn activation(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    stage: String,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    activation_of(ctx, em, x, stage)
}

fn constant_node(ctx: &Ctx<'_>) -> Result<Const, ImportError> {
    let Some(a) = ctx.node.attribute.first() else {
        return Err(ctx.unsupported("it has no value attribute"));
    };
    let (dims, values) = match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or_else(|| ctx.unsupported("`value` holds no tensor"))?;
            return constant(t, None);
        }
        "value_float" => (vec![], vec![f64::from(a.f)]),
        "value_int" => (vec![], vec![a.i as f64]),
        "value_floats" => (vec![a.floats.len()], a.floats.iter().map(|&f| f64::from(f)).collect()),
        "value_ints" => (vec![a.ints.len()], a.ints.iter().map(|&i| i as f64).collect()),
        other => {
            return Err(ctx.unsupported(format!("its `{other}` attribute is not a numeric tensor")))
        }
    };
    Ok(Const { dims, values, name: None })
}

fn cast(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let to = ctx.int("to", 1);
    match ctx.input(values, 0)? {
        Some(Value::Const(c)) => {
            let convert = |v: f64| match to {
                1 | 10 | 11 | 16 => v,
                9 => f64::from(u8::from(v != 0.0)),
                _ => v.trunc(),
            };
            Ok(Value::Const(Const {
                dims: c.dims.clone(),
                values: c.values.iter().map(|&v| convert(v)).collect(),
                name: None,
            }))
        }
        // Floats stay f32 in the network: a cast to float is no layer.
        Some(Value::Tensor(_)) if to == 1 => same(ctx, values, em, 0),
        Some(Value::Tensor(_)) => {
            Err(ctx.unsupported(format!("a cast of the network's data to element type {to}")))
        }
        None => Err(ctx.unsupported("input 0 is missing")),
    }
}

fn shape_of(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let dims: Vec<usize> = match ctx.input(values, 0)? {
        Some(Value::Tensor(f)) => f.onnx.clone(),
        Some(Value::Const(c)) => c.dims.clone(),
        None => return Err(ctx.unsupported("input 0 is missing")),
    };
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(ctx.int("start", 0));
    let end = clamp(ctx.int("end", rank)).max(start);
    let values: Vec<f64> = dims[start..end].iter().map(|&d| d as f64).collect();
    Ok(Const { dims: vec![values.len()], values, name: None })
}

/// Normalises a possibly negative `axis` of a rank-`rank` tensor.
fn axis(ctx: &Ctx<'_>, axis: i64, rank: usize) -> Result<usize, ImportError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(ctx.unsupported(format!("axis {axis} is outside a rank-{rank} tensor")));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// The most values a constant computed while importing (by Gather, which
/// copies a slice per index) may hold: shape plumbing is a few values, and
/// a small file must not make the importer allocate without end.
const MAX_COMPUTED_VALUES: usize = 1 << 24;

fn gather(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let data = ctx.konst(values, 0)?;
    let indices = ctx.konst(values, 1)?;
    let ax = axis(ctx, ctx.int("axis", 0), data.dims.len())?;
    let n = data.dims[ax];
    let rows: Vec<usize> = indices
        .values
        .iter()
        .map(|&index| {
            let i = if index < 0.0 { index + n as f64 } else { index };
            if i < 0.0 || i >= n as f64 {
                return Err(ctx.unsupported(format!("index {index} is outside a dim of {n}")));
            }
            Ok(i as usize)
        })
        .collect::<Result<_, _>>()?;
    let mut dims = data.dims[..ax].to_vec();
    dims.extend_from_slice(&indices.dims);
    dims.extend_from_slice(&data.dims[ax + 1..]);
    let count = computed_len(ctx, &dims)?;
    let mut out = Vec::with_capacity(count);
    if count > 0 {
        // No dim is 0, so each of these is at most `count`.
        let (outer, inner) = split(&data.dims, ax);
        for o in 0..outer {
            for &i in &rows {
                let start = (o * n + i) * inner;
                out.extend_from_slice(&data.values[start..start + inner]);
            }
        }
    }
    Ok(Const { dims, values: out, name: None })
}

/// The number of values of a constant of `dims` that an op computes,
/// checked before anything is made: beside a dim of 0 the other dims are
/// not bounded by the values the file holds.
fn computed_len(ctx: &Ctx<'_>, dims: &[usize]) -> Result<usize, ImportError> {
    dims.iter()
        .try_fold(1usize, |c, &d| c.checked_mul(d))
        .filter(|&c| c <= MAX_COMPUTED_VALUES)
        .ok_or_else(|| {
            ctx.unsupported(format!(
                "it computes a constant of shape {dims:?}, over {MAX_COMPUTED_VALUES} values"
            ))
        })
}

/// The sizes before and after axis `ax`.
fn split(dims: &[usize], ax: usize) -> (usize, usize) {
    (dims[..ax].iter().product(), dims[ax + 1..].iter().product())
}

/// An Unsqueeze's new axes (its input or, before opset 13, its attribute),
/// in order, for an input of rank `rank_in`.
fn unsqueeze_axes(
    ctx: &Ctx<'_>,
    values: &Values,
    rank_in: usize,
) -> Result<Vec<usize>, ImportError> {
    let axes: Vec<i64> = if ctx.opset >= 13 {
        ctx.konst(values, 1)?.values.iter().map(|&v| v as i64).collect()
    } else {
        ctx.ints("axes").ok_or_else(|| ctx.unsupported("it has no `axes`"))?.to_vec()
    };
    let rank = rank_in + axes.len();
    let mut axes: Vec<usize> =
        axes.iter().map(|&a| axis(ctx, a, rank)).collect::<Result<_, _>>()?;
    axes.sort_unstable();
    Ok(axes)
}

fn unsqueeze(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let data = ctx.konst(values, 0)?;
    let axes = unsqueeze_axes(ctx, values, data.dims.len())?;
    let mut dims = data.dims.clone();
    for a in axes {
        dims.insert(a.min(dims.len()), 1);
    }
    Ok(Const { dims, values: data.values, name: data.name })
}

fn concat(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let inputs: Vec<&Value> = (0..ctx.node.input.len())
        .map(|i| {
            ctx.input(values, i)?.ok_or_else(|| ctx.unsupported(format!("input {i} is missing")))
        })
        .collect::<Result<_, _>>()?;
    if inputs.iter().all(|v| matches!(v, Value::Const(_))) {
        let consts: Vec<&Const> = inputs
            .iter()
            .filter_map(|v| match v {
                Value::Const(c) => Some(c),
                Value::Tensor(_) => None,
            })
            .collect();
        return Ok(Value::Const(concat_consts(ctx, &consts)?));
    }
    let flows: Vec<Flow> = inputs
        .iter()
        .map(|v| match v {
            Value::Tensor(f) => Ok(f.clone()),
            Value::Const(_) => Err(ctx.unsupported("it joins a constant to the network's data")),
        })
        .collect::<Result<_, _>>()?;
    let rank = flows[0].onnx.len();
    if axis(ctx, ctx.int("axis", 1), rank)? != 1 {
        return Err(ctx.unsupported("only a concat along the channel axis (1) maps to `concat`"));
    }
    let mut onnx = flows[0].onnx.clone();
    onnx[1] = 0;
    for f in &flows {
        let mut other = f.onnx.clone();
        if other.len() != rank {
            return Err(ctx.unsupported("its inputs differ in rank"));
        }
        onnx[1] += other[1];
        other[1] = onnx[1];
        if other != onnx {
            return Err(ctx.unsupported("its inputs differ in a dim besides the channels"));
        }
    }
    let flows: Vec<Flow> = flows.into_iter().map(|f| to_onnx_layout(em, f)).collect();
    let uses = em.uses_of(ctx.output()?);
    let net = onnx[1..].to_vec();
    Ok(Value::Tensor(em.join("concat", &flows, uses, onnx, net)))
}

fn concat_consts(ctx: &Ctx<'_>, consts: &[&Const]) -> Result<Const, ImportError> {
    let rank = consts[0].dims.len();
    let ax = axis(ctx, ctx.int("axis", 0), rank)?;
    let mut dims = consts[0].dims.clone();
    dims[ax] = consts
        .iter()
        .try_fold(0usize, |sum, c| sum.checked_add(c.dims.get(ax).copied().unwrap_or(0)))
        .ok_or_else(|| ctx.unsupported("its constant inputs' dims overflow"))?;
    for c in consts {
        if c.dims.len() != rank || c.dims[..ax] != dims[..ax] || c.dims[ax + 1..] != dims[ax + 1..]
        {
            return Err(ctx.unsupported("its constant inputs differ in shape"));
        }
    }
    let count = computed_len(ctx, &dims)?;
    let mut out = Vec::with_capacity(count);
    if count > 0 {
        // No dim of the output is 0, so each of these is at most `count`.
        let (outer, _) = split(&dims, ax);
        for o in 0..outer {
            for c in consts {
                let (_, inner) = split(&c.dims, ax);
                let slice = c.dims[ax] * inner;
                out.extend_from_slice(&c.values[o * slice..(o + 1) * slice]);
            }
        }
    }
    Ok(Const { dims, values: out, name: None })
}

/// A flow whose ONNX shape changes to `onnx` while its values stay:
/// `flatten` or `reshape` unless the `.net` shape is already the new one.
fn regroup(
    ctx: &Ctx<'_>,
    em: &mut Emitter,
    x: Flow,
    onnx: Vec<usize>,
) -> Result<Value, ImportError> {
    let net = onnx[1..].to_vec();
    if x.net == net {
        let mut flow = em.alias(&x, ctx.output()?);
        flow.onnx = onnx;
        return Ok(Value::Tensor(flow));
    }
    let stage = if net.len() == 1 {
        "flatten".to_string()
    } else {
        let dims: Vec<String> = net.iter().map(usize::to_string).collect();
        format!("reshape([{}])", dims.join(", "))
    };
    let uses = em.uses_of(ctx.output()?);
    Ok(Value::Tensor(em.pipe(&x, stage, uses, onnx, net)))
}

fn flatten(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    if axis(ctx, ctx.int("axis", 1), x.onnx.len() + 1)? != 1 {
        return Err(
            ctx.unsupported("only a flatten from axis 1 (keeping the batch) maps to `flatten`")
        );
    }
    let onnx = vec![x.onnx[0], x.onnx[1..].iter().product()];
    regroup(ctx, em, x, onnx)
}

/// The dims a Reshape to `target` gives a tensor of `data_dims`.
fn reshaped(ctx: &Ctx<'_>, target: &Const, data_dims: &[usize]) -> Result<Vec<usize>, ImportError> {
    let count: usize = data_dims.iter().product();
    let allow_zero = ctx.int("allowzero", 0) == 1;
    let mut dims = Vec::with_capacity(target.values.len());
    let mut infer = None;
    for (i, &d) in target.values.iter().enumerate() {
        match d as i64 {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allow_zero => dims.push(
                *data_dims
                    .get(i)
                    .ok_or_else(|| ctx.unsupported("a 0 dim past the input's rank"))?,
            ),
            d if d >= 0 => dims.push(d as usize),
            d => return Err(ctx.unsupported(format!("target dim {d}"))),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(ctx
                .unsupported(format!("{count} values cannot take the shape {:?}", target.values)));
        }
        dims[i] = count / known;
    }
    if dims.iter().product::<usize>() != count {
        return Err(ctx.unsupported(format!("{count} values cannot take the shape {dims:?}")));
    }
    Ok(dims)
}

fn reshape(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let target = ctx.konst(values, 1)?;
    let data_dims = match ctx.input(values, 0)? {
        Some(Value::Tensor(f)) => f.onnx.clone(),
        Some(Value::Const(c)) => c.dims.clone(),
        None => return Err(ctx.unsupported("input 0 is missing")),
    };
    let dims = reshaped(ctx, &target, &data_dims)?;
    match ctx.input(values, 0)? {
        Some(Value::Const(c)) => {
            Ok(Value::Const(Const { dims, values: c.values.clone(), name: c.name.clone() }))
        }
        Some(Value::Tensor(x)) => {
            if dims.len() < 2 || dims[0] != x.onnx[0] {
                return Err(ctx.unsupported(format!(
                    "the shape {dims:?} does not keep the batch ({}) first",
                    x.onnx[0]
                )));
            }
            regroup(ctx, em, x.clone(), dims)
        }
        None => Err(ctx.unsupported("input 0 is missing")),
    }
}

/// A scalar bound of Clip: an input from opset 11, an attribute before.
fn clip_bound(
    ctx: &Ctx<'_>,
    values: &Values,
    input: usize,
    attr: &str,
) -> Result<Option<f64>, ImportError> {
    if ctx.opset < 11 {
        return Ok(ctx.attr(attr).map(|a| f64::from(a.f)));
    }
    match ctx.opt_const(values, input)? {
        None => Ok(None),
        Some(c) if c.values.len() == 1 => Ok(Some(c.values[0])),
        Some(_) => Err(ctx.unsupported(format!("its `{attr}` is not a scalar"))),
    }
}

fn clip(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let lo = clip_bound(ctx, values, 1, "min")?.filter(|v| v.is_finite());
    let hi = clip_bound(ctx, values, 2, "max")?.filter(|v| v.is_finite());
    let stage = match (lo, hi) {
        (None, None) => return same(ctx, values, em, 0),
        (Some(0.0), None) => "relu".to_string(),
        (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => "relu6".to_string(),
        (Some(lo), Some(hi)) if lo < hi => {
            format!("hardtanh(min_val: {}, max_val: {})", num(lo as f32), num(hi as f32))
        }
        (lo, hi) => {
            return Err(ctx.unsupported(format!(
                "a clip to [{lo:?}, {hi:?}] is neither relu, relu6 nor hardtanh"
            )))
        }
    };
    activation(ctx, values, em, stage)
}

fn dropout(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    if ctx.node.output.get(1).is_some_and(|m| em.uses_of(m) > 0) {
        return Err(ctx.unsupported("its mask output is used"));
    }
    let ratio = if ctx.opset >= 12 {
        match ctx.opt_const(values, 1)? {
            Some(c) if c.values.len() == 1 => c.values[0] as f32,
            Some(_) => return Err(ctx.unsupported("its ratio is not a scalar")),
            None => 0.5,
        }
    } else {
        ctx.float("ratio", 0.5)
    };
    if !(0.0..1.0).contains(&ratio) {
        return Err(ctx.unsupported(format!("ratio {ratio} is outside [0, 1)")));
    }
    let stage =
        if ratio == 0.5 { "dropout".to_string() } else { format!("dropout(p: {})", num(ratio)) };
    activation(ctx, values, em, stage)
}

fn softmax(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    op: &str,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let rank = x.onnx.len();
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let ax = axis(ctx, ctx.int("axis", default), rank)?;
    // Before opset 13 the op normalises over all dims from `axis` on,
    // which is the channel axis alone only for 2-d input.
    if ax != 1 || (ctx.opset < 13 && rank != 2) {
        return Err(
            ctx.unsupported(format!("only a {op} over the channel axis (1) maps to `{op}`"))
        );
    }
    let x = to_onnx_layout(em, x);
    activation_of(ctx, em, x, op.to_string())
}

fn activation_of(
    ctx: &Ctx<'_>,
    em: &mut Emitter,
    x: Flow,
    stage: String,
) -> Result<Value, ImportError> {
    let uses = em.uses_of(ctx.output()?);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    Ok(Value::Tensor(em.pipe(&x, stage, uses, onnx, net)))
}

/// Symmetric 2-d pads `[top, left, bottom, right]`, or the reason not.
fn pads_2d(ctx: &Ctx<'_>) -> Result<(i64, i64), ImportError> {
    match ctx.attr("auto_pad").map(|a| a.s.as_slice()) {
        None | Some(b"NOTSET") | Some(b"") => {}
        Some(b"VALID") => return Ok((0, 0)),
        Some(other) => {
            return Err(ctx.unsupported(format!("auto_pad {}", String::from_utf8_lossy(other))))
        }
    }
    match ctx.ints("pads") {
        None => Ok((0, 0)),
        Some(&[t, l, b, r]) if t == b && l == r && t >= 0 && l >= 0 => Ok((t, l)),
        Some(p) => Err(ctx.unsupported(format!("pads {p:?} are not the same on both sides"))),
    }
}

/// An attribute of two positive values, or `default` for both.
fn pair_attr(ctx: &Ctx<'_>, name: &str, default: i64) -> Result<(i64, i64), ImportError> {
    match ctx.ints(name) {
        None => Ok((default, default)),
        Some(&[h, w]) if h > 0 && w > 0 => Ok((h, w)),
        Some(v) => Err(ctx.unsupported(format!("{name} {v:?} is not two positive values"))),
    }
}

/// PyTorch's (and ONNX's) output size of a window op on one axis.
fn window_out(
    size: i64,
    kernel: i64,
    stride: i64,
    pad: i64,
    dilation: i64,
    ceil: bool,
) -> Option<usize> {
    let span = size + 2 * pad - dilation * (kernel - 1) - 1;
    if span < 0 {
        return None;
    }
    let mut out = if ceil { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
    // With ceil mode, the last window must start inside the input or its left padding.
    if ceil && (out - 1) * stride >= size + pad {
        out -= 1;
    }
    usize::try_from(out).ok()
}

fn conv(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let w = ctx.konst(values, 1)?;
    let b = ctx.opt_const(values, 2)?;
    if x.onnx.len() != 4 || w.dims.len() != 4 {
        return Err(ctx.unsupported("only 2-d convolution (4-d input and weight) maps to `conv2d`"));
    }
    let (kh, kw) = (w.dims[2] as i64, w.dims[3] as i64);
    if ctx.ints("kernel_shape").is_some_and(|k| k != [kh, kw]) {
        return Err(ctx.unsupported("its kernel_shape is not its weight's"));
    }
    let (sh, sw) = pair_attr(ctx, "strides", 1)?;
    let (dh, dw) = pair_attr(ctx, "dilations", 1)?;
    let (ph, pw) = pads_2d(ctx)?;
    let groups = ctx.int("group", 1);
    let (m, c) = (w.dims[0], x.onnx[1]);
    if groups < 1 || w.dims[1] as i64 * groups != c as i64 || m as i64 % groups != 0 {
        return Err(ctx.unsupported(format!(
            "a weight of {:?} in {groups} groups does not fit {c} channels",
            w.dims
        )));
    }
    let h = window_out(x.onnx[2] as i64, kh, sh, ph, dh, false);
    let wo = window_out(x.onnx[3] as i64, kw, sw, pw, dw, false);
    let (Some(h), Some(wo)) = (h, wo) else {
        return Err(ctx.unsupported("its kernel is larger than the padded input"));
    };
    let settings = [("stride", (sh, sw), 1), ("pad", (ph, pw), 0), ("dilation", (dh, dw), 1)];
    conv_stage(ctx, em, (x, "conv2d", &settings), groups, (&w, b.as_ref()), (m, h, wo))
}

/// A conv setting: its `.net` name, its value, and the default it is left
/// out at.
type Setting<'a> = (&'a str, (i64, i64), i64);

/// A stage both convolutions end with: `op` of `m` channels of `h`×`wo`,
/// its `(name, value, default)` settings written where they differ from
/// the default, its groups and bias, its weights, and the activation after
/// it folded in.
fn conv_stage(
    ctx: &Ctx<'_>,
    em: &mut Emitter,
    (x, op, settings): (Flow, &str, &[Setting<'_>]),
    groups: i64,
    (w, b): (&Const, Option<&Const>),
    (m, h, wo): (usize, usize, usize),
) -> Result<Value, ImportError> {
    let name = em.layer_name(w.name.as_deref().unwrap_or(&ctx.node.name));
    let mut stage = format!("{op}({m}, kernel: {}", pair(w.dims[2] as i64, w.dims[3] as i64));
    for &(arg, (a, b), default) in settings {
        if (a, b) != (default, default) {
            stage.push_str(&format!(", {arg}: {}", pair(a, b)));
        }
    }
    if groups != 1 {
        stage.push_str(&format!(", groups: {groups}"));
    }
    if b.is_none() {
        stage.push_str(", bias: false");
    }
    stage.push_str(&format!(") as {name}"));
    em.weight(&name, "weight", w.dims.clone(), &w.values);
    if let Some(b) = b {
        if b.values.len() != m {
            return Err(
                ctx.unsupported(format!("a bias of {} values for {m} channels", b.values.len()))
            );
        }
        em.weight(&name, "bias", vec![m], &b.values);
    }
    let x = to_onnx_layout(em, x);
    let onnx = vec![x.onnx[0], m, h, wo];
    activation_of_shape(ctx, em, x, stage, onnx)
}

/// A layer changing the shape to `onnx` (its `.net` shape the same).
fn activation_of_shape(
    ctx: &Ctx<'_>,
    em: &mut Emitter,
    x: Flow,
    stage: String,
    onnx: Vec<usize>,
) -> Result<Value, ImportError> {
    let uses = em.uses_of(ctx.output()?);
    let net = onnx[1..].to_vec();
    Ok(Value::Tensor(em.pipe(&x, stage, uses, onnx, net)))
}

fn pool(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    average: bool,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    if x.onnx.len() != 4 {
        return Err(ctx.unsupported("only 2-d pooling (4-d input) maps to a pool"));
    }
    let (kh, kw) = match ctx.ints("kernel_shape") {
        Some(&[h, w]) if h > 0 && w > 0 => (h, w),
        other => {
            return Err(
                ctx.unsupported(format!("kernel_shape {other:?} is not two positive values"))
            )
        }
    };
    let (sh, sw) = pair_attr(ctx, "strides", 1)?;
    if pair_attr(ctx, "dilations", 1)? != (1, 1) {
        return Err(ctx.unsupported("a dilated pool has no `.net` op"));
    }
    if ctx.int("storage_order", 0) != 0 {
        return Err(ctx.unsupported("a column-major storage order"));
    }
    let (ph, pw) = pads_2d(ctx)?;
    if 2 * ph > kh || 2 * pw > kw {
        return Err(ctx.unsupported("pads larger than half the kernel (PyTorch refuses them too)"));
    }
    let ceil = ctx.int("ceil_mode", 0) == 1;
    let h = window_out(x.onnx[2] as i64, kh, sh, ph, 1, ceil);
    let w = window_out(x.onnx[3] as i64, kw, sw, pw, 1, ceil);
    let (Some(h), Some(w)) = (h, w) else {
        return Err(ctx.unsupported("its kernel is larger than the padded input"));
    };
    let op = if average { "avg_pool" } else { "max_pool" };
    let mut stage = format!("{op}({}", pair(kh, kw));
    // `.net`'s stride defaults to the kernel, ONNX's to 1.
    if (sh, sw) != (kh, kw) {
        stage.push_str(&format!(", stride: {}", pair(sh, sw)));
    }
    if (ph, pw) != (0, 0) {
        stage.push_str(&format!(", pad: {}", pair(ph, pw)));
    }
    if ceil {
        stage.push_str(", ceil_mode: true");
    }
    // ONNX's default excludes the padding, PyTorch's (and `.net`'s) includes it.
    if average && ctx.int("count_include_pad", 0) == 0 {
        stage.push_str(", count_include_pad: false");
    }
    stage.push(')');
    let x = to_onnx_layout(em, x);
    let onnx = vec![x.onnx[0], x.onnx[1], h, w];
    activation_of_shape(ctx, em, x, stage, onnx)
}

/// A `dense` layer from a weight `[units, in]` and an optional bias.
fn dense(
    ctx: &Ctx<'_>,
    em: &mut Emitter,
    x: Flow,
    weight: (&str, Vec<f64>, usize),
    bias: Option<Vec<f64>>,
    output: &str,
) -> Result<Value, ImportError> {
    let (weight_name, weight, units) = weight;
    if x.onnx.len() != 2 {
        return Err(ctx.unsupported(format!(
            "its input has rank {}; only [batch, features] maps to `dense`",
            x.onnx.len()
        )));
    }
    let features = x.onnx[1];
    if weight.len() != units * features {
        return Err(ctx.unsupported("its weight does not fit its input"));
    }
    let name = em.layer_name(weight_name);
    let bias_arg = if bias.is_some() { "" } else { ", bias: false" };
    let stage = format!("dense({units}{bias_arg}) as {name}");
    em.weight(&name, "weight", vec![units, features], &weight);
    if let Some(b) = bias {
        em.weight(&name, "bias", vec![units], &b);
    }
    let x = to_onnx_layout(em, x);
    let uses = em.uses_of(output);
    let onnx = vec![x.onnx[0], units];
    Ok(Value::Tensor(em.pipe(&x, stage, uses, onnx, vec![units])))
}

/// `[rows, cols]` values transposed to `[cols, rows]`.
fn transpose(values: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| values[r * cols + c])).collect()
}

/// A bias broadcast to `units` values, or `None` if it cannot be.
fn bias_of(c: &Const, units: usize, scale: f64) -> Option<Vec<f64>> {
    let n: usize = c.dims.iter().product();
    let leading_ones = c.dims.len() <= 2 && c.dims.iter().rev().skip(1).all(|&d| d == 1);
    match n {
        1 => Some(vec![c.values[0] * scale; units]),
        n if n == units && leading_ones => Some(c.values.iter().map(|v| v * scale).collect()),
        _ => None,
    }
}

fn gemm(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let b = ctx.konst(values, 1)?;
    let c = ctx.opt_const(values, 2)?;
    if ctx.int("transA", 0) != 0 {
        return Err(ctx.unsupported("transA = 1 transposes the batch away"));
    }
    let [rows, cols] = b.dims[..] else {
        return Err(ctx.unsupported("its B is not a matrix"));
    };
    let alpha = f64::from(ctx.float("alpha", 1.0));
    let beta = f64::from(ctx.float("beta", 1.0));
    let (weight, units) = if ctx.int("transB", 0) != 0 {
        (b.values.clone(), rows)
    } else {
        (transpose(&b.values, rows, cols), cols)
    };
    let weight: Vec<f64> = weight.iter().map(|w| w * alpha).collect();
    let bias = match &c {
        Some(c) => Some(bias_of(c, units, beta).ok_or_else(|| {
            ctx.unsupported(format!("its C of shape {:?} is not a bias of {units}", c.dims))
        })?),
        None => None,
    };
    let name = b.name.clone().unwrap_or_else(|| ctx.node.name.clone());
    dense(ctx, em, x, (&name, weight, units), bias, ctx.output()?)
}

/// MatMul by a constant `[in, units]`; an Add of a constant bias right
/// after it (PyTorch's `x @ w + b`, and Linear in some exports) is folded
/// in, and the value is the Add's output.
fn matmul(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<(Value, String), ImportError> {
    let x = ctx.tensor(values, 0)?;
    let b = ctx.konst(values, 1)?;
    let [rows, units] = b.dims[..] else {
        return Err(ctx.unsupported("its second input is not a matrix"));
    };
    let out = ctx.output()?;
    let weight = transpose(&b.values, rows, units);
    let mut bias = None;
    let mut output = out.to_string();
    if em.uses_of(out) == 1 {
        let next = ctx
            .graph
            .node
            .iter()
            .enumerate()
            .skip(ctx.index + 1)
            .find(|(_, n)| n.input.iter().any(|i| i == out));
        if let Some((j, add)) = next.filter(|(_, n)| n.op_type == "Add" && n.input.len() == 2) {
            let other = if add.input[0] == out { &add.input[1] } else { &add.input[0] };
            if let Some(Value::Const(c)) = values.get(other) {
                if let (Some(b), Some(o)) = (bias_of(c, units, 1.0), add.output.first()) {
                    bias = Some(b);
                    output = o.clone();
                    absorbed[j] = true;
                }
            }
        }
    }
    let name = b.name.clone().unwrap_or_else(|| ctx.node.name.clone());
    let value = dense(ctx, em, x, (&name, weight, units), bias, &output)?;
    Ok((value, output))
}

fn add(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let (a, b) = match (ctx.input(values, 0)?, ctx.input(values, 1)?) {
        (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => (a.clone(), b.clone()),
        (Some(Value::Const(a)), Some(Value::Const(b))) => {
            return Ok(Value::Const(elementwise(ctx, a, b, |x, y| x + y)?));
        }
        (Some(_), Some(_)) => {
            return Err(ctx.unsupported(
                "it adds a constant to the network's data; only a bias right after a MatMul maps (to `dense`)",
            ))
        }
        _ => return Err(ctx.unsupported("it lacks an input")),
    };
    if a.onnx != b.onnx {
        return Err(ctx.unsupported(format!(
            "it broadcasts {:?} with {:?}; `add` takes equal shapes",
            a.onnx, b.onnx
        )));
    }
    let (a, b) =
        if a.net == b.net { (a, b) } else { (to_onnx_layout(em, a), to_onnx_layout(em, b)) };
    let uses = em.uses_of(ctx.output()?);
    let (onnx, net) = (a.onnx.clone(), a.net.clone());
    Ok(Value::Tensor(em.join("add", &[a, b], uses, onnx, net)))
}

/// Constant arithmetic of shape plumbing: equal shapes, or a scalar.
fn elementwise(
    ctx: &Ctx<'_>,
    a: &Const,
    b: &Const,
    f: fn(f64, f64) -> f64,
) -> Result<Const, ImportError> {
    let (dims, values) = if a.dims == b.dims {
        (a.dims.clone(), a.values.iter().zip(&b.values).map(|(&x, &y)| f(x, y)).collect())
    } else if b.values.len() == 1 {
        (a.dims.clone(), a.values.iter().map(|&x| f(x, b.values[0])).collect())
    } else if a.values.len() == 1 {
        (b.dims.clone(), b.values.iter().map(|&y| f(a.values[0], y)).collect())
    } else {
        return Err(ctx.unsupported(format!("constants of shapes {:?} and {:?}", a.dims, b.dims)));
    };
    Ok(Const { dims, values, name: None })
}

fn batch_norm(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    // A training-mode export (PyTorch's `TrainingMode.PRESERVE`) maps to
    // the same `batch_norm`, which trains with batch statistics; its
    // running-statistics outputs are the layer's buffers, not values.
    if ctx.node.output.iter().skip(1).any(|o| !o.is_empty() && em.uses_of(o) > 0) {
        return Err(ctx.unsupported("its running-statistics outputs are used as values"));
    }
    if x.onnx.len() != 2 && x.onnx.len() != 4 {
        return Err(ctx.unsupported("only [N, C] and [N, C, H, W] input maps to `batch_norm`"));
    }
    let channels = x.onnx[1];
    let params: Vec<Const> = (1..5).map(|i| ctx.konst(values, i)).collect::<Result<_, _>>()?;
    if params.iter().any(|p| p.values.len() != channels) {
        return Err(ctx.unsupported(format!(
            "its scale, bias, mean and variance are not {channels} values each"
        )));
    }
    let name = em.layer_name(params[0].name.as_deref().unwrap_or(&ctx.node.name));
    for (p, suffix) in params.iter().zip(["weight", "bias", "running_mean", "running_var"]) {
        em.weight(&name, suffix, vec![channels], &p.values);
    }
    let eps = ctx.float("epsilon", 1e-5);
    // ONNX's momentum weighs the running statistic, PyTorch's the batch's:
    // the shortest PyTorch momentum whose complement is ONNX's f32.
    let onnx_momentum = ctx.float("momentum", 0.9);
    let momentum = (1..=17)
        .filter_map(|digits| {
            format!("{:.*e}", digits - 1, 1.0 - f64::from(onnx_momentum)).parse().ok()
        })
        .find(|m: &f64| (1.0 - m) as f32 == onnx_momentum)
        .unwrap_or(1.0 - f64::from(onnx_momentum));
    let mut args = Vec::new();
    if eps != 1e-5 {
        args.push(format!("eps: {}", num(eps)));
    }
    if (momentum - 0.1).abs() > 1e-6 {
        args.push(format!("momentum: {}", num(momentum as f32)));
    }
    let stage = if args.is_empty() {
        format!("batch_norm as {name}")
    } else {
        format!("batch_norm({}) as {name}", args.join(", "))
    };
    let x = to_onnx_layout(em, x);
    activation_of(ctx, em, x, stage)
}
