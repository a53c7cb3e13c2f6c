//! Peak memory of a model built for inference and run on one sample: the
//! process's high-water mark of resident memory (`VmHWM`) against the
//! weights and the inference arena, for ResNet-18 or AlexNet.
//!
//! `cargo run --release --bin inference_memory -- resnet18 [lean] [weights.safetensors]`
//!
//! With a weights file the model is made by `from_file`; without, by
//! `new`. `lean` turns off the prepared conv weights
//! (`keep_prepared_weights(false)`). Prints one line of bytes and the ratio
//! `peak / (weights + arena)`; run each model in a process of its own.

use netc_examples::{alexnet::AlexNet, resnet18::ResNet18};

/// Kilobytes of the `/proc/self/status` field `key`.
fn status_kb(key: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

macro_rules! measure {
    ($ty:ty, $weights:expr, $lean:expr) => {{
        let start = status_kb("VmRSS:") * 1024;
        let mut model = match $weights {
            Some(path) => <$ty>::from_file(path).expect("weights load"),
            None => <$ty>::new(1),
        };
        model.keep_prepared_weights(!$lean);
        let x = vec![0.5f32; <$ty>::INPUT_LEN];
        let mut out = vec![0.0f32; <$ty>::OUTPUT_LEN];
        model.forward_flat(&x, &mut out).expect("forward");
        let usage = model.memory_usage();
        (start, usage, <$ty>::INFER_ARENA_BYTES_PER_SAMPLE)
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map(String::as_str).unwrap_or("resnet18");
    let lean = args.iter().any(|a| a == "lean");
    let weights = args.iter().skip(1).find(|a| *a != "lean");
    let (start, usage, arena) = match name {
        "resnet18" => measure!(ResNet18, weights, lean),
        "alexnet" => measure!(AlexNet, weights, lean),
        other => {
            eprintln!("unknown model `{other}`: resnet18 or alexnet");
            std::process::exit(2);
        }
    };
    let peak = status_kb("VmHWM:") * 1024;
    let mb = |b: usize| b as f64 / 1e6;
    let budget = usage.params + arena;
    println!(
        "{name}{}: weights {:.1} MB, arena {:.1} MB, prepared {:.1} MB, training {:.1} MB; \
         RSS before the model {:.1} MB, peak {:.1} MB = {:.2} x (weights + arena); \
         peak less the start {:.2} x",
        if lean { " (lean)" } else { "" },
        mb(usage.params),
        mb(arena),
        mb(usage.prepared),
        mb(usage.grads + usage.optimizer + usage.training),
        mb(start),
        mb(peak),
        peak as f64 / budget as f64,
        (peak - start) as f64 / budget as f64,
    );
}
