//! Prints conv2d throughput for every conv layer of AlexNet (batch 8),
//! ResNet-20 (batch 64) and LeNet-5 (batch 64): forward, backward-data and
//! backward-weights, as GFLOP/s and % of the measured FMA peak of all cores,
//! with the algorithm each pass used. Where Winograd applies, each pass it
//! can compute is also timed by the algorithm not chosen, marked `-`; so
//! is each direct pass, by im2col; and every pass in bf16. Each conv has the bias and fused
//! activation it has in its model, and the passes run inside `nn::awake`,
//! as a model's do.
//!
//! `cargo run --release -p netc-runtime --example conv_bench [-- --json] [--quick] [MODEL ...]`
//!
//! Naming models (`alexnet`, `resnet20`, `lenet5`) times only their layers.

use netc_runtime::conv::{
    conv2d_backward_data_using, conv2d_backward_weights_using, conv2d_forward_using, Conv2d,
    ConvAlgo,
};
use netc_runtime::conv::{winograd, winograd_split};
use netc_runtime::gemm::{peak, Activation, Par};
use std::time::Duration;

mod common;
use common::{best_gflops as time, fill};

fn layers() -> Vec<(&'static str, &'static str, Conv2d)> {
    let sq = Conv2d::square;
    vec![
        ("alexnet", "conv1", sq(8, 3, 227, 227, 96, 11, 4, 0)),
        ("alexnet", "conv2", sq(8, 96, 27, 27, 256, 5, 1, 2)),
        ("alexnet", "conv3", sq(8, 256, 13, 13, 384, 3, 1, 1)),
        ("alexnet", "conv4", sq(8, 384, 13, 13, 384, 3, 1, 1)),
        ("alexnet", "conv5", sq(8, 384, 13, 13, 256, 3, 1, 1)),
        ("resnet20", "conv1 3->16", sq(64, 3, 32, 32, 16, 3, 1, 1)),
        ("resnet20", "16->16 3x3", sq(64, 16, 32, 32, 16, 3, 1, 1)),
        ("resnet20", "16->32 3x3 s2", sq(64, 16, 32, 32, 32, 3, 2, 1)),
        ("resnet20", "32->32 3x3", sq(64, 32, 16, 16, 32, 3, 1, 1)),
        ("resnet20", "proj 16->32 1x1 s2", sq(64, 16, 32, 32, 32, 1, 2, 0)),
        ("resnet20", "32->64 3x3 s2", sq(64, 32, 16, 16, 64, 3, 2, 1)),
        ("resnet20", "64->64 3x3", sq(64, 64, 8, 8, 64, 3, 1, 1)),
        ("resnet20", "proj 32->64 1x1 s2", sq(64, 32, 16, 16, 64, 1, 2, 0)),
        ("lenet5", "conv1", sq(64, 1, 28, 28, 6, 5, 1, 2)),
        ("lenet5", "conv2", sq(64, 6, 14, 14, 16, 5, 1, 0)),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 100 } else { 500 });
    let threads = rayon::current_num_threads();
    let (isa, per_core) = peak::fma_peak(Duration::from_millis(if quick { 200 } else { 1000 }));
    let peak = per_core * threads as f64 / 1e9;
    if !json {
        println!(
            "FMA peak: {:.1} GFLOP/s per core ({isa}), {threads} threads: {peak:.1} GFLOP/s",
            per_core / 1e9
        );
        println!(
            "{:<9} {:<20} {:<14} {:>9} {:>7} {:>14} {:>9} {:>7}",
            "model", "layer", "pass", "GFLOP/s", "% peak", "algo", "ms", "batch"
        );
    }
    // Inside `nn::awake`, as a model's pass runs: the pool's other thread
    // polls, so each parallel call is a cheap fork-join.
    let models: Vec<&str> =
        args.iter().skip(1).filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let wanted = |model: &str| models.is_empty() || models.contains(&model);
    netc_runtime::nn::awake(|| run_all(json, budget, peak, wanted));
}

fn run_all(json: bool, budget: Duration, peak: f64, wanted: impl Fn(&str) -> bool) {
    for (model, layer, s) in layers().into_iter().filter(|(model, ..)| wanted(model)) {
        let x = fill(s.input_len());
        let w = fill(s.weight_len());
        let b = fill(s.o);
        let dy = fill(s.output_len());
        let mut y = vec![0.0; s.output_len()];
        let mut dx = vec![0.0; s.input_len()];
        let mut dw = vec![0.0; s.weight_len()];
        let mut db = vec![0.0; s.o];
        let flops = 2.0 * s.macs() as f64;
        // As the models have them: AlexNet's and LeNet-5's convs add a bias
        // and fuse their ReLU; ResNet-20's have neither (batch norm follows),
        // so their weight gradient has no bias gradient to sum either.
        let with_bias = model != "resnet20";
        let (bias, act) =
            if with_bias { (Some(&b[..]), Activation::Relu) } else { (None, Activation::Identity) };
        // Each pass by the algorithm the shape picks; where Winograd
        // applies, also by the other one of the two, marked as not chosen.
        let mut passes: Vec<(&str, ConvAlgo, bool)> = vec![
            ("forward", s.forward_algo(), true),
            ("backward-data", s.backward_data_algo(), true),
            ("backward-weights", s.backward_weights_algo(), true),
        ];
        // (Winograd's kind, whether it computes backward-data, and
        // backward-weights): 3x3 all three passes, 5x5 (split) the first two.
        let winograd_kind = if winograd::applies(&s) {
            Some((ConvAlgo::Winograd, winograd::applies_backward_data(&s), true))
        } else if winograd_split::applies(&s) {
            Some((ConvAlgo::WinogradSplit, winograd_split::applies_backward_data(&s), false))
        } else {
            None
        };
        if let Some((kind, backward_data, weights)) = winograd_kind {
            let other = |a| if a == kind { ConvAlgo::Im2col } else { kind };
            passes.insert(1, ("forward", other(s.forward_algo()), false));
            if backward_data {
                passes.insert(3, ("backward-data", other(s.backward_data_algo()), false));
            }
            if weights {
                passes.push(("backward-weights", other(s.backward_weights_algo()), false));
            }
        }
        // Every pass in bf16 too, as a `precision bf16` network runs it.
        let bf16 = ["forward", "backward-data", "backward-weights"];
        passes.extend(bf16.map(|pass| (pass, ConvAlgo::Im2colBf16, false)));
        // Where a pass goes direct, also by im2col, which it replaced.
        let passes = passes.into_iter().flat_map(|(pass, algo, chosen)| {
            let im2col = (algo == ConvAlgo::Direct).then_some((pass, ConvAlgo::Im2col, false));
            std::iter::once((pass, algo, chosen)).chain(im2col)
        });
        let passes = passes.map(|(pass, algo, chosen)| {
            let gflops = time(flops, budget, || {
                let r = match pass {
                    "forward" => {
                        conv2d_forward_using(algo, &s, &x, &w, bias, act, &mut y, Par::Rayon)
                    }
                    "backward-data" => {
                        conv2d_backward_data_using(algo, &s, &dy, &w, None, &mut dx, Par::Rayon)
                    }
                    _ => conv2d_backward_weights_using(
                        algo,
                        &s,
                        &x,
                        &dy,
                        &mut dw,
                        if with_bias { Some(&mut db) } else { None },
                        Par::Rayon,
                    ),
                };
                r.expect("valid");
            });
            (pass, algo.name(), chosen, gflops)
        });
        for (pass, algo, chosen, gflops) in passes {
            let pct = 100.0 * gflops / peak;
            if json {
                println!(
                    "{{\"model\":\"{model}\",\"layer\":\"{layer}\",\"pass\":\"{pass}\",\"algo\":\"{algo}\",\"gflops\":{gflops:.3},\"pct_of_peak\":{pct:.2},\"chosen\":{chosen}}}"
                );
            } else {
                let ms = flops / gflops / 1e6;
                let mark = if chosen { ' ' } else { '-' };
                println!("{model:<9} {layer:<20} {pass:<14} {gflops:>9.1} {pct:>6.1}% {algo:>14}{mark} {ms:>9.3} {:>7}", s.n);
            }
        }
    }
}
