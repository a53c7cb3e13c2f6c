//! Times the zoo's generated models like `bench/peers/torch_bench.py` times
//! PyTorch's: a training step at the standard batch and inference at batch 1
//! and at the standard batch, as JSON lines `{"system", "model", "mode",
//! "batch", "ms"}` (median of the runs). Run inside the rayon pool, as
//! `netc train` does.
//!
//! `cargo run --release -p netc-tests --example zoo_time -- [MODEL ...] [MODE/BATCH ...]`
//! (the 224x224 torchvision networks, at batch 8, only when named)
//!
//! The same models compiled with bf16 operands (`precision bf16`) are
//! timed when named with `-bf16`: `mlp-bf16`, `lenet5-bf16`,
//! `resnet20-bf16`, `alexnet-bf16`.
//!
//! A `MODE/BATCH` argument such as `forward/1` or `train_step/64` times only
//! that mode, for profiling one of them.

use std::time::{Duration, Instant};

use netc_tests::nets::alexnet;
use netc_tests::nets::bf16;
use netc_tests::nets::densenet121;
use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::mobilenet_v2;
use netc_tests::nets::resnet18;
use netc_tests::nets::resnet20;
use netc_tests::nets::resnet50;
use netc_tests::nets::squeezenet1_1;

mod vgg11 {
    netc::include_network!("vgg11");
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let (start, mut times) = (Instant::now(), Vec::new());
    while times.len() < 5 || start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if times.len() > 1000 {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

macro_rules! time_model {
    ($ty:ty, $name:literal, $batch:expr, $wanted:expr) => {{
        const IN: usize = <$ty>::INPUT_LEN;
        const OUT: usize = <$ty>::OUTPUT_LEN;
        let mut model = <$ty>::with_capacity(1, $batch);
        let opt = <$ty>::default_optimizer().expect("zoo models name an optimizer");
        let x: Vec<[f32; IN]> = (0..$batch).map(|s| std::array::from_fn(|i| ((i * 7 + s * 13) % 255) as f32 / 255.0)).collect();
        let labels: Vec<u32> = (0..$batch as u32).map(|i| i % 10).collect();
        let mut rows = Vec::new();
        if $wanted("train_step", $batch) {
            // The first step also allocates the optimizer state: timed
            // apart (on stderr), and kept out of the median.
            let t = std::time::Instant::now();
            model.train_step(&x, &labels, &opt).expect("step");
            eprintln!("{}: first train_step {:.1} ms", $name, t.elapsed().as_secs_f64() * 1e3);
            rows.push(("train_step", $batch, median_ms(|| {
                model.train_step(&x, &labels, &opt).expect("step");
            })));
        }
        for n in [1usize, $batch] {
            if $wanted("forward", n) {
                let mut out = vec![[0.0f32; OUT]; n];
                rows.push(("forward", n, median_ms(|| model.forward(&x[..n], &mut out).expect("forward"))));
            }
        }
        for (mode, n, ms) in rows {
            println!("{{\"system\":\"netc\",\"model\":\"{}\",\"mode\":\"{mode}\",\"batch\":{n},\"ms\":{ms:.4}}}", $name);
        }
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (modes, models): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| a.contains('/'));
    let run = |name: &str| models.is_empty() || models.iter().any(|w| *w == name);
    let mode = |mode: &str, batch: usize| {
        modes.is_empty() || modes.iter().any(|m| **m == format!("{mode}/{batch}"))
    };
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    pool.install(|| {
        if run("mlp") {
            time_model!(mlp::Mlp, "mlp", 128, mode);
        }
        if run("lenet5") {
            time_model!(lenet5::LeNet5, "lenet5", 64, mode);
        }
        if run("resnet20") {
            time_model!(resnet20::ResNet20, "resnet20", 64, mode);
        }
        if run("alexnet") {
            time_model!(alexnet::AlexNet, "alexnet", 8, mode);
        }
        // The 224x224 networks take seconds a step: timed only when named.
        let named = |name: &str| models.iter().any(|w| *w == name);
        if named("resnet18") {
            time_model!(resnet18::ResNet18, "resnet18", 8, mode);
        }
        if named("vgg11") {
            time_model!(vgg11::Vgg11, "vgg11", 8, mode);
        }
        if named("resnet50") {
            time_model!(resnet50::ResNet50, "resnet50", 8, mode);
        }
        if named("mobilenet_v2") {
            time_model!(mobilenet_v2::MobileNetV2, "mobilenet_v2", 16, mode);
        }
        if named("squeezenet1_1") {
            time_model!(squeezenet1_1::SqueezeNet11, "squeezenet1_1", 16, mode);
        }
        if named("mlp-bf16") {
            time_model!(bf16::mlp::Mlp, "mlp-bf16", 128, mode);
        }
        if named("lenet5-bf16") {
            time_model!(bf16::lenet5::LeNet5, "lenet5-bf16", 64, mode);
        }
        if named("resnet20-bf16") {
            time_model!(bf16::resnet20::ResNet20, "resnet20-bf16", 64, mode);
        }
        if named("alexnet-bf16") {
            time_model!(bf16::alexnet::AlexNet, "alexnet-bf16", 8, mode);
        }
        if named("densenet121") {
            time_model!(densenet121::DenseNet121, "densenet121", 8, mode);
        }
    });
}
