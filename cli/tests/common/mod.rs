//! What the command's end-to-end tests share: running `netc` from the
//! workspace root, scratch directories, and the README's network.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `netc args` from the workspace root. The tests share one cache of
/// networks built from `.net` files, so each is built once.
pub fn netc<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(root())
        .env("NETC_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("netc-cache"))
        .output()
        .expect("netc runs")
}

/// An empty temporary folder, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The README's network, a small CNN for 28x28 digits, as a `.net` file.
pub const TINY_NET: &str = "network Tiny {\n    input x: [1, 28, 28]\n    \
    logits = x -> conv2d(8, kernel: 3, pad: 1) -> relu -> max_pool(2)\n        \
    -> conv2d(16, kernel: 3, pad: 1) -> relu -> max_pool(2) -> flatten -> dense(10)\n    \
    loss cross_entropy(logits)\n    optimizer adam(lr: 2e-3)\n}\n";

/// Every tensor of a safetensors file, by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut file = netc_runtime::weights::WeightsFile::open(path).expect("a weights file");
    let mut names = file.names();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let shape = file.shape(&name).expect("a shape");
            let mut values = vec![0.0f32; shape.iter().product()];
            file.read_into(&name, &shape, &mut values).expect("values");
            (name, values)
        })
        .collect()
}

/// The largest difference between two weights files' tensors, relative to
/// each tensor's largest magnitude.
pub fn relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.len(), b.len(), "the files hold different tensors");
    let mut worst = 0.0f64;
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        let scale = x.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-30);
        for (u, v) in x.iter().zip(y) {
            worst = worst.max(f64::from((u - v).abs()) / scale);
        }
    }
    worst
}

/// CIFAR-10 batch files in `dir` of `per_file` records each (and a test
/// batch of `test` records): class `i % 10` drawn as a checkerboard of two
/// colours of its own, with noise, which a CNN learns in a few hundred
/// steps.
pub fn learnable_cifar(dir: &Path, per_file: usize, test: usize) {
    let mut rng = netc_runtime::splitmix::SplitMix64::new(7);
    let mut record = |i: usize| {
        let class = i % 10;
        let mut r = vec![class as u8];
        for channel in 0..3 {
            for p in 0..32 * 32 {
                let (y, x) = (p / 32, p % 32);
                let light = (x / 8 + y / 8 + class).is_multiple_of(2);
                let base =
                    if light { class * 25 + channel * 60 } else { class * 53 + channel * 17 + 128 };
                let noise = rng.below(81) as i64 - 40;
                r.push(((base % 256) as i64 + noise).clamp(0, 255) as u8);
            }
        }
        r
    };
    let mut next = 0;
    let mut file = |name: &str, n: usize| {
        let bytes: Vec<u8> = (next..next + n).flat_map(&mut record).collect();
        next += n;
        std::fs::write(dir.join(name), bytes).expect("write");
    };
    for b in 1..=5 {
        file(&format!("data_batch_{b}.bin"), per_file);
    }
    file("test_batch.bin", test);
}
