//! Prints the time of each dense pass for the zoo's fully connected layers
//! (AlexNet's fc6-fc8, the MLP's) at batch 1, 8, 16, 32 and 128, on the rayon pool.
//!
//! `cargo run --release -p netc-runtime --example dense_bench`

use netc_runtime::dense::{dense_backward_data, dense_backward_weights, dense_forward, Dense};
use netc_runtime::gemm::{Activation, Par};
use std::time::{Duration, Instant};

fn fill(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

/// Median ms of runs of `f` for about half a second.
fn median_ms(mut f: impl FnMut()) -> f64 {
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

fn main() {
    let layers = [
        ("alexnet fc6", 9216, 4096),
        ("alexnet fc7", 4096, 4096),
        ("alexnet fc8", 4096, 1000),
        ("mlp fc1", 784, 512),
    ];
    println!(
        "{:<12} {:>6} {:>12} {:>14} {:>16}",
        "layer", "batch", "forward ms", "bwd-data ms", "bwd-weights ms"
    );
    for (name, input, output) in layers {
        for n in [1, 8, 16, 32, 128] {
            let s = Dense { n, input, output };
            let (x, w, b, dy) =
                (fill(n * input), fill(input * output), fill(output), fill(n * output));
            let (mut y, mut dx, mut dw, mut db) = (
                vec![0.0; n * output],
                vec![0.0; n * input],
                vec![0.0; input * output],
                vec![0.0; output],
            );
            let fwd = median_ms(|| {
                dense_forward(&s, &x, &w, Some(&b), Activation::Relu, &mut y, Par::Rayon)
                    .expect("valid")
            });
            let bwd = median_ms(|| {
                dense_backward_data(&s, &dy, &w, Some(&x), &mut dx, Par::Rayon).expect("valid")
            });
            let wgt = median_ms(|| {
                dense_backward_weights(&s, &x, &dy, &mut dw, Some(&mut db), Par::Rayon)
                    .expect("valid")
            });
            println!("{name:<12} {n:>6} {fwd:>12.3} {bwd:>14.3} {wgt:>16.3}");
        }
    }
}
