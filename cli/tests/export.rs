//! `netc export`: the files it writes run in onnxruntime as netc runs the
//! network. onnxruntime's outputs on each small model's export were saved
//! by bench/peers/onnx_export_check.py (tests/onnx/export/*.ort.safetensors);
//! here the same export is made again (the weights drawn from seed 0), its
//! weights read back from the file, and netc's f64 interpreter compared
//! with those outputs, so no Python is needed.

mod common;
use common::{netc, root, scratch};
use netc_dsl::import::onnx::proto::decode_model;
use netc_dsl::interp::{self, Mode};
use netc_runtime::weights::WeightsFile;
use std::path::{Path, PathBuf};

fn export_fixture(name: &str) -> PathBuf {
    root().join("tests/onnx/export").join(name)
}

/// The `.net` file of a model the fixtures cover.
fn net_file(model: &str) -> PathBuf {
    if model == "every_op" {
        export_fixture("every_op.net")
    } else {
        root().join("cli/models").join(format!("{model}.net"))
    }
}

fn read_tensor(path: &Path, name: &str) -> Vec<f64> {
    let mut file = WeightsFile::open(path).expect("fixture");
    let shape = file.shape(name).expect("tensor");
    let mut values = vec![0f32; shape.iter().product()];
    file.read_into(name, &shape, &mut values).expect("read");
    values.into_iter().map(f64::from).collect()
}

/// Exports `model` as the fixture script did and returns the worst
/// difference of netc's output from onnxruntime's, relative to its largest.
fn worst_difference(model: &str, dir: &Path) -> f64 {
    let onnx = dir.join(format!("{model}.onnx"));
    let net = net_file(model);
    let args = ["export".as_ref(), net.as_os_str(), "-o".as_ref(), onnx.as_os_str()];
    let out = netc(
        &[&args[..], &["--batch".as_ref(), "2".as_ref(), "--seed".as_ref(), "0".as_ref()]].concat(),
    );
    assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
    let file = decode_model(&std::fs::read(&onnx).expect("the export")).expect("decodes");
    let weights: interp::Weights =
        file.graph.initializer.iter().map(|t| (t.name.clone(), t.values.clone())).collect();
    let source = std::fs::read_to_string(&net).expect("the .net file");
    let checked = netc_dsl::check_source(model, &source).expect("checks");
    let g = &checked.graphs[0];
    let io = export_fixture(&format!("{model}.ort.safetensors"));
    let (x, want) = (read_tensor(&io, "input"), read_tensor(&io, "output"));
    let outputs = interp::run(g, &weights, &[&x], 2, Mode::Infer).expect("runs");
    let got = interp::output(g, &outputs);
    assert_eq!(got.len(), want.len(), "{model}: output size");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / scale).fold(0.0, f64::max);
    eprintln!("{model}: netc vs onnxruntime on netc's export, worst difference {worst:.1e}");
    worst
}

#[test]
fn exports_run_in_onnxruntime_as_in_netc() {
    let folder = scratch();
    let dir = folder.path();
    for model in ["every_op", "lenet5", "mlp", "linear", "resnet20", "autoencoder"] {
        assert!(worst_difference(model, dir) < 1e-5, "{model}");
    }
}

/// An imported model's weights, exported again by `--weights`, are the
/// initializers of the new file, under the same names.
#[test]
fn weights_given_are_the_files_initializers() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("lenet.net");
    let fixture = root().join("tests/onnx/lenet5.onnx");
    let out = netc(&["import".as_ref(), fixture.as_os_str(), "-o".as_ref(), net.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let weights = dir.join("lenet.safetensors");
    let onnx = dir.join("again.onnx");
    let out = netc(&[
        "export".as_ref(),
        net.as_os_str(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "-o".as_ref(),
        onnx.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = decode_model(&std::fs::read(&onnx).expect("export")).expect("decodes");
    let original = decode_model(&std::fs::read(&fixture).expect("fixture")).expect("decodes");
    for t in &original.graph.initializer {
        let again = file.graph.initializer.iter().find(|a| a.name == t.name);
        assert_eq!(again.map(|a| &a.values), Some(&t.values), "{}", t.name);
    }
}

#[test]
fn a_layer_without_an_onnx_form_writes_nothing() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("odd.net");
    std::fs::write(&net, "network Odd {\n    input x: [4, 6, 6]\n    output x -> lrn(2)\n}\n")
        .expect("write");
    let onnx = dir.join("odd.onnx");
    let out = netc(&["export".as_ref(), net.as_os_str(), "-o".as_ref(), onnx.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layer `lrn1` (`lrn`) cannot be exported") && err.contains("odd.net:3"),
        "{err}"
    );
    assert!(!onnx.exists(), "nothing is written");
}
