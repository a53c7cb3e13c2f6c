//! `mpirun -np N netc train`: MPI ranks train bit for bit as the same
//! ranks as threads of one process do, over shared memory and over TCP;
//! one rank is a plain run; ranks that disagree on the network or fail to
//! load their data stop before any step; a killed rank ends the job and
//! leaves a checkpoint that resumes. Built only with the `mpi` feature,
//! which needs MPI installed (`.ci/run` installs Open MPI).
#![cfg(feature = "mpi")]

mod common;

use common::{netc, root, scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpirun` with `args`, from the workspace root, allowed to run as root
/// (CI does), with as many ranks as asked whatever the cores.
fn mpirun_command(args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.arg("--oversubscribe")
        .args(args)
        .current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("NETC_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("netc-cache"));
    c
}

fn mpirun(args: &[&str]) -> Output {
    mpirun_command(args).output().expect("mpirun runs: this test needs Open MPI installed")
}

const NETC: &str = env!("CARGO_BIN_EXE_netc");

/// The flags of a 100-step run of `model` into `out`.
fn hundred_steps(model: &str, out: &Path) -> Vec<String> {
    let o = out.to_str().expect("utf-8");
    ["train", "--model", model, "--train-size", "3200", "--test-size", "256", "--batch", "32"]
        .iter()
        .chain(&["--epochs", "1", "--threads", "1", "--check-replicas", "--out", o])
        .map(|s| s.to_string())
        .collect()
}

fn checkpoint(out: &Path, model: &str) -> Vec<u8> {
    std::fs::read(out.join(model).join("checkpoint.safetensors")).expect("a checkpoint")
}

fn succeeded(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Two MPI ranks give the checkpoint (weights, optimizer state and the
/// evaluation's figures) of two ranks that are threads of one process,
/// byte for byte, over shared memory and over TCP: so two MPI runs are
/// identical too.
#[test]
fn two_ranks_equal_ranks_in_one_process_over_shared_memory_and_tcp() {
    let folder = scratch();
    let dir = folder.path();
    for model in ["mlp", "lenet5"] {
        let local = dir.join(format!("{model}-local"));
        let mut args = hundred_steps(model, &local);
        args.extend(["--local-ranks".into(), "2".into()]);
        succeeded(&netc(&args), "local ranks");
        for (transport, mca) in [("shared memory", "vader,self"), ("tcp", "tcp,self")] {
            let out = dir.join(format!("{model}-{}", transport.replace(' ', "-")));
            let mut args = vec!["--mca", "btl", mca, "-np", "2", NETC];
            let flags = hundred_steps(model, &out);
            args.extend(flags.iter().map(String::as_str));
            succeeded(&mpirun(&args), transport);
            assert!(
                checkpoint(&out, model) == checkpoint(&local, model),
                "{model} over {transport}: the checkpoint differs from the local ranks'"
            );
        }
    }
}

/// `mpirun -np 1` is the plain run.
#[test]
fn one_rank_is_the_plain_run() {
    let folder = scratch();
    let dir = folder.path();
    let (alone, ranked) = (dir.join("alone"), dir.join("ranked"));
    succeeded(&netc(&hundred_steps("mlp", &alone)), "alone");
    let flags = hundred_steps("mlp", &ranked);
    let args: Vec<&str> =
        ["-np", "1", NETC].into_iter().chain(flags.iter().map(String::as_str)).collect();
    succeeded(&mpirun(&args), "one rank");
    assert!(checkpoint(&alone, "mlp") == checkpoint(&ranked, "mlp"));
}

/// Two ranks given different networks (MPI's `:` starts each with its own
/// command line) stop before any step, saying so once, and write nothing.
#[test]
fn ranks_with_different_networks_stop_before_training() {
    let folder = scratch();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let tail = ["--train-size", "256", "--epochs", "1", "--out", o];
    let mut args = vec!["-np", "1", NETC, "train", "--model", "lenet5"];
    args.extend(tail);
    args.extend([":", "-np", "1", NETC, "train", "--model", "mlp"]);
    args.extend(tail);
    let run = mpirun(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("of rank 1 differ from rank 0's"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "said once: {err}");
    assert!(!out.join("lenet5").join("checkpoint.safetensors").exists());
}

/// A rank that cannot read its data stops the job before any step: it
/// says why, rank 0 says which rank failed.
#[test]
fn a_rank_without_its_data_stops_the_job() {
    let folder = scratch();
    let out = folder.path();
    let missing = out.join("no-such-dir");
    let (o, m) = (out.to_str().expect("utf-8"), missing.to_str().expect("utf-8"));
    let tail = ["train", "--train-size", "256", "--epochs", "1", "--out", o];
    let mut args = vec!["-np", "1", NETC];
    args.extend(tail);
    args.extend([":", "-np", "1", NETC]);
    args.extend(tail);
    args.extend(["--data", m]);
    let run = mpirun(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("error: rank 1: `") && err.contains("no-such-dir"), "{err}");
    assert!(err.contains("error: rank 1 could not load its data"), "{err}");
    assert!(!out.join("lenet5").join("checkpoint.safetensors").exists());
}

/// The process of MPI rank `rank` whose command line mentions `marker`.
fn rank_process(rank: usize, marker: &str) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let has = |bytes: &[u8], text: &str| bytes.split(|&b| b == 0).any(|s| s == text.as_bytes());
        (has(&cmdline, marker) && has(&environ, &wanted)).then_some(pid)
    })
}

fn completed_epochs(dir: &Path) -> u64 {
    let file = netc_runtime::weights::WeightsFile::open(&dir.join("checkpoint.safetensors"))
        .expect("the checkpoint opens");
    file.metadata("netc.completed_epochs").expect("epochs").parse().expect("a number")
}

/// `kill -9` of one rank mid-training ends the whole job within 30 s with
/// an error naming the rank; the last checkpoint is whole, and training
/// resumes from it.
#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_resumes() {
    let folder = scratch();
    let out = folder.path();
    let o = out.to_str().expect("utf-8").to_string();
    let flags = ["train", "--train-size", "1024", "--test-size", "128", "--batch", "32"];
    let mut args = vec!["-np", "2", NETC];
    args.extend(flags);
    args.extend(["--epochs", "10000", "--threads", "1", "--out", &o]);
    let mut job = mpirun_command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let run_dir: PathBuf = out.join("lenet5");
    let started = Instant::now();
    while !run_dir.join("checkpoint.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint after 2 minutes");
        assert!(job.try_wait().expect("wait").is_none(), "the job ended before its first epoch");
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = rank_process(1, &o).expect("rank 1's process");
    let killed = Command::new("kill").args(["-9", &victim.to_string()]).status().expect("kill");
    assert!(killed.success());
    let killed_at = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().expect("wait") {
            break status;
        }
        if killed_at.elapsed() > Duration::from_secs(30) {
            let _ = job.kill();
            panic!("the job still runs 30 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = job.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(err.contains("rank 1"), "{err}");
    let epochs = completed_epochs(&run_dir);
    assert!(epochs >= 1);
    let more = (epochs + 1).to_string();
    let resume = [&flags[..], &["--epochs", &more, "--resume", "--out", &o]].concat();
    succeeded(&netc(&resume), "resume");
    assert_eq!(completed_epochs(&run_dir), epochs + 1);
}

/// ResNet-20 (batch norm: each rank normalises its share by its own
/// statistics, and the ranks average their running statistics before
/// evaluating) learns on two ranks as in one process: test accuracies
/// within 0.5 points after 2 epochs on a CIFAR-shaped set. The rate decays
/// to 0 by the end (cosine), so that the figure is the trained model's, not
/// one of the swings of a run still at its full rate.
#[test]
fn resnet20_on_two_ranks_learns_as_one_process() {
    let folder = scratch();
    let dir = folder.path();
    let data = dir.join("cifar");
    std::fs::create_dir_all(&data).expect("dir");
    common::learnable_cifar(&data, 800, 1000);
    let d = data.to_str().expect("utf-8").to_string();
    let accuracy = |out: &Path| -> f64 {
        let metrics = std::fs::read_to_string(out.join("resnet20/metrics.csv")).expect("metrics");
        let last = metrics.lines().last().expect("a row");
        last.split(',').nth(4).expect("val_accuracy").parse().expect("a number")
    };
    let flags = |out: &Path| -> Vec<String> {
        let o = out.to_str().expect("utf-8");
        ["train", "--model", "resnet20", "--cifar", &d, "--batch", "32", "--epochs", "2"]
            .iter()
            .chain(&["--schedule", "cosine", "--out", o])
            .map(|s| s.to_string())
            .collect()
    };
    let (one, two) = (dir.join("one"), dir.join("two"));
    succeeded(&netc(&flags(&one)), "one process");
    let mut args = vec!["-np", "2", NETC];
    let ranked = flags(&two);
    args.extend(ranked.iter().map(String::as_str));
    args.extend(["--threads", "1", "--check-replicas"]);
    succeeded(&mpirun(&args), "two ranks");
    let (a, b) = (accuracy(&one), accuracy(&two));
    eprintln!("ResNet-20 test accuracy after 2 epochs: one process {a}, two ranks {b}");
    assert!((a - b).abs() <= 0.005, "one process {a}, two ranks {b}");
    assert!(a > 0.9, "the set is learnable: {a}");
}
