//! Fully connected layers, PyTorch's `nn.Linear`: `y = x·Wᵀ + b` with weight
//! `[out, in]`, over a batch of rows. Every pass is one GEMM, the bias, the
//! activation and the ReLU backward mask fused into its store; except at
//! small batches, where [`streamed`] reads the weights once instead, and
//! on AVX-512 the forward pass from 2 samples (of any weights up to 64
//! samples, of cache-sized ones at any batch), which [`dot`] computes
//! without packing.

pub mod bf16;
#[allow(unsafe_code)]
pub mod dot;
#[allow(unsafe_code)]
pub mod streamed;

use crate::error::{check_len, LenError};
use crate::gemm::{sgemm, Activation, Bias, Epilogue, MatMut, MatRef, Par, SgdUpdate};
use crate::isa::Isa;
use crate::optim::Sgd;

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

    /// The lengths of a forward pass's tensors, bias included.
    fn check_forward(
        &self,
        op: &'static str,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &[f32],
    ) -> Result<(), LenError> {
        self.check(op, x.len(), w.len(), y.len())?;
        bias.map_or(Ok(()), |b| check_len(op, "bias", b.len(), self.output))
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
    s.check_forward("dense_forward", x, weight, bias, y)?;
    // The streamed and dot paths need whole rows; the GEMM handles empty
    // ones.
    if s.input > 0 && s.output > 0 {
        if dot::preferred(s) {
            dot::forward_checked(s, Isa::best(), x, weight, bias, activation, y, par);
            return Ok(());
        }
        if s.n <= STREAM_BATCH {
            streamed::forward_checked(s, Isa::best(), x, weight, bias, activation, y, par);
            return Ok(());
        }
    }
    let epi = Epilogue {
        bias: bias.map_or(Bias::None, Bias::PerCol),
        activation,
        relu_mask: None,
        sgd: None,
    };
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
/// only `n` times; by 32 samples the GEMM wins. On AVX-512 the forward
/// pass takes [`dot`] from 2 samples.
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
        sgd: None,
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
    bias_grad("dense_backward_weights", s, dy, dbias)?;
    crate::gemm::expect_valid(weight_grad_gemm(s, x, dy, 1.0, 0.0, dweight, &Epilogue::NONE, par));
    Ok(())
}

/// The weight gradient and an SGD step on the weights in one pass, the
/// gradient never stored: what `torch.optim.SGD` (without Nesterov) would
/// do to `weight` and `momentum_buf` after [`dense_backward_weights`].
/// The bias gradient, if asked for, is written as there.
///
/// - With momentum, the GEMM writes `g + momentum·b` into the momentum
///   buffer and steps each weight as the tile is stored ([`SgdUpdate`]).
/// - Without, it writes `(1 − lr·wd)·w − lr·g` straight into the weights;
///   `momentum_buf` is unused and may be empty.
///
/// The results equal the unfused step's up to the order of the additions.
/// Nesterov momentum is an error: its step needs the gradient itself. So is
/// plain SGD with `lr·weight_decay = 1`, whose `beta = 0` would let the
/// GEMM skip reading the weights, turning a NaN weight finite.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_weights_sgd(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    weight: &mut [f32],
    momentum_buf: &mut [f32],
    dbias: Option<&mut [f32]>,
    sgd: &Sgd,
    par: Par,
) -> Result<(), LenError> {
    const OP: &str = "dense_backward_weights_sgd";
    s.check(OP, x.len(), weight.len(), dy.len())?;
    // Not lengths, but the same kind of caller error (as in conv's shape
    // check): the zero lengths make `LenError` print them so.
    if sgd.nesterov {
        return Err(LenError { op: OP, tensor: "nesterov", expected: 0, found: 0 });
    }
    if !sgd.fusable() {
        return Err(LenError { op: OP, tensor: "weight_decay", expected: 0, found: 0 });
    }
    if sgd.momentum != 0.0 {
        check_len(OP, "momentum_buf", momentum_buf.len(), weight.len())?;
    }
    bias_grad(OP, s, dy, dbias)?;
    let (lr, momentum, wd) = (sgd.lr as f32, sgd.momentum as f32, sgd.weight_decay as f32);
    let r = if sgd.momentum == 0.0 {
        weight_grad_gemm(s, x, dy, -lr, 1.0 - lr * wd, weight, &Epilogue::NONE, par)
    } else {
        let step = SgdUpdate::new(weight, s.input, 1, lr, wd);
        let epi = Epilogue { sgd: Some(step), ..Epilogue::NONE };
        weight_grad_gemm(s, x, dy, 1.0, momentum, momentum_buf, &epi, par)
    };
    crate::gemm::expect_valid(r);
    Ok(())
}

/// `dbias = Σ_samples dy`, if asked for.
fn bias_grad(
    op: &'static str,
    s: &Dense,
    dy: &[f32],
    dbias: Option<&mut [f32]>,
) -> Result<(), LenError> {
    if let Some(db) = dbias {
        check_len(op, "dbias", db.len(), s.output)?;
        db.fill(0.0);
        for row in dy.chunks_exact(s.output.max(1)) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
    Ok(())
}

/// `C [out, in] = alpha·dyᵀ·x + beta·C`, then the epilogue.
#[allow(clippy::too_many_arguments)]
fn weight_grad_gemm(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    alpha: f32,
    beta: f32,
    c: &mut [f32],
    epi: &Epilogue<'_>,
    par: Par,
) -> Result<(), crate::gemm::GemmError> {
    sgemm(
        s.output,
        s.input,
        s.n,
        alpha,
        MatRef::row_major(dy, s.output).t(),
        MatRef::row_major(x, s.input),
        beta,
        MatMut::row_major(c, s.input),
        epi,
        par,
    )
}
