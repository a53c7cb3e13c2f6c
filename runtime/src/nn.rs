//! The layer-level API that generated code calls: one function per step
//! kind of the compiler's program, with shapes passed as constant structs so
//! that inlining specialises them. Each wraps the kernel of its op family,
//! runs on the rayon pool where the kernel can, and reports errors as
//! [`Error`].

use crate::conv::{self, Conv2d};
use crate::conv_transpose::{self, ConvTranspose2d};
use crate::dense::{self, Dense};
use crate::dropout::{DepthMode, Dropout, DropoutKey, MaskKey};
use crate::elementwise::ChannelScale;
use crate::error::{check_len, Error, LenError};
use crate::gemm::{Activation, Par};
use crate::loss::{self, LossError};
use crate::norm::{self, BatchNorm, Lrn};
use crate::optim::{Adam, AdamMoments, AdamW, Sgd};
use crate::permute::Permute;
use crate::pool::{self, AdaptivePool2d, Pool2d};
use crate::sample_norm::{self, GroupNorm, LayerNorm};
use crate::upsample::{self, Upsample2d};

/// Output-based: a gated activation is [`Error::NeedsInput`]; see
/// [`activation_backward_from_input_in_place`].
pub use crate::act::{
    backward as activation_backward, backward_in_place as activation_backward_in_place,
};
pub use crate::act::{forward as activation_forward, softmax as softmax_forward, softmax_backward};
pub use crate::act::{log_softmax as log_softmax_forward, log_softmax_backward};

impl From<LossError> for Error {
    fn from(e: LossError) -> Self {
        match e {
            LossError::Len(e) => Error::Len(e),
            LossError::Label { sample, label, classes } => Error::Label { sample, label, classes },
        }
    }
}

/// Runs a whole pass of a generated model (`f`) with the pool's other
/// thread kept polling for its parallel kernels rather than sleeping between
/// them; see `par::awake`.
pub fn awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    crate::par::awake(f)
}

/// `len` zeros, written now rather than left to the allocator's lazily
/// zeroed pages. Such a page maps the shared zero page until it is first
/// written; when it is read first (a momentum buffer, scaled by its
/// coefficient before anything is added), the write that follows faults
/// again, copies the page and flushes every core's TLB, which in a VM is an
/// interrupt per page to the other cores: it made AlexNet's first training
/// step several times slower than the next.
pub fn zeroed_state(len: usize) -> Vec<f32> {
    let mut state = Vec::with_capacity(len);
    // Hidden from the optimiser, which could otherwise turn the allocation
    // and the fill below back into one lazily zeroed allocation.
    std::hint::black_box(&mut state);
    state.resize(len, 0.0);
    state
}

/// Sizes every thread's scratch buffers for a model with these
/// convolutions (at its batch capacity), so that its training steps
/// allocate nothing. Generated models call it when they are created.
pub fn reserve_scratch(convs: &[&Conv2d]) {
    crate::gemm::reserve_scratch();
    conv::reserve_scratch(convs);
}

pub fn conv2d_forward(
    s: &Conv2d,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(conv::conv2d_forward(s, x, w, b, act, y, Par::Rayon)?)
}

/// [`conv2d_forward`] for inference, with the weights' transform kept in
/// `cache` across calls (see [`conv::ForwardCache`]).
pub fn conv2d_forward_cached(
    s: &Conv2d,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    cache: &conv::ForwardCache,
) -> Result<(), Error> {
    Ok(conv::conv2d_forward_cached(s, x, w, b, act, y, cache, Par::Rayon)?)
}

/// A conv, then a batch norm on its running statistics, then `act`, at
/// inference: the batch norm folded into the conv's weights, kept in `cache`
/// ([`conv::conv2d_bn_forward_cached`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_bn_forward_infer(
    s: &Conv2d,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    bn: &BatchNorm,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    act: Activation,
    y: &mut [f32],
    cache: &conv::ForwardCache,
) -> Result<(), Error> {
    let norm = conv::BatchNormParams { gamma, beta, running_mean, running_var, eps: bn.eps };
    Ok(conv::conv2d_bn_forward_cached(s, x, w, b, norm, act, y, cache, Par::Rayon)?)
}

pub fn conv2d_backward_data(
    s: &Conv2d,
    dy: &[f32],
    w: &[f32],
    mask: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(conv::conv2d_backward_data(s, dy, w, mask, dx, Par::Rayon)?)
}

pub fn conv2d_backward_weights(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(conv::conv2d_backward_weights(s, x, dy, dw, db, Par::Rayon)?)
}

/// [`conv2d_forward`] with bf16 operands and f32 sums, for a `precision
/// bf16` network ([`conv::conv2d_forward_bf16`]).
pub fn conv2d_forward_bf16(
    s: &Conv2d,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(conv::conv2d_forward_bf16(s, x, w, b, act, y, Par::Rayon)?)
}

pub fn conv2d_backward_data_bf16(
    s: &Conv2d,
    dy: &[f32],
    w: &[f32],
    mask: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(conv::conv2d_backward_data_bf16(s, dy, w, mask, dx, Par::Rayon)?)
}

pub fn conv2d_backward_weights_bf16(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(conv::conv2d_backward_weights_bf16(s, x, dy, dw, db, Par::Rayon)?)
}

pub fn conv_transpose2d_forward(
    s: &ConvTranspose2d,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(conv_transpose::conv_transpose2d_forward(s, x, w, b, act, y, Par::Rayon)?)
}

pub fn conv_transpose2d_backward_data(
    s: &ConvTranspose2d,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(conv_transpose::conv_transpose2d_backward_data(s, dy, w, dx, Par::Rayon)?)
}

pub fn conv_transpose2d_backward_weights(
    s: &ConvTranspose2d,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(conv_transpose::conv_transpose2d_backward_weights(s, x, dy, dw, db, Par::Rayon)?)
}

pub fn dense_forward(
    s: &Dense,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(dense::dense_forward(s, x, w, b, act, y, Par::Rayon)?)
}

pub fn dense_backward_data(
    s: &Dense,
    dy: &[f32],
    w: &[f32],
    mask: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(dense::dense_backward_data(s, dy, w, mask, dx, Par::Rayon)?)
}

pub fn dense_backward_weights(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(dense::dense_backward_weights(s, x, dy, dw, db, Par::Rayon)?)
}

/// [`dense_forward`] with bf16 operands and f32 sums, for a `precision
/// bf16` network ([`dense::bf16`]).
pub fn dense_forward_bf16(
    s: &Dense,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(dense::bf16::dense_forward_bf16(s, x, w, b, act, y, Par::Rayon)?)
}

pub fn dense_backward_data_bf16(
    s: &Dense,
    dy: &[f32],
    w: &[f32],
    mask: Option<&[f32]>,
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(dense::bf16::dense_backward_data_bf16(s, dy, w, mask, dx, Par::Rayon)?)
}

#[allow(clippy::too_many_arguments)]
pub fn dense_backward_weights_sgd(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    w: &mut [f32],
    momentum_buf: &mut [f32],
    db: Option<&mut [f32]>,
    sgd: &Sgd,
) -> Result<(), Error> {
    Ok(dense::dense_backward_weights_sgd(s, x, dy, w, momentum_buf, db, sgd, Par::Rayon)?)
}

/// The weight gradient of a dense layer into `target`: stored, or taken at
/// once as an SGD step ([`dense_backward_weights_sgd`]).
pub fn dense_backward_weights_into(
    s: &Dense,
    x: &[f32],
    dy: &[f32],
    target: crate::pass::WeightGrad<'_>,
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    match target {
        crate::pass::WeightGrad::Store(dw) => dense_backward_weights(s, x, dy, dw, db),
        crate::pass::WeightGrad::Step { weights, state, sgd } => {
            dense_backward_weights_sgd(s, x, dy, weights, state, db, sgd)
        }
    }
}

pub fn max_pool_forward(
    s: &Pool2d,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) -> Result<(), Error> {
    Ok(pool::max_pool2d_forward(*s, x, y, argmax)?)
}

/// Max-pool backward; with `through`, fused with the backward of the
/// activation whose output fed the pool, `act'` read from the pool's
/// output `y`.
pub fn max_pool_backward(
    s: &Pool2d,
    dy: &[f32],
    argmax: &[u32],
    through: Option<(Activation, &[f32])>,
    dx: &mut [f32],
) -> Result<(), Error> {
    match through {
        None => Ok(pool::max_pool2d_backward(*s, dy, argmax, dx)?),
        Some((act, y)) => max_pool_backward_through(s, dy, argmax, act, y, dx),
    }
}

/// Inference max pooling, without the argmax.
pub fn max_pool_forward_infer(s: &Pool2d, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(pool::max_pool2d_forward_infer(*s, x, y)?)
}

/// Max-pool backward fused with the backward of `act`, whose output fed
/// the pool; `y` is the pool's output.
pub fn max_pool_backward_through(
    s: &Pool2d,
    dy: &[f32],
    argmax: &[u32],
    act: Activation,
    y: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    pool::max_pool2d_backward_through(*s, dy, argmax, act, y, dx)
}

pub fn avg_pool_forward(s: &Pool2d, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(pool::avg_pool2d_forward(*s, x, y)?)
}

pub fn avg_pool_backward(s: &Pool2d, dy: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    Ok(pool::avg_pool2d_backward(*s, dy, dx)?)
}

pub fn adaptive_avg_pool_forward(
    s: &AdaptivePool2d,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(pool::adaptive_avg_pool2d_forward(*s, x, y)?)
}

pub fn adaptive_avg_pool_backward(
    s: &AdaptivePool2d,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(pool::adaptive_avg_pool2d_backward(*s, dy, dx)?)
}

pub fn upsample_nearest_forward(s: &Upsample2d, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(upsample::upsample_nearest2d_forward(*s, x, y)?)
}

pub fn upsample_nearest_backward(s: &Upsample2d, dy: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    Ok(upsample::upsample_nearest2d_backward(*s, dy, dx)?)
}

pub fn upsample_bilinear_forward(s: &Upsample2d, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(upsample::upsample_bilinear2d_forward(*s, x, y)?)
}

pub fn upsample_bilinear_backward(s: &Upsample2d, dy: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    Ok(upsample::upsample_bilinear2d_backward(*s, dy, dx)?)
}

pub fn global_avg_pool_forward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(pool::global_avg_pool_forward(n, c, hw, 1, x, y)?)
}

pub fn global_avg_pool_backward(
    n: usize,
    c: usize,
    hw: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(pool::global_avg_pool_backward(n, c, hw, 1, dy, dx)?)
}

/// Training dropout with the mask keyed by the pass's `masks` and
/// `layer`, over samples of `per_sample` elements.
pub fn dropout_forward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    let d = Dropout::new(p)
        .map_err(|e| Error::Weights(format!("invalid dropout probability {}", e.0)))?;
    Ok(d.forward(masks.layer(layer, per_sample), x, y)?)
}

/// Regenerates the forward mask and applies it to the gradient.
pub fn dropout_backward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    let d = Dropout::new(p)
        .map_err(|e| Error::Weights(format!("invalid dropout probability {}", e.0)))?;
    Ok(d.backward(masks.layer(layer, per_sample), dy, dx)?)
}

/// Stochastic depth in training, torchvision's `mode="row"`: each sample
/// kept, scaled by `1/(1 − p)`, or zeroed, by the mask keyed by
/// the pass's `masks`, `layer` and the sample's index in the batch.
pub fn stochastic_depth_forward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    depth(p, masks.layer(layer, 1), DepthMode::Row, per_sample, x, y)
}

/// The backward of [`stochastic_depth_forward`]: the same mask on `dy`.
pub fn stochastic_depth_backward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    depth(p, masks.layer(layer, 1), DepthMode::Row, per_sample, dy, dx)
}

/// Stochastic depth in training, torchvision's `mode="batch"`: one
/// decision for the whole batch.
pub fn stochastic_depth_batch_forward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    depth(p, masks.layer(layer, 1), DepthMode::Batch, per_sample, x, y)
}

/// The backward of [`stochastic_depth_batch_forward`].
pub fn stochastic_depth_batch_backward(
    p: f32,
    masks: MaskKey,
    layer: u16,
    per_sample: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    depth(p, masks.layer(layer, 1), DepthMode::Batch, per_sample, dy, dx)
}

fn depth(
    p: f32,
    key: DropoutKey,
    mode: DepthMode,
    per_sample: usize,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    let d = Dropout::new(p)
        .map_err(|e| Error::Weights(format!("invalid stochastic depth probability {}", e.0)))?;
    Ok(d.depth_forward(key, mode, per_sample, x, y)?)
}

/// PReLU over `[n, c, hw]` with `weight` its `c` slopes.
pub fn prelu_forward(
    n: usize,
    c: usize,
    hw: usize,
    weight: &[f32],
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(crate::prelu::prelu_forward(n, c, hw, weight, x, y)?)
}

/// PReLU's backward: `dx` (unless `None`) and the slopes' gradient, both
/// overwritten.
#[allow(clippy::too_many_arguments)]
pub fn prelu_backward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight: &mut [f32],
) -> Result<(), Error> {
    Ok(crate::prelu::prelu_backward(n, c, hw, x, weight, dy, dx, dweight)?)
}

pub fn lrn_forward(l: &Lrn, x: &[f32], y: &mut [f32], scale: &mut [f32]) -> Result<(), Error> {
    Ok(norm::lrn_forward(*l, x, y, scale)?)
}

pub fn lrn_backward(
    l: &Lrn,
    x: &[f32],
    y: &[f32],
    scale: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), Error> {
    Ok(norm::lrn_backward(*l, x, y, scale, dy, dx)?)
}

/// Refuses a training batch of `n` samples that gives batch norm `layer`,
/// of `inner` values per channel in a sample, fewer than two values per
/// channel. The generated training pass calls it before its first kernel,
/// so that a refused batch leaves every running statistic as it was.
pub fn batch_norm_batch(layer: &'static str, n: usize, inner: usize) -> Result<(), Error> {
    let values = n.saturating_mul(inner);
    if values < 2 {
        return Err(Error::OneValuePerChannel { layer, values });
    }
    Ok(())
}

/// Training-mode batch norm, then `activation` (fused into the store);
/// `saved` holds the batch mean then the inverse standard deviation, `2·C`
/// values, for the backward pass.
///
/// One value per channel has no variance: PyTorch refuses such a batch,
/// and so does this, before the running statistics take a NaN. `layer`
/// names the layer in that error.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train(
    bn: &BatchNorm,
    layer: &'static str,
    activation: Activation,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    saved: &mut [f32],
    y: &mut [f32],
) -> Result<(), Error> {
    batch_norm_batch(layer, bn.n, bn.h.saturating_mul(bn.w))?;
    check_len("batch_norm_forward_train", "saved", saved.len(), 2 * bn.c)?;
    let (mean, invstd) = saved.split_at_mut(bn.c);
    let stats = (mean, invstd, running_mean, running_var);
    Ok(norm::batch_norm_forward_train_act(*bn, activation, x, gamma, beta, y, stats)?)
}

/// Inference-mode batch norm, then `activation` (fused into the store).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_infer(
    bn: &BatchNorm,
    activation: Activation,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    let running = (running_mean, running_var);
    Ok(norm::batch_norm_forward_inference_act(*bn, activation, x, gamma, beta, running, y)?)
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    bn: &BatchNorm,
    x: &[f32],
    gamma: &[f32],
    saved: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Result<(), Error> {
    check_len("batch_norm_backward", "saved", saved.len(), 2 * bn.c)?;
    let (mean, invstd) = saved.split_at(bn.c);
    Ok(norm::batch_norm_backward(*bn, x, dy, gamma, mean, invstd, dx, dgamma, dbeta)?)
}

/// Layer norm (either mode: it has no running statistics); `weight` and
/// `bias` are both given or both `None` (`elementwise_affine = False`), and
/// `saved`, in training, receives each row's mean and `rstd` for the
/// backward.
pub fn layer_norm_forward(
    s: &LayerNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    saved: Option<&mut [f32]>,
    y: &mut [f32],
) -> Result<(), Error> {
    let affine = affine_pair("layer_norm_forward", weight, bias)?;
    Ok(sample_norm::layer_norm_forward(*s, x, affine, y, saved)?)
}

/// The backward of [`layer_norm_forward`]; `None` skips a gradient.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    s: &LayerNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    saved: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) -> Result<(), Error> {
    let grads = affine_pair("layer_norm_backward", dweight, dbias)?;
    Ok(sample_norm::layer_norm_backward(*s, x, weight, saved, dy, dx, grads)?)
}

/// Group norm (either mode), as [`layer_norm_forward`] with per-channel
/// `weight` and `bias`.
pub fn group_norm_forward(
    s: &GroupNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    saved: Option<&mut [f32]>,
    y: &mut [f32],
) -> Result<(), Error> {
    let affine = affine_pair("group_norm_forward", weight, bias)?;
    Ok(sample_norm::group_norm_forward(*s, x, affine, y, saved)?)
}

/// The backward of [`group_norm_forward`]; `None` skips a gradient.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    s: &GroupNorm,
    x: &[f32],
    weight: Option<&[f32]>,
    saved: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) -> Result<(), Error> {
    let grads = affine_pair("group_norm_backward", dweight, dbias)?;
    Ok(sample_norm::group_norm_backward(*s, x, weight, saved, dy, dx, grads)?)
}

/// `(weight, bias)` when both are given, `None` when neither is; one
/// without the other is a length error of the missing one.
fn affine_pair<T>(
    op: &'static str,
    weight: Option<T>,
    bias: Option<T>,
) -> Result<Option<(T, T)>, LenError> {
    match (weight, bias) {
        (Some(w), Some(b)) => Ok(Some((w, b))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(LenError { op, tensor: "bias", expected: 1, found: 0 }),
        (None, Some(_)) => Err(LenError { op, tensor: "weight", expected: 1, found: 0 }),
    }
}

/// Each sample's axes permuted: `permute` and, with the inverse shape, its
/// backward.
pub fn permute(s: &Permute, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(crate::permute::permute(*s, x, y)?)
}

/// `y = activation(a + b)`: a residual join with the activation that
/// follows it fused into the store.
pub fn add(a: &[f32], b: &[f32], activation: Activation, y: &mut [f32]) -> Result<(), Error> {
    check_len("add", "b", b.len(), a.len())?;
    check_len("add", "y", y.len(), a.len())?;
    crate::act::per_activation!(activation, crate::act::activate, |f| crate::par::zip3(
        y,
        a,
        b,
        |y, a, b| {
            for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
                *y = f(a + b);
            }
        }
    ));
    Ok(())
}

/// `d = d · act'(x)` from the activation's INPUT `x`: every activation,
/// and the only backward the gated ones (GELU, SiLU) have, which training
/// runs as a step of its own with the pre-activation kept.
pub fn activation_backward_from_input_in_place(
    act: Activation,
    x: &[f32],
    d: &mut [f32],
) -> Result<(), Error> {
    Ok(crate::act::backward_from_input_in_place(act, x, d)?)
}

/// `y = a ⊙ b`, elementwise over same-shape tensors.
pub fn mul(a: &[f32], b: &[f32], y: &mut [f32]) -> Result<(), Error> {
    Ok(crate::elementwise::mul(a, b, y)?)
}

/// The backward of [`mul`]: `da = dy ⊙ b`, `db = dy ⊙ a` (overwritten);
/// `None` skips one.
pub fn mul_backward(
    a: &[f32],
    b: &[f32],
    dy: &[f32],
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(crate::elementwise::mul_backward(a, b, dy, da, db)?)
}

/// `y = x · scale` with one scale per channel of each sample.
pub fn mul_channels(
    s: &ChannelScale,
    x: &[f32],
    scale: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    Ok(crate::elementwise::mul_channels(*s, x, scale, y)?)
}

/// The backward of [`mul_channels`]: `dx = dy · scale`, `dscale = Σ dy·x`
/// per plane (overwritten); `None` skips one.
pub fn mul_channels_backward(
    s: &ChannelScale,
    x: &[f32],
    scale: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dscale: Option<&mut [f32]>,
) -> Result<(), Error> {
    Ok(crate::elementwise::mul_channels_backward(*s, x, scale, dy, dx, dscale)?)
}

pub fn add_assign(acc: &mut [f32], x: &[f32]) -> Result<(), Error> {
    check_len("add_assign", "x", x.len(), acc.len())?;
    crate::par::zip2(acc, x, |acc, x| {
        for (a, x) in acc.iter_mut().zip(x) {
            *a += x;
        }
    });
    Ok(())
}

pub fn copy(x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    check_len("copy", "y", y.len(), x.len())?;
    y.copy_from_slice(x);
    Ok(())
}

/// Joins `parts` (each `[n, channels, inner]`) along the channel axis.
pub fn concat_forward(
    n: usize,
    inner: usize,
    parts: &[(&[f32], usize)],
    y: &mut [f32],
) -> Result<(), Error> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    check_len("concat", "y", y.len(), n * total * inner)?;
    for (x, c) in parts {
        check_len("concat", "part", x.len(), n * c * inner)?;
    }
    for (s, out) in y.chunks_exact_mut((total * inner).max(1)).enumerate() {
        let mut at = 0;
        for (x, c) in parts {
            out[at..at + c * inner].copy_from_slice(&x[s * c * inner..(s + 1) * c * inner]);
            at += c * inner;
        }
    }
    Ok(())
}

/// Splits the gradient of a concatenation back into its parts.
pub fn concat_backward(
    n: usize,
    inner: usize,
    dy: &[f32],
    parts: &mut [(&mut [f32], usize)],
) -> Result<(), Error> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    check_len("concat_backward", "dy", dy.len(), n * total * inner)?;
    for (dx, c) in parts.iter() {
        check_len("concat_backward", "part", dx.len(), n * c * inner)?;
    }
    for (s, g) in dy.chunks_exact((total * inner).max(1)).enumerate() {
        let mut at = 0;
        for (dx, c) in parts.iter_mut() {
            let len = *c * inner;
            dx[s * len..(s + 1) * len].copy_from_slice(&g[at..at + len]);
            at += len;
        }
    }
    Ok(())
}

/// Mean softmax cross-entropy over the batch and its gradient.
pub fn cross_entropy(
    n: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> Result<f32, Error> {
    Ok(loss::softmax_cross_entropy(n, classes, logits, labels, dlogits)?)
}

/// How many of `n` rows of `logits` have their largest value (the first,
/// on a tie) at their label: a classification step's correct predictions.
pub fn count_correct(n: usize, classes: usize, logits: &[f32], labels: &[u32]) -> u64 {
    logits
        .chunks_exact(classes.max(1))
        .zip(labels)
        .take(n)
        .filter(|(row, &label)| {
            let best = row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best as u64 == u64::from(label)
        })
        .count() as u64
}

/// `½·Σ(t − y)²` averaged over the batch, and its gradient.
pub fn mse(
    n: usize,
    features: usize,
    y: &[f32],
    targets: &[f32],
    dy: &mut [f32],
) -> Result<f32, Error> {
    Ok(loss::mse_with_grad(n, features, y, targets, dy)?)
}

/// [`cross_entropy`] with PyTorch's label smoothing and class weights
/// (`F.cross_entropy(weight=, label_smoothing=)`).
pub fn cross_entropy_with(
    n: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    label_smoothing: f32,
    weight: Option<&[f32]>,
    dlogits: &mut [f32],
) -> Result<f32, Error> {
    let options = loss::CrossEntropyOptions { label_smoothing, weight };
    Ok(loss::softmax_cross_entropy_with(n, classes, logits, labels, options, dlogits)?)
}

/// Mean binary cross-entropy on logits against float targets (multi-label),
/// and its gradient.
pub fn bce_with_logits(
    n: usize,
    features: usize,
    logits: &[f32],
    targets: &[f32],
    pos_weight: Option<&[f32]>,
    dlogits: &mut [f32],
) -> Result<f32, Error> {
    Ok(loss::bce_with_logits(n, features, logits, targets, pos_weight, dlogits)?)
}

/// Mean smooth L1 loss against float targets, and its gradient.
pub fn smooth_l1(
    n: usize,
    features: usize,
    y: &[f32],
    targets: &[f32],
    beta: f32,
    dy: &mut [f32],
) -> Result<f32, Error> {
    Ok(loss::smooth_l1(n, features, y, targets, beta, dy)?)
}

/// Mean Huber loss against float targets, and its gradient.
pub fn huber(
    n: usize,
    features: usize,
    y: &[f32],
    targets: &[f32],
    delta: f32,
    dy: &mut [f32],
) -> Result<f32, Error> {
    Ok(loss::huber(n, features, y, targets, delta, dy)?)
}

/// An optimizer and its hyperparameters; the model keeps the state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
    AdamW(AdamW),
}

impl Optimizer {
    /// State values per parameter: momentum (SGD with momentum), or the two
    /// moments (Adam).
    pub fn state_per_param(&self) -> usize {
        match self {
            Optimizer::Sgd(s) if s.momentum == 0.0 => 0,
            Optimizer::Sgd(_) => 1,
            Optimizer::Adam(_) | Optimizer::AdamW(_) => 2,
        }
    }

    /// A stable tag of the state layout, so a model can tell that its state
    /// belongs to a different optimizer and must be reset.
    pub fn kind(&self) -> u8 {
        match self {
            Optimizer::Sgd(_) => 1,
            Optimizer::Adam(_) => 2,
            Optimizer::AdamW(_) => 3,
        }
    }

    /// Whether `values` state values can be the state of an optimizer of
    /// kind tag `kind` (0: none yet) for `params` learnable parameters: a
    /// restored state that does not fit would be silently reset.
    pub fn state_fits(kind: u8, values: usize, params: usize) -> bool {
        match kind {
            0 => values == 0,
            // SGD keeps a momentum buffer only when it has momentum.
            1 => values == 0 || values == params,
            2 | 3 => values == 2 * params,
            _ => false,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd(s) => s.lr,
            Optimizer::Adam(a) => a.lr,
            Optimizer::AdamW(a) => a.lr,
        }
    }

    /// Sets the learning rate, as a schedule does between steps.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
            Optimizer::AdamW(a) => a.lr = lr,
        }
    }

    /// Sets the weight decay (L2 for SGD and Adam, decoupled for AdamW).
    pub fn set_weight_decay(&mut self, decay: f64) {
        match self {
            Optimizer::Sgd(s) => s.weight_decay = decay,
            Optimizer::Adam(a) => a.weight_decay = decay,
            Optimizer::AdamW(a) => a.weight_decay = decay,
        }
    }

    /// The optimizer for a layer with Caffe's `lr_mult` and `decay_mult`
    /// (a PyTorch parameter group): `lr·lr_mult` and
    /// `weight_decay·decay_mult`, everything else the same.
    pub fn scaled(&self, lr_mult: f64, decay_mult: f64) -> Optimizer {
        match *self {
            Optimizer::Sgd(s) => Optimizer::Sgd(Sgd {
                lr: s.lr * lr_mult,
                weight_decay: s.weight_decay * decay_mult,
                ..s
            }),
            Optimizer::Adam(a) => Optimizer::Adam(Adam {
                lr: a.lr * lr_mult,
                weight_decay: a.weight_decay * decay_mult,
                ..a
            }),
            Optimizer::AdamW(a) => Optimizer::AdamW(AdamW {
                lr: a.lr * lr_mult,
                weight_decay: a.weight_decay * decay_mult,
                ..a
            }),
        }
    }

    /// The global gradient norm to clip to before each step, if any.
    pub fn clip_norm(&self) -> Option<f64> {
        match self {
            Optimizer::Sgd(s) => s.clip_norm,
            Optimizer::Adam(a) => a.clip_norm,
            Optimizer::AdamW(a) => a.clip_norm,
        }
    }

    /// The SGD step that [`dense_backward_weights_sgd`] can fuse into a
    /// dense layer's weight gradient: plain SGD or heavy-ball momentum
    /// without clipping ([`Sgd::fusable`]), not Nesterov nor Adam.
    pub fn fusable_sgd(&self) -> Option<&Sgd> {
        match self {
            Optimizer::Sgd(s) if s.fusable() => Some(s),
            _ => None,
        }
    }

    /// Updates one parameter tensor with its gradient; `state` holds
    /// `state_per_param()` values per parameter; `step` counts from 1.
    pub fn update(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        check_len("optimizer", "state", state.len(), self.state_per_param() * params.len())?;
        match self {
            Optimizer::Sgd(s) => Ok(s.step(state, params, grads)?),
            Optimizer::Adam(a) => {
                let (m, v) = state.split_at_mut(params.len());
                Ok(a.step(step, AdamMoments { m, v }, params, grads)?)
            }
            Optimizer::AdamW(a) => {
                let (m, v) = state.split_at_mut(params.len());
                Ok(a.step(step, AdamMoments { m, v }, params, grads)?)
            }
        }
    }
}
