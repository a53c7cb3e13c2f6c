//! The layers mapped beside the first set: transposed convolution, PReLU,
//! LRN, layer norm, group norm (from PyTorch's decomposition), resizing,
//! transposes, n-ary sums, products and unsqueezed tensors.

use super::{
    activation_of, activation_of_shape, axis, conv_stage, num, pads_2d, pair, pair_attr, regroup,
    to_onnx_layout, unsqueeze_axes, Ctx, Values,
};
use crate::import::onnx::emit::Emitter;
use crate::import::onnx::proto::Node;
use crate::import::onnx::{Const, Flow, ImportError, Value};

pub(super) fn conv_transpose(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let w = ctx.konst(values, 1)?;
    let b = ctx.opt_const(values, 2)?;
    if x.onnx.len() != 4 || w.dims.len() != 4 {
        return Err(ctx.unsupported("only a 2-d transposed convolution maps to `conv_transpose2d`"));
    }
    if ctx.attr("output_shape").is_some() {
        return Err(ctx.unsupported("an `output_shape`; `conv_transpose2d` takes `output_pad`"));
    }
    let (kh, kw) = (w.dims[2] as i64, w.dims[3] as i64);
    if ctx.ints("kernel_shape").is_some_and(|k| k != [kh, kw]) {
        return Err(ctx.unsupported("its kernel_shape is not its weight's"));
    }
    let (sh, sw) = pair_attr(ctx, "strides", 1)?;
    let (dh, dw) = pair_attr(ctx, "dilations", 1)?;
    let (ph, pw) = pads_2d(ctx)?;
    let (oph, opw) = match ctx.ints("output_padding") {
        None => (0, 0),
        Some(&[h, w]) if h >= 0 && w >= 0 => (h, w),
        Some(v) => return Err(ctx.unsupported(format!("output_padding {v:?}"))),
    };
    let groups = ctx.int("group", 1);
    let c = x.onnx[1];
    if groups < 1 || w.dims[0] != c || c as i64 % groups != 0 {
        return Err(ctx.unsupported(format!(
            "a weight of {:?} in {groups} groups does not fit {c} channels",
            w.dims
        )));
    }
    let m = w.dims[1] * groups as usize;
    let extent = |size: usize, s: i64, p: i64, d: i64, k: i64, op: i64| {
        usize::try_from((size as i64 - 1) * s - 2 * p + d * (k - 1) + op + 1)
            .ok()
            .filter(|&e| e > 0)
    };
    let (Some(h), Some(wo)) =
        (extent(x.onnx[2], sh, ph, dh, kh, oph), extent(x.onnx[3], sw, pw, dw, kw, opw))
    else {
        return Err(ctx.unsupported("its padding leaves no output"));
    };
    let settings = [
        ("stride", (sh, sw), 1),
        ("pad", (ph, pw), 0),
        ("output_pad", (oph, opw), 0),
        ("dilation", (dh, dw), 1),
    ];
    let x = (x, "conv_transpose2d", &settings[..]);
    conv_stage(ctx, em, x, groups, (&w, b.as_ref()), (m, h, wo))
}

/// One slope, or one per channel broadcast along axis 1.
pub(super) fn prelu(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let slope = ctx.konst(values, 1)?;
    let n = slope.values.len();
    let rank = x.onnx.len();
    let per_channel = rank >= 2
        && n == x.onnx[1]
        && slope.dims.len() == rank - 1
        && slope.dims[1..].iter().all(|&d| d == 1);
    let count = if n == 1 {
        String::new()
    } else if per_channel {
        format!("({n})")
    } else {
        return Err(ctx.unsupported(format!(
            "slopes of shape {:?} are neither one nor one per channel of {:?}",
            slope.dims, x.onnx
        )));
    };
    let name = em.layer_name(slope.name.as_deref().unwrap_or(&ctx.node.name));
    em.weight(&name, "weight", vec![n], &slope.values);
    let x = to_onnx_layout(em, x);
    activation_of(ctx, em, x, format!("prelu{count} as {name}"))
}

pub(super) fn lrn(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let size = ctx.int("size", 0);
    if size < 1 || size % 2 == 0 {
        return Err(ctx.unsupported(format!(
            "size {size}: only an odd size centres ONNX's window as `lrn` (PyTorch's) does"
        )));
    }
    let (alpha, beta, k) =
        (ctx.float("alpha", 1e-4), ctx.float("beta", 0.75), ctx.float("bias", 1.0));
    let stage = format!("lrn({size}, alpha: {}, beta: {}, k: {})", num(alpha), num(beta), num(k));
    let x = to_onnx_layout(em, x);
    activation_of(ctx, em, x, stage)
}

/// A constant of the node's input `i` made of `value` alone (absent
/// counts as `absent`).
fn all(c: Option<&Const>, value: f64, absent: bool) -> bool {
    c.map_or(absent, |c| c.values.iter().all(|&v| v == value))
}

pub(super) fn layer_norm(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    if ctx.node.output.iter().skip(1).any(|o| !o.is_empty() && em.uses_of(o) > 0) {
        return Err(ctx.unsupported("its mean and inverse deviation outputs are used"));
    }
    let ax = axis(ctx, ctx.int("axis", -1), x.onnx.len())?;
    if ax == 0 {
        return Err(ctx.unsupported("it normalises over the batch"));
    }
    let dims = x.onnx[ax..].to_vec();
    let len: usize = dims.iter().product();
    let scale = ctx.konst(values, 1)?;
    let bias = ctx.opt_const(values, 2)?;
    if scale.values.len() != len || bias.as_ref().is_some_and(|b| b.values.len() != len) {
        return Err(ctx.unsupported(format!("its scale and bias are not {len} values each")));
    }
    let mut args = Vec::new();
    if ax > 1 {
        let d: Vec<String> = dims.iter().map(usize::to_string).collect();
        args.push(format!("[{}]", d.join(", ")));
    }
    let eps = ctx.float("epsilon", 1e-5);
    if eps != 1e-5 {
        args.push(format!("eps: {}", num(eps)));
    }
    // A scale of ones that no initializer names (PyTorch's export of
    // `elementwise_affine=False`) is no parameter.
    let affine =
        scale.name.is_some() || !all(Some(&scale), 1.0, true) || !all(bias.as_ref(), 0.0, true);
    let mut stage = String::from("layer_norm");
    if !affine {
        args.push("elementwise_affine: false".into());
    }
    if !args.is_empty() {
        stage.push_str(&format!("({})", args.join(", ")));
    }
    if affine {
        let name = em.layer_name(scale.name.as_deref().unwrap_or(&ctx.node.name));
        em.weight(&name, "weight", dims.clone(), &scale.values);
        let b = bias.map_or_else(|| vec![0.0; len], |b| b.values);
        em.weight(&name, "bias", dims, &b);
        stage.push_str(&format!(" as {name}"));
    }
    let x = to_onnx_layout(em, x);
    activation_of(ctx, em, x, stage)
}

/// The one node after `index` that reads `name`, if nothing else does.
fn sole_consumer<'g>(ctx: &Ctx<'g>, em: &Emitter, name: &str) -> Option<(usize, &'g Node)> {
    if em.uses_of(name) != 1 {
        return None;
    }
    ctx.graph
        .node
        .iter()
        .enumerate()
        .skip(ctx.index + 1)
        .find(|(_, n)| n.input.iter().any(|i| i == name))
}

fn out(n: &Node) -> &str {
    n.output.first().map_or("", String::as_str)
}

/// The other input of a binary node than `name`, as a constant.
fn other_const<'v>(values: &'v Values, n: &Node, name: &str) -> Option<&'v Const> {
    let other = n.input.iter().find(|i| *i != name)?;
    match values.get(other) {
        Some(Value::Const(c)) => Some(c),
        _ => None,
    }
}

/// PyTorch's group norm below opset 18: a Reshape to `[N, G, -1]`, an
/// InstanceNormalization of unit scale and zero bias, a Reshape back to
/// the input's shape (by a constant or the input's `Shape`), then
/// optionally a Mul by the weight and an Add of the bias. From the first
/// Reshape: the stage, and the name of the value it stands for.
pub(super) fn group_norm(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<Option<(Value, String)>, ImportError> {
    let (Some(Value::Tensor(x)), Some(Value::Const(target))) =
        (ctx.input(values, 0)?, ctx.input(values, 1)?)
    else {
        return Ok(None);
    };
    let c = x.onnx.get(1).copied().unwrap_or(0);
    let groups = match target.values[..] {
        // A 0 copies the batch (Reshape's default `allowzero` 0).
        [n, g, -1.0]
            if (n == 0.0 || n as usize == x.onnx[0])
                && g >= 1.0
                && c.is_multiple_of(g as usize)
                && x.onnx.len() >= 2 =>
        {
            g as usize
        }
        _ => return Ok(None),
    };
    let Some((i_norm, norm)) = sole_consumer(ctx, em, out(ctx.node)) else { return Ok(None) };
    let unit = |i: usize| match norm.input.get(i).and_then(|n| values.get(n)) {
        Some(Value::Const(k)) => {
            k.values.len() == groups && all(Some(k), if i == 1 { 1.0 } else { 0.0 }, false)
        }
        _ => false,
    };
    if norm.op_type != "InstanceNormalization" || !unit(1) || !unit(2) {
        return Ok(None);
    }
    let Some((i_back, back)) = sole_consumer(ctx, em, out(norm)) else { return Ok(None) };
    let restores = back.op_type == "Reshape"
        && back.input.get(1).is_some_and(|t| match values.get(t) {
            Some(Value::Const(k)) => {
                k.values.iter().map(|&v| v as usize).eq(x.onnx.iter().copied())
            }
            _ => ctx.graph.node.iter().any(|n| {
                n.op_type == "Shape"
                    && n.input.first() == ctx.node.input.first()
                    && out(n) == t
                    && n.attribute.is_empty()
            }),
        });
    if !restores {
        return Ok(None);
    }
    let mut last = (i_back, back);
    let channel_const = |n: &Node, name: &str| {
        other_const(values, n, name).filter(|k| {
            k.values.len() == c && k.dims.first() == Some(&c) && k.dims[1..].iter().all(|&d| d == 1)
        })
    };
    let scale = sole_consumer(ctx, em, out(back))
        .filter(|(_, n)| n.op_type == "Mul")
        .and_then(|(j, n)| channel_const(n, out(back)).map(|k| ((j, n), k.clone())));
    let mut shift = None;
    if let Some(((j, n), _)) = &scale {
        last = (*j, *n);
        shift = sole_consumer(ctx, em, out(n))
            .filter(|(_, a)| a.op_type == "Add")
            .and_then(|(k, a)| channel_const(a, out(n)).map(|b| ((k, a), b.clone())));
        if let Some(((k, a), _)) = &shift {
            last = (*k, *a);
        }
    }
    for j in [i_norm, i_back]
        .into_iter()
        .chain(scale.iter().map(|s| s.0 .0))
        .chain(shift.iter().map(|s| s.0 .0))
    {
        absorbed[j] = true;
    }
    let eps = norm.attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
    let mut args = vec![groups.to_string()];
    if eps != 1e-5 {
        args.push(format!("eps: {}", num(eps)));
    }
    let x = to_onnx_layout(em, x.clone());
    let stage = match (scale, shift) {
        (None, _) => {
            args.push("affine: false".into());
            format!("group_norm({})", args.join(", "))
        }
        (Some((_, w)), b) => {
            let name = em.layer_name(w.name.as_deref().unwrap_or(&ctx.node.name));
            em.weight(&name, "weight", vec![c], &w.values);
            let b = b.map_or_else(|| vec![0.0; c], |(_, b)| b.values);
            em.weight(&name, "bias", vec![c], &b);
            format!("group_norm({}) as {name}", args.join(", "))
        }
    };
    let output = out(last.1).to_string();
    // The Shape node that sized the Reshape back reads `x` too.
    if !matches!(back.input.get(1).and_then(|t| values.get(t)), Some(Value::Const(_))) {
        em.drop_uses(&x, 1);
    }
    let uses = em.uses_of(&output);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    Ok(Some((Value::Tensor(em.pipe(&x, stage, uses, onnx, net)), output)))
}

/// The integer factor of one axis, or the reason not.
fn factor(ctx: &Ctx<'_>, f: f64) -> Result<usize, ImportError> {
    if f >= 1.0 && f.fract() == 0.0 {
        Ok(f as usize)
    } else {
        Err(ctx.unsupported(format!("a scale of {f}: `upsample` takes whole factors")))
    }
}

/// Resize (opset 10 and later) and the older Upsample, by whole factors.
pub(super) fn resize(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    if x.onnx.len() != 4 {
        return Err(ctx.unsupported("only 4-d (NCHW) input maps to `upsample`"));
    }
    let upsample = ctx.node.op_type == "Upsample";
    let scales: Option<Vec<f64>> = if upsample && ctx.opset < 9 {
        ctx.attr("scales").map(|a| a.floats.iter().map(|&f| f64::from(f)).collect())
    } else {
        let i = if upsample || ctx.opset < 11 { 1 } else { 2 };
        ctx.opt_const(values, i)?.map(|c| c.values).filter(|v| !v.is_empty())
    };
    let scales = match scales {
        Some(s) => s,
        None => match ctx.opt_const(values, 3)? {
            Some(sizes) if sizes.values.len() == 4 => {
                sizes.values.iter().zip(&x.onnx).map(|(&s, &d)| s / d as f64).collect()
            }
            _ => return Err(ctx.unsupported("it has neither constant scales nor sizes")),
        },
    };
    let [n, c, sh, sw] = scales[..] else {
        return Err(ctx.unsupported(format!("scales {scales:?} are not four")));
    };
    if n != 1.0 || c != 1.0 {
        return Err(ctx.unsupported("it resizes the batch or the channels"));
    }
    let (sh, sw) = (factor(ctx, sh)?, factor(ctx, sw)?);
    let text = |name: &str, default: &str| {
        ctx.attr(name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
    };
    let mode = text("mode", "nearest");
    let transform =
        text("coordinate_transformation_mode", if upsample { "asymmetric" } else { "half_pixel" });
    let nearest = text("nearest_mode", if upsample { "floor" } else { "round_prefer_floor" });
    let bilinear = match (mode.as_str(), transform.as_str()) {
        ("nearest", "asymmetric") if nearest == "floor" => false,
        ("linear", "half_pixel" | "pytorch_half_pixel") if !upsample => true,
        _ => {
            return Err(ctx.unsupported(format!(
                "mode {mode} with coordinates {transform} (and nearest_mode {nearest}): `upsample` \
                 is PyTorch's nearest (asymmetric, floor) or bilinear (half_pixel)"
            )))
        }
    };
    let mut stage = format!("upsample({}", pair(sh as i64, sw as i64));
    if bilinear {
        stage.push_str(", mode: bilinear");
    }
    stage.push(')');
    let x = to_onnx_layout(em, x);
    let onnx = vec![x.onnx[0], x.onnx[1], x.onnx[2] * sh, x.onnx[3] * sw];
    activation_of_shape(ctx, em, x, stage, onnx)
}

/// A transpose keeping the batch first.
pub(super) fn transpose(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, ImportError> {
    let x = ctx.tensor(values, 0)?;
    let rank = x.onnx.len();
    let perm: Vec<usize> = match ctx.ints("perm") {
        Some(p) => p.iter().map(|&a| axis(ctx, a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() || perm.first() != Some(&0) {
        return Err(ctx.unsupported(format!("perm {perm:?} does not keep the batch first")));
    }
    let x = to_onnx_layout(em, x);
    if perm.iter().enumerate().all(|(i, &a)| i == a) {
        return Ok(Value::Tensor(em.alias(&x, ctx.output()?)));
    }
    let dims: Vec<String> = perm[1..].iter().map(|a| (a - 1).to_string()).collect();
    let onnx: Vec<usize> = perm.iter().map(|&a| x.onnx[a]).collect();
    let stage = format!("permute([{}])", dims.join(", "));
    activation_of_shape(ctx, em, x, stage, onnx)
}

/// The computed tensors of all the node's inputs.
fn flows(ctx: &Ctx<'_>, values: &Values, what: &str) -> Result<Vec<Flow>, ImportError> {
    (0..ctx.node.input.len())
        .map(|i| match ctx.input(values, i)? {
            Some(Value::Tensor(f)) => Ok(f.clone()),
            Some(Value::Const(_)) => Err(ctx.unsupported(format!(
                "it {what} a constant and the network's data; only GELU's and SiLU's formulas do"
            ))),
            None => Err(ctx.unsupported(format!("input {i} is missing"))),
        })
        .collect()
}

pub(super) fn sum(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let inputs = flows(ctx, values, "sums")?;
    if inputs.len() == 1 {
        return Ok(Value::Tensor(em.alias(&inputs[0], ctx.output()?)));
    }
    if inputs.iter().any(|f| f.onnx != inputs[0].onnx) {
        return Err(ctx.unsupported("it broadcasts; `add` takes equal shapes"));
    }
    let inputs: Vec<Flow> = if inputs.iter().all(|f| f.net == inputs[0].net) {
        inputs
    } else {
        inputs.into_iter().map(|f| to_onnx_layout(em, f)).collect()
    };
    let uses = em.uses_of(ctx.output()?);
    let (onnx, net) = (inputs[0].onnx.clone(), inputs[0].net.clone());
    Ok(Value::Tensor(em.join("add", &inputs, uses, onnx, net)))
}

/// Whether `scale` is a per-channel scale of `x` in ONNX's broadcasting:
/// `[N, C, 1, ...]` against `[N, C, ...]`.
fn scales_channels(x: &[usize], scale: &[usize]) -> bool {
    x.len() >= 3
        && scale.len() == x.len()
        && scale[..2] == x[..2]
        && scale[2..].iter().all(|&d| d == 1)
}

/// The product of two tensors of one shape, or of a tensor by a
/// per-channel scale.
pub(super) fn mul(ctx: &Ctx<'_>, values: &Values, em: &mut Emitter) -> Result<Value, ImportError> {
    let inputs = flows(ctx, values, "multiplies")?;
    let [a, b] = &inputs[..] else {
        return Err(ctx.unsupported("it lacks an input"));
    };
    let (a, b, onnx) = if a.onnx == b.onnx {
        let onnx = a.onnx.clone();
        if a.net == b.net {
            (a.clone(), b.clone(), onnx)
        } else {
            (to_onnx_layout(em, a.clone()), to_onnx_layout(em, b.clone()), onnx)
        }
    } else if scales_channels(&a.onnx, &b.onnx) {
        (to_onnx_layout(em, a.clone()), channel_scale(em, b.clone()), a.onnx.clone())
    } else if scales_channels(&b.onnx, &a.onnx) {
        (channel_scale(em, a.clone()), to_onnx_layout(em, b.clone()), b.onnx.clone())
    } else {
        return Err(ctx.unsupported(format!(
            "it broadcasts {:?} with {:?}; `mul` takes equal shapes or a per-channel scale",
            a.onnx, b.onnx
        )));
    };
    let uses = em.uses_of(ctx.output()?);
    let net = onnx[1..].to_vec();
    Ok(Value::Tensor(em.join("mul", &[a, b], uses, onnx, net)))
}

/// A per-channel scale as `mul` takes it: `[C]` as it is, else `[C, 1, ...]`.
fn channel_scale(em: &mut Emitter, s: Flow) -> Flow {
    if s.net.len() == 1 {
        s
    } else {
        to_onnx_layout(em, s)
    }
}

/// Unsqueeze of a computed tensor: trailing unit dims change only the
/// ONNX shape (a `[C]` tensor stays `[C]` in the `.net` source); others
/// reshape.
pub(super) fn unsqueeze(
    ctx: &Ctx<'_>,
    values: &Values,
    em: &mut Emitter,
    x: Flow,
) -> Result<Value, ImportError> {
    let axes = unsqueeze_axes(ctx, values, x.onnx.len())?;
    let mut onnx = x.onnx.clone();
    for a in axes {
        if a == 0 {
            return Err(ctx.unsupported("it puts a dim before the batch"));
        }
        onnx.insert(a.min(onnx.len()), 1);
    }
    if onnx[..x.onnx.len()] == x.onnx[..] {
        let mut flow = em.alias(&x, ctx.output()?);
        flow.onnx = onnx;
        return Ok(Value::Tensor(flow));
    }
    regroup(ctx, em, x, onnx)
}
