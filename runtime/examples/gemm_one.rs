//! Runs one SGEMM size repeatedly, for profiling:
//! `cargo run --release -p netc-runtime --example gemm_one -- M N K [THREADS] [SECONDS]`.

use netc_runtime::gemm::{sgemm, Epilogue, MatMut, MatRef, Par};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (m, n, k) = match args.as_slice() {
        [m, n, k, ..] => (*m, *n, *k),
        _ => (1024, 1024, 1024),
    };
    let threads = args.get(3).copied().unwrap_or(1);
    let seconds = args.get(4).copied().unwrap_or(3) as f64;
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let par = if threads == 1 { Par::Seq } else { Par::Rayon };
    let start = Instant::now();
    let mut runs = 0u64;
    pool.install(|| {
        while start.elapsed().as_secs_f64() < seconds {
            let a = MatRef::row_major(&a, k);
            let b = MatRef::row_major(&b, n);
            sgemm(m, n, k, 1.0, a, b, 0.0, MatMut::row_major(&mut c, n), &Epilogue::NONE, par)
                .expect("valid");
            runs += 1;
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{m}x{n}x{k} on {threads} thread(s): {:.1} GFLOP/s",
        2.0 * (m * n * k) as f64 * runs as f64 / secs / 1e9
    );
}
