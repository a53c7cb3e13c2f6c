//! Elementwise products, forward and backward: of two same-shape tensors,
//! and of an `[n, c, inner]` tensor by a per-channel scale `[n, c]` (the
//! gate of a squeeze-and-excitation block).
//!
//! Memory-bound loops that the compiler vectorises for the baseline
//! instruction set; large buffers are split across the pool
//! (`crate::par`). Lengths are checked before any memory is touched.

use crate::error::{check_len, LenError};
use crate::reduce;
use rayon::prelude::*;

/// `y = a ⊙ b`.
pub fn mul(a: &[f32], b: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    check_len("mul", "b", b.len(), a.len())?;
    check_len("mul", "y", y.len(), a.len())?;
    mul_checked(a, b, y);
    Ok(())
}

/// The backward of [`mul`]: `da = dy ⊙ b` and `db = dy ⊙ a`, each
/// overwritten; `None` skips that gradient (an operand that needs none).
/// Two passes, one per gradient, each the shape of a `crate::par`
/// helper; both read `dy`, which a fused pass would read once.
pub fn mul_backward(
    a: &[f32],
    b: &[f32],
    dy: &[f32],
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), LenError> {
    const OP: &str = "mul_backward";
    check_len(OP, "b", b.len(), a.len())?;
    check_len(OP, "dy", dy.len(), a.len())?;
    if let Some(da) = &da {
        check_len(OP, "da", da.len(), a.len())?;
    }
    if let Some(db) = &db {
        check_len(OP, "db", db.len(), a.len())?;
    }
    if let Some(da) = da {
        mul_checked(dy, b, da);
    }
    if let Some(db) = db {
        mul_checked(dy, a, db);
    }
    Ok(())
}

/// `y = a ⊙ b` of checked operands.
fn mul_checked(a: &[f32], b: &[f32], y: &mut [f32]) {
    crate::par::zip3(y, a, b, |y, a, b| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a * b;
        }
    });
}

/// The shape of a per-channel product: `x` is `[n, c, inner]`, the scale
/// `[n, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelScale {
    pub n: usize,
    pub c: usize,
    pub inner: usize,
}

impl ChannelScale {
    /// Elements of `x`, `y`, `dy` and `dx`.
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.inner
    }

    /// Elements of the scale and its gradient.
    pub fn scale_len(&self) -> usize {
        self.n * self.c
    }

    /// Whether there are enough planes for the pool to pay.
    fn parallel(&self) -> bool {
        self.x_len() >= 1 << 15 && crate::par::threads() > 1
    }

    /// Planes per parallel task.
    fn planes_per_task(&self) -> usize {
        ((1 << 15) / self.inner.max(1)).max(1)
    }
}

/// `y[s, ch, :] = x[s, ch, :] · scale[s, ch]`, PyTorch's broadcasting
/// product of `[n, c, h, w]` by `[n, c, 1, 1]`.
pub fn mul_channels(
    cs: ChannelScale,
    x: &[f32],
    scale: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "mul_channels";
    check_len(OP, "x", x.len(), cs.x_len())?;
    check_len(OP, "scale", scale.len(), cs.scale_len())?;
    check_len(OP, "y", y.len(), cs.x_len())?;
    scale_planes(cs, x, scale, y);
    Ok(())
}

/// Every plane of `x` times its scale into `y`, checked.
fn scale_planes(cs: ChannelScale, x: &[f32], scale: &[f32], y: &mut [f32]) {
    if cs.inner == 0 {
        return;
    }
    let plane = |((y, x), &k): ((&mut [f32], &[f32]), &f32)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * k;
        }
    };
    if cs.parallel() {
        let planes = y.par_chunks_mut(cs.inner).zip(x.par_chunks(cs.inner)).zip(scale);
        planes.with_min_len(cs.planes_per_task()).for_each(plane);
    } else {
        y.chunks_mut(cs.inner).zip(x.chunks(cs.inner)).zip(scale).for_each(plane);
    }
}

/// The backward of [`mul_channels`]: `dx = dy · scale` per plane, and
/// `dscale[s, ch] = Σ dy·x` over the plane, each overwritten; `None` skips
/// that gradient.
pub fn mul_channels_backward(
    cs: ChannelScale,
    x: &[f32],
    scale: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dscale: Option<&mut [f32]>,
) -> Result<(), LenError> {
    const OP: &str = "mul_channels_backward";
    check_len(OP, "x", x.len(), cs.x_len())?;
    check_len(OP, "scale", scale.len(), cs.scale_len())?;
    check_len(OP, "dy", dy.len(), cs.x_len())?;
    if let Some(dx) = &dx {
        check_len(OP, "dx", dx.len(), cs.x_len())?;
    }
    if let Some(ds) = &dscale {
        check_len(OP, "dscale", ds.len(), cs.scale_len())?;
    }
    if let Some(dx) = dx {
        scale_planes(cs, dy, scale, dx);
    }
    let Some(dscale) = dscale else { return Ok(()) };
    if cs.inner == 0 {
        dscale.fill(0.0);
        return Ok(());
    }
    let plane = |(d, (dy, x)): (&mut f32, (&[f32], &[f32]))| {
        *d = reduce::sum_and_dot_dev(dy, x, 0.0).1;
    };
    if cs.parallel() {
        let planes = dscale.par_iter_mut().zip(dy.par_chunks(cs.inner).zip(x.par_chunks(cs.inner)));
        planes.with_min_len(cs.planes_per_task()).for_each(plane);
    } else {
        dscale.iter_mut().zip(dy.chunks(cs.inner).zip(x.chunks(cs.inner))).for_each(plane);
    }
    Ok(())
}
