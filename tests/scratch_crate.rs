//! A new crate outside the workspace, made only from the README's
//! instructions (its `build.rs` and `src/main.rs` blocks, with path
//! dependencies), builds and trains LeNet-5 for a step.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The ```rust block of README.md whose first line is `marker`.
fn readme_block(readme: &str, marker: &str) -> String {
    let start = readme
        .find(&format!("```rust\n{marker}"))
        .unwrap_or_else(|| panic!("README has a `{marker}` block"));
    let body = &readme[start + "```rust\n".len()..];
    body[..body.find("```").expect("closed block")].to_string()
}

#[test]
fn readme_instructions_build_a_training_crate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("src")).expect("dir");
    std::fs::create_dir_all(dir.join("models")).expect("dir");
    let path = |p: &str| root.join(p).display().to_string();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nnetc = {{ path = {:?} }}\n\n[build-dependencies]\nnetc-dsl = {{ path = {:?} }}\n\n[workspace]\n",
            path("netc"),
            path("dsl")
        ),
    )
    .expect("Cargo.toml");
    std::fs::copy(root.join("cli/models/lenet5.net"), dir.join("models/lenet5.net"))
        .expect("model");
    std::fs::write(dir.join("build.rs"), readme_block(&readme, "// build.rs")).expect("build.rs");
    std::fs::write(dir.join("src/main.rs"), readme_block(&readme, "// src/main.rs"))
        .expect("main.rs");
    // A target directory of its own, kept between runs: the outer cargo
    // holds the workspace's lock while tests run.
    let target = root.join("target/scratch-crate");
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the README's crate failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("loss "), "{stdout}");
    assert!(
        Path::new(&dir.join("lenet5.safetensors")).exists(),
        "the README's program saves its weights"
    );
}

/// Runs `cargo args` in `dir`, in the scratch crates' target directory,
/// and returns its standard output; a failure shows both streams.
fn cargo(dir: &Path, args: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root.join("target/scratch-crate"))
        .output()
        .expect("cargo runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`cargo {}` failed:\n{stdout}\n{stderr}", args.join(" "));
    stdout.into_owned()
}

/// The last `held-out accuracy N%` of a program's output.
fn last_accuracy(output: &str) -> f64 {
    let at = output.rfind("held-out accuracy ").expect("an accuracy line");
    let rest = &output[at + "held-out accuracy ".len()..];
    rest[..rest.find('%').expect("a percentage")].parse().expect("a number")
}

/// The examples crate, outside the workspace with netc as a path
/// dependency and LeNet-5's weights embedded by its build.rs: a training
/// loop of its own learns the digits and saves them; a five-class head is
/// fine-tuned onto those weights; an inference server shares one model
/// between threads and answers four clients at once, bit for bit as
/// `forward` does; a ResNet-18 used only for inference stays within its
/// memory target.
#[test]
fn examples_train_fine_tune_and_serve() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let weights = tmp.path().join("examples.safetensors");
    let weights = weights.to_str().expect("a UTF-8 temp dir");
    let run = |bin: &str, args: &[&str]| {
        let mut all = vec!["run", "--quiet", "--bin", bin, "--"];
        all.extend(args);
        cargo(&examples, &all)
    };
    let trained = run("custom_loop", &[weights]);
    assert!(last_accuracy(&trained) >= 90.0, "{trained}");
    let tuned = run("fine_tune", &[weights]);
    assert!(tuned.contains("8 tensor(s) loaded; `fc3.weight` kept: [10, 84]"), "{tuned}");
    assert!(last_accuracy(&tuned) >= 90.0, "{tuned}");
    let embedded = run("fine_tune", &[]);
    assert!(embedded.contains("8 tensor(s) loaded"), "{embedded}");
    let served = run("serve", &["--self-test"]);
    assert!(served.contains("self-test: 200 answers to 4 clients at once"), "{served}");
    // A ResNet-18 made for inference, holding nothing beyond its weights,
    // run on one sample: what the process gains stays within 1.3 times the
    // weights plus the inference arena.
    let memory = run("inference_memory", &["resnet18", "lean"]);
    let at = memory.find("peak less the start ").expect("a ratio") + "peak less the start ".len();
    let ratio: f64 = memory[at..].split(' ').next().and_then(|r| r.parse().ok()).expect("a number");
    assert!(ratio <= 1.3, "{memory}");
}
