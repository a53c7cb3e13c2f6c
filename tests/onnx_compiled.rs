//! ONNX files compiled by `Builder` (tests/build.rs imports them at build
//! time and embeds their weights), run by the generated code on the input
//! saved beside each and compared with onnxruntime's output within 1e-5
//! of its largest value.

use netc::runtime::weights::WeightsFile;
use netc_tests::nets::breadth::Breadth;
use netc_tests::nets::lrn_cnn::LrnCnn;
use netc_tests::nets::resnet20_cifar::Resnet20Cifar;
use netc_tests::nets::small_cnn::SmallCnn;
use std::path::PathBuf;

/// The saved `input` and onnxruntime's `output` of `tests/onnx/<stem>`.
fn io(stem: &str) -> (Vec<f32>, Vec<f32>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("onnx")
        .join(format!("{stem}.io.safetensors"));
    let mut file = WeightsFile::open(&path).expect("the fixture");
    let mut read = |name: &str| {
        let shape = file.shape(name).expect("tensor");
        let mut values = vec![0f32; shape.iter().product()];
        file.read_into(name, &shape, &mut values).expect("read");
        values
    };
    (read("input"), read("output"))
}

fn worst(stem: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{stem}: output size");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs() / scale).fold(0.0, f32::max);
    eprintln!("{stem}: compiled vs onnxruntime, worst difference {worst:.1e}");
    worst
}

#[test]
fn small_cnn_compiled_from_onnx_matches_onnxruntime() {
    let (x, want) = io("small_cnn");
    let model = SmallCnn::embedded().expect("embedded weights");
    let mut y = vec![0f32; want.len()];
    model.forward_flat(&x, &mut y).expect("forward");
    assert!(worst("small_cnn", &y, &want) < 1e-5);
}

#[test]
fn breadth_compiled_from_onnx_matches_onnxruntime() {
    let (x, want) = io("breadth");
    let model = Breadth::embedded().expect("embedded weights");
    let mut y = vec![0f32; want.len()];
    model.forward_flat(&x, &mut y).expect("forward");
    assert!(worst("breadth", &y, &want) < 1e-5);
}

/// ResNet-20 (PyTorch's export, batch norm in inference form).
#[test]
fn resnet20_compiled_from_onnx_matches_onnxruntime() {
    let (x, want) = io("resnet20_cifar");
    let model = Resnet20Cifar::embedded().expect("embedded weights");
    let mut y = vec![0f32; want.len()];
    model.forward_flat(&x, &mut y).expect("forward");
    assert!(worst("resnet20_cifar", &y, &want) < 1e-5);
}

/// PyTorch's LocalResponseNorm decomposition, imported as `lrn`.
#[test]
fn lrn_cnn_compiled_from_onnx_matches_onnxruntime() {
    let (x, want) = io("lrn_cnn");
    let model = LrnCnn::embedded().expect("embedded weights");
    let mut y = vec![0f32; want.len()];
    model.forward_flat(&x, &mut y).expect("forward");
    assert!(worst("lrn_cnn", &y, &want) < 1e-5);
}
