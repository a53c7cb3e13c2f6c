//! ONNX import against onnxruntime: each fixture of tests/onnx (written by
//! bench/peers/onnx_fixtures.py) is imported, checked, run by the f64
//! interpreter on its saved input with the imported weights, and compared
//! with onnxruntime's saved output. Malformed and unsupported files must
//! give errors, never panics.

use netc_dsl::import::onnx::proto::{Model, Node, Tensor};
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

/// ResNet-20 for CIFAR-10 (He et al. 2016), the architecture of
/// cli/models/resnet20.net in PyTorch: its projection shortcuts import as
/// 1x1 convs and batch norms beside the blocks, its residuals as `add`.
#[test]
fn resnet20_matches_onnxruntime() {
    assert!(worst_difference("resnet20_cifar") < 1e-5);
}

#[test]
fn resnet20_has_the_parameters_of_the_zoo_model() {
    let bytes = std::fs::read(fixture("resnet20_cifar.onnx")).expect("fixture");
    let imported = import(&bytes, "ResNet20").expect("import");
    let checked = netc_dsl::check_source("imported.net", &imported.source).expect("checks");
    let zoo_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cli/models/resnet20.net");
    let zoo_source = std::fs::read_to_string(zoo_path).expect("the zoo model");
    let zoo = netc_dsl::check_source("resnet20.net", &zoo_source).expect("checks");
    let params = checked.graphs[0].total_params();
    assert_eq!(params, zoo.graphs[0].total_params());
    assert_eq!(params, 272_474);
    for stage in [
        "conv2d(32, kernel: 1, stride: 2, bias: false) as layer2.0.downsample.0",
        "batch_norm as layer3.0.downsample.1",
        "dense(10) as fc",
    ] {
        assert!(imported.source.contains(stage), "{stage} missing from:\n{}", imported.source);
    }
}

/// PyTorch exports `LocalResponseNorm` as a decomposition (Mul, Reshape,
/// Pad, AveragePool, an If, Reshape, Mul, Add, Pow, Div), which imports as
/// `lrn`; the second of the fixture's has an even size.
#[test]
fn lrn_cnn_matches_onnxruntime() {
    assert!(worst_difference("lrn_cnn") < 1e-5);
    let bytes = std::fs::read(fixture("lrn_cnn.onnx")).expect("fixture");
    let source = import(&bytes, "LrnCnn").expect("import").source;
    for stage in [
        "-> lrn(5, alpha: 0.1, beta: 0.75, k: 2.0)\n",
        "-> lrn(4, alpha: 0.05, beta: 0.5, k: 1.0)\n",
    ] {
        assert!(source.contains(stage), "{stage} missing from:\n{source}");
    }
    for gone in ["mul(", "reshape", "avg_pool", "pow", "t = "] {
        assert!(!source.contains(gone), "{gone} left in:\n{source}");
    }
}

/// lrn_cnn.onnx changed by `change` (written back by the encoder): the
/// import's error.
fn lrn_error(change: Change) -> String {
    use netc_dsl::import::onnx::{encode::encode_model, proto::decode_model};
    let bytes = std::fs::read(fixture("lrn_cnn.onnx")).expect("fixture");
    let mut model = decode_model(&bytes).expect("decodes");
    change(&mut model);
    import(&encode_model(&model), "Changed").expect_err("refused").to_string()
}

/// A change to a model, for a test of what the importer says of it.
type Change = Box<dyn FnOnce(&mut Model)>;

/// The node named `name` of the model's graph.
fn node<'m>(model: &'m mut Model, name: &str) -> &'m mut Node {
    model.graph.node.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("{name}"))
}

/// The tensor of the `Constant` node whose output is `output`.
fn constant_values<'m>(model: &'m mut Model, output: &str) -> &'m mut Tensor {
    let n = model.graph.node.iter_mut().find(|n| n.output.first().is_some_and(|o| o == output));
    n.and_then(|n| n.attribute[0].t.as_mut()).unwrap_or_else(|| panic!("{output}"))
}

/// A decomposition of LocalResponseNorm that PyTorch would not write is an
/// error naming the node that does not fit.
#[test]
fn a_changed_lrn_decomposition_names_the_node() {
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            Box::new(|m| {
                constant_values(m, "onnx::Shape_28").values = vec![0., 0., 0., 0., 1., 3.]
            }),
            "/lrn1/Pad",
            "pads the channels by 1 before and 3 after, where a window of 5 takes 2 and 2",
        ),
        (
            Box::new(|m| {
                constant_values(m, "onnx::Shape_28").values = vec![0., 0., 1., 1., 2., 2.]
            }),
            "/lrn1/Pad",
            "pad more than the channels",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Pad").attribute[0].s = b"reflect".to_vec()),
            "/lrn1/Pad",
            "its mode is reflect, not constant",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Pad").input[2] = "/lrn1/Constant_18_output_0".into()),
            "/lrn1/Pad",
            "it pads with a value other than 0",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Pad").input.push("/lrn1/Constant_9_output_0".into())),
            "/lrn1/Pad",
            "it names the axes it pads",
        ),
        (
            Box::new(|m| node(m, "/lrn1/AveragePool").op_type = "MaxPool".into()),
            "/lrn1/Pad",
            "its output goes to a `MaxPool` where the pattern has AveragePool",
        ),
        (
            Box::new(|m| {
                let pool = node(m, "/lrn1/AveragePool");
                let kernel = pool.attribute.iter_mut().find(|a| a.name == "kernel_shape");
                kernel.expect("kernel").ints = vec![5, 1, 2];
            }),
            "/lrn1/AveragePool",
            "are not a window of the channels",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Concat_2").input.push("/lrn1/AveragePool_output_0".into())),
            "/lrn1/AveragePool",
            "its output is used beside the If",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Concat_2").input.push("/lrn1/Gather_1_output_0".into())),
            "/lrn1/Gather_1",
            "its output is used beside the If's condition",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Equal").op_type = "Less".into()),
            "/lrn1/If",
            "its condition `/lrn1/Equal_output_0` is not computed from the pooled tensor's shape",
        ),
        (
            Box::new(|m| {
                let branch =
                    node(m, "/lrn1/If").attribute.iter_mut().find(|a| a.name == "else_branch");
                branch.and_then(|a| a.g.as_mut()).expect("a branch").node[0].op_type =
                    "Relu".into();
            }),
            "/lrn1/If",
            "its else_branch is not a Squeeze or an Identity of the pooled tensor",
        ),
        (
            Box::new(|m| constant_values(m, "/lrn1/Constant_3_output_0").values = vec![5.0]),
            "/lrn1/Reshape_3",
            "it does not reshape back to [2, 8, 15, 15]",
        ),
        (
            Box::new(|m| {
                let alpha = constant_values(m, "/lrn1/Constant_17_output_0");
                alpha.dims = vec![2];
                alpha.values = vec![0.1, 0.1];
            }),
            "/lrn1/Mul_2",
            "its alpha is not one constant value",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Pow").input.swap(0, 1)),
            "/lrn1/Pow",
            "it does not raise the sum to a power",
        ),
        (
            Box::new(|m| node(m, "/lrn1/Div").input.swap(0, 1)),
            "/lrn1/Div",
            "it does not divide the squared tensor",
        ),
    ];
    for (change, at, reason) in cases {
        let e = lrn_error(change);
        assert!(e.contains(&format!("node `{at}`")) && e.contains(reason), "{at}: {reason}\n{e}");
        assert!(
            e.contains("PyTorch's LocalResponseNorm decomposition from node `/lrn1/Mul`"),
            "{e}"
        );
    }
}

/// The shape arithmetic of the decomposition's pads is folded with its
/// own diagnostics.
#[test]
fn bad_pad_arithmetic_names_the_node() {
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            Box::new(|m| constant_values(m, "/lrn1/Constant_12_output_0").values = vec![0.0]),
            "/lrn1/Slice",
            "a step of 0",
        ),
        (
            Box::new(|m| {
                let axes = constant_values(m, "/lrn1/Constant_9_output_0");
                axes.dims = vec![2];
                axes.values = vec![0.0, 1.0];
            }),
            "/lrn1/Slice",
            "its starts, ends, axes and steps differ in length",
        ),
        (
            Box::new(|m| {
                let perm =
                    node(m, "/lrn1/Transpose").attribute.iter_mut().find(|a| a.name == "perm");
                perm.expect("perm").ints = vec![1, 1];
            }),
            "/lrn1/Transpose",
            "perm [1, 1] is not a permutation of 2 axes",
        ),
        (
            Box::new(|m| constant_values(m, "/lrn1/Constant_6_output_0").values = vec![2.0]),
            "/lrn1/ConstantOfShape",
            "a dim of -2",
        ),
        (
            Box::new(|m| {
                let fill = node(m, "/lrn1/ConstantOfShape").attribute[0].t.as_mut().expect("value");
                fill.dims = vec![2];
                fill.values = vec![0.0, 0.0];
            }),
            "/lrn1/ConstantOfShape",
            "a value of 2 elements",
        ),
    ];
    for (change, at, reason) in cases {
        let e = lrn_error(change);
        assert!(e.contains(&format!("node `{at}`")) && e.contains(reason), "{at}: {reason}\n{e}");
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

/// Protobuf's wire format, enough to write small ONNX models by hand.
mod wire {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn int(field: u64, v: u64, out: &mut Vec<u8>) {
        varint(field << 3, out);
        varint(v, out);
    }

    fn bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
        varint((field << 3) | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// A `TensorProto` of int64 (`floats` empty) or float values, as raw data.
    pub fn tensor(name: &str, dims: &[u64], int64s: &[i64], floats: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            int(1, d, &mut t);
        }
        int(2, if floats.is_empty() { 7 } else { 1 }, &mut t);
        bytes(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = if floats.is_empty() {
            int64s.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            floats.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        bytes(9, &raw, &mut t);
        t
    }

    /// A `NodeProto` with integer attributes.
    pub fn node(op: &str, inputs: &[&str], output: &str, attrs: &[(&str, i64)]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            bytes(1, i.as_bytes(), &mut n);
        }
        bytes(2, output.as_bytes(), &mut n);
        bytes(3, output.as_bytes(), &mut n);
        bytes(4, op.as_bytes(), &mut n);
        for (name, value) in attrs {
            let mut a = Vec::new();
            bytes(1, name.as_bytes(), &mut a);
            int(3, *value as u64, &mut a);
            int(20, 2, &mut a);
            bytes(5, &a, &mut n);
        }
        n
    }

    /// A float `ValueInfoProto` of fixed dims.
    pub fn value(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut shape = Vec::new();
        for &d in dims {
            let mut dim = Vec::new();
            int(1, d, &mut dim);
            bytes(1, &dim, &mut shape);
        }
        let mut tensor_type = Vec::new();
        int(1, 1, &mut tensor_type);
        bytes(2, &shape, &mut tensor_type);
        let mut ty = Vec::new();
        bytes(1, &tensor_type, &mut ty);
        let mut v = Vec::new();
        bytes(1, name.as_bytes(), &mut v);
        bytes(2, &ty, &mut v);
        v
    }

    /// A `ModelProto` of opset 13 whose graph maps `input` to `output`.
    pub fn model(
        nodes: &[Vec<u8>],
        initializers: &[Vec<u8>],
        input: &[u8],
        output: &[u8],
    ) -> Vec<u8> {
        let mut g = Vec::new();
        for n in nodes {
            bytes(1, n, &mut g);
        }
        bytes(2, b"g", &mut g);
        for t in initializers {
            bytes(5, t, &mut g);
        }
        bytes(11, input, &mut g);
        bytes(12, output, &mut g);
        let mut opset = Vec::new();
        int(2, 13, &mut opset);
        let mut m = Vec::new();
        int(1, 8, &mut m);
        bytes(8, &opset, &mut m);
        bytes(7, &g, &mut m);
        m
    }
}

/// Imports a model that gathers from the constant `data` of `dims` at
/// `indices` along `axis`, and returns the error.
fn gather_error(dims: &[u64], data: &[f32], indices: &[i64], axis: i64) -> String {
    let model = wire::model(
        &[
            wire::node("Gather", &["data", "indices"], "g", &[("axis", axis)]),
            wire::node("Relu", &["x"], "y", &[]),
        ],
        &[
            wire::tensor("data", dims, &[], data),
            wire::tensor("indices", &[indices.len() as u64], indices, &[]),
        ],
        &wire::value("x", &[1, 4]),
        &wire::value("y", &[1, 4]),
    );
    import(&model, "Gather").expect_err("refused").to_string()
}

/// Constants the importer computes are sized before they are made: beside
/// a dim of 0 the others are unbounded by the values a file holds (their
/// product overflowed, a panic), and Gather copies a slice per index (a
/// 40 KB file made 268 MB).
#[test]
fn computed_constants_are_bounded() {
    let huge = 1 << 40;
    let e = gather_error(&[huge, 0, huge], &[], &[0], 1);
    assert!(e.contains("index 0 is outside a dim of 0"), "{e}");
    let e = gather_error(&[0, huge, huge], &[], &[0], 0);
    assert!(e.contains("index 0 is outside a dim of 0"), "{e}");
    let data: Vec<f32> = (0..4096).map(|i| i as f32).collect();
    let e = gather_error(&[1, 4096], &data, &[0; 8192], 0);
    assert!(e.contains("over 16777216 values"), "{e}");
}

/// An input whose dims multiply past what the importer computes with is
/// refused before any layer's shape is multiplied out (a flatten of it
/// overflowed, a panic).
#[test]
fn huge_inputs_are_refused() {
    let model = wire::model(
        &[wire::node("Flatten", &["x"], "y", &[("axis", 1)])],
        &[],
        &wire::value("x", &[1, 1 << 31, 1 << 31, 4]),
        &wire::value("y", &[1, 1 << 33]),
    );
    let e = import(&model, "Huge").expect_err("refused").to_string();
    assert!(e.contains("has more than 4294967296 values"), "{e}");
}
