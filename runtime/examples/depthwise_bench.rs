//! Prints the time and memory throughput of MobileNetV2's and
//! EfficientNet's depthwise convs (batch 16, bias and ReLU6-like ReLU
//! fused forward), each pass by the depthwise kernels and by the grouped
//! im2col path they replaced. GB/s counts the bytes each pass must read
//! and write once (input, weights and output, or their gradients), over
//! its best time.
//!
//! `cargo run --release -p netc-runtime --example depthwise_bench [-- --quick]`

use netc_runtime::conv::{
    conv2d_backward_data_using, conv2d_backward_weights_using, conv2d_forward_using, Conv2d,
    ConvAlgo,
};
use netc_runtime::gemm::{Activation, Par};
use std::time::Duration;

mod common;
use common::{best_gflops as best_rate, fill};

fn layers() -> Vec<(&'static str, Conv2d)> {
    let depthwise = |c, hw, k, stride| Conv2d {
        groups: c,
        ..Conv2d::square(16, c, hw, hw, c, k, stride, k / 2)
    };
    vec![
        ("mobilenetv2 32x112x112 3x3 s1", depthwise(32, 112, 3, 1)),
        ("mobilenetv2 96x112x112 3x3 s2", depthwise(96, 112, 3, 2)),
        ("mobilenetv2 144x56x56 3x3 s2", depthwise(144, 56, 3, 2)),
        ("mobilenetv2 192x28x28 3x3 s1", depthwise(192, 28, 3, 1)),
        ("mobilenetv2 960x7x7 3x3 s1", depthwise(960, 7, 3, 1)),
        ("efficientnet 240x28x28 5x5 s2", depthwise(240, 28, 5, 2)),
        ("efficientnet 672x14x14 5x5 s1", depthwise(672, 14, 5, 1)),
        ("32x56x56 3x3 s1, 2 outputs each", Conv2d { o: 64, ..depthwise(32, 56, 3, 1) }),
        ("32x56x56 3x3 s1, 4 outputs each", Conv2d { o: 128, ..depthwise(32, 56, 3, 1) }),
        ("32x56x56 3x3 s1, 8 outputs each", Conv2d { o: 256, ..depthwise(32, 56, 3, 1) }),
    ]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 100 } else { 400 });
    println!("{} threads", rayon::current_num_threads());
    println!(
        "{:<32} {:<17} {:>10} {:>9} {:>10} {:>9} {:>8}",
        "layer", "pass", "depthwise", "GB/s", "im2col", "GB/s", "speedup"
    );
    netc_runtime::nn::awake(|| {
        for (name, s) in layers() {
            run(name, &s, budget);
        }
    });
}

fn run(name: &str, s: &Conv2d, budget: Duration) {
    let (x, w, b, dy) =
        (fill(s.input_len()), fill(s.weight_len()), fill(s.o), fill(s.output_len()));
    let (mut y, mut dx, mut dw) =
        (vec![0.0; s.output_len()], vec![0.0; s.input_len()], vec![0.0; s.weight_len()]);
    let mut db = vec![0.0; s.o];
    let floats = |n: usize| 4.0 * n as f64;
    let (input, output, weight) =
        (floats(s.input_len()), floats(s.output_len()), floats(s.weight_len()));
    let passes = [
        ("forward", input + weight + floats(s.o) + output),
        ("backward-data", output + weight + input),
        ("backward-weights", input + output + weight + floats(s.o)),
    ];
    for (pass, bytes) in passes {
        let mut rate = |algo| {
            best_rate(bytes, budget, || {
                let r = match pass {
                    "forward" => conv2d_forward_using(
                        algo,
                        s,
                        &x,
                        &w,
                        Some(&b),
                        Activation::Relu,
                        &mut y,
                        Par::Rayon,
                    ),
                    "backward-data" => {
                        conv2d_backward_data_using(algo, s, &dy, &w, None, &mut dx, Par::Rayon)
                    }
                    _ => conv2d_backward_weights_using(
                        algo,
                        s,
                        &x,
                        &dy,
                        &mut dw,
                        Some(&mut db),
                        Par::Rayon,
                    ),
                };
                r.expect("valid");
            })
        };
        let (fast, slow) = (rate(ConvAlgo::Depthwise), rate(ConvAlgo::Im2col));
        let ms = |gbps: f64| bytes / gbps / 1e6;
        println!(
            "{name:<32} {pass:<17} {:>8.3}ms {fast:>9.1} {:>8.3}ms {slow:>9.1} {:>7.1}x",
            ms(fast),
            ms(slow),
            fast / slow
        );
    }
}
