//! Data-parallel training with ranks that are threads of one process
//! (`--local-ranks`): the same steps as MPI ranks, checked against the
//! single-process steps they must equal.

mod common;

use common::{netc, relative_difference, scratch};
use std::path::{Path, PathBuf};

/// Trains `model` for one epoch of `steps` steps of 32 samples (seed 1)
/// into `out`, with `extra` flags, and returns the weights file.
fn steps(model: &str, steps: usize, out: &Path, extra: &[&str]) -> PathBuf {
    let o = out.to_str().expect("utf-8");
    let samples = (32 * steps).to_string();
    let base = ["train", "--model", model, "--train-size", &samples, "--test-size", "256"];
    let args = [&base[..], &["--batch", "32", "--epochs", "1", "--out", o], extra].concat();
    let run = netc(&args);
    assert!(run.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&run.stderr));
    out.join(model).join("model.safetensors")
}

/// Two ranks split each batch as the two threads of LeNet-5's sharded step
/// do, and weight and add their gradients alike: the same bits.
#[test]
fn two_ranks_equal_the_sharded_step_bit_for_bit() {
    let folder = scratch();
    let dir = folder.path();
    let ranks = ["--local-ranks", "2", "--threads", "1", "--check-replicas"];
    let a = steps("lenet5", 100, &dir.join("ranks"), &ranks);
    let b = steps("lenet5", 100, &dir.join("threads"), &["--threads", "2"]);
    assert!(std::fs::read(a).unwrap() == std::fs::read(b).unwrap(), "the weights differ");
}

/// Summing the gradients bucket by bucket beside the backward pass gives
/// the bits of summing them after it on two ranks, for a network of
/// several buckets (the MLP). On three, the ring cuts each bucket in
/// three rather than the whole vector, so sums are associated differently:
/// the same to rounding, and the same bits from run to run.
#[test]
fn summing_beside_the_backward_pass_gives_the_sums_of_summing_after_it() {
    let folder = scratch();
    let dir = folder.path();
    for ranks in ["2", "3"] {
        // Buckets of 64k values: the MLP's three layers fill three.
        let flags =
            ["--local-ranks", ranks, "--threads", "1", "--check-replicas", "--bucket-mb", "0.25"];
        let beside = steps("mlp", 20, &dir.join("beside"), &flags);
        let again = steps("mlp", 20, &dir.join("again"), &flags);
        let after_flags = [&flags[..], &["--sum-after-backward"]].concat();
        let after = steps("mlp", 20, &dir.join("after"), &after_flags);
        let read = |p: &Path| std::fs::read(p).unwrap();
        assert!(read(&beside) == read(&again), "{ranks} ranks: runs differ");
        if ranks == "2" {
            assert!(read(&beside) == read(&after), "2 ranks: the weights differ");
        } else {
            let difference = relative_difference(&beside, &after);
            assert!(difference < 1e-6, "3 ranks: relative difference {difference:e}");
        }
    }
}

/// Against the plain step on the whole batch, two ranks differ only by the
/// rounding of their sums; and two runs are identical. The MLP stays
/// within 1e-5 for 100 steps. LeNet-5 does for 10; by 100, a rounding
/// difference has flipped a max-pool tie and moved conv1 by about 2e-4,
/// as it does between the plain step on one thread and on two.
#[test]
fn two_ranks_equal_the_plain_step_to_rounding() {
    let folder = scratch();
    let dir = folder.path();
    let ranks = ["--local-ranks", "2", "--threads", "1"];
    for (model, n) in [("mlp", 100), ("lenet5", 10)] {
        let a = steps(model, n, &dir.join("ranks"), &ranks);
        let again = steps(model, n, &dir.join("again"), &ranks);
        let plain = steps(model, n, &dir.join("plain"), &["--threads", "1"]);
        let difference = relative_difference(&a, &plain);
        assert!(difference < 1e-5, "{model}: relative difference {difference:e}");
        assert!(difference > 0.0, "{model}: the ranks' run is the plain run itself");
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(again).unwrap(),
            "{model}: runs differ"
        );
    }
}

/// A checkpoint written by two ranks resumes in one process (whose threads
/// shard the step as the ranks did) exactly where an uninterrupted run is.
#[test]
fn a_checkpoint_resumes_with_another_number_of_ranks() {
    let folder = scratch();
    let dir = folder.path();
    let run = |out: &str, epochs: &str, extra: &[&str]| {
        let o = dir.join(out);
        let base = ["train", "--model", "lenet5", "--train-size", "1024", "--test-size", "128"];
        let tail = ["--batch", "32", "--epochs", epochs, "--out", o.to_str().expect("utf-8")];
        let r = netc(&[&base[..], &tail, extra].concat());
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        o.join("lenet5/model.safetensors")
    };
    let two_ranks = ["--local-ranks", "2", "--threads", "1"];
    let straight = run("straight", "2", &two_ranks);
    run("split", "1", &two_ranks);
    let resumed = run("split", "2", &["--threads", "2", "--resume"]);
    assert!(std::fs::read(straight).unwrap() == std::fs::read(resumed).unwrap());
}

/// More ranks than samples in a batch is an error before any step.
#[test]
fn a_batch_smaller_than_the_ranks_is_an_error() {
    let folder = scratch();
    let out = folder.path();
    let o = out.to_str().expect("utf-8");
    let r =
        netc(&["train", "--local-ranks", "3", "--batch", "2", "--train-size", "64", "--out", o]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("--batch 2 is smaller than the 3 ranks"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "said once: {err}");
    assert!(!out.join("lenet5/checkpoint.safetensors").exists());
}

/// A network with dropout, whose masks must not repeat across ranks.
const DROPOUT_NET: &str = "network Dropped {\n    input x: [1, 28, 28]\n    \
    logits = x -> flatten -> dense(64) -> relu -> dropout(0.5) -> dense(10)\n    \
    loss cross_entropy(logits)\n    optimizer sgd(lr: 0.05)\n}\n";

/// Each rank numbers its samples from its share's place in the whole
/// batch, so two ranks draw the dropout masks one process draws for the
/// same samples, and train as it does to rounding.
#[test]
fn ranks_draw_the_whole_batch_dropout_masks() {
    let folder = scratch();
    let dir = folder.path();
    let file = dir.join("dropped.net");
    std::fs::write(&file, DROPOUT_NET).expect("write");
    let f = file.to_str().expect("utf-8");
    let run = |out: &str, extra: &[&str]| {
        let o = dir.join(out);
        let base = ["train", f, "--train-size", "640", "--test-size", "64", "--batch", "32"];
        let tail = ["--epochs", "1", "--out", o.to_str().expect("utf-8")];
        let r = netc(&[&base[..], &tail, extra].concat());
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        o.join("dropped/model.safetensors")
    };
    let ranks = run("ranks", &["--local-ranks", "2", "--threads", "1"]);
    let plain = run("plain", &["--threads", "1"]);
    let difference = relative_difference(&ranks, &plain);
    assert!(difference < 1e-5, "relative difference {difference:e}");
}
