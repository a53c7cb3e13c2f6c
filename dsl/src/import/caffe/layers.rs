//! The mapping of each Caffe layer to `.net` stages, with the weights of
//! its blobs. Shapes are Caffe's (batch first) beside the `.net` shape, as
//! in the ONNX importer; each layer checks that its `.net` op computes what
//! Caffe's layer computes, and refuses the settings where they differ.

use super::plan::{positive_dims, Plan, DROPPED};
use super::proto::{Blob, Layer, Msg};
use super::{CaffeError, Options};
use crate::import::onnx::emit::{num, pair, Emitter};
use crate::import::onnx::{Flow, NamedTensor};
use std::collections::HashMap;

/// A value of the net: a tensor it computes, or the labels a data layer
/// reads beside its samples.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Tensor(Flow),
    Label,
}

type Values = HashMap<String, Value>;

/// The layer being mapped and what it needs from the rest of the net.
pub(crate) struct Ctx<'a, 'b> {
    pub layers: &'b [Layer<'a>],
    pub index: usize,
    pub plan: &'b Plan,
    pub blobs: Option<&'b HashMap<String, Vec<Blob>>>,
    pub options: &'b Options,
}

impl<'a> Ctx<'a, '_> {
    fn layer(&self) -> &Layer<'a> {
        &self.layers[self.index]
    }

    fn unsupported(&self, reason: impl Into<String>) -> CaffeError {
        let layer = self.layer();
        CaffeError::Unsupported {
            layer: layer.name.clone(),
            kind: layer.kind.clone(),
            reason: reason.into(),
        }
    }

    fn param(&self, field: &str) -> Msg<'_> {
        self.layer().params.msg(field)
    }

    fn bottom<'v>(&self, values: &'v Values, i: usize) -> Result<&'v Value, CaffeError> {
        let key = self.plan.bottoms[self.index]
            .get(i)
            .ok_or_else(|| self.unsupported(format!("it has no bottom {i}")))?;
        values.get(key).ok_or_else(|| {
            self.unsupported(format!("its bottom `{}` is not a value the importer made", key))
        })
    }

    fn tensor(&self, values: &Values, i: usize) -> Result<Flow, CaffeError> {
        match self.bottom(values, i)? {
            Value::Tensor(flow) => Ok(flow.clone()),
            Value::Label => Err(self.unsupported(format!(
                "its bottom `{}` is a label, not the network's data",
                self.layer().bottoms[i]
            ))),
        }
    }

    /// The one value the layer writes.
    fn top(&self) -> Result<String, CaffeError> {
        match self.plan.tops[self.index].as_slice() {
            [key] => Ok(key.clone()),
            tops => {
                Err(self.unsupported(format!("it writes {} blobs; it must write one", tops.len())))
            }
        }
    }

    /// The layer's blobs in the caffemodel, checked against the shapes
    /// its prototxt settings give; `None` without a caffemodel.
    fn weights(
        &self,
        layer: &Layer<'_>,
        shapes: &[Vec<usize>],
    ) -> Result<Option<Vec<Vec<f32>>>, CaffeError> {
        let Some(all) = self.blobs else { return Ok(None) };
        let fail = |message: String| CaffeError::Blob { layer: layer.name.clone(), message };
        let blobs = all.get(&layer.name).ok_or_else(|| {
            fail(
                "the caffemodel has no weights for this layer (Caffe matches layers by name)"
                    .into(),
            )
        })?;
        if blobs.len() != shapes.len() {
            return Err(fail(format!(
                "{} blobs where the layer has {}",
                blobs.len(),
                shapes.len()
            )));
        }
        let mut out = Vec::with_capacity(shapes.len());
        for (i, (blob, want)) in blobs.iter().zip(shapes).enumerate() {
            let fits = if blob.legacy {
                let mut padded = vec![1; 4usize.saturating_sub(want.len())];
                padded.extend_from_slice(want);
                padded == blob.shape
            } else {
                &blob.shape == want
            };
            if !fits {
                return Err(fail(format!(
                    "blob {i} has the shape {:?}, where the layer's settings give {want:?}",
                    blob.shape
                )));
            }
            if blob.count() != Some(blob.values.len()) {
                return Err(fail(format!(
                    "blob {i} of shape {:?} holds {} values",
                    blob.shape,
                    blob.values.len()
                )));
            }
            out.push(blob.values.clone());
        }
        Ok(Some(out))
    }
}

/// Maps one layer, recording the values it writes. A SoftmaxWithLoss
/// gives the tensor it scores.
pub(crate) fn map_layer(
    ctx: &Ctx<'_, '_>,
    values: &mut Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<Option<Flow>, CaffeError> {
    let layer = ctx.layer();
    let value = match layer.kind.as_str() {
        "Input" => return input_layer(ctx, values, em).map(|()| None),
        "Data" | "ImageData" | "HDF5Data" | "MemoryData" => {
            return data_layer(ctx, values, em).map(|()| None)
        }
        "Convolution" => conv(ctx, values, em, false)?,
        "Deconvolution" => conv(ctx, values, em, true)?,
        "Pooling" => pool(ctx, values, em)?,
        "InnerProduct" => inner_product(ctx, values, em)?,
        "ReLU" => {
            let slope = ctx.param("relu_param").f32("negative_slope");
            let stage = match slope {
                0.0 => "relu".to_string(),
                s if s > 0.0 => format!("leaky_relu(slope: {})", num(s)),
                s => return Err(ctx.unsupported(format!("a negative_slope of {s} is below 0"))),
            };
            same_shape(ctx, values, em, stage)?
        }
        "PReLU" => prelu(ctx, values, em)?,
        "Sigmoid" => same_shape(ctx, values, em, "sigmoid".into())?,
        "TanH" => same_shape(ctx, values, em, "tanh".into())?,
        "LRN" => lrn(ctx, values, em)?,
        "Dropout" => {
            let p = ctx.param("dropout_param").f32("dropout_ratio");
            if !(0.0..1.0).contains(&p) {
                return Err(ctx.unsupported(format!("a dropout_ratio of {p} is outside [0, 1)")));
            }
            same_shape(ctx, values, em, format!("dropout({})", num(p)))?
        }
        "Softmax" => softmax(ctx, values, em)?,
        "SoftmaxWithLoss" => return softmax_with_loss(ctx, values).map(Some),
        "Concat" => concat(ctx, values, em)?,
        "Eltwise" => eltwise(ctx, values, em)?,
        "Split" => return split(ctx, values).map(|()| None),
        "Flatten" => flatten(ctx, values, em)?,
        "BatchNorm" => {
            let (key, value) = batch_norm(ctx, values, em, absorbed)?;
            values.insert(key, value);
            return Ok(None);
        }
        "Scale" => {
            return Err(ctx.unsupported(
                "a Scale maps only right after a BatchNorm whose output nothing else reads",
            ))
        }
        kind if DROPPED.contains(&kind) => return Ok(None),
        _ => return Err(ctx.unsupported("the importer has no mapping for this layer type")),
    };
    values.insert(ctx.top()?, value);
    Ok(None)
}

/// `flow` with its `.net` shape brought back to its Caffe per-sample
/// shape (after `global_avg_pool`, a `[C]` that Caffe keeps as `[C, 1, 1]`).
fn layout(em: &mut Emitter, flow: Flow) -> Flow {
    if flow.net[..] == flow.onnx[1..] {
        return flow;
    }
    let dims: Vec<String> = flow.onnx[1..].iter().map(usize::to_string).collect();
    let net = flow.onnx[1..].to_vec();
    em.pipe(&flow, format!("reshape([{}])", dims.join(", ")), 1, flow.onnx.clone(), net)
}

/// A stage on bottom 0 that keeps its shape.
fn same_shape(
    ctx: &Ctx<'_, '_>,
    values: &Values,
    em: &mut Emitter,
    stage: String,
) -> Result<Value, CaffeError> {
    let x = ctx.tensor(values, 0)?;
    let uses = ctx.plan.uses_of(&ctx.top()?);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    Ok(Value::Tensor(em.pipe(&x, stage, uses, onnx, net)))
}

/// A stage on `x` giving the Caffe shape `shape` (and the same `.net` one).
fn reshaping(
    ctx: &Ctx<'_, '_>,
    em: &mut Emitter,
    x: &Flow,
    stage: String,
    shape: Vec<usize>,
) -> Result<Value, CaffeError> {
    let uses = ctx.plan.uses_of(&ctx.top()?);
    let net = shape[1..].to_vec();
    Ok(Value::Tensor(em.pipe(x, stage, uses, shape, net)))
}

/// Tops read only as the labels of a SoftmaxWithLoss.
fn is_label(ctx: &Ctx<'_, '_>, key: &str) -> bool {
    let as_label = ctx
        .layers
        .iter()
        .zip(&ctx.plan.bottoms)
        .filter(|(l, b)| l.kind == "SoftmaxWithLoss" && b.get(1).is_some_and(|k| k == key))
        .count();
    as_label > 0 && as_label == ctx.plan.uses_of(key)
}

fn input_layer(ctx: &Ctx<'_, '_>, values: &mut Values, em: &mut Emitter) -> Result<(), CaffeError> {
    let shapes: Vec<Vec<i64>> =
        ctx.param("input_param").msgs("shape").iter().map(|s| s.i64s("dim")).collect();
    let tops = &ctx.plan.tops[ctx.index];
    if shapes.is_empty() || (shapes.len() != 1 && shapes.len() != tops.len()) {
        return Err(ctx.unsupported(format!(
            "it writes {} blobs and gives {} shapes (one, or one per top)",
            tops.len(),
            shapes.len()
        )));
    }
    for (i, key) in tops.iter().enumerate() {
        if is_label(ctx, key) {
            values.insert(key.clone(), Value::Label);
            continue;
        }
        let dims = positive_dims(key, &shapes[i.min(shapes.len() - 1)])?;
        let flow = em.input(key, &dims).map_err(|e| CaffeError::Net(e.to_string()))?;
        values.insert(key.clone(), Value::Tensor(flow));
    }
    Ok(())
}

/// A layer reading samples from a database or from memory: its first top
/// is the network's input, the others its labels.
fn data_layer(ctx: &Ctx<'_, '_>, values: &mut Values, em: &mut Emitter) -> Result<(), CaffeError> {
    let layer = ctx.layer();
    let (sample, batch) = if layer.kind == "MemoryData" {
        let p = ctx.param("memory_data_param");
        let dims = ["channels", "height", "width"].map(|f| p.u32(f) as usize);
        (Some(dims.to_vec()), p.u32("batch_size"))
    } else {
        let field = match layer.kind.as_str() {
            "ImageData" => "image_data_param",
            "HDF5Data" => "hdf5_data_param",
            _ => "data_param",
        };
        (ctx.options.input_shape.clone(), ctx.param(field).u32("batch_size"))
    };
    let Some(sample) = sample else {
        return Err(CaffeError::Net(format!(
            "layer `{}` ({}) reads its samples from a database, and the prototxt does not give \
             their shape; give it as the per-sample shape (`netc import --input-shape 1,28,28`)",
            layer.name, layer.kind
        )));
    };
    let tops = &ctx.plan.tops[ctx.index];
    let Some((data, labels)) = tops.split_first() else {
        return Err(ctx.unsupported("it writes no blob"));
    };
    let mut dims = vec![i64::from(batch.max(1))];
    dims.extend(sample.iter().map(|&d| d as i64));
    let dims = positive_dims(data, &dims)?;
    let flow = em.input(data, &dims).map_err(|e| CaffeError::Net(e.to_string()))?;
    values.insert(data.clone(), Value::Tensor(flow));
    for key in labels {
        values.insert(key.clone(), Value::Label);
    }
    let transform = ctx.param("transform_param");
    let scale = transform.f32("scale");
    if scale != 1.0 {
        em.comment(&format!(
            "Caffe's `{}` layer scales its samples by {}; scale the data the same way",
            layer.name,
            num(scale)
        ));
    }
    if !transform.f32s("mean_value").is_empty() || transform.has("mean_file") {
        em.comment(&format!(
            "Caffe's `{}` layer subtracts a mean from its samples; subtract it from the data",
            layer.name
        ));
    }
    Ok(())
}

/// A 2-d setting: `base_h` and `base_w`, or `name` once or twice, or the
/// default.
fn setting_2d(
    ctx: &Ctx<'_, '_>,
    p: &Msg<'_>,
    base: &str,
    name: &str,
    default: u32,
) -> Result<(i64, i64), CaffeError> {
    let (h, w) = (format!("{base}_h"), format!("{base}_w"));
    if p.has(&h) || p.has(&w) {
        if !(p.has(&h) && p.has(&w)) && name != "pad" {
            return Err(ctx.unsupported(format!("it sets only one of `{h}` and `{w}`")));
        }
        return Ok((i64::from(p.u32(&h)), i64::from(p.u32(&w))));
    }
    let values = p.u32s(name);
    match values[..] {
        [] => Ok((i64::from(default), i64::from(default))),
        [v] => Ok((i64::from(v), i64::from(v))),
        [h, w] => Ok((i64::from(h), i64::from(w))),
        _ => Err(ctx.unsupported(format!(
            "{} values of `{name}`; a 2-d layer takes one or two",
            values.len()
        ))),
    }
}

/// A 4-d bottom 0, in its Caffe layout.
fn image(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Flow, CaffeError> {
    let x = ctx.tensor(values, 0)?;
    if x.onnx.len() != 4 {
        return Err(ctx.unsupported(format!(
            "its bottom has the shape {:?}; it maps for 4-d (N, C, H, W) blobs",
            x.onnx
        )));
    }
    Ok(layout(em, x))
}

fn conv(
    ctx: &Ctx<'_, '_>,
    values: &Values,
    em: &mut Emitter,
    transposed: bool,
) -> Result<Value, CaffeError> {
    let p = ctx.param("convolution_param");
    let x = image(ctx, values, em)?;
    let kernel = setting_2d(ctx, &p, "kernel", "kernel_size", 0)?;
    let stride = setting_2d(ctx, &p, "stride", "stride", 1)?;
    let pad = setting_2d(ctx, &p, "pad", "pad", 0)?;
    let dilation = match p.u32s("dilation")[..] {
        [] => (1, 1),
        [d] => (i64::from(d), i64::from(d)),
        [h, w] => (i64::from(h), i64::from(w)),
        _ => return Err(ctx.unsupported("a dilation of more than two values")),
    };
    let (m, c, groups) = (p.u32("num_output") as usize, x.onnx[1], p.u32("group") as usize);
    if kernel.0 < 1
        || kernel.1 < 1
        || stride.0 < 1
        || stride.1 < 1
        || dilation.0 < 1
        || dilation.1 < 1
    {
        return Err(ctx.unsupported("its kernel, stride and dilation must be positive"));
    }
    if p.i32("axis") != 1 {
        return Err(ctx.unsupported("a convolution over an axis other than 1"));
    }
    if m == 0 || groups == 0 || c % groups != 0 || m % groups != 0 {
        return Err(ctx
            .unsupported(format!("{m} outputs in {groups} groups do not fit {c} input channels")));
    }
    let out = |size: usize, k: i64, s: i64, p: i64, d: i64| -> Option<usize> {
        let span = d * (k - 1) + 1;
        let size = size as i64;
        let o =
            if transposed { s * (size - 1) + span - 2 * p } else { (size + 2 * p - span) / s + 1 };
        (size + 2 * p >= span || transposed).then_some(o).filter(|&o| o > 0).map(|o| o as usize)
    };
    let h = out(x.onnx[2], kernel.0, stride.0, pad.0, dilation.0);
    let w = out(x.onnx[3], kernel.1, stride.1, pad.1, dilation.1);
    let (Some(h), Some(w)) = (h, w) else {
        return Err(ctx.unsupported(format!("its kernel does not fit its bottom of {:?}", x.onnx)));
    };
    let bias = p.bool("bias_term");
    let name = em.layer_name(&crate::import::onnx::emit::sanitise(&ctx.layer().name));
    let op = if transposed { "conv_transpose2d" } else { "conv2d" };
    let mut stage = format!("{op}({m}, kernel: {}", pair(kernel.0, kernel.1));
    for (arg, (a, b), default) in
        [("stride", stride, 1), ("pad", pad, 0), ("dilation", dilation, 1)]
    {
        if (a, b) != (default, default) {
            stage.push_str(&format!(", {arg}: {}", pair(a, b)));
        }
    }
    if groups != 1 {
        stage.push_str(&format!(", groups: {groups}"));
    }
    if !bias {
        stage.push_str(", bias: false");
    }
    stage.push_str(&format!(") as {name}"));
    let (kh, kw) = (kernel.0 as usize, kernel.1 as usize);
    let weight = if transposed { vec![c, m / groups, kh, kw] } else { vec![m, c / groups, kh, kw] };
    let mut shapes = vec![weight];
    if bias {
        shapes.push(vec![m]);
    }
    push_weights(em, &name, &["weight", "bias"], &shapes, ctx.weights(ctx.layer(), &shapes)?);
    reshaping(ctx, em, &x, stage, vec![x.onnx[0], m, h, w])
}

/// Records a layer's tensors, when the caffemodel gave them.
fn push_weights(
    em: &mut Emitter,
    layer: &str,
    suffixes: &[&str],
    shapes: &[Vec<usize>],
    values: Option<Vec<Vec<f32>>>,
) {
    let Some(values) = values else { return };
    for ((suffix, shape), values) in suffixes.iter().zip(shapes).zip(values) {
        em.weights.push(NamedTensor {
            name: format!("{layer}.{suffix}"),
            shape: shape.clone(),
            values,
        });
    }
}

/// Caffe's pooled size: the ceil (or floor) rule, then, with padding,
/// one window fewer if the last would start in the right padding.
fn caffe_pooled(size: i64, k: i64, s: i64, p: i64, ceil: bool, padded: bool) -> i64 {
    let span = size + 2 * p - k;
    let mut out = if ceil { (span + s - 1).div_euclid(s) + 1 } else { span.div_euclid(s) + 1 };
    if padded && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

/// PyTorch's (and `.net`'s) pooled size with and without `ceil_mode`.
fn torch_pooled(size: i64, k: i64, s: i64, p: i64, ceil: bool) -> i64 {
    let span = size + 2 * p - k;
    if !ceil {
        return span / s + 1;
    }
    let out = (span + s - 1) / s + 1;
    if (out - 1) * s >= size + p {
        out - 1
    } else {
        out
    }
}

fn pool(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("pooling_param");
    let x = image(ctx, values, em)?;
    let average = match p.enum_name("pool").as_str() {
        "MAX" => false,
        "AVE" => true,
        other => return Err(ctx.unsupported(format!("{other} pooling has no `.net` op"))),
    };
    let (n, c, h, w) = (x.onnx[0], x.onnx[1], x.onnx[2] as i64, x.onnx[3] as i64);
    if p.bool("global_pooling") {
        if average {
            let uses = ctx.plan.uses_of(&ctx.top()?);
            let flow = em.pipe(&x, "global_avg_pool".into(), uses, vec![n, c, 1, 1], vec![c]);
            return Ok(Value::Tensor(flow));
        }
        return reshaping(ctx, em, &x, format!("max_pool({})", pair(h, w)), vec![n, c, 1, 1]);
    }
    // Pooling's settings are single values (or `_h` and `_w`), with
    // `caffe.proto`'s defaults.
    let setting = |base: &str, name: &str| {
        let (hn, wn) = (format!("{base}_h"), format!("{base}_w"));
        if p.has(&hn) || p.has(&wn) {
            (i64::from(p.u32(&hn)), i64::from(p.u32(&wn)))
        } else {
            (i64::from(p.u32(name)), i64::from(p.u32(name)))
        }
    };
    let (kh, kw) = setting("kernel", "kernel_size");
    let (sh, sw) = setting("stride", "stride");
    let (ph, pw) = setting("pad", "pad");
    if kh < 1 || kw < 1 || sh < 1 || sw < 1 {
        return Err(ctx.unsupported("its kernel and stride must be positive"));
    }
    if 2 * ph > kh || 2 * pw > kw {
        return Err(ctx.unsupported(
            "a pad above half the kernel (the `.net` pools, as PyTorch's, refuse it)",
        ));
    }
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return Err(ctx.unsupported(format!("its kernel does not fit its bottom of {:?}", x.onnx)));
    }
    let ceil = p.enum_name("round_mode") == "CEIL";
    let padded = ph > 0 || pw > 0;
    let want =
        (caffe_pooled(h, kh, sh, ph, ceil, padded), caffe_pooled(w, kw, sw, pw, ceil, padded));
    let floor = (torch_pooled(h, kh, sh, ph, false), torch_pooled(w, kw, sw, pw, false));
    let ceiled = (torch_pooled(h, kh, sh, ph, true), torch_pooled(w, kw, sw, pw, true));
    let ceil_mode = if want == floor {
        false
    } else if want == ceiled {
        true
    } else {
        return Err(ctx.unsupported(format!(
            "Caffe pools {:?} to {want:?} here, which neither rounding of the `.net` pools gives",
            x.onnx
        )));
    };
    let mut stage = format!("{}({}", if average { "avg_pool" } else { "max_pool" }, pair(kh, kw));
    if (sh, sw) != (kh, kw) {
        stage.push_str(&format!(", stride: {}", pair(sh, sw)));
    }
    if padded {
        stage.push_str(&format!(", pad: {}", pair(ph, pw)));
    }
    if ceil_mode {
        stage.push_str(", ceil_mode: true");
    }
    stage.push(')');
    reshaping(ctx, em, &x, stage, vec![n, c, want.0 as usize, want.1 as usize])
}

fn inner_product(
    ctx: &Ctx<'_, '_>,
    values: &Values,
    em: &mut Emitter,
) -> Result<Value, CaffeError> {
    let p = ctx.param("inner_product_param");
    if p.i32("axis") != 1 {
        return Err(ctx.unsupported("an inner product over axes other than all but the batch"));
    }
    let units = p.u32("num_output") as usize;
    if units == 0 {
        return Err(ctx.unsupported("its num_output is 0"));
    }
    let mut x = ctx.tensor(values, 0)?;
    let features: usize = x.onnx[1..].iter().product();
    if x.net.len() > 1 {
        x = em.pipe(&x, "flatten".into(), 1, vec![x.onnx[0], features], vec![features]);
    }
    let bias = p.bool("bias_term");
    let transpose = p.bool("transpose");
    let name = em.layer_name(&crate::import::onnx::emit::sanitise(&ctx.layer().name));
    let stored = if transpose { vec![features, units] } else { vec![units, features] };
    let mut shapes = vec![stored];
    if bias {
        shapes.push(vec![units]);
    }
    let mut blobs = ctx.weights(ctx.layer(), &shapes)?;
    if let Some(blobs) = blobs.as_mut().filter(|_| transpose) {
        // `transpose: true` stores the weight as [features, units].
        let stored = std::mem::take(&mut blobs[0]);
        blobs[0] = (0..units)
            .flat_map(|u| (0..features).map(move |f| f * units + u))
            .map(|i| stored[i])
            .collect();
    }
    shapes[0] = vec![units, features];
    push_weights(em, &name, &["weight", "bias"], &shapes, blobs);
    let bias_arg = if bias { "" } else { ", bias: false" };
    reshaping(ctx, em, &x, format!("dense({units}{bias_arg}) as {name}"), vec![x.onnx[0], units])
}

fn lrn(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("lrn_param");
    if p.enum_name("norm_region") != "ACROSS_CHANNELS" {
        return Err(ctx.unsupported("only ACROSS_CHANNELS maps to `lrn` (across the channels)"));
    }
    let size = p.u32("local_size");
    // Caffe centres the window only for odd sizes, and refuses even ones.
    if size.is_multiple_of(2) {
        return Err(ctx.unsupported(format!("a local_size of {size}; Caffe takes odd sizes")));
    }
    let x = image(ctx, values, em)?;
    let stage = format!(
        "lrn({size}, alpha: {}, beta: {}, k: {})",
        num(p.f32("alpha")),
        num(p.f32("beta")),
        num(p.f32("k"))
    );
    let shape = x.onnx.clone();
    reshaping(ctx, em, &x, stage, shape)
}

/// Caffe's PReLU: a learned slope per channel (axis 1), or one for all
/// with `channel_shared`; its one blob is the slopes, of shape `[C]`, or
/// `[]` when shared. Without a caffemodel the slopes start from the
/// layer's filler, which `prelu`'s `init` can be only when it is constant.
fn prelu(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("prelu_param");
    let x = layout(em, ctx.tensor(values, 0)?);
    let shared = p.bool("channel_shared");
    let slopes = if shared { 1 } else { x.onnx[1] };
    let blob_shape = if shared { vec![] } else { vec![slopes] };
    let blobs = ctx.weights(ctx.layer(), std::slice::from_ref(&blob_shape))?;
    // Caffe's default filler is the constant 0.25, `prelu`'s default init.
    let mut init = 0.25;
    if p.has("filler") {
        let filler = p.msg("filler");
        let (kind, value) = (filler.string("type"), filler.f32("value"));
        if kind == "constant" && value.is_finite() {
            init = value;
        } else if blobs.is_none() {
            let filler = if kind == "constant" {
                format!("a constant filler of {value}")
            } else {
                format!("a `{kind}` filler")
            };
            return Err(ctx.unsupported(format!(
                "{filler} for its slopes; without a caffemodel they start from `prelu`'s \
                 `init`, one finite constant"
            )));
        }
    }
    let name = em.layer_name(&crate::import::onnx::emit::sanitise(&ctx.layer().name));
    push_weights(em, &name, &["weight"], &[vec![slopes]], blobs);
    let mut args = Vec::new();
    if !shared {
        args.push(slopes.to_string());
    }
    if init != 0.25 {
        args.push(format!("init: {}", num(init)));
    }
    let stage = if args.is_empty() {
        format!("prelu as {name}")
    } else {
        format!("prelu({}) as {name}", args.join(", "))
    };
    let shape = x.onnx.clone();
    reshaping(ctx, em, &x, stage, shape)
}

/// Caffe's Split: its tops are its bottom, under other names. The plan
/// already reads them as the bottom; they are recorded for the blobs
/// nothing reads, which are the net's outputs.
fn split(ctx: &Ctx<'_, '_>, values: &mut Values) -> Result<(), CaffeError> {
    let count = ctx.plan.bottoms[ctx.index].len();
    if count != 1 {
        return Err(ctx.unsupported(format!("it has {count} bottoms; a Split copies one")));
    }
    let value = ctx.bottom(values, 0)?.clone();
    for key in &ctx.plan.tops[ctx.index] {
        values.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// A Caffe axis, negative ones counted from the end, as an index.
fn axis(ctx: &Ctx<'_, '_>, axis: i32, rank: usize) -> Result<usize, CaffeError> {
    let r = rank as i64;
    let a = i64::from(axis);
    let a = if a < 0 { a + r } else { a };
    if !(0..r).contains(&a) {
        return Err(ctx.unsupported(format!("axis {axis} is outside a blob of rank {rank}")));
    }
    Ok(a as usize)
}

fn softmax(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let x = ctx.tensor(values, 0)?;
    if axis(ctx, ctx.param("softmax_param").i32("axis"), x.onnx.len())? != 1 {
        return Err(ctx.unsupported("only a softmax over axis 1 (the channels) maps to `softmax`"));
    }
    let x = layout(em, x);
    let shape = x.onnx.clone();
    reshaping(ctx, em, &x, "softmax".into(), shape)
}

/// The scores of a SoftmaxWithLoss, which becomes the network's
/// `cross_entropy` loss: its bottom 1 must be the data layer's labels.
fn softmax_with_loss(ctx: &Ctx<'_, '_>, values: &Values) -> Result<Flow, CaffeError> {
    let x = ctx.tensor(values, 0)?;
    if !matches!(ctx.bottom(values, 1)?, Value::Label) {
        return Err(ctx.unsupported("its labels are computed, not read by a data layer"));
    }
    if x.net.len() != 1 {
        return Err(ctx.unsupported(format!(
            "it scores a blob of {:?}; `cross_entropy` scores [batch, classes]",
            x.onnx
        )));
    }
    if axis(ctx, ctx.param("softmax_param").i32("axis"), x.onnx.len())? != 1 {
        return Err(ctx.unsupported("a softmax over an axis other than 1"));
    }
    let loss = ctx.param("loss_param");
    if loss.has("ignore_label") {
        return Err(ctx.unsupported("an ignore_label; `cross_entropy` scores every sample"));
    }
    if loss.enum_name("normalization") == "NONE"
        || (loss.has("normalize") && !loss.bool("normalize"))
    {
        return Err(ctx.unsupported("a summed loss; `cross_entropy` averages over the batch"));
    }
    match ctx.layer().params.f32s("loss_weight")[..] {
        [] => {}
        [1.0] => {}
        _ => return Err(ctx.unsupported("a loss_weight other than 1")),
    }
    Ok(x)
}

/// Tensors of the same Caffe shape (or, with `concat_axis`, the same but
/// along that axis), in their Caffe layout.
fn operands(
    ctx: &Ctx<'_, '_>,
    values: &Values,
    em: &mut Emitter,
    concat: bool,
) -> Result<Vec<Flow>, CaffeError> {
    let count = ctx.plan.bottoms[ctx.index].len();
    if count < 2 {
        return Err(ctx.unsupported(format!("it has {count} bottoms; it joins two or more")));
    }
    let flows: Vec<Flow> = (0..count).map(|i| ctx.tensor(values, i)).collect::<Result<_, _>>()?;
    let first = &flows[0].onnx;
    for f in &flows[1..] {
        let same = f.onnx.len() == first.len()
            && f.onnx.iter().zip(first).enumerate().all(|(i, (a, b))| a == b || (concat && i == 1));
        if !same {
            return Err(
                ctx.unsupported(format!("its bottoms of {:?} and {:?} do not fit", first, f.onnx))
            );
        }
    }
    let same_layout = flows.iter().all(|f| f.net == flows[0].net);
    Ok(if same_layout && !concat {
        flows
    } else {
        flows.into_iter().map(|f| layout(em, f)).collect()
    })
}

fn concat(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("concat_param");
    let flows = operands(ctx, values, em, true)?;
    let requested = if p.has("axis") || !p.has("concat_dim") {
        p.i32("axis")
    } else {
        p.u32("concat_dim") as i32
    };
    if axis(ctx, requested, flows[0].onnx.len())? != 1 {
        return Err(ctx.unsupported("only a concat along axis 1 (the channels) maps to `concat`"));
    }
    let mut onnx = flows[0].onnx.clone();
    onnx[1] = flows.iter().map(|f| f.onnx[1]).sum();
    let uses = ctx.plan.uses_of(&ctx.top()?);
    let net = onnx[1..].to_vec();
    Ok(Value::Tensor(em.join("concat", &flows, uses, onnx, net)))
}

fn eltwise(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("eltwise_param");
    let flows = operands(ctx, values, em, false)?;
    let uses = ctx.plan.uses_of(&ctx.top()?);
    let (onnx, net) = (flows[0].onnx.clone(), flows[0].net.clone());
    match p.enum_name("operation").as_str() {
        "SUM" => {
            if p.f32s("coeff").iter().any(|&c| c != 1.0) {
                return Err(ctx.unsupported("a SUM with coefficients other than 1; `add` adds"));
            }
            Ok(Value::Tensor(em.join("add", &flows, uses, onnx, net)))
        }
        "PROD" => {
            // `mul` takes two inputs: a product of more is a chain of them.
            let mut product = flows[0].clone();
            for (i, f) in flows.iter().enumerate().skip(1) {
                let last = i + 1 == flows.len();
                let uses = if last { uses } else { 1 };
                product = em.join("mul", &[product, f.clone()], uses, onnx.clone(), net.clone());
            }
            Ok(Value::Tensor(product))
        }
        other => Err(ctx.unsupported(format!("{other} has no `.net` op"))),
    }
}

fn flatten(ctx: &Ctx<'_, '_>, values: &Values, em: &mut Emitter) -> Result<Value, CaffeError> {
    let p = ctx.param("flatten_param");
    let x = ctx.tensor(values, 0)?;
    let rank = x.onnx.len();
    if axis(ctx, p.i32("axis"), rank)? != 1 || axis(ctx, p.i32("end_axis"), rank)? != rank - 1 {
        return Err(ctx.unsupported("only a flatten of all axes but the batch maps to `flatten`"));
    }
    let features = x.onnx[1..].iter().product();
    reshaping(ctx, em, &x, "flatten".into(), vec![x.onnx[0], features])
}

/// The layer right after a BatchNorm that scales its output, if it is a
/// Scale that alone reads it: together they are one `batch_norm`.
fn following_scale(ctx: &Ctx<'_, '_>, key: &str) -> Option<usize> {
    if ctx.plan.uses_of(key) != 1 {
        return None;
    }
    let next = (ctx.index + 1..ctx.layers.len())
        .find(|&j| ctx.plan.bottoms[j].iter().any(|k| k == key))?;
    (ctx.layers[next].kind == "Scale" && ctx.plan.bottoms[next].len() == 1).then_some(next)
}

/// A BatchNorm, with the Scale after it when there is one (else an
/// identity affine: weight 1, bias 0). Caffe keeps its statistics summed
/// with a moving-average factor, its blob 2, that divides them.
fn batch_norm(
    ctx: &Ctx<'_, '_>,
    values: &Values,
    em: &mut Emitter,
    absorbed: &mut [bool],
) -> Result<(String, Value), CaffeError> {
    let p = ctx.param("batch_norm_param");
    let x = ctx.tensor(values, 0)?;
    if x.onnx.len() != 2 && x.onnx.len() != 4 {
        return Err(
            ctx.unsupported(format!("its bottom of {:?} is not (N, C) or (N, C, H, W)", x.onnx))
        );
    }
    let x = layout(em, x);
    let c = x.onnx[1];
    let bn_top = ctx.top()?;
    let scale = following_scale(ctx, &bn_top);
    let mut affine = (None, None);
    let mut top = bn_top;
    if let Some(j) = scale {
        let layer = &ctx.layers[j];
        let sp = layer.params.msg("scale_param");
        if sp.i32("axis") != 1 || sp.i32("num_axes") != 1 {
            return Err(CaffeError::Unsupported {
                layer: layer.name.clone(),
                kind: layer.kind.clone(),
                reason: "only a Scale per channel (axis 1, num_axes 1) folds into `batch_norm`"
                    .into(),
            });
        }
        let mut shapes = vec![vec![c]];
        if sp.bool("bias_term") {
            shapes.push(vec![c]);
        }
        if let Some(mut blobs) = ctx.weights(layer, &shapes)? {
            affine = (Some(blobs.remove(0)), blobs.pop());
        }
        top = match ctx.plan.tops[j].as_slice() {
            [key] => key.clone(),
            _ => return Err(ctx.unsupported("the Scale after it writes more than one blob")),
        };
        absorbed[j] = true;
    }
    let name = em.layer_name(&crate::import::onnx::emit::sanitise(&ctx.layer().name));
    let stats = ctx.weights(ctx.layer(), &[vec![c], vec![c], vec![1]])?;
    if let Some(mut stats) = stats {
        let factor = stats[2][0];
        let inverse = if factor == 0.0 { 0.0 } else { 1.0 / factor };
        let variance = stats.remove(1);
        let mean = stats.remove(0);
        let gamma = affine.0.unwrap_or_else(|| vec![1.0; c]);
        let beta = affine.1.unwrap_or_else(|| vec![0.0; c]);
        let scaled = |v: Vec<f32>| v.iter().map(|&s| s * inverse).collect::<Vec<f32>>();
        let tensors = vec![gamma, beta, scaled(mean), scaled(variance)];
        let shapes = vec![vec![c]; 4];
        push_weights(
            em,
            &name,
            &["weight", "bias", "running_mean", "running_var"],
            &shapes,
            Some(tensors),
        );
    }
    let mut args = Vec::new();
    let eps = p.f32("eps");
    if eps != 1e-5 {
        args.push(format!("eps: {}", num(eps)));
    }
    // Caffe's fraction weighs the running statistic, PyTorch's momentum the batch's.
    // The difference is taken of the decimal the file wrote (0.999 gives
    // 0.001), not of its nearest f32.
    let fraction: f64 = format!("{:?}", p.f32("moving_average_fraction")).parse().unwrap_or(0.999);
    let momentum = (1.0 - fraction) as f32;
    if momentum != 0.1 {
        args.push(format!("momentum: {}", num(momentum)));
    }
    let stage = if args.is_empty() {
        format!("batch_norm as {name}")
    } else {
        format!("batch_norm({}) as {name}", args.join(", "))
    };
    let uses = ctx.plan.uses_of(&top);
    let (onnx, net) = (x.onnx.clone(), x.net.clone());
    Ok((top, Value::Tensor(em.pipe(&x, stage, uses, onnx, net))))
}
