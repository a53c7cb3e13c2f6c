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
    // Slopes of both signs, per channel, and one shared (a blob of no axes).
    w.insert("prelu_c", vec![rng.blob(&[4], -0.5, 0.5)]);
    w.insert("up", vec![rng.weights(&[4, 2, 3, 3], 9), rng.blob(&[4], -0.1, 0.1)]);
    w.insert("ip_d", vec![rng.weights(&[196, 6], 196), rng.blob(&[6], -0.1, 0.1)]);
    w.insert("prelu_ip", vec![rng.blob(&[], -0.5, -0.2)]);
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
    let c = caffe_ref::prelu(&c, &w["prelu_c"][0]);
    let up = caffe_ref::deconv(
        &c,
        &w["up"][0],
        Some(&w["up"][1]),
        Conv { g: 2, ..Conv::square(3, 2, 0) },
    );
    let d = caffe_ref::pool(&up, true, (2, 2), (2, 2), (1, 1));
    assert_eq!((d.h, d.w), (7, 7), "Caffe clips the last window of 13 cells padded by 1");
    let [d_gap, d_gmp, d_ip] = <[T; 3]>::try_from(caffe_ref::split(&d, 3)).expect("three tops");
    let pooled = caffe_ref::eltwise(
        &caffe_ref::global_pool(&d_gap, true),
        &caffe_ref::global_pool(&d_gmp, false),
        false,
    );
    let ip_d = caffe_ref::inner_product(&d_ip, &w["ip_d"][0], Some(&w["ip_d"][1]), true);
    let ip_d = caffe_ref::prelu(&ip_d, &w["prelu_ip"][0]);
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
pub const EVERY_LAYER: [(&str, &str); 11] = [
    ("conv_a", "Convolution"),
    ("bn_a", "BatchNorm"),
    ("scale_a", "Scale"),
    ("conv_b", "Convolution"),
    ("conv_c", "Convolution"),
    ("prelu_c", "PReLU"),
    ("up", "Deconvolution"),
    ("ip_d", "InnerProduct"),
    ("prelu_ip", "PReLU"),
    ("bn_f", "BatchNorm"),
    ("ip_out", "InnerProduct"),
];

/// The layers of CaffeNet with parameters, in order.
pub const CAFFENET: [&str; 8] = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"];

/// Random CaffeNet weights of the given widths: the convolutions' output
/// channels and the first two inner products' outputs (the published
/// net's are `[96, 256, 384, 384, 256]` and `[4096, 4096]`), for samples
/// of `[3, side, side]` and `classes` classes.
pub fn caffenet_weights(
    rng: &mut Rng,
    convs: [usize; 5],
    fcs: [usize; 2],
    side: usize,
    classes: usize,
) -> Weights {
    let mut w = Weights::new();
    // Input channels per group: conv2, conv4 and conv5 have two groups.
    let inputs = [3, convs[0] / 2, convs[1], convs[2] / 2, convs[3] / 2];
    let kernels = [11, 5, 3, 3, 3];
    for (i, &name) in CAFFENET[..5].iter().enumerate() {
        let (m, c, k) = (convs[i], inputs[i], kernels[i]);
        w.insert(name, vec![rng.weights(&[m, c, k, k], c * k * k), rng.blob(&[m], -0.1, 0.1)]);
    }
    // The spatial side after conv1 (11, stride 4) and three 3/2 pools.
    let pooled = |s: usize| (s - 3).div_ceil(2) + 1;
    let features = convs[4] * pooled(pooled(pooled((side - 11) / 4 + 1))).pow(2);
    for (name, n, k) in
        [("fc6", fcs[0], features), ("fc7", fcs[1], fcs[0]), ("fc8", classes, fcs[1])]
    {
        w.insert(name, vec![rng.weights(&[n, k], k), rng.blob(&[n], -0.1, 0.1)]);
    }
    w
}

/// CaffeNet's forward pass (its deploy net: dropout is the identity), at
/// the widths its weights have.
pub fn caffenet_reference(x: &T, w: &Weights) -> T {
    let conv = |x: &T, name: &str, c: Conv| {
        caffe_ref::relu(&caffe_ref::conv(x, &w[name][0], Some(&w[name][1]), c), 0.0)
    };
    let pool = |x: &T| caffe_ref::pool(x, false, (3, 3), (2, 2), (0, 0));
    let norm = |x: &T| caffe_ref::lrn(x, 5, 1e-4, 0.75, 1.0);
    let grouped = |k, p| Conv { g: 2, ..Conv::square(k, 1, p) };
    let x = norm(&pool(&conv(x, "conv1", Conv::square(11, 4, 0))));
    let x = norm(&pool(&conv(&x, "conv2", grouped(5, 2))));
    let x = conv(&conv(&x, "conv3", Conv::square(3, 1, 1)), "conv4", grouped(3, 1));
    let x = pool(&conv(&x, "conv5", grouped(3, 1)));
    let fc = |x: &T, name: &str| caffe_ref::inner_product(x, &w[name][0], Some(&w[name][1]), false);
    let x = caffe_ref::relu(&fc(&caffe_ref::relu(&fc(&x, "fc6"), 0.0), "fc7"), 0.0);
    caffe_ref::softmax(&fc(&x, "fc8"))
}

/// CaffeNet's layers with parameters and their types.
pub fn caffenet_layers(w: &Weights) -> Vec<(&'static str, &'static str, Vec<Blob>)> {
    CAFFENET
        .iter()
        .map(|&l| {
            let kind = if l.starts_with("conv") { "Convolution" } else { "InnerProduct" };
            (l, kind, w[l].clone())
        })
        .collect()
}
