//! `group_norm(groups, eps, affine)`: PyTorch's `nn.GroupNorm(groups, C)`
//! on `[C, H, W]` or `[C]`: the `C/groups` channels of each group of each
//! sample are normalised by their own mean and biased variance, then each
//! channel is scaled and shifted by its `weight` and `bias`. The training
//! pass keeps each group's statistics (`saved`) for the backward.

use super::layer_norm::{affine_args, norm_vjp, row_stats};
use super::{expect_channels, first, Arity, Init, Op, OpDef, OpError, OpKind, ParamSpec};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::{float, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::{channels_inner, LowerCx};
use crate::program::{Arg, Geometry};

const ARGS: &[ArgSpec] = &[
    pos("groups", Kind::Size, Lit::Required),
    named("eps", Kind::Positive, Lit::Float(1e-5)),
    named("affine", Kind::Bool, Lit::Bool(true)),
];

pub const DEF: OpDef = OpDef {
    name: "group_norm",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(GroupNorm {
            groups: a.int("groups").unwrap_or(1),
            eps: a.float("eps").unwrap_or_default(),
            affine: a.bool("affine").unwrap_or(true),
        })
    },
};

#[derive(Debug)]
pub struct GroupNorm {
    pub groups: usize,
    pub eps: f64,
    pub affine: bool,
}

impl GroupNorm {
    fn geometry(&self, x: &Shape) -> Arg {
        let (c, inner) = channels_inner(x.dims());
        Arg::Shape(Geometry::GroupNorm { c, inner, groups: self.groups, eps: self.eps })
    }
}

impl OpKind for GroupNorm {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn stem(&self) -> &'static str {
        "gn"
    }

    fn detail(&self) -> String {
        let affine = if self.affine { "" } else { " no affine" };
        format!("{} groups eps={:e}{affine}", self.groups, self.eps)
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = expect_channels("group_norm", &first(inputs))?;
        let c = x.dims()[0];
        if c % self.groups != 0 {
            return Err(OpError::new(
                format!("`group_norm` cannot split {c} channels into {} groups", self.groups),
                format!("input is {x}"),
            )
            .at("groups")
            .help("the channels must be a multiple of `groups`"));
        }
        Ok(x)
    }

    fn params(&self, inputs: &[&Shape]) -> Vec<ParamSpec> {
        if !self.affine {
            return Vec::new();
        }
        let c = first(inputs).dims().first().copied().unwrap_or(0);
        vec![
            ParamSpec::learnable("weight", vec![c], Init::Ones),
            ParamSpec::learnable("bias", vec![c], Init::Zeros),
        ]
    }

    /// As layer norm: the statistics, then one multiply-add.
    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        (out.elements() as u64).saturating_mul(5)
    }

    /// Opset 17 has no `GroupNormalization`: PyTorch's decomposition, an
    /// `InstanceNormalization` of the groups, then the per-channel affine.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let x_dims = cx.x_shape(0).dims().to_vec();
        let (batch, groups) = (cx.batch() as i64, self.groups);
        let grouped = cx.ints_const(&[batch, groups as i64, -1]);
        let x = cx.x(0);
        let grouped = cx.node("Reshape", vec![x, grouped], Vec::new());
        let ones = cx.floats_const(&[groups], vec![1.0; groups]);
        let zeros = cx.floats_const(&[groups], vec![0.0; groups]);
        let eps = vec![float("epsilon", self.eps)];
        let normed = cx.node("InstanceNormalization", vec![grouped, ones, zeros], eps);
        let back: Vec<i64> =
            std::iter::once(batch).chain(x_dims.iter().map(|&d| d as i64)).collect();
        let back = cx.ints_const(&back);
        if !self.affine {
            cx.output("Reshape", vec![normed, back], Vec::new());
            return Ok(());
        }
        let normed = cx.node("Reshape", vec![normed, back], Vec::new());
        let axes: Vec<i64> = (1..x_dims.len() as i64).collect();
        let (weight, bias) = (cx.param("weight"), cx.param("bias"));
        let (weight, bias) = if axes.is_empty() {
            (weight, bias)
        } else {
            let axes = cx.ints_const(&axes);
            let w = cx.node("Unsqueeze", vec![weight, axes.clone()], Vec::new());
            (w, cx.node("Unsqueeze", vec![bias, axes], Vec::new()))
        };
        let scaled = cx.node("Mul", vec![normed, weight], Vec::new());
        cx.output("Add", vec![scaled, bias], Vec::new());
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let saved = cx.extra_tensor("saved", &[2 * self.groups]);
        let (w, b) = affine_args(cx.rec.params.as_slice(), self.affine);
        let (x, y) = (cx.x(0), cx.y());
        let train_saved = Arg::opt(Some(Arg::Out(saved, 2 * self.groups)));
        cx.train(
            "group_norm_forward",
            vec![shape.clone(), x.clone(), w.clone(), b.clone(), train_saved, y.clone()],
        );
        cx.infer("group_norm_forward", vec![shape, x, w, b, Arg::opt(None), y]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let saved = Arg::In(cx.rec.extra[0], 2 * self.groups);
        norm_vjp(cx, "group_norm_backward", shape, saved, self.affine);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (c, inner) = channels_inner(cx.x_shapes[0]);
        let row = c / self.groups * inner;
        let affine =
            if self.affine { Some((cx.param("weight")?, cx.param("bias")?)) } else { None };
        for (r, (xr, yr)) in cx.xs[0].chunks(row).zip(y.chunks_mut(row)).enumerate() {
            let (mean, rstd) = row_stats(xr, self.eps);
            let first_channel = (r % self.groups) * (c / self.groups);
            for (j, (yv, xv)) in yr.iter_mut().zip(xr).enumerate() {
                let xhat = (xv - mean) * rstd;
                let ch = first_channel + j / inner;
                *yv = match affine {
                    Some((w, b)) => xhat * w[ch] + b[ch],
                    None => xhat,
                };
            }
        }
        Ok(())
    }
}
