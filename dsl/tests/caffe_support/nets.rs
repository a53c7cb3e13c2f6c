//! The reference nets of the tests: random weights for LeNet and for
//! `every_layer.prototxt`, and their forward pass through the naive Caffe
//! layers of this module's parent.

use super::{self as caffe_ref, Blob, Conv, Rng, T};
use std::collections::HashMap;

pub type Weights = HashMap<&'static str, Vec<Blob>>;

pub fn lenet_weights(rng: &mut Rng) -> Weights {
    let mut w = Weights::new();
    w.insert("conv1", vec![rng.weights(&[20, 1, 5, 5], 25), rng.blob(&[20], -0.1, 0.1)]);
    w.insert("conv2", vec![rng.weights(&[50, 20, 5, 5], 500), rng.blob(&[50], -0.1, 0.1)]);
    w.insert("ip1", vec![rng.weights(&[500, 800], 800), rng.blob(&[500], -0.1, 0.1)]);
    w.insert("ip2", vec![rng.weights(&[10, 500], 500), rng.blob(&[10], -0.1, 0.1)]);
    w
}

pub fn lenet_reference(x: &T, w: &Weights) -> T {
    let conv = |x: &T, name: &str| {
        caffe_ref::conv(x, &w[name][0], Some(&w[name][1]), Conv::square(5, 1, 0))
    };
    let pool = |x: &T| caffe_ref::pool(x, false, (2, 2), (2, 2), (0, 0));
    let ip = |x: &T, name: &str| caffe_ref::inner_product(x, &w[name][0], Some(&w[name][1]), false);
    let x = pool(&conv(&pool(&conv(x, "conv1")), "conv2"));
    caffe_ref::softmax(&ip(&caffe_ref::relu(&ip(&x, "ip1"), 0.0), "ip2"))
}

pub fn every_layer_weights(rng: &mut Rng) -> Weights {
    let mut w = Weights::new();
    w.insert("conv_a", vec![rng.weights(&[4, 3, 3, 3], 27), rng.blob(&[4], -0.1, 0.1)]);
    // Statistics summed with a moving-average factor of 0.5: the mean is
    // blob 0 / 0.5.
    let stats = |rng: &mut Rng, c: usize, factor: f32| {
        vec![
            rng.blob(&[c], -0.2, 0.2),
            rng.blob(&[c], 0.2, 1.0),
            Blob { shape: vec![1], values: vec![factor] },
        ]
    };
    w.insert("bn_a", stats(rng, 4, 0.5));
    w.insert("scale_a", vec![rng.blob(&[4], 0.5, 1.5), rng.blob(&[4], -0.5, 0.5)]);
    w.insert("conv_b", vec![rng.weights(&[4, 3, 3, 1], 9)]);
    w.insert("conv_c", vec![rng.weights(&[4, 4, 3, 3], 36), rng.blob(&[4], -0.1, 0.1)]);
    w.insert("up", vec![rng.weights(&[4, 2, 3, 3], 9), rng.blob(&[4], -0.1, 0.1)]);
    w.insert("ip_d", vec![rng.weights(&[196, 6], 196), rng.blob(&[6], -0.1, 0.1)]);
    w.insert("bn_f", stats(rng, 10, 2.0));
    w.insert("ip_out", vec![rng.weights(&[3, 10], 10), rng.blob(&[3], -0.1, 0.1)]);
    w
}

pub fn every_layer_reference(x: &T, w: &Weights) -> T {
    let a = caffe_ref::conv(x, &w["conv_a"][0], Some(&w["conv_a"][1]), Conv::square(3, 1, 1));
    let a = caffe_ref::batch_norm(&a, &w["bn_a"], 1e-3, Some((&w["scale_a"][0], &w["scale_a"][1])));
    let a = caffe_ref::pool(&caffe_ref::relu(&a, 0.1), false, (3, 3), (2, 2), (1, 1));
    let b_conv = Conv { k: (3, 1), s: (1, 1), p: (1, 0), d: (1, 1), g: 1 };
    let b = caffe_ref::sigmoid(&caffe_ref::conv(x, &w["conv_b"][0], None, b_conv));
    let b = caffe_ref::pool(&b, true, (3, 3), (2, 2), (1, 1));
    let cat =
        caffe_ref::concat(&caffe_ref::eltwise(&a, &b, false), &caffe_ref::eltwise(&a, &b, true));
    let norm = caffe_ref::tanh(&caffe_ref::lrn(&cat, 3, 0.5, 0.75, 2.0));
    let dilated = Conv { d: (2, 2), g: 2, ..Conv::square(3, 1, 2) };
    let c = caffe_ref::conv(&norm, &w["conv_c"][0], Some(&w["conv_c"][1]), dilated);
    let up = caffe_ref::deconv(
        &c,
        &w["up"][0],
        Some(&w["up"][1]),
        Conv { g: 2, ..Conv::square(3, 2, 0) },
    );
    let d = caffe_ref::pool(&up, true, (2, 2), (2, 2), (1, 1));
    assert_eq!((d.h, d.w), (7, 7), "Caffe clips the last window of 13 cells padded by 1");
    let pooled = caffe_ref::eltwise(
        &caffe_ref::global_pool(&d, true),
        &caffe_ref::global_pool(&d, false),
        false,
    );
    let ip_d = caffe_ref::inner_product(&d, &w["ip_d"][0], Some(&w["ip_d"][1]), true);
    let features = caffe_ref::concat(&pooled, &ip_d);
    let features = caffe_ref::batch_norm(&features, &w["bn_f"], 1e-5, None);
    let logits = caffe_ref::inner_product(&features, &w["ip_out"][0], Some(&w["ip_out"][1]), false);
    caffe_ref::softmax(&logits)
}

/// The layers of a caffemodel: each layer's name, its type and its blobs.
pub fn layers<'a>(w: &Weights, kinds: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str, Vec<Blob>)> {
    kinds.iter().map(|&(l, k)| (l, k, w[l].clone())).collect()
}

/// The layers of LeNet with parameters, and their types.
pub const LENET: [(&str, &str); 4] = [
    ("conv1", "Convolution"),
    ("conv2", "Convolution"),
    ("ip1", "InnerProduct"),
    ("ip2", "InnerProduct"),
];

/// The layers of `every_layer.prototxt` with parameters, and their types.
pub const EVERY_LAYER: [(&str, &str); 9] = [
    ("conv_a", "Convolution"),
    ("bn_a", "BatchNorm"),
    ("scale_a", "Scale"),
    ("conv_b", "Convolution"),
    ("conv_c", "Convolution"),
    ("up", "Deconvolution"),
    ("ip_d", "InnerProduct"),
    ("bn_f", "BatchNorm"),
    ("ip_out", "InnerProduct"),
];
