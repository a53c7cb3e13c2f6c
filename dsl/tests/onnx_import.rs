//! ONNX import against onnxruntime: each fixture of tests/onnx (written by
//! bench/peers/onnx_fixtures.py) is imported, checked, run by the f64
//! interpreter on its saved input with the imported weights, and compared
//! with onnxruntime's saved output. Malformed and unsupported files must
//! give errors, never panics.

use netc_dsl::import::onnx::{import, ImportError};
use netc_dsl::interp::{self, Mode};
use proptest::prelude::*;
use safetensors::SafeTensors;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/onnx").join(name)
}

/// A tensor of a safetensors file as f64, with its shape.
fn tensor(file: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = file.tensor(name).expect("tensor in the fixture");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes"))))
        .collect();
    (t.shape().to_vec(), values)
}

/// Imports `stem.onnx`, runs it on the saved input and returns the worst
/// relative difference from onnxruntime's output.
fn worst_difference(stem: &str) -> f64 {
    worst_difference_in(stem, Mode::Infer)
}

/// [`worst_difference`] with batch norm in `mode`.
fn worst_difference_in(stem: &str, mode: Mode) -> f64 {
    let bytes = std::fs::read(fixture(&format!("{stem}.onnx"))).expect("fixture");
    let imported = import(&bytes, "Imported").unwrap_or_else(|e| panic!("{stem}: {e}"));
    let checked = netc_dsl::check_source("imported.net", &imported.source)
        .unwrap_or_else(|d| panic!("{stem}: {d}\n{}", imported.source));
    let g = &checked.graphs[0];
    let io_bytes = std::fs::read(fixture(&format!("{stem}.io.safetensors"))).expect("io fixture");
    let io = SafeTensors::deserialize(&io_bytes).expect("safetensors");
    let (input_shape, input) = tensor(&io, "input");
    let (_, want) = tensor(&io, "output");
    let n = input_shape[0];
    let weights = imported.interp_weights();
    let outputs = interp::run(g, &weights, &[&input], n, mode)
        .unwrap_or_else(|e| panic!("{stem}: {e}\n{}", imported.source));
    let got = interp::output(g, &outputs);
    assert_eq!(got.len(), want.len(), "{stem}: output size");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / scale).fold(0f64, f64::max);
    eprintln!("{stem}: worst difference {worst:.2e} (relative to the largest output)");
    worst
}

#[test]
fn mlp_matches_onnxruntime() {
    assert!(worst_difference("mlp") < 1e-4);
}

#[test]
fn lenet5_matches_onnxruntime() {
    assert!(worst_difference("lenet5") < 1e-4);
}

#[test]
fn small_cnn_matches_onnxruntime() {
    assert!(worst_difference("small_cnn") < 1e-4);
}

#[test]
fn breadth_matches_onnxruntime() {
    assert!(worst_difference("breadth") < 1e-5);
}

#[test]
fn breadth_imports_each_op_as_its_layer() {
    let bytes = std::fs::read(fixture("breadth.onnx")).expect("fixture");
    let source = import(&bytes, "Breadth").expect("import").source;
    for stage in [
        "prelu(8) as prelu",
        "conv_transpose2d(6, kernel: 3, stride: 2, pad: 1, output_pad: 1) as deconv",
        "hardswish",
        "layer_norm as ln",
        "-> gelu\n",
        "gelu(approximate: tanh)",
        "silu",
        "mul(",
        "group_norm(3) as gn",
        "elu(0.7)",
        "hardsigmoid",
        "upsample(2)",
        "upsample(2, mode: bilinear)",
        "permute([1, 2, 0])",
    ] {
        assert!(source.contains(stage), "{stage} missing from:\n{source}");
    }
}

/// Exported in training mode, batch norm imports as `batch_norm`, which
/// normalises by the batch's statistics in training, as onnxruntime does.
#[test]
fn a_training_mode_batch_norm_stays_trainable() {
    assert!(worst_difference_in("bn_train", Mode::Train) < 1e-5);
    let bytes = std::fs::read(fixture("bn_train.onnx")).expect("fixture");
    let imported = import(&bytes, "BnTrain").expect("import");
    assert!(imported.source.contains("batch_norm as bn"), "{}", imported.source);
    assert!(imported.weights.iter().any(|w| w.name == "bn.running_var"));
}

/// A conv's pads changed to differ between sides (written back by the
/// encoder) cannot be expressed: the language pads both sides alike.
#[test]
fn asymmetric_pads_are_a_diagnostic() {
    use netc_dsl::import::onnx::{encode::encode_model, proto::decode_model};
    let bytes = std::fs::read(fixture("lenet5.onnx")).expect("fixture");
    let mut model = decode_model(&bytes).expect("decodes");
    let conv = model.graph.node.iter_mut().find(|n| n.op_type == "Conv").expect("a conv");
    let pads = conv.attribute.iter_mut().find(|a| a.name == "pads").expect("pads");
    pads.ints = vec![2, 2, 1, 1];
    let err = import(&encode_model(&model), "Lopsided").expect_err("asymmetric");
    let text = err.to_string();
    assert!(
        text.contains("op `Conv`") && text.contains("[2, 2, 1, 1] are not the same on both sides"),
        "{text}"
    );
}

/// torchvision's squeezenet1_1, about 5 MB, is not committed: the fixture
/// script writes it with `--big`, and the test runs when it is present.
#[test]
fn squeezenet1_1_matches_onnxruntime_when_present() {
    if !fixture("squeezenet1_1.onnx").exists() {
        eprintln!("squeezenet1_1.onnx absent: run bench/peers/onnx_fixtures.py --big");
        return;
    }
    assert!(worst_difference("squeezenet1_1") < 1e-4);
}

#[test]
fn names_follow_the_state_dict() {
    let bytes = std::fs::read(fixture("small_cnn.onnx")).expect("fixture");
    let imported = import(&bytes, "SmallCnn").expect("import");
    let names: Vec<&str> = imported.weights.iter().map(|w| w.name.as_str()).collect();
    for name in [
        "stem.0.weight",
        "stem.1.running_var",
        "branch.0.bias",
        "side.weight",
        "conv3.bias",
        "w.weight",
        "w.bias",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(imported.source.contains("as stem.0"), "{}", imported.source);
    // The weights file reads back as the same tensors.
    let file = imported.safetensors();
    let back = SafeTensors::deserialize(&file).expect("safetensors");
    assert_eq!(back.len(), imported.weights.len());
    let (shape, _) = tensor(&back, "w.weight");
    assert_eq!(shape, vec![10, 16], "MatMul's [in, out] weight is stored as dense's [out, in]");
}

#[test]
fn an_unsupported_op_names_the_node_its_type_and_opset() {
    let bytes = std::fs::read(fixture("unsupported.onnx")).expect("fixture");
    let err = import(&bytes, "Unsupported").expect_err("Erf is not mapped");
    assert!(matches!(err, ImportError::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    for part in ["`erf0`", "`Erf`", "opset 17", "supported ops:", "Conv", "BatchNormalization"] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

#[test]
fn a_truncated_file_gives_the_offset() {
    let bytes = std::fs::read(fixture("mlp.onnx")).expect("fixture");
    let err = import(&bytes[..bytes.len() / 2], "Cut").expect_err("truncated");
    let ImportError::Malformed(e) = &err else { panic!("{err:?}") };
    assert!(e.offset <= bytes.len() / 2, "{err}");
    assert!(err.to_string().contains("at byte"), "{err}");
}

#[test]
fn bytes_that_are_not_onnx_are_an_error() {
    let err = import(b"\x89PNG\r\n\x1a\n not a model", "Png").expect_err("not ONNX");
    assert!(err.to_string().contains("malformed ONNX file"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any few bytes of a valid file changed, or the file cut short, give
    /// an import or an error, never a panic.
    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = std::fs::read(fixture("small_cnn.onnx")).expect("fixture");
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = import(&bytes, "Mutated");
    }
}
