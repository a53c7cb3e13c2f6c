//! `netc train` end to end on small synthetic data: checkpoints, metrics,
//! resume, a kill in the middle of training, eval, and a corrupt checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs")
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netc-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn completed(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("lenet5/state.txt")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("completed_epochs=")?.parse().ok())
}

const SMALL: &[&str] = &["train", "--train-size", "512", "--test-size", "128", "--batch", "32"];

#[test]
fn trains_resumes_and_evaluates() {
    let out = tmp("resume");
    let o = out.to_str().expect("utf-8");
    let first = netc(&[SMALL, &["--epochs", "1", "--out", o]].concat());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(completed(&out), Some(1));
    let second = netc(&[SMALL, &["--epochs", "2", "--out", o, "--resume"]].concat());
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(text.contains("resuming lenet5 after epoch 1") && text.contains("epoch 2:"), "{text}");
    let metrics = std::fs::read_to_string(out.join("lenet5/metrics.csv")).expect("metrics");
    assert_eq!(metrics.lines().count(), 3, "header and two epochs:\n{metrics}");

    let checkpoint = out.join("lenet5/model.safetensors");
    let c = checkpoint.to_str().expect("utf-8");
    let eval = netc(&["eval", "--test-size", "128", "--checkpoint", c]);
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    assert!(String::from_utf8_lossy(&eval.stdout).contains("accuracy"));

    // Classify an image file with the checkpoint: a bright vertical bar.
    let pgm = out.join("one.pgm");
    let mut bytes = b"P5\n28 28\n255\n".to_vec();
    bytes.extend((0..784).map(|i| {
        if (12..16).contains(&(i % 28)) && (4..24).contains(&(i / 28)) {
            255u8
        } else {
            0
        }
    }));
    std::fs::write(&pgm, bytes).expect("pgm");
    let predicted = netc(&["predict", pgm.to_str().expect("utf-8"), "--checkpoint", c]);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));
    assert!(
        String::from_utf8_lossy(&predicted.stdout).contains("digit"),
        "{}",
        String::from_utf8_lossy(&predicted.stdout)
    );

    // A corrupt checkpoint is an error that names the file.
    std::fs::write(&checkpoint, b"garbage").expect("write");
    let bad = netc(&["eval", "--test-size", "16", "--checkpoint", c]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("model.safetensors"));
}

/// Killed after its first epoch and in the middle of the second, training
/// keeps a loadable checkpoint of the first and resumes from it.
#[test]
fn a_killed_run_resumes_from_its_last_completed_epoch() {
    let out = tmp("kill");
    let o = out.to_str().expect("utf-8");
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args([
            "train",
            "--train-size",
            "4096",
            "--test-size",
            "64",
            "--batch",
            "32",
            "--epochs",
            "50",
            "--out",
            o,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while completed(&out).is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "no epoch completed in 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the next epoch, then kill.
    std::thread::sleep(Duration::from_millis(150));
    child.kill().expect("kill");
    let _ = child.wait();
    let done = completed(&out).expect("state survives");
    assert!(done >= 1);
    let c = out.join("lenet5/model.safetensors");
    let eval = netc(&["eval", "--test-size", "64", "--checkpoint", c.to_str().expect("utf-8")]);
    assert!(
        eval.status.success(),
        "the checkpoint is whole: {}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let resumed = netc(&[
        "train",
        "--train-size",
        "4096",
        "--test-size",
        "64",
        "--batch",
        "32",
        "--epochs",
        &(done + 1).to_string(),
        "--out",
        o,
        "--resume",
    ]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(completed(&out), Some(done + 1));
}

#[test]
fn bad_arguments_are_errors() {
    let o = netc(&["train", "--model", "gpt", "--epochs", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model `gpt`"));
    let o = netc(&["train", "--model", "resnet20", "--epochs", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--cifar"));
    let o = netc(&[
        "train",
        "--data",
        "/nonexistent",
        "--epochs",
        "1",
        "--out",
        tmp("bad").to_str().expect("utf-8"),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

/// Two epochs in one run, and one epoch then a resumed second, end with
/// the same weights to the bit: the checkpoint keeps the optimizer's state
/// and step, and the shuffles depend only on the seed and the epoch.
#[test]
fn resuming_loses_nothing() {
    let (straight, split) = (tmp("straight"), tmp("split"));
    let run = |out: &Path, epochs: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--train-size",
            "640",
            "--test-size",
            "64",
            "--batch",
            "32",
            "--threads",
            "2",
        ];
        args.extend(["--epochs", epochs, "--out", out.to_str().expect("utf-8")]);
        if resume {
            args.push("--resume");
        }
        let o = netc(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&straight, "2", false);
    run(&split, "1", false);
    run(&split, "2", true);
    let a = std::fs::read(straight.join("lenet5/model.safetensors")).expect("weights");
    let b = std::fs::read(split.join("lenet5/model.safetensors")).expect("weights");
    assert!(a == b, "resumed training diverged from uninterrupted training");
}
