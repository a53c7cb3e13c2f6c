//! What the bench examples share: deterministic inputs and the two ways
//! they time a pass. Each example includes this module (`mod common;`) and
//! uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// `len` values in [-1, 1), the same on every run.
pub fn fill(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

/// Best GFLOP/s of repeated runs of `f` (after one to warm caches and
/// packing buffers), for about `budget` and at least three runs.
pub fn best_gflops(flops: f64, budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
        if runs > 10_000 {
            break;
        }
    }
    flops / best / 1e9
}

/// Median ms of runs of `f` for about half a second (at least five).
pub fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let (start, mut times) = (Instant::now(), Vec::new());
    while times.len() < 5 || start.elapsed() < Duration::from_millis(500) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
