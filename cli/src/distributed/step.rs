//! One data-parallel training step: this rank's forward and backward
//! passes on its shard of the global batch, the gradients summed over the
//! ranks (each weighted by its share of the batch, so the sum is the whole
//! batch's mean gradient), and the same optimizer step on every rank.

use super::{all_reduce_sum, Group};
use crate::evaluate::argmax;
use netc_runtime::model::{Model, Targets};
use netc_runtime::nn::Optimizer;
use std::time::{Duration, Instant};

/// The buffers a rank's steps reuse, and the time they spent reducing.
#[derive(Debug, Default)]
pub struct Step {
    outputs: Vec<f32>,
    /// The weighted gradients, then the weighted loss and the count of
    /// right predictions: one reduction carries all three.
    flat: Vec<f32>,
    scratch: Vec<f32>,
    /// Time in the gradients' reduction, waiting for the slowest rank
    /// included.
    pub communicating: Duration,
}

impl Step {
    /// Trains on this rank's `x` and `labels`, its shard of a batch of
    /// `global` samples; returns the whole batch's mean loss and how many
    /// of its samples were predicted right before the update.
    pub fn run(
        &mut self,
        model: &mut dyn Model,
        group: &dyn Group,
        (x, labels): (&[f32], &[u32]),
        global: usize,
        opt: &Optimizer,
    ) -> Result<(f32, u64), String> {
        let classes = model.output_len();
        self.outputs.resize(labels.len() * classes, 0.0);
        let loss = model
            .forward_backward(x, Targets::Labels(labels), &mut self.outputs)
            .map_err(|e| e.to_string())?;
        let right = self
            .outputs
            .chunks(classes)
            .zip(labels)
            .filter(|(row, &label)| argmax(row) == label as usize)
            .count();
        // Weighted before the sum, as the threads of a sharded step weight
        // theirs: the same products, added in the same order for two.
        let weight = labels.len() as f32 / global as f32;
        self.flat.clear();
        for g in model.gradients_mut() {
            self.flat.extend(g.iter().map(|&v| weight * v));
        }
        let at = self.flat.len();
        self.flat.extend([weight * loss, right as f32]);
        let started = Instant::now();
        all_reduce_sum(group, &mut self.flat, &mut self.scratch)?;
        self.communicating += started.elapsed();
        let mut sums = self.flat.iter();
        for g in model.gradients_mut() {
            for (v, &sum) in g.iter_mut().zip(&mut sums) {
                *v = sum;
            }
        }
        model.apply_gradients(opt).map_err(|e| e.to_string())?;
        Ok((self.flat[at], self.flat[at + 1] as u64))
    }
}
