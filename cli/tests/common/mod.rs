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

/// An empty directory of this test process, named by `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netc-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The README's network, a small CNN for 28x28 digits, as a `.net` file.
pub const TINY_NET: &str = "network Tiny {\n    input x: [1, 28, 28]\n    \
    logits = x -> conv2d(8, kernel: 3, pad: 1) -> relu -> max_pool(2)\n        \
    -> conv2d(16, kernel: 3, pad: 1) -> relu -> max_pool(2) -> flatten -> dense(10)\n    \
    loss cross_entropy(logits)\n    optimizer adam(lr: 2e-3)\n}\n";
