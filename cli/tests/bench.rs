//! `netc bench` end to end: the per-layer table, its JSON form, a `.net`
//! file built and timed like `train`, and bad arguments.

mod common;
use common::{netc, scratch, TINY_NET};

/// Few runs: these tests check what is printed, not how fast.
const QUICK: &[&str] = &["--runs", "3", "--seconds", "0"];

/// The layer names of `cli/models/<model>.net`, as `netc check --json` gives them.
fn layers_of(model: &str) -> Vec<String> {
    let out = netc(&["check", "--json", &format!("cli/models/{model}.net")]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let layers = v["layers"].as_array().expect("layers");
    layers.iter().map(|l| l["name"].as_str().expect("name").to_string()).collect()
}

#[test]
fn lenet5_table_has_every_layer_and_the_totals() {
    let out = netc(
        &[&["bench", "--model", "lenet5", "--batch", "8", "--threads", "2"][..], QUICK].concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    let layers = layers_of("lenet5");
    assert_eq!(layers.len(), 13);
    for name in &layers {
        let rows = text.lines().filter(|l| l.split_whitespace().next() == Some(name)).count();
        assert_eq!(rows, 1, "layer {name} once in:\n{text}");
    }
    for needle in [
        "forward ms",
        "backward ms",
        "% of step",
        "train GFLOP/s",
        "(loss)",
        "FP32 FMA peak of 2 threads",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    for (total, batch) in [
        ("training step, kernel by kernel", 8),
        ("training step, train_step (as netc train)", 8),
        ("inference", 1),
        ("inference", 8),
    ] {
        let at = format!("batch {batch:>4}:");
        let found = text.lines().any(|l| l.starts_with(total) && l.contains(&at));
        assert!(found, "no {total} row at batch {batch} in:\n{text}");
    }
    // conv1's row: a forward and a backward time in milliseconds.
    let conv1 = text.lines().find(|l| l.starts_with("conv1 ")).expect("conv1 row");
    let numbers: Vec<f64> = conv1.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(numbers.len() >= 4 && numbers[0] > 0.0 && numbers[1] > 0.0, "{conv1}");
}

#[test]
fn json_has_one_object_per_layer_and_per_total() {
    let args =
        [&["bench", "--model", "lenet5", "--batch", "4", "--json", "--threads", "1"][..], QUICK];
    let out = netc(&args.concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
    let of = |kind: &'static str| records.iter().filter(move |r| r["record"] == kind);
    let names: Vec<&str> = of("layer").map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, layers_of("lenet5"));
    for layer in of("layer") {
        assert!(layer["forward_ns"].is_u64() && layer["backward_ns"].is_u64(), "{layer}");
        assert!(layer["share_of_step"].as_f64().is_some_and(|s| s >= 0.0), "{layer}");
    }
    let conv1 = of("layer").find(|r| r["name"] == "conv1").expect("conv1");
    assert_eq!(conv1["flops_per_sample"], 239_904, "the checker's count");
    assert_eq!(of("loss").count(), 1);
    let totals: Vec<&serde_json::Value> = of("total").collect();
    assert_eq!(totals.len(), 4);
    let batches: Vec<Option<u64>> = totals.iter().map(|t| t["batch"].as_u64()).collect();
    assert_eq!(batches, [Some(4), Some(4), Some(1), Some(4)]);
    for t in totals {
        assert!(t["median_ns"].as_u64().is_some_and(|ns| ns > 0), "{t}");
        assert!(t["peak_gflops"].as_f64().is_some_and(|p| p > 0.0), "{t}");
        assert!(t["runs"].as_u64().is_some_and(|r| r >= 3), "{t}");
    }
}

/// The README's network as a file outside the repository: built (or found
/// in the cache the train tests share) and timed with the same arguments.
#[test]
fn a_net_file_is_built_and_timed() {
    let folder = scratch();
    let dir = folder.path();
    let file = dir.join("tiny.net");
    std::fs::write(&file, TINY_NET).expect("write");
    let f = file.to_str().expect("utf-8");
    let out = netc(&[&["bench", f, "--batch", "2", "--json"][..], QUICK].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .filter(|r| r["record"] == "layer")
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect();
    let expected = ["x", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten1", "fc1"];
    assert_eq!(names, expected);
}

#[test]
fn bad_arguments_are_errors() {
    for args in
        [&["bench", "--batch", "0"][..], &["bench", "--model", "nope"], &["bench", "--runs", "0"]]
    {
        let out = netc(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}");
    }
}
