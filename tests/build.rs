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
        // ONNX files, imported at build time with their weights embedded.
        "onnx/small_cnn.onnx".to_string(),
        "onnx/breadth.onnx".to_string(),
        "onnx/resnet20_cifar.onnx".to_string(),
        "onnx/lrn_cnn.onnx".to_string(),
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
    caffe_networks();
    bf16_networks();
}

/// Zoo models compiled again in bf16 (`Builder::precision`), as a user
/// builds the same `.net` files for bf16 training, into `$OUT_DIR/bf16/`.
fn bf16_networks() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new(&out).join("bf16");
    std::fs::create_dir_all(&dir).expect("the bf16 networks' folder");
    let files = ["mlp", "lenet5", "resnet20", "alexnet"].map(|m| format!("../cli/models/{m}.net"));
    let built =
        netc_dsl::Builder::new().precision(netc_dsl::Precision::Bf16).out_dir(&dir).compile(&files);
    if let Err(e) = built {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// Caffe nets imported at build time, as a user would import one and
/// compile the `.net` it gives: `$OUT_DIR/caffe_<stem>.rs`.
fn caffe_networks() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new(&out).join("caffe");
    std::fs::create_dir_all(&dir).expect("the Caffe networks' folder");
    for (stem, name) in [("lenet", "CaffeLenet"), ("every_layer", "CaffeEveryLayer")] {
        let prototxt = format!("caffe/{stem}.prototxt");
        println!("cargo:rerun-if-changed={prototxt}");
        let text = std::fs::read_to_string(&prototxt).expect("a Caffe fixture");
        let options = netc_dsl::import::caffe::Options::default();
        let imported = netc_dsl::import::caffe::import(&text, None, name, &options)
            .unwrap_or_else(|e| panic!("{prototxt}: {e}"));
        let net = dir.join(format!("caffe_{stem}.net"));
        write_if_changed(&net, &imported.source);
        if let Err(e) = netc_dsl::Builder::new().compile(&[&net]) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// The networks of seeds `NETC_DIFF_SEED..+NETC_DIFF_COUNT` (default 1 and
/// 100), the regression files `random/regressions/*.net` and the files of
/// the folder `NETC_DIFF_FILES` if it is set, each compiled
/// to Rust in `$OUT_DIR/random/`, and `$OUT_DIR/random_nets.rs`, which the
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
    println!("cargo:rerun-if-changed=random/regressions");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new(&out).join("random");
    std::fs::create_dir_all(&dir).expect("the random networks' folder");
    let mut index = String::new();
    for seed in first..first + count {
        let net = generate::generate(seed);
        let ty = net.name.to_uppercase();
        write_case(&mut index, &dir, &net, &ty);
    }
    files_of(Path::new("random/regressions"), &mut index, &dir);
    // The shrinker's candidates (`examples/shrink.rs`), in a folder of its own.
    println!("cargo:rerun-if-env-changed=NETC_DIFF_FILES");
    if let Ok(folder) = std::env::var("NETC_DIFF_FILES") {
        println!("cargo:rerun-if-changed={folder}");
        files_of(Path::new(&folder), &mut index, &dir);
    }
    write_if_changed(&Path::new(&out).join("random_nets.rs"), &index);
}

/// The module and test of every `.net` file of `folder`, as regressions.
fn files_of(folder: &Path, index: &mut String, dir: &Path) {
    let mut paths: Vec<_> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    paths.sort();
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "net")) {
        println!("cargo:rerun-if-changed={}", path.display());
        let (net, ty) = regression(path);
        write_case(index, dir, &net, &ty);
    }
}

/// A regression file as the generator would have described it: its
/// `// seed: N` and `// batch: N` comments (default 1 and 2), and its
/// inputs, loss and optimizer from the checker; and its network's name.
fn regression(path: &Path) -> (generate::Net, String) {
    let source = std::fs::read_to_string(path).expect("a regression file");
    let stem = path.file_stem().and_then(|s| s.to_str()).expect("a file name").to_string();
    let comment = |key: &str| {
        source.lines().find_map(|l| l.trim().strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    let (seed, batch) = (comment("// seed:").unwrap_or(1), comment("// batch:").unwrap_or(2));
    let checked = netc_dsl::check_source(&stem, &source).unwrap_or_else(|d| panic!("{d}"));
    let g = &checked.graphs[0];
    let input_lens = g.inputs.iter().map(|&i| g.node(i).shape.elements()).collect();
    let targets = match &g.loss {
        None => generate::Targets::None,
        Some(loss) if loss.kind.takes_labels() => {
            generate::Targets::Labels { classes: g.node(loss.input).shape.elements() }
        }
        Some(loss) => generate::Targets::Values { len: g.node(loss.input).shape.elements() },
    };
    let net = generate::Net {
        name: stem,
        seed,
        source,
        input_lens,
        batch: batch as usize,
        targets,
        optimizer: g.optimizer.is_some(),
    };
    (net, g.name.clone())
}

/// The module and test of one network (`ty` its type) in `index`.
fn write_case(index: &mut String, dir: &Path, net: &generate::Net, ty: &str) {
    let (stem, seed) = (&net.name, net.seed);
    let file = format!("{stem}.net");
    write_if_changed(&dir.join(&file), &net.source);
    let source_const = format!("include_str!(concat!(env!(\"OUT_DIR\"), \"/random/{file}\"))");
    let compiled = std::panic::catch_unwind(|| {
        netc_dsl::Builder::new().generate(&file, &net.source).map_err(|d| d.to_string())
    });
    let code = match compiled {
        Ok(Ok(code)) => code,
        Ok(Err(refused)) => {
            let message = format!("the checker refused it:\n{refused}");
            writeln!(
                index,
                "#[test]\nfn {stem}() {{ refused({seed}, {message:?}, {source_const}); }}"
            )
            .expect("a string");
            return;
        }
        Err(_) => {
            let message = "netc panicked compiling it (see the build script's output)";
            writeln!(
                index,
                "#[test]\nfn {stem}() {{ refused({seed}, {message:?}, {source_const}); }}"
            )
            .expect("a string");
            return;
        }
    };
    write_if_changed(&dir.join(format!("{stem}.rs")), &code);
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

/// Writes `text` unless the file holds it already, so that an unchanged
/// network does not make cargo rebuild the test.
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write `{}`: {e}", path.display()));
}
