//! Prints the time of the memory-bound passes around ResNet-20's convs at
//! batch 64, per activation shape: batch norm forward (training, alone and
//! with its ReLU fused) and backward, ReLU forward and backward, and the
//! residual add (alone and with its ReLU fused). They run on the rayon pool
//! inside `nn::awake`, as a model's step runs them. Each line also gives
//! the GB/s the pass moves (its tensors read and written once).
//!
//! `cargo run --release -p netc-runtime --example norm_bench`

use netc_runtime::act;
use netc_runtime::gemm::Activation;
use netc_runtime::nn;
use netc_runtime::norm::BatchNorm;

mod common;
use common::{fill, median_ms};

fn report(shape: &str, pass: &str, ms: f64, tensors: usize, len: usize) {
    let gbs = (tensors * len * 4) as f64 / (ms * 1e-3) / 1e9;
    println!("{shape:<12} {pass:<22} {ms:>8.3} ms {gbs:>7.1} GB/s");
}

fn main() {
    println!("{:<12} {:<22} {:>11} {:>12}", "shape", "pass", "median", "moved");
    for (c, hw) in [(16usize, 32usize), (32, 16), (64, 8)] {
        let bn = BatchNorm::new(64, c, hw, hw);
        let len = bn.x_len();
        let shape = format!("64x{c}x{hw}x{hw}");
        let x = fill(len);
        let dy = fill(len);
        let (gamma, beta) = (vec![1.5f32; c], vec![0.25f32; c]);
        let (mut rmean, mut rvar) = (vec![0.0f32; c], vec![1.0f32; c]);
        let mut saved = vec![0.0f32; 2 * c];
        let mut y = vec![0.0f32; len];
        let mut dx = vec![0.0f32; len];
        let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
        nn::awake(|| {
            for (act, pass) in [
                (Activation::Identity, "batch_norm forward"),
                (Activation::Relu, "batch_norm+relu forward"),
            ] {
                let ms = median_ms(|| {
                    nn::batch_norm_forward_train(
                        &bn, "bn", act, &x, &gamma, &beta, &mut rmean, &mut rvar, &mut saved,
                        &mut y,
                    )
                    .expect("lengths")
                });
                report(&shape, pass, ms, 2, len);
            }
            let ms = median_ms(|| {
                nn::batch_norm_backward(
                    &bn,
                    &x,
                    &gamma,
                    &saved,
                    &dy,
                    &mut dx,
                    &mut dgamma,
                    &mut dbeta,
                )
                .expect("lengths")
            });
            report(&shape, "batch_norm backward", ms, 3, len);
            let ms = median_ms(|| act::forward(Activation::Relu, &x, &mut y).expect("lengths"));
            report(&shape, "relu forward", ms, 2, len);
            let ms = median_ms(|| {
                act::backward_in_place(Activation::Relu, &x, &mut dx).expect("lengths")
            });
            report(&shape, "relu backward", ms, 3, len);
            for (act, pass) in [(Activation::Identity, "add"), (Activation::Relu, "add+relu")] {
                let ms = median_ms(|| nn::add(&x, &dy, act, &mut y).expect("lengths"));
                report(&shape, pass, ms, 3, len);
            }
        });
    }
}
