//! Runs one SGEMM repeatedly, for profiling:
//! `cargo run --release -p netc-runtime --example gemm_one -- M N K [THREADS] [SECONDS] [LAYOUT]`
//! (defaults: 1024 1024 1024, 1 thread, 3 s, `nn`). LAYOUT is `nn` (A and B
//! row-major), `nt` (B given as its row-major transpose: a dense layer's
//! forward) or `tn` (A given as its transpose: a dense weight gradient).
//! Prints GFLOP/s.

use netc_runtime::gemm::{sgemm, Epilogue, MatMut, MatRef, Par};
use std::time::Instant;

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (m, n, k) = match nums[..] {
        [m, n, k, ..] => (m, n, k),
        _ => (1024, 1024, 1024),
    };
    let threads = nums.get(3).copied().unwrap_or(1);
    let seconds = nums.get(4).copied().unwrap_or(3) as f64;
    let layout = std::env::args().nth(6).unwrap_or_else(|| "nn".into());
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
    let mut c = vec![0.0f32; m * n];
    let par = if threads > 1 { Par::Rayon } else { Par::Seq };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let start = Instant::now();
    let (mut runs, mut best) = (0u64, f64::INFINITY);
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        pool.install(|| {
            sgemm(
                m,
                n,
                k,
                1.0,
                if layout == "tn" {
                    MatRef::row_major(&a, m).t()
                } else {
                    MatRef::row_major(&a, k)
                },
                if layout == "nt" {
                    MatRef::row_major(&b, k).t()
                } else {
                    MatRef::row_major(&b, n)
                },
                0.0,
                MatMut::row_major(&mut c, n),
                &Epilogue::default(),
                par,
            )
        })
        .expect("valid GEMM");
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
    println!(
        "{m}x{n}x{k} {layout} on {threads} thread(s): best {gflops:.1} GFLOP/s over {runs} runs"
    );
}
