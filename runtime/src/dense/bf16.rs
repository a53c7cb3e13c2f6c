//! The dense forward and backward-data passes in mixed precision, for a
//! `precision bf16` network: each a GEMM with bf16 operands and f32 sums
//! ([`gemm_bf16`]) on the bf16 kernel this CPU runs best; weights,
//! activations and gradients stay f32 in memory. The weight gradient stays
//! f32: its sum runs over the batch, a short k that bf16 tiles would pad,
//! and an SGD step can be fused into it.
//!
//! Each call rounds the whole weight matrix to bf16 as it packs it, which
//! pays only over enough samples ([`pays`]); smaller batches and layers
//! keep the f32 passes, streamed or GEMM.

use super::{dense_backward_data, dense_forward, Dense};
use crate::act::forward_in_place;
use crate::error::{check_len, LenError};
use crate::gemm::bf16::{gemm_bf16, Bf16Kernel};
use crate::gemm::{Activation, MatRef, Par};

/// Samples, and features in and out, from which the bf16 passes pay:
/// converting every weight for fewer products, or tiles mostly padding,
/// costs more than the faster multiplies save.
const BF16_MIN_BATCH: usize = 64;
const BF16_MIN_FEATURES: usize = 64;

/// Whether the bf16 passes pay for shape `s` (else the f32 ones run).
pub fn pays(s: &Dense) -> bool {
    s.n >= BF16_MIN_BATCH && s.input >= BF16_MIN_FEATURES && s.output >= BF16_MIN_FEATURES
}

thread_local! {
    /// Each thread's transposed forward output, reused across calls.
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

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
    if !pays(s) {
        return dense_forward(s, x, weight, bias, activation, y, par);
    }
    s.check_forward("dense_forward_bf16", x, weight, bias, y)?;
    // `yᵀ = W·xᵀ`: the weights are the GEMM's rows, read along their
    // length, and only the batch's few inputs are read across.
    crate::scratch::with(&TRANSPOSED, s.n * s.output, |yt| {
        let (a, b) = (MatRef::row_major(weight, s.input), MatRef::row_major(x, s.input).t());
        gemm_bf16(Bf16Kernel::selected(), s.output, s.n, s.input, a, b, yt, s.n, false, par);
        for (r, row) in y.chunks_exact_mut(s.output.max(1)).enumerate() {
            row.iter_mut().enumerate().for_each(|(o, v)| *v = yt[o * s.n + r]);
            if let Some(bias) = bias {
                row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
            forward_in_place(activation, row);
        }
    });
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
    if !pays(s) {
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
