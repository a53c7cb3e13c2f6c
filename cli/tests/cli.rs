//! `netc check` end to end: tables, JSON counts, exit codes and diagnostics.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("netc runs")
}

fn json_of(model: &str) -> serde_json::Value {
    let out = netc(&["check", "--json", &format!("models/{model}.net")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn json_totals_equal_the_published_counts() {
    let expected = [
        ("lenet5", 61_706, 416_520),
        ("mlp", 535_818, 535_040),
        ("alexnet", 62_378_344, 1_135_256_096u64),
        ("resnet20", 272_474, 40_813_184),
    ];
    for (model, params, macs) in expected {
        let v = json_of(model);
        assert_eq!(v["total_params"], params, "{model}");
        assert_eq!(v["total_macs"], macs, "{model}");
        let layers = v["layers"].as_array().expect("layers");
        let sum: u64 = layers.iter().map(|l| l["params"].as_u64().expect("params")).sum();
        assert_eq!(sum, params as u64, "{model}: layer params add up to the total");
    }
    assert_eq!(json_of("resnet18")["total_params"], 11_689_512);
    assert_eq!(json_of("vgg11")["total_params"], 132_863_336);
}

#[test]
fn table_lists_every_layer_with_totals() {
    let out = netc(&["check", "models/lenet5.net"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for needle in ["conv1", "conv2", "fc3", "[16, 5, 5]", "61,706", "416,520"] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn bad_input_exits_non_zero_with_a_located_diagnostic() {
    let out = netc(&["check", "dsl/tests/data/err/dense_in_mismatch.net"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert!(err.contains("dsl/tests/data/err/dense_in_mismatch.net:6:19"), "{err}");
    assert!(err.contains("expects 1024 input features, found 400"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let out = netc(&["check", "models/no_such_model.net"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert!(err.contains("cannot read `models/no_such_model.net`"), "{err}");
}
