//! `layer_norm(normalized_shape, eps, elementwise_affine)`: PyTorch's
//! `nn.LayerNorm` over the trailing dims of each sample. Without
//! `normalized_shape` it normalises each sample whole (`nn.LayerNorm` of the
//! sample's shape); with it, those dims must end the input's shape. Each
//! row's mean and biased variance are its own, in training and inference
//! alike; the training pass keeps them (`saved`) for the backward.

use super::{first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::{float, int, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    pos("normalized_shape", Kind::Ints, Lit::Absent),
    named("eps", Kind::Positive, Lit::Float(1e-5)),
    named("elementwise_affine", Kind::Bool, Lit::Bool(true)),
];

pub const DEF: OpDef = OpDef {
    name: "layer_norm",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(LayerNorm {
            normalized_shape: a.ints("normalized_shape"),
            eps: a.float("eps").unwrap_or_default(),
            affine: a.bool("elementwise_affine").unwrap_or(true),
        })
    },
};

#[derive(Debug)]
pub struct LayerNorm {
    /// The trailing dims normalised over, as written; `None` for all.
    pub normalized_shape: Option<Vec<i64>>,
    pub eps: f64,
    pub affine: bool,
}

impl LayerNorm {
    /// The normalised dims of an input of shape `x`, checked: they must be
    /// the last dims of `x`, as PyTorch requires.
    fn normalized_dims(&self, x: &Shape) -> Result<Vec<usize>, OpError> {
        let Some(written) = &self.normalized_shape else { return Ok(x.dims().to_vec()) };
        let as_text =
            format!("[{}]", written.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "));
        let k = written.len();
        let fits = k >= 1
            && k <= x.rank()
            && written.iter().zip(&x.dims()[x.rank() - k..]).all(|(&w, &d)| w == d as i64);
        if fits {
            return Ok(x.dims()[x.rank() - k..].to_vec());
        }
        let trailing = |k: usize| Shape(x.dims()[x.rank().saturating_sub(k)..].to_vec());
        let help = match k {
            0 => "leave out `normalized_shape` to normalise each sample whole".to_string(),
            k if k > x.rank() => format!("the input has only {} dims", x.rank()),
            k => format!("the last {k} dims of the input are {}", trailing(k)),
        };
        Err(OpError::new(
            format!(
                "`normalized_shape` {as_text} of `layer_norm` does not end the input shape {x}"
            ),
            format!("input is {x}"),
        )
        .at("normalized_shape")
        .help(help))
    }

    /// Rows per sample and values per row.
    fn rows_len(&self, x: &Shape) -> (usize, usize) {
        let len: usize = self.normalized_dims(x).map_or(1, |d| d.iter().product());
        (x.elements() / len.max(1), len)
    }

    fn geometry(&self, x: &Shape) -> Arg {
        let (rows, len) = self.rows_len(x);
        Arg::Shape(Geometry::LayerNorm { rows, len, eps: self.eps })
    }
}

impl OpKind for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn stem(&self) -> &'static str {
        "ln"
    }

    fn detail(&self) -> String {
        let affine = if self.affine { "" } else { " no affine" };
        match &self.normalized_shape {
            Some(d) => format!("over {d:?} eps={:e}{affine}", self.eps),
            None => format!("eps={:e}{affine}", self.eps),
        }
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        self.normalized_dims(&x)?;
        Ok(x)
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        if !self.affine {
            return Vec::new();
        }
        let dims = self.normalized_dims(&first(inputs)).unwrap_or_default();
        vec![
            ParamSpec::learnable("weight", dims.clone(), Init::Ones),
            ParamSpec::learnable("bias", dims, Init::Zeros),
        ]
    }

    /// The mean and the variance (an add, and a subtract and a
    /// multiply-add), then one multiply-add with the affine folded in.
    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(5)
    }

    /// Without the affine terms the scale is a `Constant` of ones, so that
    /// no initializer looks like a parameter.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let dims = self.normalized_dims(cx.x_shape(0))?;
        let mut inputs = vec![cx.x(0)];
        if self.affine {
            inputs.extend([cx.param("weight"), cx.param("bias")]);
        } else {
            let len = dims.iter().product();
            inputs.push(cx.floats_const(&dims, vec![1.0; len]));
        }
        let attrs = vec![int("axis", -(dims.len() as i64)), float("epsilon", self.eps)];
        cx.output("LayerNormalization", inputs, attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let x_shape = cx.x_shape(0).clone();
        let shape = self.geometry(&x_shape);
        let rows = self.rows_len(&x_shape).0;
        let saved = cx.extra_tensor("saved", &[2 * rows]);
        let (w, b) = affine_args(cx.rec.params.as_slice(), self.affine);
        let (x, y) = (cx.x(0), cx.y());
        let train_saved = Arg::opt(Some(Arg::Out(saved, 2 * rows)));
        cx.train(
            "layer_norm_forward",
            vec![shape.clone(), x.clone(), w.clone(), b.clone(), train_saved, y.clone()],
        );
        cx.infer("layer_norm_forward", vec![shape, x, w, b, Arg::opt(None), y]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let rows = self.rows_len(cx.x_shape(0)).0;
        let saved = Arg::In(cx.rec.extra[0], 2 * rows);
        norm_vjp(cx, "layer_norm_backward", shape, saved, self.affine);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let x = cx.xs[0];
        let (_, len) = self.rows_len(&Shape(cx.x_shapes[0].to_vec()));
        let affine =
            if self.affine { Some((cx.param("weight")?, cx.param("bias")?)) } else { None };
        for (xr, yr) in x.chunks(len).zip(y.chunks_mut(len)) {
            let (mean, rstd) = row_stats(xr, self.eps);
            for (j, (yv, xv)) in yr.iter_mut().zip(xr).enumerate() {
                let xhat = (xv - mean) * rstd;
                *yv = match affine {
                    Some((w, b)) => xhat * w[j] + b[j],
                    None => xhat,
                };
            }
        }
        Ok(())
    }
}

/// The mean of `row` and `1/sqrt(var + eps)` of its biased variance.
pub(super) fn row_stats(row: &[f64], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The `weight` and `bias` arguments of a norm's kernel: the layer's
/// parameters, or `None` without affine.
pub(super) fn affine_args(params: &[crate::program::ParamId], affine: bool) -> (Arg, Arg) {
    match (affine, params) {
        (true, [w, b, ..]) => (Arg::opt(Some(Arg::Param(*w))), Arg::opt(Some(Arg::Param(*b)))),
        _ => (Arg::opt(None), Arg::opt(None)),
    }
}

/// The backward of a per-sample norm: one step writing the input's
/// gradient (if it needs one) and the affine parameters' (if there are
/// any), from the input and the saved statistics.
pub(super) fn norm_vjp(
    cx: &mut VjpCx<'_>,
    kernel: &'static str,
    shape: Arg,
    saved: Arg,
    affine: bool,
) {
    let params = cx.rec.params.clone();
    let (weight, _) = affine_args(&params, affine);
    let (dw, db) = match (affine, params.as_slice()) {
        (true, [w, b, ..]) => (Arg::opt(Some(Arg::Grad(*w))), Arg::opt(Some(Arg::Grad(*b)))),
        _ => (Arg::opt(None), Arg::opt(None)),
    };
    let target = cx.needs_grad(0).then(|| cx.target(0));
    if target.is_none() && !affine {
        return;
    }
    let len = cx.x_len(0);
    let dx = Arg::opt(target.map(|t| Arg::Out(t.write, len)));
    cx.emit(kernel, vec![shape, cx.x(0), weight, saved, cx.dy(), dx, dw, db]);
    if let Some(t) = target {
        cx.finish(t, len);
    }
}
