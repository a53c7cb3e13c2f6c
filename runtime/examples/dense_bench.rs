//! Prints the time of each dense pass for the zoo's fully connected layers
//! (AlexNet's fc6-fc8, the MLP's) at batch 1, 8, 16, 32 and 128, on the rayon pool;
//! and the forward and backward-data passes of a `precision bf16` network.
//!
//! `cargo run --release -p netc-runtime --example dense_bench`

use netc_runtime::dense::bf16::{dense_backward_data_bf16, dense_forward_bf16};
use netc_runtime::dense::{dense_backward_data, dense_backward_weights, dense_forward, Dense};
use netc_runtime::gemm::{Activation, Par};

mod common;
use common::{fill, median_ms};

fn main() {
    let layers = [
        ("alexnet fc6", 9216, 4096),
        ("alexnet fc7", 4096, 4096),
        ("alexnet fc8", 4096, 1000),
        ("mlp fc1", 784, 512),
        ("mlp fc2", 512, 256),
        ("mlp fc3", 256, 10),
    ];
    println!(
        "{:<12} {:>6} {:>12} {:>14} {:>16} {:>12} {:>14}",
        "layer",
        "batch",
        "forward ms",
        "bwd-data ms",
        "bwd-weights ms",
        "bf16 fwd ms",
        "bf16 data ms"
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
            let fwd_bf16 = median_ms(|| {
                dense_forward_bf16(&s, &x, &w, Some(&b), Activation::Relu, &mut y, Par::Rayon)
                    .expect("valid")
            });
            let bwd_bf16 = median_ms(|| {
                dense_backward_data_bf16(&s, &dy, &w, Some(&x), &mut dx, Par::Rayon).expect("valid")
            });
            println!(
                "{name:<12} {n:>6} {fwd:>12.3} {bwd:>14.3} {wgt:>16.3} {fwd_bf16:>12.3} {bwd_bf16:>14.3}"
            );
        }
    }
}
