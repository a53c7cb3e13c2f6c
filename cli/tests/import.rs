//! `netc import`: the files it writes check and hold the weights the
//! network names; a model it cannot import leaves nothing behind.

mod common;
use common::{netc, scratch};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/onnx").join(name)
}

#[test]
fn import_writes_a_net_file_that_checks_and_its_weights() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("lenet.net");
    let out = netc(&[
        "import".as_ref(),
        fixture("lenet5.onnx").as_os_str(),
        "-o".as_ref(),
        net.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let source = std::fs::read_to_string(&net).expect("the .net file");
    assert!(source.contains("network Lenet5") && source.contains("dense(10) as fc3"), "{source}");
    let checked = netc_dsl::check_source("lenet.net", &source).expect("it checks");
    assert_eq!(checked.graphs[0].total_params(), 61_706);
    let weights = std::fs::read(dir.join("lenet.safetensors")).expect("the weights");
    let bytes = std::fs::read(fixture("lenet5.onnx")).expect("fixture");
    let imported = netc_dsl::import::onnx::import(&bytes, "Lenet5").expect("import");
    assert_eq!(weights, imported.safetensors(), "the library's weights, byte for byte");
    let names: Vec<&str> = imported.weights.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names.len(), 10);
    assert!(names.contains(&"conv1.weight") && names.contains(&"fc3.bias"), "{names:?}");
}

#[test]
fn an_unsupported_model_writes_nothing() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("u.net");
    let out = netc(&[
        "import".as_ref(),
        fixture("unsupported.onnx").as_os_str(),
        "-o".as_ref(),
        net.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node `erf0` (op `Erf`, opset 17)"), "{stderr}");
    assert!(!net.exists() && !dir.join("u.safetensors").exists());
}
