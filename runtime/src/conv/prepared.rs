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

use super::{im2col, im2col_gemm, winograd, winograd_split, Conv2d, ConvAlgo};
use crate::error::ConvError;
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
        transformed + packed
    }
}

/// [`super::conv2d_forward`] with the weights prepared once in `cache`
/// (on the first call after [`ForwardCache::invalidate`]): Winograd's
/// transform, or the im2col GEMMs' packed weights where each GEMM takes one
/// sample. Other passes (pointwise, direct, several samples a GEMM) run as
/// `conv2d_forward` does. `weight` must be the weights the cache was made
/// from, or `cache` invalidated.
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
    if cache.lean {
        let algo = if transformed { ConvAlgo::Im2col } else { algo };
        return super::conv2d_forward_using(algo, s, x, weight, bias, activation, y, par);
    }
    if !transformed && !per_sample {
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
    let packed = cache.packed.get_or_init(|| pack_groups(s, weight));
    im2col::forward_samples(s, x, weight, Some(&packed[..]), bias, activation, y, par);
    Ok(())
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
