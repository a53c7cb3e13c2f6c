//! Fully connected layers, PyTorch's `nn.Linear`: `y = x·Wᵀ + b` with weight
//! `[out, in]`, over a batch of rows. Every pass is one GEMM, the bias, the
//! activation and the ReLU backward mask fused into its store; except at
//! small batches, where [`streamed`] reads the weights once instead.

pub mod streamed;

use crate::error::{check_len, LenError};
use crate::gemm::{sgemm, Activation, Bias, Epilogue, MatMut, MatRef, Par};
use crate::isa::Isa;

/// The static shape of one dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Batch.
    pub n: usize,
    /// Input features.
    pub input: usize,
    /// Output features.
    pub output: usize,
}

impl Dense {
    pub fn weight_len(&self) -> usize {
        self.input * self.output
    }

    fn check(&self, op: &'static str, x: usize, w: usize, y: usize) -> Result<(), LenError> {
        check_len(op, "input", x, self.n * self.input)?;
        check_len(op, "weight", w, self.weight_len())?;
        check_len(op, "output", y, self.n * self.output)
    }
}

/// `y = act(x·Wᵀ + b)`.
pub fn dense_forward(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    s.check("dense_forward", x.len(), weight.len(), y.len())?;
    if let Some(b) = bias {
        check_len("dense_forward", "bias", b.len(), s.output)?;
    }
    // The streamed path needs whole rows; the GEMM handles empty ones.
    if s.n <= STREAM_BATCH && s.input > 0 && s.output > 0 {
        streamed::forward_checked(s, Isa::best(), x, weight, bias, activation, y, par);
        return Ok(());
    }
    let epi = Epilogue { bias: bias.map_or(Bias::None, Bias::PerCol), activation, relu_mask: None };
    crate::gemm::expect_valid(sgemm(
        s.n,
        s.output,
        s.input,
        1.0,
        MatRef::row_major(x, s.input),
        MatRef::row_major(weight, s.input).t(),
        0.0,
        MatMut::row_major(y, s.output),
        &epi,
        par,
    ));
    Ok(())
}

/// Up to this many samples, the forward and backward-data passes stream the
/// weight matrix once ([`streamed`]) instead of packing it for the GEMM:
/// packing reads and writes all of it for a product that reads each weight
/// only `n` times. Measured with `dense_bench` on AlexNet's fc6 (9216 ->
/// 4096), ms, streamed against the GEMM: batch 8 forward 13.3/24.7,
/// backward-data 9.0/13.0; at batch 32 the GEMM wins (24.6/38.7).
const STREAM_BATCH: usize = 8;

/// `dx = dy·W`, zeroed where `relu_mask ≤ 0` when given (the forward output
/// of a ReLU feeding this layer: its backward, fused into the store).
pub fn dense_backward_data(
    s: &Dense,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    s.check("dense_backward_data", dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len("dense_backward_data", "relu_mask", m.len(), s.n * s.input)?;
    }
    if s.n <= STREAM_BATCH && s.input > 0 && s.output > 0 {
        streamed::backward_data_checked(s, Isa::best(), dy, weight, relu_mask, dx, par);
        return Ok(());
    }
    let epi = Epilogue {
        bias: Bias::None,
        activation: Activation::Identity,
        relu_mask: relu_mask.map(|m| MatRef::row_major(m, s.input)),
    };
    crate::gemm::expect_valid(sgemm(
        s.n,
        s.input,
        s.output,
        1.0,
        MatRef::row_major(dy, s.output),
        MatRef::row_major(weight, s.input),
        0.0,
        MatMut::row_major(dx, s.input),
        &epi,
        par,
    ));
    Ok(())
}

/// `dW = dyᵀ·x` and `db = Σ_rows dy`, overwritten.
pub fn dense_backward_weights(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), LenError> {
    s.check("dense_backward_weights", x.len(), dweight.len(), dy.len())?;
    if let Some(db) = dbias {
        check_len("dense_backward_weights", "dbias", db.len(), s.output)?;
        db.fill(0.0);
        for row in dy.chunks_exact(s.output.max(1)) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
    crate::gemm::expect_valid(sgemm(
        s.output,
        s.input,
        s.n,
        1.0,
        MatRef::row_major(dy, s.output).t(),
        MatRef::row_major(x, s.input),
        0.0,
        MatMut::row_major(dweight, s.input),
        &Epilogue::NONE,
        par,
    ));
    Ok(())
}
