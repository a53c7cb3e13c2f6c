//! One data-parallel training step: this rank's forward and backward
//! passes on its shard of the global batch, the gradients summed over the
//! ranks (each weighted by its share of the batch, so the sum is the whole
//! batch's mean gradient), and the same optimizer step on every rank.
//!
//! The backward pass hands each gradient over as soon as it is final,
//! last layers first. They are gathered into buckets, and a thread of the
//! step sums each full bucket across the ranks while the backward pass
//! goes on, so that the summing hides behind the computing. The buckets
//! are cut where the hand-overs (fixed by the network) make them, the
//! same on every rank, and each is summed in the ring's fixed order, so
//! a run gives the same bits whatever the timing.

use super::{all_reduce_sum, Group};
use crate::evaluate::argmax;
use netc_runtime::model::{Model, Targets};
use netc_runtime::nn::Optimizer;
use netc_runtime::pass::GradientsReady;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The buffers a rank's steps reuse, and the time they spent reducing.
#[derive(Debug, Default)]
pub struct Step {
    outputs: Vec<f32>,
    /// Values a bucket gathers before it is summed beside the backward
    /// pass; `None` sums everything after the pass.
    bucket_values: Option<usize>,
    /// The buckets' buffers, kept from step to step: a fresh buffer for a
    /// large model's gradients would be page-faulted in at every step.
    spare: Vec<Vec<f32>>,
    /// The ring's receiving buffer, kept likewise.
    scratch: Vec<f32>,
    /// Time the step waited for sums after its backward pass (all of the
    /// summing, without overlap), the slowest rank included.
    pub communicating: Duration,
    /// Time spent summing, hidden or not.
    pub summing: Duration,
}

/// Gradients gathered for one reduction: which tensors, in order, and
/// their weighted values end to end.
#[derive(Debug, Default)]
struct Bucket {
    tensors: Vec<(usize, usize)>,
    values: Vec<f32>,
}

impl Step {
    /// Steps that sum the gradients in buckets of `bucket_values` beside
    /// the backward pass, or (`None`) all of them after it.
    pub fn new(bucket_values: Option<usize>) -> Self {
        Step { bucket_values: bucket_values.map(|v| v.max(1)), ..Step::default() }
    }

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
        // Weighted before the sum, as the threads of a sharded step weight
        // theirs: the same products, added in the same order for two.
        let weight = labels.len() as f32 / global as f32;
        let bucket_values = self.bucket_values.unwrap_or(usize::MAX);
        let (outputs, spare) = (&mut self.outputs, &mut self.spare);
        let mut scratch = Some(std::mem::take(&mut self.scratch));
        // The vector a new bucket gathers into, emptied.
        let mut fresh = move || Bucket {
            tensors: Vec::new(),
            values: spare
                .pop()
                .map(|mut v| {
                    v.clear();
                    v
                })
                .unwrap_or_default(),
        };
        let (loss, summed, waited) = std::thread::scope(|scope| {
            // The summing thread starts with the first full bucket: a
            // network whose gradients fill none sums on this thread.
            let mut bucket = fresh();
            let mut summer = None;
            let mut start_sum = |bucket: &mut Bucket| {
                let (to_summer, _) = summer.get_or_insert_with(|| {
                    let (to_summer, full) = mpsc::channel::<Bucket>();
                    let scratch = scratch.take().unwrap_or_default();
                    (to_summer, scope.spawn(move || sum_buckets(group, full, scratch)))
                });
                // A summer that stopped has an error that its join gives.
                drop(to_summer.send(std::mem::replace(bucket, fresh())));
            };
            let mut ready = |finished: &[(usize, &[f32])]| {
                for &(k, g) in finished {
                    bucket.tensors.push((k, g.len()));
                    bucket.values.extend(g.iter().map(|&v| weight * v));
                }
                if bucket.values.len() >= bucket_values {
                    start_sum(&mut bucket);
                }
            };
            let ready: &mut GradientsReady<'_> = &mut ready;
            let loss =
                model.forward_backward_streaming(x, Targets::Labels(labels), outputs, Some(ready));
            let right = match &loss {
                Ok(_) => outputs
                    .chunks(classes)
                    .zip(labels)
                    .filter(|(row, &label)| argmax(row) == label as usize)
                    .count(),
                Err(_) => 0,
            };
            // The last bucket carries the weighted loss and the count of
            // right predictions too: one reduction for all three.
            let weighted_loss = weight * loss.as_ref().copied().unwrap_or(0.0);
            bucket.values.extend([weighted_loss, right as f32]);
            let started = Instant::now();
            let summed = match summer {
                Some((to_summer, thread)) => {
                    drop(to_summer.send(bucket));
                    drop(to_summer);
                    thread.join().unwrap_or_else(|_| Err("the summing thread panicked".into()))
                }
                None => {
                    let (to_self, full) = mpsc::channel();
                    drop(to_self.send(bucket));
                    drop(to_self);
                    sum_buckets(group, full, scratch.take().unwrap_or_default())
                }
            };
            (loss, summed, started.elapsed())
        });
        loss.map_err(|e| e.to_string())?;
        let (buckets, spent, scratch) = summed?;
        self.scratch = scratch;
        self.communicating += waited;
        self.summing += spent;
        let mut gradients = model.gradients_mut();
        let mut last = &[][..];
        for bucket in &buckets {
            let mut values = &bucket.values[..];
            for &(k, len) in &bucket.tensors {
                let (sums, rest) = values.split_at(len);
                gradients[k].copy_from_slice(sums);
                values = rest;
            }
            last = values;
        }
        let [.., loss_sum, right_sum] = *last else {
            unreachable!("the last bucket ends in the loss and the count")
        };
        self.spare.extend(buckets.into_iter().map(|b| b.values));
        drop(gradients);
        model.apply_gradients(opt).map_err(|e| e.to_string())?;
        Ok((loss_sum, right_sum as u64))
    }
}

/// Sums each bucket across the ranks as it arrives, until the step stops
/// sending; returns them, summed, with the time it spent and the ring's
/// buffer for the next step.
fn sum_buckets(
    group: &dyn Group,
    full: mpsc::Receiver<Bucket>,
    mut scratch: Vec<f32>,
) -> Result<(Vec<Bucket>, Duration, Vec<f32>), String> {
    let (mut done, mut spent) = (Vec::new(), Duration::ZERO);
    for mut bucket in full {
        let started = Instant::now();
        all_reduce_sum(group, &mut bucket.values, &mut scratch)?;
        spent += started.elapsed();
        done.push(bucket);
    }
    Ok((done, spent, scratch))
}
