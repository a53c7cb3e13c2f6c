//! Compiles every zoo model with the `build.rs` API, as a user would, and
//! the random networks of the differential test.

#[path = "random/generate.rs"]
#[allow(dead_code)]
mod generate;

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let models = [
        "mlp",
        "lenet5",
        "alexnet",
        "resnet20",
        "resnet18",
        "vgg11",
        "resnet50",
        "densenet121",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "squeezenet1_1",
        "googlenet",
        "efficientnet_b0",
        "autoencoder",
    ];
    let mut files: Vec<String> = models.iter().map(|m| format!("../cli/models/{m}.net")).collect();
    // Test networks that exercise every op's backward rule.
    files.extend([
        "nets/smooth.net".to_string(),
        "nets/regression.net".to_string(),
        "nets/pooling.net".to_string(),
        "nets/lenet5_leaky.net".to_string(),
        "nets/alexnet_nodrop.net".to_string(),
        "nets/two_inputs.net".to_string(),
        "nets/gated.net".to_string(),
        "nets/gated_infer.net".to_string(),
        "nets/no_params.net".to_string(),
        "nets/branch.net".to_string(),
        "nets/names.net".to_string(),
        "nets/dense_bn.net".to_string(),
        "nets/dense_block.net".to_string(),
        "nets/modern.net".to_string(),
        "nets/depth.net".to_string(),
        "nets/resample.net".to_string(),
        "nets/decoder.net".to_string(),
        "nets/norms.net".to_string(),
        "nets/shuffle_se.net".to_string(),
        "nets/losses.net".to_string(),
        "nets/train_controls.net".to_string(),
        "../examples/models/lenet5_five.net".to_string(),
    ]);
    // A network with weights in its code, as a user ships a trained model.
    let embedded = netc_dsl::Builder::new()
        .embed_weights("nets/two_inputs.net", "weights/two_inputs.safetensors")
        .compile(&files);
    if let Err(e) = embedded {
        eprintln!("{e}");
        std::process::exit(1);
    }
    random_networks();
}

/// The networks of seeds `NETC_DIFF_SEED..+NETC_DIFF_COUNT` (default 1 and
/// 100), each generated as a `.net` file and compiled to Rust in
/// `$OUT_DIR/random/`, and `$OUT_DIR/random_nets.rs`, which the
/// differential test includes: a module and a test per network. A network
/// that the checker refuses, or whose compilation panics, becomes a test
/// that fails with its seed, message and source, so that one bad network
/// fails one test and not the build.
fn random_networks() {
    let var = |name: &str, default: u64| {
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (first, count) = (var("NETC_DIFF_SEED", 1), var("NETC_DIFF_COUNT", 100));
    println!("cargo:rerun-if-changed=random/generate.rs");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new(&out).join("random");
    std::fs::create_dir_all(&dir).expect("the random networks' folder");
    let mut index = String::new();
    for seed in first..first + count {
        let net = generate::generate(seed);
        let stem = &net.name;
        let file = format!("{stem}.net");
        std::fs::write(dir.join(&file), &net.source).expect("a random network's file");
        let source_const = format!("include_str!(concat!(env!(\"OUT_DIR\"), \"/random/{file}\"))");
        let compiled = std::panic::catch_unwind(|| {
            netc_dsl::Builder::new().generate(&file, &net.source).map_err(|d| d.to_string())
        });
        let code = match compiled {
            Ok(Ok(code)) => code,
            Ok(Err(refused)) => {
                let message = format!("the checker refused it:\n{refused}");
                writeln!(index, "#[test]\nfn {stem}() {{ refused({seed}, {message:?}, {source_const}); }}")
                    .expect("a string");
                continue;
            }
            Err(_) => {
                let message = "netc panicked compiling it (see the build script's output)";
                writeln!(index, "#[test]\nfn {stem}() {{ refused({seed}, {message:?}, {source_const}); }}")
                    .expect("a string");
                continue;
            }
        };
        std::fs::write(dir.join(format!("{stem}.rs")), code).expect("a random network's code");
        let ty = stem.to_uppercase();
        let inputs: Vec<String> =
            net.input_lens.iter().enumerate().map(|(i, len)| format!("({i}, {len})")).collect();
        let targets = match net.targets {
            generate::Targets::None => "infer".to_string(),
            generate::Targets::Labels { classes } => format!("labels {classes}"),
            generate::Targets::Values { len } => format!("values {len}"),
        };
        let optimizer = if net.optimizer { "optimizer" } else { "none" };
        writeln!(
            index,
            "mod {stem} {{ include!(concat!(env!(\"OUT_DIR\"), \"/random/{stem}.rs\")); }}\n\
             #[test]\nfn {stem}() {{ check_net!({stem}::{ty}, {seed}, {source_const}, {}, [{}], {targets}, {optimizer}); }}",
            net.batch,
            inputs.join(", ")
        )
        .expect("a string");
    }
    std::fs::write(Path::new(&out).join("random_nets.rs"), index).expect("random_nets.rs");
}
