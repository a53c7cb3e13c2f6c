//! Shape arithmetic of constants beside the first set, as PyTorch exports
//! it for padding (its `LocalResponseNorm` builds the pads of a `Pad` by
//! Sub, ConstantOfShape, Slice and Transpose): folded at import time.

use super::{axis, computed_len, constant, elementwise, Ctx, Values};
use crate::import::onnx::{Const, ImportError};

pub(super) fn sub(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let (a, b) = (ctx.konst(values, 0)?, ctx.konst(values, 1)?);
    elementwise(ctx, &a, &b, |x, y| x - y)
}

/// A tensor of the shape given by input 0, filled with the `value`
/// attribute's one value (0 without it).
pub(super) fn constant_of_shape(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let shape = ctx.konst(values, 0)?;
    let dims: Vec<usize> = shape
        .values
        .iter()
        .map(|&d| {
            if d >= 0.0 && d.fract() == 0.0 {
                Ok(d as usize)
            } else {
                Err(ctx.unsupported(format!("a dim of {d}")))
            }
        })
        .collect::<Result<_, _>>()?;
    let fill = match ctx.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => match constant(t, None)?.values[..] {
            [v] => v,
            ref other => {
                return Err(ctx.unsupported(format!("a value of {} elements", other.len())))
            }
        },
        None => 0.0,
    };
    let count = computed_len(ctx, &dims)?;
    Ok(Const { dims, values: vec![fill; count], name: None })
}

/// The strides of a row-major tensor of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// The values of `data` at the positions picked on each axis, row-major.
fn pick(data: &Const, picked: &[Vec<usize>]) -> Vec<f64> {
    let strides = strides(&data.dims);
    let mut offsets = vec![0usize];
    for (axis_picks, stride) in picked.iter().zip(&strides) {
        offsets =
            offsets.iter().flat_map(|&o| axis_picks.iter().map(move |&p| o + p * stride)).collect();
    }
    offsets.iter().map(|&o| data.values[o]).collect()
}

/// Slice of opset 10 and later, whose starts, ends, axes and steps are
/// inputs (before, they were attributes, and input 1 is missing).
pub(super) fn slice(ctx: &Ctx<'_>, values: &Values) -> Result<Const, ImportError> {
    let data = ctx.konst(values, 0)?;
    let ints = |c: Const| c.values.iter().map(|&v| v as i64).collect::<Vec<i64>>();
    let starts = ints(ctx.konst(values, 1)?);
    let ends = ints(ctx.konst(values, 2)?);
    let rank = data.dims.len();
    let axes: Vec<usize> = match ctx.opt_const(values, 3)? {
        Some(a) => ints(a).iter().map(|&a| axis(ctx, a, rank)).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = ctx.opt_const(values, 4)?.map_or_else(|| vec![1; starts.len()], ints);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(ctx.unsupported("its starts, ends, axes and steps differ in length"));
    }
    let mut picked: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
    for (((&start, &end), &ax), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        if step == 0 {
            return Err(ctx.unsupported("a step of 0"));
        }
        let d = data.dims[ax] as i64;
        let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = if step > 0 {
            (wrap(start).clamp(0, d), wrap(end).clamp(0, d))
        } else {
            (wrap(start).clamp(0, d - 1), wrap(end).clamp(-1, d - 1))
        };
        let mut positions = Vec::new();
        let mut at = start;
        while (step > 0 && at < end) || (step < 0 && at > end) {
            positions.push(at as usize);
            at += step;
        }
        picked[ax] = positions;
    }
    let dims: Vec<usize> = picked.iter().map(Vec::len).collect();
    computed_len(ctx, &dims)?;
    Ok(Const { values: pick(&data, &picked), dims, name: None })
}

/// Transpose of a constant.
pub(super) fn transpose(ctx: &Ctx<'_>, data: &Const) -> Result<Const, ImportError> {
    let rank = data.dims.len();
    let perm: Vec<usize> = match ctx.ints("perm") {
        Some(p) => p.iter().map(|&a| axis(ctx, a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(ctx.unsupported(format!("perm {perm:?} is not a permutation of {rank} axes")));
    }
    let dims: Vec<usize> = perm.iter().map(|&a| data.dims[a]).collect();
    let from = strides(&data.dims);
    let mut offsets = vec![0usize];
    for &a in &perm {
        let (len, stride) = (data.dims[a], from[a]);
        offsets = offsets.iter().flat_map(|&o| (0..len).map(move |i| o + i * stride)).collect();
    }
    Ok(Const { dims, values: offsets.iter().map(|&o| data.values[o]).collect(), name: None })
}
