//! `netc train` end to end on small synthetic data: checkpoints, metrics,
//! resume, a kill in the middle of training, eval, and a corrupt checkpoint.

mod common;

use netc_runtime::weights::WeightsFile;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).output().expect("netc runs")
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// A checkpoint's recorded metadata value of `key`.
fn recorded(dir: &Path, key: &str) -> Option<u64> {
    let file = WeightsFile::open(&dir.join("lenet5/checkpoint.safetensors")).ok()?;
    file.metadata(key)?.parse().ok()
}

fn completed(dir: &Path) -> Option<usize> {
    recorded(dir, "netc.completed_epochs").map(|e| e as usize)
}

const SMALL: &[&str] = &["train", "--train-size", "512", "--test-size", "128", "--batch", "32"];

#[test]
fn trains_resumes_and_evaluates() {
    let folder = tmp();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let first = netc(&[SMALL, &["--epochs", "1", "--out", o]].concat());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(completed(out), Some(1));
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
        String::from_utf8_lossy(&predicted.stdout).contains("class"),
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
    let folder = tmp();
    let out = folder.path();
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
    while completed(out).is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "no epoch completed in 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the next epoch, then kill.
    std::thread::sleep(Duration::from_millis(150));
    child.kill().expect("kill");
    let _ = child.wait();
    let done = completed(out).expect("state survives");
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
    assert_eq!(completed(out), Some(done + 1));
}

#[test]
fn bad_arguments_are_errors() {
    let o = netc(&["train", "--model", "gpt", "--epochs", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model `gpt`"));
    let o = netc(&["train", "--model", "resnet20", "--epochs", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("[3, 32, 32]") && err.contains("[1, 28, 28]") && err.contains("--cifar"),
        "{err}"
    );
    let o = netc(&[
        "train",
        "--data",
        "/nonexistent",
        "--epochs",
        "1",
        "--out",
        tmp().path().to_str().expect("utf-8"),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

/// Two epochs in one run, and one epoch then a resumed second, end with
/// the same weights to the bit: the checkpoint keeps the optimizer's state
/// and step, and the shuffles depend only on the seed and the epoch.
#[test]
fn resuming_loses_nothing() {
    let (folders, more) = (tmp(), tmp());
    let (straight, split) = (folders.path(), more.path());
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
    run(straight, "2", false);
    run(split, "1", false);
    run(split, "2", true);
    let a = std::fs::read(straight.join("lenet5/model.safetensors")).expect("weights");
    let b = std::fs::read(split.join("lenet5/model.safetensors")).expect("weights");
    assert!(a == b, "resumed training diverged from uninterrupted training");
}

/// CIFAR-10 batch files of `per_file` records each, labels `i % 10`.
fn fake_cifar(dir: &Path, per_file: usize) {
    let record = |i: usize| {
        let mut r = vec![(i % 10) as u8];
        r.extend((0..3 * 32 * 32).map(|p| ((p * 7 + i * 13) % 256) as u8));
        r
    };
    let file = |name: &str| {
        let bytes: Vec<u8> = (0..per_file).flat_map(record).collect();
        std::fs::write(dir.join(name), bytes).expect("write");
    };
    for b in 1..=5 {
        file(&format!("data_batch_{b}.bin"));
    }
    file("test_batch.bin");
}

/// A digits network given CIFAR-10 is an error naming both shapes, not a
/// silent run on the synthetic digits.
#[test]
fn a_data_source_of_the_wrong_shape_is_an_error() {
    let folder = tmp();
    let dir = folder.path();
    fake_cifar(dir, 10);
    let d = dir.to_str().expect("utf-8");
    let o = netc(&["train", "--model", "lenet5", "--cifar", d, "--epochs", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("`lenet5` takes samples of shape [1, 28, 28]"), "{err}");
    assert!(err.contains("CIFAR-10 files") && err.contains("[3, 32, 32]"), "{err}");
}

/// `netc` with the cache of built `.net` files that these tests share, so
/// netc's crates build into it once.
/// The README's own network, written outside the repository, trains from
/// `netc train FILE.net`, evaluates, and a second run reuses the build.
#[test]
fn a_net_file_outside_the_repository_trains() {
    let folder = tmp();
    let dir = folder.path();
    let file = dir.join("tiny.net");
    std::fs::write(&file, common::TINY_NET).expect("write");
    let (f, o) = (file.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
    let args = ["train", f, "--epochs", "1", "--train-size", "2048", "--test-size", "256"];
    let first = common::netc(&[&args[..], &["--out", o]].concat());
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}\n{text}", String::from_utf8_lossy(&first.stderr));
    assert!(text.contains("training tiny (") && text.contains("epoch 1:"), "{text}");
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.split("val accuracy ").nth(1)?.split('%').next()?.parse().ok())
        .expect("a val accuracy");
    assert!(accuracy > 50.0, "one epoch on 2048 digits learns something: {text}");
    let checkpoint = dir.join("tiny/model.safetensors");
    assert!(checkpoint.is_file());

    let again = common::netc(&[
        "eval",
        f,
        "--test-size",
        "64",
        "--checkpoint",
        checkpoint.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("Compiling"), "an unchanged file is not rebuilt: {err}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("tiny on 64 test samples"));
}

/// A network whose output does not match the data's classes is an error
/// that says how many each has.
#[test]
fn a_class_count_mismatch_is_an_error() {
    let folder = tmp();
    let dir = folder.path();
    let file = dir.join("five.net");
    std::fs::write(
        &file,
        "network Five {\n    input x: [1, 28, 28]\n    \
         logits = x -> flatten -> dense(5)\n    loss cross_entropy(logits)\n}\n",
    )
    .expect("write");
    let f = file.to_str().expect("utf-8");
    let o = common::netc(&["train", f, "--epochs", "1", "--train-size", "64", "--test-size", "16"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("`five` scores 5 classes") && err.contains("have 10"), "{err}");
}

/// A file with errors prints the checker's diagnostics and builds nothing.
#[test]
fn a_net_file_with_errors_is_diagnosed_before_any_build() {
    let folder = tmp();
    let dir = folder.path();
    let file = dir.join("broken.net");
    std::fs::write(&file, "network Broken {\n    input x: [4]\n    y = x -> dense(0)\n}\n")
        .expect("write");
    let cache = dir.join("cache");
    let o = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["train", file.to_str().expect("utf-8")])
        .env("NETC_CACHE_DIR", &cache)
        .output()
        .expect("netc runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("broken.net:3"), "a diagnostic with its place: {err}");
    assert!(!cache.exists(), "nothing is written before the file checks");
}

/// Killed with SIGKILL again and again at moments that move through the
/// epochs, a run always leaves a checkpoint whose optimizer step matches
/// its epoch count, resumes from it, and ends with the weights of a run
/// never interrupted, to the bit.
#[test]
fn a_kill_loop_never_leaves_a_torn_checkpoint() {
    let (folders, more) = (tmp(), tmp());
    let (killed, straight) = (folders.path(), more.path());
    let args = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            ["train", "--train-size", "1024", "--test-size", "64", "--batch", "32"]
                .map(String::from)
                .to_vec();
        v.extend(
            ["--epochs", "6", "--schedule", "cosine", "--threads", "2", "--out"].map(String::from),
        );
        v.push(out.to_str().expect("utf-8").to_string());
        v
    };
    let batches_per_epoch = 1024 / 32;
    let mut kills = 0;
    for delay_ms in [150u64, 260, 330, 420, 510, 640, 800] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_netc"));
        command.args(args(killed)).stdout(Stdio::null()).stderr(Stdio::null());
        if completed(killed).is_some() {
            command.arg("--resume");
        }
        let mut child = command.spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
        if let Some(epochs) = completed(killed) {
            let step = recorded(killed, "netc.step").expect("the step is recorded");
            assert_eq!(step, (epochs * batches_per_epoch) as u64, "weights and optimizer agree");
            let metrics =
                std::fs::read_to_string(killed.join("lenet5/metrics.csv")).expect("metrics");
            assert!(metrics.lines().count() > epochs, "metrics cover the checkpoint");
        }
        if completed(killed) == Some(6) {
            break;
        }
    }
    assert!(kills >= 2, "the loop killed the run mid-way at least twice");
    let mut finish = args(killed);
    if completed(killed).is_some() {
        finish.push("--resume".into());
    }
    let o = Command::new(env!("CARGO_BIN_EXE_netc")).args(&finish).output().expect("netc runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_netc")).args(args(straight)).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = std::fs::read(killed.join("lenet5/model.safetensors")).expect("weights");
    let b = std::fs::read(straight.join("lenet5/model.safetensors")).expect("weights");
    assert!(a == b, "the killed and resumed run diverged from the uninterrupted one");
}

/// A corrupt checkpoint is an error naming it, and is left as it was.
#[test]
fn resuming_from_a_corrupt_checkpoint_is_an_error_that_keeps_it() {
    let folder = tmp();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let first = netc(&[SMALL, &["--epochs", "1", "--out", o]].concat());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let path = out.join("lenet5/checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).expect("checkpoint");
    let half = bytes.len() / 2;
    bytes.truncate(half);
    std::fs::write(&path, &bytes).expect("write");
    let resumed = netc(&[SMALL, &["--epochs", "2", "--out", o, "--resume"]].concat());
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(!resumed.status.success());
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    assert_eq!(std::fs::read(&path).expect("still there"), bytes, "the file is untouched");
    let other_seed =
        netc(&[SMALL, &["--epochs", "2", "--out", o, "--resume", "--seed", "9"]].concat());
    assert!(!other_seed.status.success());
}

/// With a learning rate too small to move a weight, the loss never
/// improves, and `--patience 1` stops the run after its second epoch.
#[test]
fn early_stopping_ends_a_run_that_does_not_improve() {
    let folder = tmp();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let run = netc(
        &[SMALL, &["--epochs", "10", "--out", o, "--lr", "1e-30", "--patience", "1"]].concat(),
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(text.contains("stopped early"), "{text}");
    assert_eq!(completed(out), Some(2));
    assert!(out.join("lenet5/best.safetensors").is_file());
}

/// `--json` prints one parseable object per event.
#[test]
fn json_events_parse() {
    let folder = tmp();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let run = netc(
        &[
            SMALL,
            &[
                "--epochs",
                "2",
                "--out",
                o,
                "--json",
                "--schedule",
                "step",
                "--step-size",
                "1",
                "--gamma",
                "0.5",
            ],
        ]
        .concat(),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(kinds.last(), Some(&"end"));
    assert_eq!(kinds.iter().filter(|k| **k == "step").count(), 2 * 512 / 32);
    let epochs: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "epoch").collect();
    assert_eq!(epochs.len(), 2);
    let (lr1, lr2) = (epochs[0]["lr"].as_f64().expect("lr"), epochs[1]["lr"].as_f64().expect("lr"));
    assert!((lr2 - lr1 * 0.5).abs() < 1e-12, "step decay halves the rate: {lr1} {lr2}");
    let bad = netc(&["train", "--schedule", "step", "--epochs", "1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--step-size"));
}

/// An ImageFolder tree in `dir`: three classes (a horizontal bar, a
/// vertical bar, a filled square at varying places) of `per_class` images,
/// every third one a JPEG and every fourth 36x32 rather than 28x28, so the
/// folder source decodes both formats and resizes.
fn image_folder(dir: &Path, per_class: usize) {
    let mut state = 12345u32;
    let mut next = move |n: u32| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 16) % n
    };
    for (class, name) in ["horizontal", "square", "vertical"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(name)).expect("dir");
        for i in 0..per_class {
            let (w, h) = if i % 4 == 0 { (36, 32) } else { (28, 28) };
            let (a, b) = (6 + next(12), 6 + next(12));
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let on = match class {
                    0 => (a..a + 4).contains(&y) && (4..24).contains(&x),
                    1 => (a..a + 8).contains(&x) && (b..b + 8).contains(&y),
                    _ => (a..a + 4).contains(&x) && (4..24).contains(&y),
                };
                let v = if on { 230 } else { 20 } as u8;
                image::Rgb([v, v / 2 + (x * 3) as u8, v])
            });
            let path = if i % 3 == 0 {
                dir.join(name).join(format!("{i:03}.jpg"))
            } else {
                dir.join(name).join(format!("{i:03}.png"))
            };
            img.save(&path).expect("save image");
        }
    }
}

#[test]
fn an_image_folder_trains_with_a_held_out_split_and_augmentation() {
    let folder = tmp();
    let dir = folder.path();
    let images = dir.join("images");
    image_folder(&images, 40);
    let (d, o) = (images.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
    let args = ["train", "--model", "lenet5", "--images", d, "--val", "0.25", "--batch", "16"];
    let first = netc(&[&args[..], &["--epochs", "1", "--augment", "--out", o]].concat());
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}\n{text}", String::from_utf8_lossy(&first.stderr));
    assert!(text.contains("on 90 samples of the 120 images of 3 classes"), "{text}");
    assert!(text.contains("classes 0 = horizontal, 1 = square, 2 = vertical"), "{text}");
    assert!(
        text.contains("30 held out for evaluation") && text.contains("evaluating on 30"),
        "{text}"
    );
    assert!(text.contains("normalised by the training set's mean ["), "{text}");
    assert!(text.contains("epoch 1:") && text.contains("data wait"), "{text}");

    // Given statistics are used and said so.
    let given = netc(
        &[&args[..], &["--epochs", "1", "--mean", "0.5", "--std", "0.25", "--out", o]].concat(),
    );
    let text = String::from_utf8_lossy(&given.stdout);
    let err = String::from_utf8_lossy(&given.stderr);
    assert!(given.status.success(), "{err}");
    assert!(
        text.contains("normalised by --mean and --std mean [0.5000] and std [0.2500]"),
        "{text}"
    );
    // LeNet-5 scores ten classes; the folder has three.
    assert!(err.contains("warning: `lenet5` scores 10 classes") && err.contains("3 to 9"), "{err}");
}

/// With augmentation and a held-out split, one epoch then a resumed second
/// ends with the same weights as two epochs straight: the split, the
/// statistics and every crop and flip depend only on the seed.
/// Whether two safetensors files hold the same header (as JSON, whatever
/// the order of its keys) and the same tensor bytes.
fn same_tensors(a: &Path, b: &Path) -> bool {
    let split = |path: &Path| {
        let bytes = std::fs::read(path).expect("weights");
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + len]).expect("a JSON header");
        (header, bytes[8 + len..].to_vec())
    };
    split(a) == split(b)
}

#[test]
fn an_augmented_image_run_resumes_identically() {
    let folder = tmp();
    let dir = folder.path();
    let images = dir.join("images");
    image_folder(&images, 16);
    let d = images.to_str().expect("utf-8");
    let run = |out: &Path, epochs: &str, resume: bool| {
        let mut args = vec!["train", "--images", d, "--val", "0.25", "--augment", "--batch", "8"];
        args.extend(["--threads", "2", "--epochs", epochs, "--out", out.to_str().expect("utf-8")]);
        if resume {
            args.push("--resume");
        }
        let o = netc(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (straight, split) = (dir.join("straight"), dir.join("split"));
    run(&straight, "2", false);
    run(&split, "1", false);
    run(&split, "2", true);
    let (a, b) =
        (straight.join("lenet5/model.safetensors"), split.join("lenet5/model.safetensors"));
    assert!(
        same_tensors(&a, &b),
        "resumed augmented training diverged from uninterrupted training"
    );
}

#[test]
fn bad_image_folders_and_flags_are_errors() {
    let folder = tmp();
    let dir = folder.path();
    let images = dir.join("images");
    image_folder(&images, 4);
    let d = images.to_str().expect("utf-8");
    let out = dir.to_str().expect("utf-8");
    let fails = |args: &[&str], want: &[&str]| {
        let o = netc(&[&["train", "--epochs", "1", "--out", out][..], args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{err}");
        for w in want {
            assert!(err.contains(w), "`{w}` missing from: {err}");
        }
    };
    fails(&["--images", d], &["no test split", "--val"]);
    fails(&["--val", "0.2"], &["--val", "synthetic digits", "own test split"]);
    fails(&["--images", d, "--val", "1.5"], &["--val 1.5", "between 0 and 1"]);
    fails(&["--model", "mlp", "--images", d, "--val", "0.5"], &["--images", "[784]"]);
    fails(&["--images", d, "--val", "0.5", "--mean", "0.5,0.5", "--std", "1"], &["--mean has 2"]);
    fails(&["--images", d, "--val", "0.5", "--mean", "0.5", "--std", "0"], &["--std 0"]);
    fails(&["--images", d, "--csv", d], &["cannot be used with"]);
    std::fs::write(images.join("square/zz.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
    fails(&["--images", d, "--val", "0.5"], &["zz.png", "not a readable PNG or JPEG"]);
    fails(&["--images", &dir.join("nowhere").to_string_lossy(), "--val", "0.5"], &["nowhere"]);
}

/// A tiny MLP `.net` file trains on a CSV table with named classes.
#[test]
fn a_csv_table_trains_a_net_file() {
    let folder = tmp();
    let dir = folder.path();
    let file = dir.join("table.net");
    std::fs::write(
        &file,
        "network Table {\n    input x: [3]\n    \
         logits = x -> dense(16) -> relu -> dense(3)\n    \
         loss cross_entropy(logits)\n    optimizer adam(lr: 1e-2)\n}\n",
    )
    .expect("write");
    // Three well-separated clusters; the label is a name in the middle.
    let mut csv = String::from("x,kind,y,z\n");
    for i in 0..240 {
        let class = i % 3;
        let jitter = |k: usize| ((i * 37 + k * 11) % 17) as f32 / 17.0 - 0.5;
        let centre = [(-2.0, 0.0), (2.0, 1.0), (0.0, -2.0)][class];
        let name = ["ruby", "amber", "jade"][class];
        let (x, y, z) = (centre.0 + jitter(0), centre.1 + jitter(1), jitter(2));
        csv.push_str(&format!("{x},{name},{y},{z}\n"));
    }
    let table = dir.join("gems.csv");
    std::fs::write(&table, csv).expect("write");
    let (f, t, o) = (
        file.to_str().expect("utf-8"),
        table.to_str().expect("utf-8"),
        dir.to_str().expect("utf-8"),
    );
    let args = ["train", f, "--csv", t, "--label-column", "kind", "--val", "0.25"];
    let run = common::netc(&[&args[..], &["--epochs", "5", "--batch", "16", "--out", o]].concat());
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}\n{text}", String::from_utf8_lossy(&run.stderr));
    assert!(text.contains("3 features: x, y, z"), "{text}");
    assert!(text.contains("classes 0 = amber, 1 = jade, 2 = ruby"), "{text}");
    assert!(text.contains("60 held out for evaluation"), "{text}");
    let accuracy: f64 = text
        .lines()
        .rev()
        .find_map(|l| l.split("val accuracy ").nth(1)?.split('%').next()?.parse().ok())
        .expect("a test accuracy");
    assert!(accuracy > 90.0, "separated clusters are learnt: {text}");

    // A ragged row is an error naming the file and the line.
    std::fs::write(&table, "x,kind,y,z\n1,ruby,2,3\n4,jade,5\n").expect("write");
    let bad = common::netc(&[&args[..], &["--epochs", "1", "--out", o]].concat());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("gems.csv") && err.contains("line 3 has 3 fields"), "{err}");
    // A missing label column too.
    let missing =
        common::netc(&["train", f, "--csv", t, "--label-column", "colour", "--val", "0.5"]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("gems.csv") && err.contains("`colour`"), "{err}");
}
