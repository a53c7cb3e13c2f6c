//! `netc import` of Caffe nets: the prototxt alone writes the `.net` only;
//! with `--weights` the safetensors file holds the library's weights; a
//! syntax error names the file, line and column and writes nothing.

#[path = "../../dsl/tests/caffe_support/mod.rs"]
mod caffe_support;
mod common;

use caffe_support::Rng;
use common::{netc, scratch};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/caffe").join(name)
}

#[test]
fn a_prototxt_alone_writes_the_net_and_no_weights() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("deploy.net");
    let out = netc(&[
        "import".as_ref(),
        fixture("lenet.prototxt").as_os_str(),
        "-o".as_ref(),
        net.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no weights file"), "{stdout}");
    let source = std::fs::read_to_string(&net).expect("the .net file");
    assert!(source.contains("network LeNet"), "the prototxt's own name:\n{source}");
    let checked = netc_dsl::check_source("deploy.net", &source).expect("it checks");
    assert_eq!(checked.graphs[0].total_params(), 431_080);
    assert!(!dir.join("deploy.safetensors").exists());
}

#[test]
fn weights_go_to_a_safetensors_file_beside_the_net() {
    let folder = scratch();
    let dir = folder.path();
    let mut rng = Rng::new(5);
    let layers = [
        ("conv1", "Convolution", vec![rng.weights(&[20, 1, 5, 5], 25), rng.blob(&[20], -0.1, 0.1)]),
        (
            "conv2",
            "Convolution",
            vec![rng.weights(&[50, 20, 5, 5], 500), rng.blob(&[50], -0.1, 0.1)],
        ),
        ("ip1", "InnerProduct", vec![rng.weights(&[500, 800], 800), rng.blob(&[500], -0.1, 0.1)]),
        ("ip2", "InnerProduct", vec![rng.weights(&[10, 500], 500), rng.blob(&[10], -0.1, 0.1)]),
    ];
    let model = caffe_support::caffemodel("LeNet", &layers);
    let model_path = dir.join("lenet.caffemodel");
    std::fs::write(&model_path, &model).expect("write the caffemodel");
    let net = dir.join("lenet.net");
    let out = netc(&[
        "import".as_ref(),
        fixture("lenet_v1.prototxt").as_os_str(),
        "--weights".as_ref(),
        model_path.as_os_str(),
        "-o".as_ref(),
        net.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(fixture("lenet_v1.prototxt")).expect("fixture");
    let options = netc_dsl::import::caffe::Options::default();
    let imported =
        netc_dsl::import::caffe::import(&text, Some(&model), "LeNet", &options).expect("import");
    let weights = std::fs::read(dir.join("lenet.safetensors")).expect("the weights");
    assert_eq!(weights, imported.safetensors(), "the library's weights, byte for byte");
    assert_eq!(std::fs::read_to_string(&net).expect("the .net"), imported.source);
}

#[test]
fn a_syntax_error_names_the_place_and_writes_nothing() {
    let folder = scratch();
    let dir = folder.path();
    let bad = dir.join("bad.prototxt");
    std::fs::write(&bad, "name: \"Bad\"\nlayer {\n  name: \"a\"\n  type \"Input\"\n}\n")
        .expect("write");
    let net = dir.join("bad.net");
    let out = netc(&["import".as_ref(), bad.as_os_str(), "-o".as_ref(), net.as_os_str()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.prototxt:4:"), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
    assert!(!net.exists() && !dir.join("bad.safetensors").exists());
}
