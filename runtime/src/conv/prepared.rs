//! Inference-time weights: a conv's weights in the form its forward pass
//! consumes, made once and reused while the weights stay the same.
//!
//! Every forward call otherwise remakes that form: the im2col GEMMs pack
//! (transpose) each group's weights into A panels, Winograd transforms them
//! into `U`. In training the weights change every step, so that is part of
//! the price; at inference they do not, and at batch 1 the packing is a
//! large share of a small conv (ResNet-20's, AlexNet's at 13x13). The
//! generated models keep one [`ForwardCache`] per conv for `forward` and
//! clear it whenever their parameters change.

use super::{im2col, im2col_gemm, pointwise, winograd, winograd_split, Conv2d, ConvAlgo};
use crate::error::{check_len, ConvError};
use crate::gemm::{kernel, Activation, MatRef, PackedA, Par};
use crate::isa::Isa;
use std::sync::OnceLock;

/// A conv's weights in the form its inference forward pass takes, or
/// nothing yet. Which weights is the caller's business: it must call
/// [`ForwardCache::invalidate`] whenever they change, or the cache keeps
/// answering with the old ones.
///
/// Made once and then only read, so one cache serves every thread that
/// runs the model's inference at once. The first caller prepares the
/// weights on its own thread, with no parallel work: a pool thread that
/// waited on a parallel preparation could pick up another inference of the
/// same model and wait on the preparation it is itself running.
#[derive(Clone, Debug, Default)]
pub struct ForwardCache {
    /// Winograd's `U`, for a conv whose forward pass is Winograd.
    transformed: OnceLock<Vec<f32>>,
    /// Each group's weights in A panels, for one-sample im2col GEMMs. The
    /// batch picks the algorithm, so a model called at several batch sizes
    /// may need both forms.
    packed: OnceLock<Vec<PackedA>>,
    /// The weights and bias with a following batch norm folded in, for
    /// [`conv2d_bn_forward_cached`]; the other forms are then made from
    /// these.
    folded: OnceLock<Folded>,
    /// Whether the forms are kept; when not, each call runs an algorithm
    /// whose scratch is small (im2col in place of Winograd, whose
    /// transformed weights are up to four times the weights).
    lean: bool,
}

impl ForwardCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the weights: the next call prepares them again.
    pub fn invalidate(&mut self) {
        self.transformed.take();
        self.packed.take();
        self.folded.take();
    }

    /// Whether to keep the prepared forms (the default), or hold nothing
    /// beyond the weights: each call then packs its weights again (most
    /// of a small conv's time at batch 1) and runs im2col where the kept
    /// forms would run Winograd, whose transform of the weights is larger
    /// than they are. The outputs agree to rounding, not bit for bit.
    pub fn keep(&mut self, keep: bool) {
        self.lean = !keep;
        self.invalidate();
    }

    /// Whether the cache holds prepared weights, in either form.
    pub fn is_ready(&self) -> bool {
        self.transformed.get().is_some() || self.packed.get().is_some()
    }

    /// Bytes the prepared weights take.
    pub fn bytes(&self) -> usize {
        let transformed = self.transformed.get().map_or(0, |u| 4 * u.len());
        let packed = self.packed.get().map_or(0, |p| p.iter().map(PackedA::bytes).sum());
        let folded = self.folded.get().map_or(0, |f| 4 * (f.weight.len() + f.bias.len()));
        transformed + packed + folded
    }
}

/// [`super::conv2d_forward`] with the weights prepared once in `cache`
/// (on the first call after [`ForwardCache::invalidate`]): Winograd's
/// transform, or the packed weights of GEMMs that take one sample each
/// (im2col's at batch 1, pointwise's). Other passes (direct, several
/// samples a GEMM) run as `conv2d_forward` does. `weight` must be the
/// weights the cache was made from, or `cache` invalidated.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_cached(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    cache: &ForwardCache,
    par: Par,
) -> Result<(), ConvError> {
    let algo = s.prepared_forward_algo();
    let threads = par.threads();
    let per_sample = algo == ConvAlgo::Im2col && im2col_gemm::chunk_samples(s, threads) == 1;
    let transformed = matches!(algo, ConvAlgo::Winograd | ConvAlgo::WinogradSplit);
    let pointwise = algo == ConvAlgo::Pointwise;
    if cache.lean {
        let algo = if transformed { ConvAlgo::Im2col } else { algo };
        return super::conv2d_forward_using(algo, s, x, weight, bias, activation, y, par);
    }
    if !transformed && !per_sample && !pointwise {
        return super::conv2d_forward_using(algo, s, x, weight, bias, activation, y, par);
    }
    s.check_forward("conv2d_forward_cached", x, weight, bias, y)?;
    if s.n == 0 {
        return Ok(());
    }
    let split = algo == ConvAlgo::WinogradSplit;
    if transformed {
        let u = cache.transformed.get_or_init(|| {
            let mut u = Vec::new();
            if split {
                winograd_split::transform_forward_weights(s, weight, &mut u, Par::Seq);
            } else {
                winograd::transform_forward_weights(s, weight, &mut u, Par::Seq);
            }
            u
        });
        if split {
            winograd_split::forward_transformed(s, x, u, bias, activation, y, par);
        } else {
            winograd::forward_transformed(s, Isa::best(), x, u, bias, activation, y, par);
        }
        return Ok(());
    }
    // A pointwise conv's weights are its one group's im2col weights.
    let packed = cache.packed.get_or_init(|| pack_groups(s, weight));
    if pointwise {
        pointwise::forward_samples(s, x, weight, Some(&packed[0]), bias, activation, y, par);
        return Ok(());
    }
    im2col::forward_samples(s, x, weight, Some(&packed[..]), bias, activation, y, par);
    Ok(())
}

/// A batch norm's inference parameters: `(gamma, beta, running_mean,
/// running_var)`, one per channel, and its `eps`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormParams<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub running_mean: &'a [f32],
    pub running_var: &'a [f32],
    pub eps: f32,
}

/// A conv's weights and bias with a batch norm folded in.
#[derive(Clone, Debug)]
struct Folded {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A conv, then a batch norm on its running statistics, then `activation`,
/// as one conv: output channel `o` of the weights is scaled by
/// `gamma[o] / sqrt(var[o] + eps)`, and the bias becomes
/// `(bias[o] - mean[o])·scale + beta[o]`. The folded weights are made once
/// in `cache` (every form prepared from them too), so the batch norm's own
/// pass over the conv's output disappears; the output agrees with the two
/// layers' to rounding. A lean cache keeps nothing, so there the batch
/// norm runs in place after the conv.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_bn_forward_cached(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    norm: BatchNormParams<'_>,
    activation: Activation,
    y: &mut [f32],
    cache: &ForwardCache,
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_bn_forward_cached";
    s.check_forward(OP, x, weight, bias, y)?;
    check_len(OP, "gamma", norm.gamma.len(), s.o)?;
    check_len(OP, "beta", norm.beta.len(), s.o)?;
    check_len(OP, "running_mean", norm.running_mean.len(), s.o)?;
    check_len(OP, "running_var", norm.running_var.len(), s.o)?;
    if cache.lean {
        // Folded weights would be a second copy of the weights: the batch
        // norm runs after the conv instead, in place.
        conv2d_forward_cached(s, x, weight, bias, Activation::Identity, y, cache, par)?;
        let plane = s.out_h() * s.out_w();
        for (k, out) in y.chunks_exact_mut(plane.max(1)).enumerate() {
            let o = k % s.o;
            let scale = norm.gamma[o] / (norm.running_var[o] + norm.eps).sqrt();
            let shift = norm.beta[o] - norm.running_mean[o] * scale;
            out.iter_mut().for_each(|v| *v = *v * scale + shift);
        }
        crate::act::forward_in_place(activation, y);
        return Ok(());
    }
    let folded = cache.folded.get_or_init(|| fold_batch_norm(s.o, weight, bias, norm));
    conv2d_forward_cached(s, x, &folded.weight, Some(&folded.bias), activation, y, cache, par)
}

/// [`conv2d_bn_forward_cached`]'s weights and bias, in f64 and rounded once.
fn fold_batch_norm(
    o: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    norm: BatchNormParams<'_>,
) -> Folded {
    let per_channel = weight.len() / o.max(1);
    let scale = |c: usize| {
        f64::from(norm.gamma[c]) / (f64::from(norm.running_var[c]) + f64::from(norm.eps)).sqrt()
    };
    let weight = weight
        .chunks_exact(per_channel.max(1))
        .enumerate()
        .flat_map(|(c, w)| w.iter().map(move |&v| (f64::from(v) * scale(c)) as f32))
        .collect();
    let bias = (0..o)
        .map(|c| {
            let b = bias.map_or(0.0, |b| f64::from(b[c]));
            ((b - f64::from(norm.running_mean[c])) * scale(c) + f64::from(norm.beta[c])) as f32
        })
        .collect();
    Folded { weight, bias }
}

/// Packs each group's `[og, patch]` weights for the kernel its one-sample
/// GEMM would pick.
fn pack_groups(s: &Conv2d, weight: &[f32]) -> Vec<PackedA> {
    let (og, patch) = (s.o / s.groups, s.patch());
    let kernel = kernel::choose_straight(og, s.out_plane());
    let mut packed: Vec<PackedA> = (0..s.groups).map(|_| PackedA::new()).collect();
    for (g, p) in packed.iter_mut().enumerate() {
        let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch);
        crate::gemm::expect_valid(p.pack(kernel, og, patch, w));
    }
    packed
}
