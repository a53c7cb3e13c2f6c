//! Data-parallel training steps: the batch split between the pool's
//! threads, each running the whole forward and backward pass on its own
//! samples, with sequential kernels, into its own share of the activation
//! arena and its own gradients; the gradients are then averaged.
//!
//! This is for networks of small layers. LeNet-5's step is two dozen
//! kernels of a few microseconds to a few hundred; split kernel by kernel,
//! each fork-join divides little work, and the second core idles through the
//! serial gaps between them. Split by samples, the threads meet once per step.
//!
//! Generated models whose passes treat samples independently (no batch
//! norm, whose statistics span the batch, and no dropout, whose masks are
//! numbered across the batch) call [`run`] from `train_step`.

use crate::error::Error;

/// The fewest samples a shard gets: below that, a step is too short for
/// the threads' meeting to pay.
pub const MIN_SAMPLES: usize = 8;

/// How many shards a batch of `n` samples splits into on the current pool,
/// for a model whose buffers hold `capacity` samples: one per thread when
/// every thread gets at least [`MIN_SAMPLES`] and its share fits in its
/// part of the buffers (`capacity / threads` samples); else 1, the step
/// then runs kernel by kernel.
pub fn count(n: usize, capacity: usize) -> usize {
    let threads = crate::par::threads();
    if threads < 2 || n < threads * MIN_SAMPLES || n.div_ceil(threads) > capacity / threads {
        return 1;
    }
    threads
}

/// One shard's share of a step: samples `first..first + n` of the batch,
/// and its part of the model's buffers, laid out as a model of `cap`
/// samples lays out its own.
#[derive(Debug)]
pub struct Shard<'a> {
    pub first: usize,
    pub n: usize,
    pub cap: usize,
    pub arena: &'a mut [f32],
    pub argmax: &'a mut [u32],
}

/// A model's per-sample buffers, as [`run`] divides them: the activation
/// arena and the max-pool argmax indices, each with its floats (indices)
/// per sample.
#[derive(Debug)]
pub struct Buffers<'a> {
    pub arena: &'a mut [f32],
    pub arena_per_sample: usize,
    pub argmax: &'a mut [u32],
    pub argmax_per_sample: usize,
}

/// Runs `step` on `grads.len()` shards of a batch of `n` samples in
/// parallel (each shard on one thread, its kernels sequential), shard `t`
/// writing its gradients into `grads[t]`; then leaves in `grads[0]` the
/// gradient of the whole batch, the shards' mean weighted by their samples,
/// with `mix(a, x, b, y)` doing `a = x·a + y·b`. Returns the batch's loss,
/// the same weighted mean of the shards' mean losses.
///
/// A shard's error is returned as the sequential step would report it (a
/// bad label numbered from the start of the batch); `grads` then holds
/// partial sums.
pub fn run<G: Send>(
    n: usize,
    capacity: usize,
    buffers: Buffers<'_>,
    grads: &mut [G],
    step: impl Fn(Shard<'_>, &mut G) -> Result<(f32, u64), Error> + Sync,
    mix: impl Fn(&mut G, f32, &G, f32),
) -> Result<(f32, u64), Error> {
    let shards = grads.len();
    assert!(shards >= 1 && n >= shards, "{shards} shards of {n} samples");
    let cap = capacity / shards;
    let plan = Plan {
        n,
        shards,
        cap,
        arena_chunk: buffers.arena_per_sample * cap,
        argmax_chunk: buffers.argmax_per_sample * cap,
    };
    assert!(
        buffers.arena.len() >= shards * plan.arena_chunk
            && buffers.argmax.len() >= shards * plan.argmax_chunk,
        "buffers for {capacity} samples"
    );
    let (weighted_losses, correct) = plan.run(0, buffers.arena, buffers.argmax, grads, &step)?;
    let (first, rest) = grads.split_first_mut().expect("one shard at least");
    let weight = |t: usize| plan.samples(t).len() as f32 / n as f32;
    for (t, g) in rest.iter().enumerate() {
        let own = if t == 0 { weight(0) } else { 1.0 };
        mix(first, own, g, weight(t + 1));
    }
    Ok((weighted_losses / n as f32, correct))
}

/// The samples `t` of `shards` takes of a batch of `n`: consecutive shares
/// in order, differing by at most one. Data-parallel ranks split a global
/// batch the same way, so that two ranks add the products two threads do.
pub fn share(n: usize, t: usize, shards: usize) -> std::ops::Range<usize> {
    t * n / shards..(t + 1) * n / shards
}

/// How [`run`] divides a batch and the buffers.
struct Plan {
    n: usize,
    shards: usize,
    cap: usize,
    arena_chunk: usize,
    argmax_chunk: usize,
}

impl Plan {
    /// The samples of shard `t`.
    fn samples(&self, t: usize) -> std::ops::Range<usize> {
        share(self.n, t, self.shards)
    }

    /// Runs shards `t0..t0 + grads.len()`, halving the range with
    /// `rayon::join` (which, unlike a scope's spawns, allocates nothing);
    /// returns the sum of their losses weighted by their samples.
    fn run<G: Send>(
        &self,
        t0: usize,
        arena: &mut [f32],
        argmax: &mut [u32],
        grads: &mut [G],
        step: &(impl Fn(Shard<'_>, &mut G) -> Result<(f32, u64), Error> + Sync),
    ) -> Result<(f32, u64), Error> {
        if let [g] = grads {
            let samples = self.samples(t0);
            let (first, n) = (samples.start, samples.len());
            let arena = &mut arena[..self.arena_chunk];
            let argmax = &mut argmax[..self.argmax_chunk];
            let shard = Shard { first, n, cap: self.cap, arena, argmax };
            let (loss, correct) = crate::par::alone(|| step(shard, g)).map_err(|e| match e {
                Error::Label { sample, label, classes } => {
                    Error::Label { sample: sample + first, label, classes }
                }
                e => e,
            })?;
            return Ok((loss * n as f32, correct));
        }
        let half = grads.len() / 2;
        let (ga, gb) = grads.split_at_mut(half);
        let (aa, ab) = arena.split_at_mut(half * self.arena_chunk);
        let (xa, xb) = argmax.split_at_mut(half * self.argmax_chunk);
        let (a, b) = rayon::join(
            || self.run(t0, aa, xa, ga, step),
            || self.run(t0 + half, ab, xb, gb, step),
        );
        let ((la, ca), (lb, cb)) = (a?, b?);
        Ok((la + lb, ca + cb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shard sees its own samples and its own part of the buffers, and
    /// the result is the weighted mean; a shard's bad label is numbered
    /// from the start of the batch.
    #[test]
    fn shards_cover_the_batch_once() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            let n = 29;
            assert_eq!(count(n, 32), 3);
            assert_eq!(count(n, 29), 1, "10 samples do not fit a third of 29");
            assert_eq!(count(3 * MIN_SAMPLES - 1, 64), 1);
            let (mut arena, mut argmax) = (vec![0.0f32; 2 * 32], vec![0u32; 32]);
            let buffers = Buffers {
                arena: &mut arena,
                arena_per_sample: 2,
                argmax: &mut argmax,
                argmax_per_sample: 1,
            };
            // Each shard's "gradient" is the sum of its sample indices, its
            // loss the mean of them: the batch's loss is the mean index. Its
            // count is its first sample's index: the counts add up.
            let mut grads = vec![0.0f64; 3];
            let (loss, correct) = run(
                n,
                32,
                buffers,
                &mut grads,
                |s, g| {
                    assert_eq!(s.cap, 10);
                    assert_eq!((s.arena.len(), s.argmax.len()), (20, 10));
                    assert!(s.n <= s.cap);
                    s.arena[..2 * s.n].fill(1.0);
                    *g = (s.first..s.first + s.n).map(|i| i as f64).sum::<f64>() / s.n as f64;
                    Ok((*g as f32, s.first as u64))
                },
                |a, x, b, y| *a = *a * f64::from(x) + *b * f64::from(y),
            )
            .unwrap();
            assert!((loss - 14.0).abs() < 1e-5, "{loss}");
            assert_eq!(correct, 9 + 19, "shards start at samples 0, 9 and 19");
            assert!((grads[0] - 14.0).abs() < 1e-5, "{}", grads[0]);
            // Every sample's arena cells written once: 9 + 10 + 10.
            assert_eq!(arena.iter().filter(|&&v| v == 1.0).count(), 2 * n);
            let bad = run(
                n,
                32,
                Buffers {
                    arena: &mut arena,
                    arena_per_sample: 2,
                    argmax: &mut argmax,
                    argmax_per_sample: 1,
                },
                &mut grads,
                |s, _| match s.first {
                    0 => Ok((0.0, 0)),
                    _ => Err(Error::Label { sample: 1, label: 10, classes: 10 }),
                },
                |_, _, _, _| {},
            );
            assert!(
                matches!(bad, Err(Error::Label { sample, .. }) if sample == 10 || sample == 20)
            );
        });
    }
}
