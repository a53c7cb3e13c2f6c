//! Caffe nets imported at build time (tests/build.rs) and compiled, run on
//! the weights of a caffemodel written by the tests' own encoder: the
//! generated code agrees with the f64 interpreter on the imported `.net`,
//! and with the naive reference of Caffe's layers, which is independent of
//! the importer's mapping.

#[path = "../dsl/tests/caffe_support/mod.rs"]
mod caffe_support;

use caffe_support::nets::{self, Weights};
use caffe_support::{worst_relative, Blob, Rng, T};
use netc_dsl::import::caffe::{import, Options};
use netc_dsl::interp::{self, Mode};

mod lenet {
    netc::include_network!("caffe_lenet");
}

mod every_layer {
    netc::include_network!("caffe_every_layer");
}

fn prototxt(stem: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("caffe")
        .join(format!("{stem}.prototxt"));
    std::fs::read_to_string(path).expect("fixture")
}

/// The caffemodel of `w`, imported with the prototxt `stem`: the
/// safetensors weights and the interpreter's output on `x`.
fn imported(
    stem: &str,
    w: &Weights,
    kinds: &[(&str, &str)],
    x: &[f32],
    batch: usize,
) -> (Vec<u8>, Vec<f64>) {
    let model = caffe_support::caffemodel(stem, &nets::layers(w, kinds));
    let imported =
        import(&prototxt(stem), Some(&model), "Net", &Options::default()).expect("import");
    let checked = netc_dsl::check_source("net.net", &imported.source).expect("checks");
    let g = &checked.graphs[0];
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let outputs = interp::run(g, &imported.interp_weights(), &[&x64], batch, Mode::Infer)
        .expect("interpreter");
    (imported.safetensors(), interp::output(g, &outputs).to_vec())
}

/// `batch` samples of `[c, h, w]`, as f32 and as the reference's samples.
fn samples(rng: &mut Rng, batch: usize, shape: [usize; 3]) -> (Vec<f32>, Vec<T>) {
    let [c, h, w] = shape;
    let blobs: Vec<Blob> = (0..batch).map(|_| rng.blob(&[c * h * w], -1.0, 1.0)).collect();
    let flat = blobs.iter().flat_map(|b| b.values.iter().copied()).collect();
    (flat, blobs.iter().map(|b| T::from(c, h, w, &b.values)).collect())
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn compiled_lenet_computes_what_caffe_computes() {
    let mut rng = Rng::new(1998);
    let w = nets::lenet_weights(&mut rng);
    let batch = 3;
    let (x, samples) = samples(&mut rng, batch, [1, 28, 28]);
    let (weights, interpreted) = imported("lenet", &w, &nets::LENET, &x, batch);
    let mut model = lenet::CaffeLenet::with_capacity(1, batch);
    model.load_bytes(&weights).expect("the imported weights load");
    let mut out = vec![0.0f32; batch * lenet::CaffeLenet::OUTPUT_LEN];
    model.forward_flat(&x, &mut out).expect("forward");
    let reference: Vec<f64> = samples.iter().flat_map(|s| nets::lenet_reference(s, &w).v).collect();
    let (vs_interp, vs_caffe) =
        (worst_relative(&widen(&out), &interpreted), worst_relative(&widen(&out), &reference));
    eprintln!("compiled lenet: {vs_interp:.2e} from the interpreter, {vs_caffe:.2e} from the Caffe reference");
    assert!(vs_interp < 1e-5 && vs_caffe < 1e-5);
}

#[test]
fn compiled_every_layer_net_computes_what_caffe_computes() {
    let mut rng = Rng::new(2014);
    let w = nets::every_layer_weights(&mut rng);
    let batch = 4;
    let (x, samples) = samples(&mut rng, batch, [3, 10, 10]);
    let (weights, interpreted) = imported("every_layer", &w, &nets::EVERY_LAYER, &x, batch);
    let mut model = every_layer::CaffeEveryLayer::with_capacity(1, batch);
    model.load_bytes(&weights).expect("the imported weights load");
    let mut out = vec![0.0f32; batch * every_layer::CaffeEveryLayer::OUTPUT_LEN];
    model.forward_flat(&x, &mut out).expect("forward");
    let reference: Vec<f64> =
        samples.iter().flat_map(|s| nets::every_layer_reference(s, &w).v).collect();
    let (vs_interp, vs_caffe) =
        (worst_relative(&widen(&out), &interpreted), worst_relative(&widen(&out), &reference));
    eprintln!("compiled every-layer net: {vs_interp:.2e} from the interpreter, {vs_caffe:.2e} from the Caffe reference");
    assert!(vs_interp < 1e-5 && vs_caffe < 1e-5);
}
