//! Inverted dropout whose mask is never stored: the keep decision for
//! element `i` is a pure function of `(seed, step, layer, i)` through the
//! counter-based RNG, so the backward pass regenerates exactly the mask the
//! forward pass used, and a run is reproducible from its seed. `i` counts
//! from the start of the whole batch, so a pass over a part of it (a
//! data-parallel rank's share) draws the part's own mask.
//!
//! As in PyTorch's `nn.Dropout`, an element is kept with probability
//! `1 − p` and scaled by `1/(1 − p)` in training, so inference is the
//! identity; `p = 0` is the identity and `p = 1` zeroes everything.
//!
//! Stochastic depth (torchvision's `StochasticDepth`) is the same with one
//! decision per sample (`DepthMode::Row`, the decision of element `i` of
//! the stream for sample `i`) or one for the whole batch
//! (`DepthMode::Batch`, element 0's).

use std::fmt;

use crate::error::{check_len, LenError};
use crate::rng;

/// Which mask: the training run's `seed`, the optimizer `step` and the
/// dropout `layer` (its index in the network), from draw `first` on.
///
/// The RNG stream is `step` in the low 48 bits and `layer` in the high 16,
/// so masks differ for every step below 2⁴⁸ and layer below 2¹⁶; the
/// element index (stochastic depth's sample index) in the whole batch is
/// the counter, and `first` is that of the slice's first element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u64,
    pub layer: u16,
    pub first: u64,
}

/// What keys the masks of one training pass: the run's `seed`, the
/// optimizer `step`, and the index in the whole batch of the pass's first
/// sample (not 0 for a data-parallel rank's share of the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskKey {
    pub seed: u64,
    pub step: u64,
    pub first_sample: u64,
}

impl MaskKey {
    /// The key of `layer`'s mask over samples of `per_sample` draws.
    pub fn layer(self, layer: u16, per_sample: usize) -> DropoutKey {
        let first = self.first_sample.wrapping_mul(per_sample as u64);
        DropoutKey { seed: self.seed, step: self.step, layer, first }
    }
}

impl DropoutKey {
    fn stream(self) -> u64 {
        (self.step & ((1 << 48) - 1)) | (u64::from(self.layer) << 48)
    }
}

/// A dropout probability outside `[0, 1]` (or NaN), which PyTorch rejects
/// too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvalidProbability(pub f32);

impl fmt::Display for InvalidProbability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dropout probability has to be between 0 and 1, found {}", self.0)
    }
}

impl std::error::Error for InvalidProbability {}

/// Dropout with a validated drop probability `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    p: f32,
    /// Element kept iff its 24-bit uniform is below this (`(1 − p)·2²⁴`),
    /// an integer compare that is exact for every `p`.
    keep_below: u32,
    scale: f32,
}

impl Dropout {
    pub fn new(p: f32) -> Result<Self, InvalidProbability> {
        if !(0.0..=1.0).contains(&p) {
            return Err(InvalidProbability(p));
        }
        let keep = 1.0 - f64::from(p);
        let keep_below = (keep * f64::from(1u32 << 24)).round() as u32;
        // PyTorch returns zeros at p = 1 rather than 0 · inf.
        let scale = if p < 1.0 { (1.0 / keep) as f32 } else { 0.0 };
        Ok(Dropout { p, keep_below, scale })
    }

    pub fn p(&self) -> f32 {
        self.p
    }

    /// Whether element `index` is kept under `key`: the mask, one element
    /// at a time (the kernels use whole RNG blocks instead).
    pub fn keeps(&self, key: DropoutKey, index: u64) -> bool {
        (rng::block(key.seed, key.stream(), index / 4)[(index % 4) as usize] >> 8) < self.keep_below
    }

    /// `out[i] = input[i] · mask[key.first + i] / (1 − p)`, four elements
    /// per RNG block; with no `input`, `out` is scaled in place.
    fn apply(&self, key: DropoutKey, out: &mut [f32], input: Option<&[f32]>) {
        if self.p == 0.0 {
            if let Some(input) = input {
                out.copy_from_slice(input);
            }
            return;
        }
        let stream = key.stream();
        // The slice starts `lead` draws into its first block.
        let lead = (key.first % 4) as usize;
        let mut i = 0;
        let mut block = key.first / 4;
        while i < out.len() {
            let words = rng::block(key.seed, stream, block);
            let skip = if i == 0 { lead } else { 0 };
            for &w in &words[skip..] {
                if i == out.len() {
                    break;
                }
                let x = input.map_or(out[i], |input| input[i]);
                out[i] = if (w >> 8) < self.keep_below { x * self.scale } else { 0.0 };
                i += 1;
            }
            block += 1;
        }
    }

    /// Training forward: `y = x · mask / (1 − p)`.
    pub fn forward(&self, key: DropoutKey, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
        check_len("dropout_forward", "y", y.len(), x.len())?;
        self.apply(key, y, Some(x));
        Ok(())
    }

    /// Training forward overwriting `x`.
    pub fn forward_in_place(&self, key: DropoutKey, x: &mut [f32]) {
        self.apply(key, x, None);
    }

    /// Inference forward: the identity (inverted dropout already scaled
    /// the training activations).
    pub fn forward_eval(&self, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
        check_len("dropout_forward", "y", y.len(), x.len())?;
        y.copy_from_slice(x);
        Ok(())
    }

    /// `dx = dy · mask / (1 − p)` with the mask regenerated from `key`,
    /// which must be the forward pass's.
    pub fn backward(&self, key: DropoutKey, dy: &[f32], dx: &mut [f32]) -> Result<(), LenError> {
        check_len("dropout_backward", "dx", dx.len(), dy.len())?;
        self.apply(key, dx, Some(dy));
        Ok(())
    }

    /// [`Dropout::backward`] overwriting the incoming gradient.
    pub fn backward_in_place(&self, key: DropoutKey, g: &mut [f32]) {
        self.apply(key, g, None);
    }
}

/// Which elements share one keep decision of stochastic depth:
/// torchvision's `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthMode {
    /// Each sample of the batch on its own, as residual networks drop
    /// their branches per sample (EfficientNet's training).
    Row,
    /// The whole batch at once.
    Batch,
}

impl Dropout {
    /// Stochastic depth's factor for sample `sample` of the slice:
    /// `1/(1 − p)` if kept, else 0. Samples count from `key.first` in the
    /// whole batch, whose one decision in batch mode is the first.
    pub fn depth_scale(&self, key: DropoutKey, mode: DepthMode, sample: usize) -> f32 {
        let index = match mode {
            DepthMode::Row => key.first + sample as u64,
            DepthMode::Batch => 0,
        };
        if self.keeps(key, index) {
            self.scale
        } else {
            0.0
        }
    }

    /// Stochastic depth in training: `y = x · depth_scale` sample by
    /// sample over `[n, per_sample]`; a multiply, as torchvision's
    /// `input * noise`, so a dropped NaN stays NaN. With `dy` for `x` and
    /// `dx` for `y` it is the backward too, the mask regenerated from
    /// `key`.
    pub fn depth_forward(
        &self,
        key: DropoutKey,
        mode: DepthMode,
        per_sample: usize,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), LenError> {
        check_len("stochastic_depth", "y", y.len(), x.len())?;
        if per_sample == 0 {
            return Ok(());
        }
        check_len("stochastic_depth", "x", x.len(), x.len() / per_sample * per_sample)?;
        for (i, (y, x)) in
            y.chunks_exact_mut(per_sample).zip(x.chunks_exact(per_sample)).enumerate()
        {
            let scale = self.depth_scale(key, mode, i);
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * scale;
            }
        }
        Ok(())
    }
}
