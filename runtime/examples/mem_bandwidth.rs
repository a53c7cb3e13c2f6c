//! Measures the read bandwidth a forward pass can get from each level of
//! memory: one sum over buffers of 1 to 256 MB, on 1 thread and on the whole
//! rayon pool, best of several passes, in GB/s.
//!
//! `cargo run --release -p netc-runtime --example mem_bandwidth`
//!
//! It bounds batch-1 inference of models whose weights outgrow the caches:
//! AlexNet's three dense layers read 234 MB of weights once per call, so at
//! the bandwidth printed for 256 MB no f32 implementation runs them faster
//! than 234 MB / that rate (BENCHMARKS.md).

use rayon::prelude::*;
use std::time::Instant;

/// Sums `data` with 16 independent accumulators, so that the loop is bound
/// by loads, not by the latency of one dependent chain of adds.
fn sum(data: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = data.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Best GB/s over `passes` reads of `data` by `threads` threads.
fn best_rate(data: &[f32], threads: usize, passes: usize) -> f64 {
    let part = data.len().div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..passes {
        let t = Instant::now();
        let total: f32 = data.par_chunks(part).map(sum).sum();
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(total);
        best = best.max(std::mem::size_of_val(data) as f64 / secs / 1e9);
    }
    best
}

fn main() {
    let pool_threads = rayon::current_num_threads();
    println!("read bandwidth, GB/s (best of the passes)");
    println!("{:>8} {:>10} {:>10}", "MB", "1 thread", format!("{pool_threads} threads"));
    for mb in [1usize, 4, 16, 64, 128, 256] {
        let data: Vec<f32> = (0..mb << 18).map(|i| (i % 7) as f32).collect();
        // Small buffers take microseconds a pass: more passes steady them.
        let passes = (2048 / mb).clamp(8, 512);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        let single = one.install(|| best_rate(&data, 1, passes));
        let all = best_rate(&data, pool_threads, passes);
        println!("{mb:>8} {single:>10.1} {all:>10.1}");
    }
}
