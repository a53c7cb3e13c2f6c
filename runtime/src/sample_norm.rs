//! Normalisation over each sample's own values, forward and backward, with
//! PyTorch's semantics: layer norm (`nn.LayerNorm`) over the trailing
//! `len` values of each row, and group norm (`nn.GroupNorm`) over the
//! channels of each group of an NCHW sample.
//!
//! Both reduce contiguous rows: a layer-norm row is `len` values, a
//! group-norm row is the `c/groups` planes of one group of one sample. The
//! statistics of a row come from the vectorised reductions of `reduce`
//! (biased variance, two passes while the row sits in cache, as batch norm
//! takes them); the normalisation is one multiply-add per value, a loop the
//! compiler vectorises. Rows are independent, so big tensors split them
//! across the pool; the parameter gradients, which sum over rows, split
//! over their own elements instead.
//!
//! The forward saves `mean` and `rstd = 1/sqrt(var + eps)` of each row,
//! interleaved (`saved[2r]`, `saved[2r + 1]`), for the backward.

use crate::error::{check_len, LenError};
use crate::reduce;
use rayon::prelude::*;

/// The shape of a layer norm over `[n, rows, len]`: each of the `n·rows`
/// rows of `len` values is normalised on its own, as `nn.LayerNorm` whose
/// `normalized_shape` holds `len` values; the affine `weight` and `bias`
/// have `len` values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    pub n: usize,
    pub rows: usize,
    pub len: usize,
    pub eps: f32,
}

impl LayerNorm {
    /// Elements of `x`, `y`, `dy` and `dx`.
    pub fn x_len(&self) -> usize {
        self.n * self.rows * self.len
    }

    /// Values of `saved`: a mean and an `rstd` per row.
    pub fn saved_len(&self) -> usize {
        2 * self.n * self.rows
    }
}

/// The shape of a group norm over `[n, c, inner]` (`inner = h·w`, or 1 on
/// `[n, c]`): the `c/groups` channels of each group of each sample are
/// normalised together, as `nn.GroupNorm(groups, c)`; the affine `weight`
/// and `bias` have `c` values. `c` is a multiple of `groups`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNorm {
    pub n: usize,
    pub c: usize,
    pub inner: usize,
    pub groups: usize,
    pub eps: f32,
}

impl GroupNorm {
    /// Elements of `x`, `y`, `dy` and `dx`.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.inner
    }

    /// Values of `saved`: a mean and an `rstd` per group of each sample.
    pub fn saved_len(&self) -> usize {
        2 * self.n * self.groups
    }

    /// Channels per group.
    fn group_channels(&self) -> usize {
        self.c / self.groups.max(1)
    }

    /// Values per group of one sample: the row the statistics are over.
    fn row_len(&self) -> usize {
        self.group_channels() * self.inner
    }
}

/// Values below which a pass stays on the calling thread: waking another
/// costs more than it saves.
const PARALLEL_MIN: usize = 1 << 15;

fn parallel(len: usize) -> bool {
    len >= PARALLEL_MIN && crate::par::threads() > 1
}

/// Rows per task when rows of `row` values are split across threads.
fn rows_per_task(row: usize) -> usize {
    (PARALLEL_MIN / row.max(1)).max(1)
}

/// The mean of a row and `rstd = 1/sqrt(var + eps)` of its biased variance.
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let (mean, ssd) = reduce::mean_and_ssd(row);
    (mean as f32, (1.0 / (ssd / row.len() as f64 + f64::from(eps)).sqrt()) as f32)
}

/// `f(r, x_row, y_row)` for every row `r` of `row` values, split across
/// the pool when the tensor is big; the `(mean, rstd)` it returns goes to
/// `saved[2r..2r + 2]` if there is a `saved`.
fn each_row(
    x: &[f32],
    y: &mut [f32],
    saved: Option<&mut [f32]>,
    row: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) -> (f32, f32) + Sync + Send,
) {
    if row == 0 {
        return;
    }
    let keep = |s: &mut [f32], (mean, rstd): (f32, f32)| (s[0], s[1]) = (mean, rstd);
    match (saved, parallel(x.len())) {
        (Some(saved), true) => {
            let rows = y.par_chunks_mut(row).zip(x.par_chunks(row)).zip(saved.par_chunks_mut(2));
            let rows = rows.with_min_len(rows_per_task(row)).enumerate();
            rows.for_each(|(r, ((y, x), s))| keep(s, f(r, x, y)));
        }
        (Some(saved), false) => {
            let rows = y.chunks_mut(row).zip(x.chunks(row)).zip(saved.chunks_mut(2));
            rows.enumerate().for_each(|(r, ((y, x), s))| keep(s, f(r, x, y)));
        }
        (None, true) => {
            let rows = y.par_chunks_mut(row).zip(x.par_chunks(row));
            let rows = rows.with_min_len(rows_per_task(row)).enumerate();
            rows.for_each(|(r, (y, x))| {
                f(r, x, y);
            });
        }
        (None, false) => {
            let rows = y.chunks_mut(row).zip(x.chunks(row)).enumerate();
            rows.for_each(|(r, (y, x))| {
                f(r, x, y);
            });
        }
    }
}

/// `f(r, dx_row)` for every row `r` of `row` values, split across the
/// pool when the tensor is big.
fn each_grad_row(dx: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if row == 0 {
        return;
    }
    if parallel(dx.len()) {
        let rows = dx.par_chunks_mut(row).with_min_len(rows_per_task(row));
        rows.enumerate().for_each(|(r, dx)| f(r, dx));
    } else {
        dx.chunks_mut(row).enumerate().for_each(|(r, dx)| f(r, dx));
    }
}

/// Layer norm, as `nn.LayerNorm` in either mode (it has no running
/// statistics): `y = (x - mean)·rstd·weight + bias` per row, with the
/// row's mean and biased variance, `rstd = 1/sqrt(var + eps)`. `affine`
/// is `(weight, bias)`, or `None` for `elementwise_affine = False`.
/// `saved`, if given, receives each row's mean and `rstd` for
/// [`layer_norm_backward`].
pub fn layer_norm_forward(
    ln: LayerNorm,
    x: &[f32],
    affine: Option<(&[f32], &[f32])>,
    y: &mut [f32],
    saved: Option<&mut [f32]>,
) -> Result<(), LenError> {
    const OP: &str = "layer_norm_forward";
    check_len(OP, "x", x.len(), ln.x_len())?;
    check_len(OP, "y", y.len(), ln.x_len())?;
    if let Some((weight, bias)) = affine {
        check_len(OP, "weight", weight.len(), ln.len)?;
        check_len(OP, "bias", bias.len(), ln.len)?;
    }
    if let Some(s) = &saved {
        check_len(OP, "saved", s.len(), ln.saved_len())?;
    }
    each_row(x, y, saved, ln.len, |_, x, y| {
        let (mean, rstd) = moments(x, ln.eps);
        match affine {
            Some((weight, bias)) => {
                for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(weight).zip(bias) {
                    *y = (x - mean) * rstd * w + b;
                }
            }
            None => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = (x - mean) * rstd;
                }
            }
        }
        (mean, rstd)
    });
    Ok(())
}

/// The gradient of [`layer_norm_forward`], from its input `x` and the
/// `saved` statistics. With `x̂ = (x - mean)·rstd` and `g = dy·weight`
/// (`dy` without affine), per row of `len` values:
///
/// - `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))`;
/// - `dweight = Σ_rows dy·x̂`, `dbias = Σ_rows dy`.
///
/// `dx` (`None` for an input that needs no gradient) and `grads`
/// (`(dweight, dbias)`, `None` without affine) are overwritten.
pub fn layer_norm_backward(
    ln: LayerNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    saved: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    grads: Option<(&mut [f32], &mut [f32])>,
) -> Result<(), LenError> {
    const OP: &str = "layer_norm_backward";
    check_len(OP, "x", x.len(), ln.x_len())?;
    check_len(OP, "dy", dy.len(), ln.x_len())?;
    check_len(OP, "saved", saved.len(), ln.saved_len())?;
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), ln.len)?;
    }
    if let Some(dx) = &dx {
        check_len(OP, "dx", dx.len(), ln.x_len())?;
    }
    if let Some((dw, db)) = &grads {
        check_len(OP, "dweight", dw.len(), ln.len)?;
        check_len(OP, "dbias", db.len(), ln.len)?;
    }
    let len = ln.len;
    if len == 0 {
        return Ok(());
    }
    if let Some((dw, db)) = grads {
        // Columns are independent: each task sums its block of columns
        // over every row.
        let columns = |(block, (dw, db)): (usize, (&mut [f32], &mut [f32]))| {
            let start = block * COLUMN_BLOCK;
            dw.fill(0.0);
            db.fill(0.0);
            let rows = x.chunks_exact(len).zip(dy.chunks_exact(len)).zip(saved.chunks_exact(2));
            for ((x, dy), s) in rows {
                let (mean, rstd) = (s[0], s[1]);
                let end = start + dw.len();
                let cols =
                    dw.iter_mut().zip(db.iter_mut()).zip(&x[start..end]).zip(&dy[start..end]);
                for (((w, b), &x), &g) in cols {
                    *w += g * ((x - mean) * rstd);
                    *b += g;
                }
            }
        };
        if parallel(ln.x_len()) && len > COLUMN_BLOCK {
            let blocks = dw.par_chunks_mut(COLUMN_BLOCK).zip(db.par_chunks_mut(COLUMN_BLOCK));
            blocks.enumerate().for_each(columns);
        } else {
            let blocks = dw.chunks_mut(COLUMN_BLOCK).zip(db.chunks_mut(COLUMN_BLOCK));
            blocks.enumerate().for_each(columns);
        }
    }
    let Some(dx) = dx else { return Ok(()) };
    let inv_len = 1.0 / len as f32;
    each_grad_row(dx, len, |r, dx| {
        let rows = r * len..(r + 1) * len;
        let (x, dy) = (&x[rows.clone()], &dy[rows]);
        let (mean, rstd) = (saved[2 * r], saved[2 * r + 1]);
        // g = dy·weight lands in dx first, and becomes dx in place.
        let (sum_g, dot) = match weight {
            Some(w) => {
                for ((d, &g), &w) in dx.iter_mut().zip(dy).zip(w) {
                    *d = g * w;
                }
                reduce::sum_and_dot_dev(dx, x, mean)
            }
            None => {
                dx.copy_from_slice(dy);
                reduce::sum_and_dot_dev(dy, x, mean)
            }
        };
        // x̂·mean(g·x̂) = (x - mean)·rstd²·Σ g·(x - mean)/len.
        let k = rstd * rstd * dot * inv_len;
        let mean_g = sum_g * inv_len;
        for (d, &xv) in dx.iter_mut().zip(x) {
            *d = rstd * (*d - mean_g - (xv - mean) * k);
        }
    });
    Ok(())
}

/// Columns per task of the parameter gradients.
const COLUMN_BLOCK: usize = 1 << 12;

/// Group norm, as `nn.GroupNorm(groups, c)` in either mode: each group of
/// `c/groups` channels of each sample is normalised by its own mean and
/// biased variance, then channel `ch` is scaled by `weight[ch]` and shifted
/// by `bias[ch]` (`affine`, or `None` for `affine = False`). `saved`, if
/// given, receives each group's mean and `rstd` for [`group_norm_backward`].
pub fn group_norm_forward(
    gn: GroupNorm,
    x: &[f32],
    affine: Option<(&[f32], &[f32])>,
    y: &mut [f32],
    saved: Option<&mut [f32]>,
) -> Result<(), LenError> {
    const OP: &str = "group_norm_forward";
    check_len(OP, "x", x.len(), gn.x_len())?;
    check_len(OP, "y", y.len(), gn.x_len())?;
    check_len(OP, "channels", gn.group_channels() * gn.groups, gn.c)?;
    if let Some((weight, bias)) = affine {
        check_len(OP, "weight", weight.len(), gn.c)?;
        check_len(OP, "bias", bias.len(), gn.c)?;
    }
    if let Some(s) = &saved {
        check_len(OP, "saved", s.len(), gn.saved_len())?;
    }
    let (cg, inner) = (gn.group_channels(), gn.inner);
    each_row(x, y, saved, gn.row_len(), |r, x, y| {
        let (mean, rstd) = moments(x, gn.eps);
        let first = (r % gn.groups) * cg;
        let planes = y.chunks_exact_mut(inner).zip(x.chunks_exact(inner));
        for (k, (y, x)) in planes.enumerate() {
            let (w, b) = affine.map_or((1.0, 0.0), |(w, b)| (w[first + k], b[first + k]));
            let scale = rstd * w;
            let shift = b - mean * scale;
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale + shift;
            }
        }
        (mean, rstd)
    });
    Ok(())
}

/// The gradient of [`group_norm_forward`], from its input `x` and the
/// `saved` statistics. With `x̂ = (x - mean)·rstd` over a group of
/// `m = (c/groups)·inner` values and `g = dy·weight[ch]`:
///
/// - `dx = rstd·(g - mean(g) - x̂·mean(g·x̂))` over the group;
/// - `dweight[ch] = Σ dy·x̂`, `dbias[ch] = Σ dy` over samples and cells.
///
/// `dx` (`None` for an input that needs no gradient) and `grads`
/// (`(dweight, dbias)`, `None` without affine) are overwritten.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    gn: GroupNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    saved: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    grads: Option<(&mut [f32], &mut [f32])>,
) -> Result<(), LenError> {
    const OP: &str = "group_norm_backward";
    check_len(OP, "x", x.len(), gn.x_len())?;
    check_len(OP, "dy", dy.len(), gn.x_len())?;
    check_len(OP, "saved", saved.len(), gn.saved_len())?;
    check_len(OP, "channels", gn.group_channels() * gn.groups, gn.c)?;
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), gn.c)?;
    }
    if let Some(dx) = &dx {
        check_len(OP, "dx", dx.len(), gn.x_len())?;
    }
    if let Some((dw, db)) = &grads {
        check_len(OP, "dweight", dw.len(), gn.c)?;
        check_len(OP, "dbias", db.len(), gn.c)?;
    }
    let (c, cg, inner, groups) = (gn.c, gn.group_channels(), gn.inner, gn.groups);
    if c == 0 || inner == 0 {
        return Ok(());
    }
    let plane = |s: usize, ch: usize| (s * c + ch) * inner..(s * c + ch + 1) * inner;
    let stats = |s: usize, ch: usize| {
        let r = s * groups + ch / cg;
        (saved[2 * r], saved[2 * r + 1])
    };
    if let Some((dw, db)) = grads {
        // Channels are independent: each sums its planes over the batch.
        let channel = |(ch, (dw, db)): (usize, (&mut f32, &mut f32))| {
            let (mut sum_dy, mut sum_dot) = (0.0f64, 0.0f64);
            for s in 0..gn.n {
                let (mean, rstd) = stats(s, ch);
                let (sd, dot) = reduce::sum_and_dot_dev(&dy[plane(s, ch)], &x[plane(s, ch)], mean);
                sum_dy += f64::from(sd);
                sum_dot += f64::from(dot) * f64::from(rstd);
            }
            (*dw, *db) = (sum_dot as f32, sum_dy as f32);
        };
        if parallel(gn.x_len()) {
            dw.par_iter_mut().zip(db.par_iter_mut()).enumerate().for_each(channel);
        } else {
            dw.iter_mut().zip(db.iter_mut()).enumerate().for_each(channel);
        }
    }
    let Some(dx) = dx else { return Ok(()) };
    let row_len = gn.row_len();
    let inv_m = 1.0 / row_len as f32;
    // One group of one sample: its sums of `g` and `g·(x - mean)` by
    // channel, then `dx = a·dy - b·x + k` per channel.
    let group = |r: usize, dx: &mut [f32]| {
        let (s, first) = (r / groups, (r % groups) * cg);
        let (mean, rstd) = stats(s, first);
        let w = |k: usize| weight.map_or(1.0, |w| w[first + k]);
        let (mut sum_g, mut dot) = (0.0f32, 0.0f32);
        for k in 0..cg {
            let p = plane(s, first + k);
            let (sd, d) = reduce::sum_and_dot_dev(&dy[p.clone()], &x[p], mean);
            sum_g += w(k) * sd;
            dot += w(k) * d;
        }
        let b = rstd * rstd * rstd * dot * inv_m;
        let k0 = mean * b - rstd * sum_g * inv_m;
        for (k, dx) in dx.chunks_exact_mut(inner).enumerate() {
            let p = plane(s, first + k);
            let a = rstd * w(k);
            for ((d, &g), &xv) in dx.iter_mut().zip(&dy[p.clone()]).zip(&x[p]) {
                *d = a * g - b * xv + k0;
            }
        }
    };
    each_grad_row(dx, row_len, group);
    Ok(())
}
