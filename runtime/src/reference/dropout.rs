//! Reference stochastic depth: each sample's mask drawn by its
//! definition, a uniform from the counter-based RNG compared with the keep
//! probability.

use crate::dropout::{DepthMode, DropoutKey};
use crate::rng;

/// Stochastic depth in training over `[n, per_sample]`: sample `i` is
/// `x / (1 − p)` if the uniform of element `i` (`Row`) or 0 (`Batch`) of
/// the key's stream is below `1 − p`, else 0. The stream is `step` in the
/// low 48 bits and `layer` above, as `DropoutKey` documents it.
pub fn stochastic_depth(
    p: f64,
    key: DropoutKey,
    mode: DepthMode,
    per_sample: usize,
    x: &[f32],
) -> Vec<f32> {
    let stream = (key.step & ((1 << 48) - 1)) | (u64::from(key.layer) << 48);
    let keep = 1.0 - p;
    x.chunks(per_sample.max(1))
        .enumerate()
        .flat_map(|(i, sample)| {
            let index = match mode {
                DepthMode::Row => key.first + i as u64,
                DepthMode::Batch => 0,
            };
            let word = rng::block(key.seed, stream, index / 4)[(index % 4) as usize];
            let kept = f64::from(rng::word_to_uniform(word)) < keep;
            let scale = if kept { 1.0 / keep } else { 0.0 };
            sample.iter().map(move |&v| (f64::from(v) * scale) as f32)
        })
        .collect()
}
