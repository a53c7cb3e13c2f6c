//! PReLU, PyTorch's `nn.PReLU`: `y = x` where `x > 0`, else `a·x`, with a
//! learned slope `a` per channel of `[n, c, hw]`. One slope for the whole
//! tensor (`num_parameters = 1`) is the same kernel with `c = 1` and the
//! sample's every element in `hw`.
//!
//! The backward needs the input: the slope may be negative, and then the
//! output does not tell the sides apart. Memory-bound loops that the
//! compiler vectorises for the baseline instruction set, one per channel
//! row with its slope fixed; lengths are checked before any memory is
//! touched.

use crate::act::numel;
use crate::error::{check_len, LenError};

/// `y = x` where `x > 0`, else `weight[channel]·x`.
pub fn prelu_forward(
    n: usize,
    c: usize,
    hw: usize,
    weight: &[f32],
    x: &[f32],
    y: &mut [f32],
) -> Result<(), LenError> {
    let len = numel(&[n, c, hw]);
    check_len("prelu_forward", "weight", weight.len(), c)?;
    check_len("prelu_forward", "x", x.len(), len)?;
    check_len("prelu_forward", "y", y.len(), len)?;
    if hw == 0 {
        return Ok(());
    }
    for (i, (y, x)) in y.chunks_exact_mut(hw).zip(x.chunks_exact(hw)).enumerate() {
        let a = weight[i % c];
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x > 0.0 { x } else { a * x };
        }
    }
    Ok(())
}

/// The backward of [`prelu_forward`], PyTorch's choice at 0 (the negative
/// side): `dx = dy` where `x > 0`, else `weight[channel]·dy`, unless `dx`
/// is `None` (an input that needs no gradient); and
/// `dweight[k] = Σ dy·x` over the elements of channel `k` with `x ≤ 0`.
/// Both are overwritten, not accumulated.
#[allow(clippy::too_many_arguments)]
pub fn prelu_backward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dweight: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "prelu_backward";
    let len = numel(&[n, c, hw]);
    check_len(OP, "weight", weight.len(), c)?;
    check_len(OP, "x", x.len(), len)?;
    check_len(OP, "dy", dy.len(), len)?;
    if let Some(dx) = dx.as_deref() {
        check_len(OP, "dx", dx.len(), len)?;
    }
    check_len(OP, "dweight", dweight.len(), c)?;
    dweight.fill(0.0);
    if hw == 0 {
        return Ok(());
    }
    for (i, (x, dy)) in x.chunks_exact(hw).zip(dy.chunks_exact(hw)).enumerate() {
        let k = i % c;
        if let Some(dx) = dx.as_deref_mut() {
            let a = weight[k];
            for ((dx, &x), &dy) in dx[i * hw..][..hw].iter_mut().zip(x).zip(dy) {
                *dx = if x > 0.0 { dy } else { a * dy };
            }
        }
        let partial: f32 =
            x.iter().zip(dy).map(|(&x, &dy)| if x > 0.0 { 0.0 } else { x * dy }).sum();
        dweight[k] += partial;
    }
    Ok(())
}
