//! Caffe import: LeNet and CaffeNet written from their published
//! architectures (tests/caffe), in the current and the V1 format, with
//! caffemodels of random weights written by this test's own encoder. Each
//! import must check, count the published parameters, and compute what
//! Caffe computes: the f64 interpreter on the imported network is compared
//! with a naive reference of Caffe's layers (caffe_support), written apart
//! from the importer's mapping. Malformed and unsupported input must give
//! errors naming where, never panics.

mod caffe_support;

use caffe_support::nets::{
    self, every_layer_reference, every_layer_weights, lenet_reference, lenet_weights, Weights,
};
use caffe_support::{self as caffe_ref, Blob, Conv, Rng, T};
use netc_dsl::import::caffe::{import, CaffeError, Options};
use netc_dsl::interp::{self, Mode};
use proptest::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

fn prototxt(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/caffe").join(name);
    std::fs::read_to_string(path).expect("fixture")
}

/// Imports and checks, returning the source and the total parameters.
fn imports_with_params(file: &str) -> (String, usize) {
    let imported = import(&prototxt(file), None, "Net", &Options::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(imported.weights.is_empty(), "no caffemodel, no weights");
    let checked = netc_dsl::check_source("net.net", &imported.source)
        .unwrap_or_else(|d| panic!("{file}: {d}\n{}", imported.source));
    (imported.source.clone(), checked.graphs[0].total_params())
}

#[test]
fn lenet_imports_with_its_published_parameter_count() {
    let (source, params) = imports_with_params("lenet.prototxt");
    assert_eq!(params, 431_080, "{source}");
    for part in [
        "input data: [1, 28, 28]",
        "conv2d(20, kernel: 5) as conv1",
        "max_pool(2)",
        "flatten",
        "dense(500) as ip1",
        "relu",
        "dense(10) as ip2",
        "softmax",
    ] {
        assert!(source.contains(part), "{part} missing from\n{source}");
    }
}

#[test]
fn the_v1_format_gives_the_same_network() {
    let (v1, params) = imports_with_params("lenet_v1.prototxt");
    let (current, _) = imports_with_params("lenet.prototxt");
    assert_eq!(params, 431_080);
    assert_eq!(v1, current);
}

#[test]
fn caffenet_imports_with_its_published_parameter_count() {
    let (source, params) = imports_with_params("caffenet.prototxt");
    assert_eq!(params, 60_965_224, "{source}");
    for part in [
        "input data: [3, 227, 227]",
        "conv2d(96, kernel: 11, stride: 4) as conv1",
        "conv2d(256, kernel: 5, pad: 2, groups: 2) as conv2",
        "max_pool(3, stride: 2)",
        "lrn(5, alpha: 0.0001, beta: 0.75, k: 1.0)",
        "dropout(0.5)",
        "dense(1000) as fc8",
    ] {
        assert!(source.contains(part), "{part} missing from\n{source}");
    }
}

/// Runs the imported network on `input` (batch first) with the weights
/// the caffemodel gave, through the f64 interpreter.
fn run_imported(prototxt_text: &str, model: &[u8], input: &[f64], batch: usize) -> Vec<f64> {
    let imported = import(prototxt_text, Some(model), "Net", &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let checked = netc_dsl::check_source("net.net", &imported.source)
        .unwrap_or_else(|d| panic!("{d}\n{}", imported.source));
    let g = &checked.graphs[0];
    let outputs = interp::run(g, &imported.interp_weights(), &[input], batch, Mode::Infer)
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.source));
    interp::output(g, &outputs).to_vec()
}

/// A batch of random samples of shape `[c, h, w]`.
fn samples(rng: &mut Rng, batch: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    (0..batch).map(|_| T::from(c, h, w, &rng.blob(&[c * h * w], -1.0, 1.0).values)).collect()
}

fn flat(samples: &[T]) -> Vec<f64> {
    samples.iter().flat_map(|s| s.v.iter().copied()).collect()
}

#[test]
fn lenet_computes_what_caffe_computes_in_both_formats() {
    let mut rng = Rng::new(26);
    let w = lenet_weights(&mut rng);
    let x = samples(&mut rng, 3, 1, 28, 28);
    let want: Vec<f64> = x.iter().flat_map(|s| lenet_reference(s, &w).v).collect();
    let current = nets::layers(&w, &nets::LENET);
    let model = caffe_ref::caffemodel("LeNet", &current);
    let got = run_imported(&prototxt("lenet.prototxt"), &model, &flat(&x), 3);
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!("lenet: worst difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
    // V1: enum types (CONVOLUTION 4, INNER_PRODUCT 14) and legacy 4-d blobs.
    let v1: Vec<(&str, u64, Vec<Blob>)> = nets::LENET
        .iter()
        .map(|&(l, kind)| (l, if kind == "Convolution" { 4 } else { 14 }, w[l].clone()))
        .collect();
    let model = caffe_ref::caffemodel_v1("LeNet", &v1);
    let got = run_imported(&prototxt("lenet_v1.prototxt"), &model, &flat(&x), 3);
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!("lenet V1: worst difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
}

#[test]
fn reduced_caffenet_computes_what_caffe_computes() {
    let mut rng = Rng::new(2012);
    let w = nets::caffenet_weights(&mut rng, [8, 16, 24, 24, 16], [32, 32], 67, 10);
    let x = samples(&mut rng, 2, 3, 67, 67);
    let want: Vec<f64> = x.iter().flat_map(|s| nets::caffenet_reference(s, &w).v).collect();
    let model = caffe_ref::caffemodel("CaffeNet", &nets::caffenet_layers(&w));
    let got = run_imported(&prototxt("caffenet_small.prototxt"), &model, &flat(&x), 2);
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!("reduced caffenet: worst difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
}

/// The published CaffeNet at its full size: a caffemodel of its 60,965,224
/// random weights is written to a temporary folder (too large to commit),
/// read back and imported, and one sample of 3×227×227 is run through the
/// interpreter and the naive reference.
#[test]
fn full_size_caffenet_computes_what_caffe_computes() {
    let clock = Instant::now();
    let mut rng = Rng::new(2012);
    let w = nets::caffenet_weights(&mut rng, [96, 256, 384, 384, 256], [4096, 4096], 227, 1000);
    let x = samples(&mut rng, 1, 3, 227, 227);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path();
    let path = dir.join("caffenet.caffemodel");
    std::fs::write(&path, caffe_ref::caffemodel("CaffeNet", &nets::caffenet_layers(&w)))
        .expect("the caffemodel is written");
    let model = std::fs::read(&path).expect("the caffemodel is read back");
    tmp.close().expect("the temporary folder is removed");
    let written = clock.elapsed();
    let imported = import(&prototxt("caffenet.prototxt"), Some(&model), "Net", &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    drop(model);
    let count: usize = imported.weights.iter().map(|t| t.values.len()).sum();
    assert_eq!(count, 60_965_224, "the imported weights");
    for t in &imported.weights {
        assert_eq!(t.values.len(), t.shape.iter().product::<usize>(), "{}", t.name);
    }
    let checked = netc_dsl::check_source("net.net", &imported.source).expect("checks");
    let g = &checked.graphs[0];
    assert_eq!(g.total_params(), 60_965_224);
    let imported_at = clock.elapsed();
    let outputs = interp::run(g, &imported.interp_weights(), &[&flat(&x)], 1, Mode::Infer)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = interp::output(g, &outputs).to_vec();
    let interpreted = clock.elapsed();
    let want = nets::caffenet_reference(&x[0], &w).v;
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!(
        "full caffenet: worst difference {worst:.2e}; written {:.1?}, imported {:.1?}, \
         interpreted {:.1?}, reference {:.1?}",
        written,
        imported_at - written,
        interpreted - imported_at,
        clock.elapsed() - interpreted
    );
    assert!(worst < 1e-5, "{worst}");
}

#[test]
fn every_mapped_layer_computes_what_caffe_computes() {
    let mut rng = Rng::new(7);
    let w = every_layer_weights(&mut rng);
    let x = samples(&mut rng, 2, 3, 10, 10);
    let want: Vec<f64> = x.iter().flat_map(|s| every_layer_reference(s, &w).v).collect();
    let layers = nets::layers(&w, &nets::EVERY_LAYER);
    let model = caffe_ref::caffemodel("EveryLayer", &layers);
    let text = prototxt("every_layer.prototxt");
    let got = run_imported(&text, &model, &flat(&x), 2);
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!("every layer: worst difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
    let source = import(&text, Some(&model), "Net", &Options::default()).expect("import").source;
    for part in [
        "max_pool(3, stride: 2, pad: 1, ceil_mode: true)",
        "avg_pool(2, pad: 1)",
        "batch_norm(eps: 0.001, momentum: 0.001) as bn_a",
        "leaky_relu(slope: 0.1)",
        "conv_transpose2d(4, kernel: 3, stride: 2, groups: 2) as up",
        "global_avg_pool",
        "mul(",
        "lrn(3, alpha: 0.5, beta: 0.75, k: 2.0)",
        "dropout(0.3)",
        "prelu(4) as prelu_c",
        "prelu(init: 0.1) as prelu_ip",
    ] {
        assert!(source.contains(part), "{part} missing from\n{source}");
    }
}

#[test]
fn a_training_net_gets_its_loss_and_needs_the_shape_of_its_data() {
    let text = prototxt("lenet_train_test.prototxt");
    let err = import(&text, None, "Net", &Options::default()).expect_err("no shape for Data");
    let message = err.to_string();
    assert!(
        message.contains("layer `mnist` (Data)") && message.contains("--input-shape"),
        "{message}"
    );
    let options = Options { input_shape: Some(vec![1, 28, 28]) };
    let imported = import(&text, None, "Net", &options).expect("import");
    let source = &imported.source;
    assert!(source.contains("input data: [1, 28, 28]"), "{source}");
    assert!(source.contains("loss cross_entropy("), "{source}");
    assert!(source.contains("scales its samples by 0.00390625"), "{source}");
    assert!(!source.contains("accuracy"), "the TEST phase's Accuracy is not imported:\n{source}");
    let checked = netc_dsl::check_source("net.net", source).expect("checks");
    assert_eq!(checked.graphs[0].total_params(), 431_080);
}

#[test]
fn a_v1_split_fans_out_what_caffe_computes() {
    let mut rng = Rng::new(22);
    let mut w = Weights::new();
    w.insert("conv", vec![rng.weights(&[4, 3, 3, 3], 27), rng.blob(&[4], -0.1, 0.1)]);
    w.insert("ip", vec![rng.weights(&[5, 256], 256), rng.blob(&[5], -0.1, 0.1)]);
    let x = samples(&mut rng, 2, 3, 8, 8);
    let reference = |x: &T| {
        let conv = caffe_ref::conv(x, &w["conv"][0], Some(&w["conv"][1]), Conv::square(3, 1, 1));
        let [a, b, c] = <[T; 3]>::try_from(caffe_ref::split(&conv, 3)).expect("three tops");
        let gated = caffe_ref::eltwise(&caffe_ref::relu(&a, 0.0), &caffe_ref::sigmoid(&b), true);
        let sum = caffe_ref::eltwise(&gated, &c, false);
        caffe_ref::softmax(&caffe_ref::inner_product(&sum, &w["ip"][0], Some(&w["ip"][1]), false))
    };
    let want: Vec<f64> = x.iter().flat_map(|s| reference(s).v).collect();
    // V1: CONVOLUTION is 4, INNER_PRODUCT 14.
    let model = caffe_ref::caffemodel_v1(
        "SplitV1",
        &[("conv", 4, w["conv"].clone()), ("ip", 14, w["ip"].clone())],
    );
    let text = prototxt("split_v1.prototxt");
    let got = run_imported(&text, &model, &flat(&x), 2);
    let worst = caffe_ref::worst_relative(&got, &want);
    eprintln!("V1 split: worst difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
    // The Split is no stage: its tops are the convolution's output.
    let source = import(&text, None, "Net", &Options::default()).expect("import").source;
    assert!(!source.contains("split"), "{source}");
}

#[test]
fn prelu_slopes_start_from_a_constant_filler_or_come_from_the_caffemodel() {
    let mut rng = Rng::new(5);
    let w = every_layer_weights(&mut rng);
    let layers = nets::layers(&w, &nets::EVERY_LAYER);
    let model = caffe_ref::caffemodel("EveryLayer", &layers);
    let text = prototxt("every_layer.prototxt");
    let imported = import(&text, Some(&model), "Net", &Options::default()).expect("import");
    let slopes = |name: &str| {
        let t = imported.weights.iter().find(|t| t.name == name).expect(name);
        (t.shape.clone(), t.values.clone())
    };
    assert_eq!(slopes("prelu_c.weight"), (vec![4], w["prelu_c"][0].values.clone()));
    assert_eq!(slopes("prelu_ip.weight"), (vec![1], w["prelu_ip"][0].values.clone()));
    // A filler netc cannot start from is refused without a caffemodel,
    // and does not matter with one.
    let gaussian = text.replace(
        "filler { type: \"constant\" value: 0.1 }",
        "filler { type: \"gaussian\" std: 0.1 }",
    );
    assert_ne!(gaussian, text);
    let err = import(&gaussian, None, "Net", &Options::default()).expect_err("gaussian");
    let message = err.to_string();
    for part in ["layer `prelu_ip`", "type `PReLU`", "`gaussian` filler"] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    let infinite = text.replace("value: 0.1 }", "value: inf }");
    assert_ne!(infinite, text);
    let err = import(&infinite, None, "Net", &Options::default()).expect_err("inf");
    assert!(err.to_string().contains("a constant filler of inf"), "{err}");
    let with_model = import(&gaussian, Some(&model), "Net", &Options::default()).expect("import");
    assert!(with_model.source.contains("prelu as prelu_ip"), "{}", with_model.source);
    // A shared slope is a blob of no axes in Caffe; one of shape [1] is not it.
    let mut wrong = w.clone();
    wrong.get_mut("prelu_ip").expect("prelu_ip")[0].shape = vec![1];
    let model = caffe_ref::caffemodel("EveryLayer", &nets::layers(&wrong, &nets::EVERY_LAYER));
    let err = import(&text, Some(&model), "Net", &Options::default()).expect_err("shape [1]");
    assert!(
        err.to_string().contains("caffemodel: layer `prelu_ip`: blob 0 has the shape [1]"),
        "{err}"
    );
}

#[test]
fn split_tops_that_alias_or_go_unread_are_errors_naming_them() {
    let text = prototxt("split_v1.prototxt");
    // An in-place layer on a Split's top would change its other tops in Caffe.
    let in_place = text.replacen("top: \"positive\"", "top: \"conv_split_0\"", 1).replacen(
        "bottom: \"positive\"",
        "bottom: \"conv_split_0\"",
        1,
    );
    let err = import(&in_place, None, "Net", &Options::default()).expect_err("in place");
    let message = err.to_string();
    assert!(
        message.contains("layer `relu`") && message.contains("in place to `conv_split_0`"),
        "{message}"
    );
    // So would one on the Split's bottom.
    let on_bottom = text.replacen(
        "bottom: \"conv_split_0\"\n  top: \"positive\"",
        "bottom: \"conv\"\n  top: \"conv\"",
        1,
    );
    assert_ne!(on_bottom, text);
    let err = import(&on_bottom, None, "Net", &Options::default()).expect_err("in place");
    assert!(err.to_string().contains("in place to `conv`, which shares its memory"), "{err}");
    // A top nothing reads is one more output of the net.
    let unread = text.replacen("bottom: \"conv_split_2\"", "bottom: \"conv_split_0\"", 1);
    let err = import(&unread, None, "Net", &Options::default()).expect_err("unread top");
    assert!(err.to_string().contains("`conv_split_2`, `prob`"), "{err}");
    let two_bottoms = text.replacen(
        "bottom: \"conv\"\n  top: \"conv_split_0\"",
        "bottom: \"conv\"\n  bottom: \"data\"\n  top: \"conv_split_0\"",
        1,
    );
    assert_ne!(two_bottoms, text);
    let err = import(&two_bottoms, None, "Net", &Options::default()).expect_err("two bottoms");
    assert!(err.to_string().contains("layer `conv_split` (type `Split`)"), "{err}");
}

// Bad input: each gets a diagnostic that says where.

#[test]
fn a_syntax_error_gives_its_line_and_column() {
    let text = "name: \"x\"\nlayer {\n  name: \"conv1\"\n  type: \"Convolution\"\n  convolution_param { num_output: 4 kernel_size: }\n}\n";
    let err = import(text, None, "Net", &Options::default()).expect_err("syntax");
    let CaffeError::Syntax(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.line, 5, "{err}");
    assert!(e.column > 40, "{err}");
    assert!(err.to_string().starts_with("5:"), "{err}");
}

#[test]
fn an_unknown_layer_type_names_the_layer_and_lists_the_supported() {
    let text = prototxt("lenet.prototxt").replace("type: \"ReLU\"", "type: \"ELU\"");
    let err = import(&text, None, "Net", &Options::default()).expect_err("ELU");
    let message = err.to_string();
    for part in
        ["layer `relu1`", "type `ELU`", "supported layers:", "Convolution", "PReLU", "Split"]
    {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
}

#[test]
fn a_blob_of_the_wrong_shape_names_its_layer() {
    let mut rng = Rng::new(1);
    let mut w = lenet_weights(&mut rng);
    w.get_mut("conv2").expect("conv2")[0] = rng.weights(&[50, 20, 3, 3], 180);
    let layers: Vec<(&str, &str, Vec<Blob>)> = ["conv1", "conv2", "ip1", "ip2"]
        .iter()
        .map(|&l| (l, "Convolution", w[l].clone()))
        .collect();
    let model = caffe_ref::caffemodel("LeNet", &layers);
    let err = import(&prototxt("lenet.prototxt"), Some(&model), "Net", &Options::default())
        .expect_err("shape");
    let message = err.to_string();
    assert!(message.contains("layer `conv2`") && message.contains("[50, 20, 3, 3]"), "{message}");
}

#[test]
fn a_truncated_caffemodel_gives_the_offset() {
    let mut rng = Rng::new(2);
    let w = lenet_weights(&mut rng);
    let layers: Vec<(&str, &str, Vec<Blob>)> =
        ["conv1", "conv2"].iter().map(|&l| (l, "Convolution", w[l].clone())).collect();
    let model = caffe_ref::caffemodel("LeNet", &layers);
    let cut = model.len() / 2;
    let err = import(&prototxt("lenet.prototxt"), Some(&model[..cut]), "Net", &Options::default())
        .expect_err("truncated");
    let CaffeError::Malformed(e) = &err else { panic!("{err:?}") };
    assert!(e.offset as usize <= cut, "{err}");
    assert!(err.to_string().contains("malformed caffemodel at byte"), "{err}");
}

#[test]
fn a_layer_missing_from_the_caffemodel_is_an_error() {
    let mut rng = Rng::new(3);
    let w = lenet_weights(&mut rng);
    let layers: Vec<(&str, &str, Vec<Blob>)> =
        ["conv1", "conv2", "ip1"].iter().map(|&l| (l, "X", w[l].clone())).collect();
    let model = caffe_ref::caffemodel("LeNet", &layers);
    let err = import(&prototxt("lenet.prototxt"), Some(&model), "Net", &Options::default())
        .expect_err("ip2 missing");
    assert!(err.to_string().contains("layer `ip2`: the caffemodel has no weights"), "{err}");
}

#[test]
fn settings_the_language_lacks_are_refused_by_layer() {
    let cases = [
        ("pool: MAX kernel_size: 2 stride: 2 }", "pool: STOCHASTIC kernel_size: 2 stride: 2 }", "STOCHASTIC"),
        ("type: \"ReLU\"", "type: \"Scale\"", "right after a BatchNorm"),
        ("type: \"ReLU\"\n  bottom: \"ip1\"\n  top: \"ip1\"\n", "type: \"ReLU\"\n  bottom: \"ip1\"\n  top: \"ip1\"\n  relu_param { negative_slope: -1 }\n", "negative_slope"),
    ];
    for (from, to, expect) in cases {
        let text = prototxt("lenet.prototxt").replacen(from, to, 1);
        assert_ne!(text, prototxt("lenet.prototxt"), "{from}");
        let err = import(&text, None, "Net", &Options::default()).expect_err(expect);
        assert!(err.to_string().contains(expect), "{expect} missing from: {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// A caffemodel with a few bytes changed, or cut short, and a prototxt
    /// with a few characters changed, give an import or an error, never a
    /// panic.
    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut rng = Rng::new(4);
        let w = every_layer_weights(&mut rng);
        let layers: Vec<(&str, &str, Vec<Blob>)> = w.iter().map(|(&l, b)| (l, "X", b.clone())).collect();
        let mut model = caffe_ref::caffemodel("EveryLayer", &layers);
        let mut text = prototxt("every_layer.prototxt").into_bytes();
        for &(at, byte) in &edits {
            let i = at.index(model.len());
            model[i] = byte;
            let j = at.index(text.len());
            text[j] = byte.clamp(b' ', b'~');
        }
        if truncate {
            model.truncate(cut.index(model.len()));
        }
        let text = String::from_utf8(text).expect("ascii");
        let _ = import(&text, Some(&model), "Mutated", &Options::default());
        let _ = import(&text, None, "Mutated", &Options::default());
    }
}
