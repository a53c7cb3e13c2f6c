//! Runs one convolution pass repeatedly, for profiling:
//! `cargo run --release -p netc-runtime --example conv_one -- ALGO N C H W O K STRIDE PAD [SECONDS]`
//! where ALGO is `winograd`, `split` (5x5 as four 3x3 Winograd convs),
//! `im2col` or `direct` (forward) or
//! `winograd-bwd` or `im2col-bwd` (backward-data) or `winograd-wgrad`,
//! `im2col-wgrad` or `direct-wgrad` (backward-weights), or `cached`
//! (inference forward with its transformed weights kept), on one thread;
//! with a `-par` suffix
//! (`winograd-bwd-par`), on the rayon pool.

use netc_runtime::conv::{
    conv2d_backward_data_using, conv2d_backward_weights_using, conv2d_forward_cached,
    conv2d_forward_using, Conv2d, ConvAlgo, ForwardCache,
};
use netc_runtime::gemm::{Activation, Par};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let algo_name = args.first().map_or("winograd", String::as_str);
    let nums: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let [n, c, h, w, o, k, stride, pad] = match nums.get(..8) {
        Some(&[n, c, h, w, o, k, s, p]) => [n, c, h, w, o, k, s, p],
        _ => [64, 16, 32, 32, 16, 3, 1, 1],
    };
    let seconds = nums.get(8).copied().unwrap_or(3) as f64;
    let s = Conv2d::square(n, c, h, w, o, k, stride, pad);
    let algo = if algo_name.starts_with("split") {
        ConvAlgo::WinogradSplit
    } else if algo_name.starts_with("winograd") {
        ConvAlgo::Winograd
    } else if algo_name.starts_with("direct") {
        ConvAlgo::Direct
    } else {
        ConvAlgo::Im2col
    };
    let par = if algo_name.ends_with("-par") { Par::Rayon } else { Par::Seq };
    let backward = algo_name.trim_end_matches("-par").ends_with("-bwd");
    let wgrad = algo_name.trim_end_matches("-par").ends_with("-wgrad");
    let cached = algo_name.starts_with("cached");
    let cache = ForwardCache::new();
    let x = vec![0.5f32; s.input_len()];
    let wt = vec![0.25f32; s.weight_len()];
    let mut y = vec![0.0f32; s.output_len()];
    let mut dx = vec![0.0f32; s.input_len()];
    let mut dw = vec![0.0f32; s.weight_len()];
    let start = Instant::now();
    let mut runs = 0u64;
    // As in a generated model's pass, the pool's other thread polls for
    // work instead of sleeping between calls.
    netc_runtime::nn::awake(|| {
        while start.elapsed().as_secs_f64() < seconds {
            let r = if cached {
                conv2d_forward_cached(&s, &x, &wt, None, Activation::Identity, &mut y, &cache, par)
            } else if wgrad {
                conv2d_backward_weights_using(algo, &s, &x, &y, &mut dw, None, par)
            } else if backward {
                conv2d_backward_data_using(algo, &s, &y, &wt, None, &mut dx, par)
            } else {
                conv2d_forward_using(algo, &s, &x, &wt, None, Activation::Identity, &mut y, par)
            };
            r.expect("valid shape for this algorithm");
            runs += 1;
        }
    });
    let secs = start.elapsed().as_secs_f64() / runs as f64;
    let gflops = 2.0 * s.macs() as f64 / secs / 1e9;
    println!("{algo_name} {s:?}: {:.3} ms, {gflops:.1} GFLOP/s (direct-conv FLOPs)", secs * 1e3);
}
