//! The dense passes in mixed precision, for a `precision bf16` network:
//! each a GEMM with bf16 operands and f32 sums ([`gemm_bf16`]) on the bf16
//! kernel this CPU runs best; weights, activations and gradients stay f32
//! in memory. Up to [`STREAM_BATCH`] samples the forward and backward-data
//! passes keep their f32 paths, which read each weight once without
//! packing: a bf16 GEMM would convert every weight for a product that uses
//! it a few times.

use super::{bias_grad, dense_backward_data, dense_forward, Dense, STREAM_BATCH};
use crate::act::forward_in_place;
use crate::error::{check_len, LenError};
use crate::gemm::bf16::{gemm_bf16, Bf16Kernel};
use crate::gemm::{Activation, MatRef, Par};

/// [`dense_forward`] with bf16 operands and f32 sums.
pub fn dense_forward_bf16(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    if s.n <= STREAM_BATCH {
        return dense_forward(s, x, weight, bias, activation, y, par);
    }
    s.check_forward("dense_forward_bf16", x, weight, bias, y)?;
    let (a, b) = (MatRef::row_major(x, s.input), MatRef::row_major(weight, s.input).t());
    gemm_bf16(Bf16Kernel::selected(), s.n, s.output, s.input, a, b, y, s.output, false, par);
    for row in y.chunks_exact_mut(s.output.max(1)) {
        if let Some(bias) = bias {
            row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
        }
        forward_in_place(activation, row);
    }
    Ok(())
}

/// [`dense_backward_data`] with bf16 operands and f32 sums.
pub fn dense_backward_data_bf16(
    s: &Dense,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    if s.n <= STREAM_BATCH {
        return dense_backward_data(s, dy, weight, relu_mask, dx, par);
    }
    const OP: &str = "dense_backward_data_bf16";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len(OP, "relu_mask", m.len(), s.n * s.input)?;
    }
    let (a, b) = (MatRef::row_major(dy, s.output), MatRef::row_major(weight, s.input));
    gemm_bf16(Bf16Kernel::selected(), s.n, s.input, s.output, a, b, dx, s.input, false, par);
    if let Some(mask) = relu_mask {
        dx.iter_mut().zip(mask).filter(|(_, &m)| m <= 0.0).for_each(|(d, _)| *d = 0.0);
    }
    Ok(())
}

/// `dW = dyᵀ·x` with bf16 operands and f32 sums, and `db = Σ_rows dy` in
/// f32; both overwritten.
pub fn dense_backward_weights_bf16(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), LenError> {
    const OP: &str = "dense_backward_weights_bf16";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    bias_grad(OP, s, dy, dbias)?;
    if s.n == 0 {
        dweight.fill(0.0);
        return Ok(());
    }
    let (a, b) = (MatRef::row_major(dy, s.output).t(), MatRef::row_major(x, s.input));
    gemm_bf16(Bf16Kernel::selected(), s.output, s.input, s.n, a, b, dweight, s.input, false, par);
    Ok(())
}
