//! Fully connected layers, PyTorch's `nn.Linear`: `y = x·Wᵀ + b` with weight
//! `[out, in]`, over a batch of rows. Every pass is one GEMM; the bias, the
//! activation and the ReLU backward mask are fused into its store.

use crate::error::{check_len, LenError};
use crate::gemm::{sgemm, Activation, Bias, Epilogue, MatMut, MatRef, Par};

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
    // The row-at-a-time path needs whole rows; the GEMM handles empty ones.
    if s.n <= SMALL_BATCH && s.input > 0 && s.output > 0 {
        forward_small(s, x, weight, bias, activation, y, par);
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

/// Up to this many samples, a dense layer is a few matrix-vector products:
/// packing the whole weight matrix for the GEMM would cost more than the
/// products themselves (measured: MLP inference at batch 1 went from 278 µs
/// to well under 100 µs).
const SMALL_BATCH: usize = 2;

/// `y = act(x·Wᵀ + b)` as dot products of weight rows with each sample,
/// rows split among threads.
fn forward_small(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    use rayon::prelude::*;
    const ROWS: usize = 32;
    for (xs, ys) in x.chunks_exact(s.input).zip(y.chunks_exact_mut(s.output)) {
        let rows = |(c, out): (usize, &mut [f32])| {
            for (k, o) in out.iter_mut().enumerate() {
                let row = c * ROWS + k;
                let w = &weight[row * s.input..(row + 1) * s.input];
                let b = bias.map_or(0.0, |b| b[row]);
                *o = activation.apply(b + dot(w, xs));
            }
        };
        if par == Par::Rayon && s.output * s.input >= 1 << 16 {
            ys.par_chunks_mut(ROWS).enumerate().for_each(rows);
        } else {
            ys.chunks_mut(ROWS).enumerate().for_each(rows);
        }
    }
}

/// A dot product with eight independent partial sums, a shape the compiler
/// vectorises (one running sum would serialise on the add latency).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

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
