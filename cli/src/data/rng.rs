//! SplitMix64, the data's one random generator: seekable, so that a
//! synthetic sample, a held-out split or an augmentation derives from its
//! seed and indices alone, the same on every run, thread and machine.

use netc_runtime::splitmix::SplitMix64;

/// A SplitMix64 stream keyed by three numbers (a seed and two indices).
#[derive(Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64, a: u64, b: u64) -> Self {
        let mut r = Rng(SplitMix64::new(
            seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03),
        ));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// Approximately normal: the sum of four uniforms, rescaled.
    pub fn normal(&mut self) -> f32 {
        ((0..4).map(|_| self.range(0.0, 1.0)).sum::<f32>() - 2.0) * 1.732
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
