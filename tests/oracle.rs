//! Generated code against the f64 interpreter of `netc-dsl`, which runs the
//! checked graph from the ops' definitions: forward outputs (inference and
//! training mode) of the zoo, and every gradient against central finite
//! differences of the interpreter's loss in f64.

use netc::runtime::dropout::{Dropout, DropoutKey};
use netc_dsl::interp::{self, Mode, Weights};
use std::path::Path;

use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::resnet20;
use netc_tests::nets::smooth;

fn graph(file: &str) -> netc_dsl::Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let source = std::fs::read_to_string(&path).expect("network file");
    netc_dsl::check_source(file, &source).unwrap_or_else(|d| panic!("{d}")).graphs.remove(0)
}

/// `n` flat samples of `len` values.
fn inputs(n: usize, len: usize, seed: u64) -> Vec<f32> {
    netc_tests::batch::<1>(n * len, seed).into_iter().map(|[v]| v).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= rel * scale,
            "{what}[{i}]: generated {g}, interpreter {w}"
        );
    }
}

/// Network `name` of `file`.
fn graph_named(file: &str, name: &str) -> netc_dsl::Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let source = std::fs::read_to_string(&path).expect("network file");
    let checked = netc_dsl::check_source(file, &source).unwrap_or_else(|d| panic!("{d}"));
    checked.graphs.into_iter().find(|g| g.name == name).expect("the network")
}

/// The keep decisions of the generated code's dropout and stochastic
/// depth at `seed` and optimizer step `step`, for the interpreter.
fn runtime_masks(seed: u64, step: u64) -> impl Fn(u16, u64, f32) -> bool {
    move |layer, index, p| {
        let dropout = Dropout::new(p).expect("a checked probability");
        dropout.keeps(DropoutKey { seed, step, layer, first: 0 }, index)
    }
}

/// Forward in both modes, then gradients at `coords` coordinates per
/// tensor; the training pass with the generated code's masks.
macro_rules! check_model {
    // A loss on float targets of the output's shape, in [0, 1].
    (float $ty:ty, $file:expr, $network:expr, $n:expr, $coords:expr) => {{
        let targets: Vec<f32> =
            inputs($n, <$ty>::OUTPUT_LEN, 13).iter().map(|v| (v + 1.0) / 2.0).collect();
        let targets64: Vec<f64> = targets.iter().map(|&v| f64::from(v)).collect();
        let chunks = targets.as_chunks::<{ <$ty>::OUTPUT_LEN }>().0;
        check_model!(@run $ty, graph_named($file, $network), $file, $n, $coords, 1, 0.0, chunks, &[], &targets64)
    }};
    // Class-index labels, network `$network` of the file.
    (labels $ty:ty, $file:expr, $network:expr, $n:expr, $coords:expr) => {{
        let labels: Vec<u32> = (0..$n as u32).map(|i| (i * 3) % <$ty>::OUTPUT_LEN as u32).collect();
        check_model!(@run $ty, graph_named($file, $network), $file, $n, $coords, 1, 0.0, &labels, &labels, &[])
    }};
    (@run $ty:ty, $graph:expr, $file:expr, $n:expr, $coords:expr, $stride:expr, $slack:expr, $targets:expr, $labels:expr, $floats:expr) => {{
        let g = $graph;
        let (labels, floats): (&[u32], &[f64]) = ($labels, $floats);
        let mut model = <$ty>::with_capacity(7, $n);
        let mut weights = Weights::new();
        model.params().visit(|name, _, v| {
            weights.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
        });
        let x = inputs($n, <$ty>::INPUT_LEN, 11);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();

        // Inference.
        let mut out = vec![0.0f32; $n * <$ty>::OUTPUT_LEN];
        model.forward_flat(&x, &mut out).expect("forward");
        let want = interp::run(&g, &weights, &[&x64], $n, Mode::Infer).expect("interpreter");
        assert_close(concat!($file, " inference"), &out, interp::output(&g, &want), 1e-4);

        // Training forward and the loss.
        let chunks = x.as_chunks::<{ <$ty>::INPUT_LEN }>().0;
        let train_out = model.forward_train(chunks).expect("forward_train").as_flattened().to_vec();
        let keeps = runtime_masks(7, model.steps());
        let want = interp::run_training(&g, &weights, &[&x64], $n, &keeps).expect("interpreter");
        assert_close(
            concat!($file, " training forward"),
            &train_out,
            interp::output(&g, &want),
            1e-4,
        );
        let loss = model.backward($targets).expect("backward");
        let want_loss = interp::loss(&g, &want, $n, labels, floats).expect("loss");
        assert!(
            (f64::from(loss) - want_loss).abs() <= 1e-4 * want_loss.abs().max(1.0),
            "loss {loss} vs {want_loss}"
        );

        // Gradients: central differences of the f64 loss.
        let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
        model.grads().expect("gradients after a backward pass").visit(|name, _, v| {
            if !name.contains("running") {
                grads.push((name.to_string(), v.to_vec()));
            }
        });
        let loss_at = |w: &Weights, x: &[f64]| {
            let run = interp::run_training(&g, w, &[x], $n, &keeps).expect("run");
            interp::loss(&g, &run, $n, labels, floats).expect("loss")
        };
        let central = |name: &str, i: usize, x: &[f64]| {
            let eps = 1e-5;
            let mut w = weights.clone();
            w.get_mut(name).expect("tensor")[i] += eps;
            let plus = loss_at(&w, x);
            w.get_mut(name).expect("tensor")[i] -= 2.0 * eps;
            (plus - loss_at(&w, x)) / (2.0 * eps)
        };
        for (name, grad) in grads.iter().step_by($stride) {
            let scale = grad.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-4);
            for k in 0..$coords.min(grad.len()) {
                let i = (k * 7919 + 5) % grad.len();
                let numeric = central(name, i, &x64);
                let tol = (2e-3 + $slack) * f64::from(scale) + 1e-3 * numeric.abs();
                assert!(
                    (numeric - f64::from(grad[i])).abs() <= tol,
                    "{} {name}[{i}]: generated {}, finite difference {numeric}",
                    $file,
                    grad[i]
                );
            }
        }
    }};
    ($ty:ty, $file:expr, $n:expr, $coords:expr) => {
        check_model!($ty, $file, $n, $coords, 1)
    };
    // Every `$stride`-th parameter tensor is checked (the interpreter runs
    // twice per coordinate, which is slow for the larger networks).
    ($ty:ty, $file:expr, $n:expr, $coords:expr, $stride:expr) => {
        check_model!($ty, $file, $n, $coords, $stride, 0.0)
    };
    // `$slack` widens each gradient's tolerance by that fraction of its
    // tensor's largest gradient, for networks whose float32 gradients are
    // ill-conditioned (see `resnet50_matches_the_interpreter`).
    ($ty:ty, $file:expr, $n:expr, $coords:expr, $stride:expr, $slack:expr) => {{
        let labels: Vec<u32> = (0..$n as u32).map(|i| (i * 3) % <$ty>::OUTPUT_LEN as u32).collect();
        check_model!(@run $ty, graph($file), $file, $n, $coords, $stride, $slack, &labels, &labels, &[])
    }};
}

#[test]
fn lenet5_matches_the_interpreter() {
    check_model!(lenet5::LeNet5, "../cli/models/lenet5.net", 3, 6);
}

#[test]
fn mlp_matches_the_interpreter() {
    check_model!(mlp::Mlp, "../cli/models/mlp.net", 3, 6);
}

#[test]
fn resnet20_matches_the_interpreter() {
    check_model!(resnet20::ResNet20, "../cli/models/resnet20.net", 2, 1, 5);
}

#[test]
fn transposed_convolutions_match_the_interpreter() {
    check_model!(netc_tests::nets::decoder::Decoder, "nets/decoder.net", 3, 6);
}

#[test]
fn gelu_silu_and_mul_match_the_interpreter() {
    check_model!(netc_tests::nets::gated::Gated, "nets/gated.net", 3, 6);
}

/// relu6, hardtanh, hardsigmoid, hardswish, ELU, PReLU and log-softmax,
/// fused into producers and on their own, in both modes and every
/// gradient (PReLU's slopes included).
#[test]
fn modern_activations_match_the_interpreter() {
    check_model!(netc_tests::nets::modern::Modern, "nets/modern.net", 3, 6);
}

/// GELU, SiLU and hardswish fused into conv, batch norm, add and dense
/// layers' stores.
#[test]
fn layer_and_group_norms_match_the_interpreter() {
    check_model!(netc_tests::nets::norms::Norms, "nets/norms.net", 3, 8);
}

#[test]
fn channel_shuffle_and_squeeze_excitation_match_the_interpreter() {
    check_model!(netc_tests::nets::shuffle_se::ShuffleSe, "nets/shuffle_se.net", 3, 8);
}

#[test]
fn fused_gated_activations_match_the_interpreter() {
    use netc_tests::nets::gated_infer::GatedInfer;
    let g = graph("nets/gated_infer.net");
    let model = GatedInfer::with_capacity(5, 4);
    let mut weights = Weights::new();
    model.params().visit(|name, _, v| {
        weights.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
    });
    let x = inputs(4, GatedInfer::INPUT_LEN, 9);
    let mut out = vec![0.0f32; 4 * GatedInfer::OUTPUT_LEN];
    model.forward_flat(&x, &mut out).expect("forward");
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let want = interp::run(&g, &weights, &[&x64], 4, Mode::Infer).expect("interpreter");
    assert_close("gated inference", &out, interp::output(&g, &want), 1e-5);
}

/// The loss's input is not the output, and forward steps follow it.
#[test]
fn a_loss_on_another_branch_matches_the_interpreter() {
    check_model!(netc_tests::nets::branch::Branch, "nets/branch.net", 3, 6);
}

/// An input and a layer named as the generated code's own locals.
#[test]
fn names_of_generated_locals_are_free_to_use() {
    check_model!(netc_tests::nets::names::Names, "nets/names.net", 3, 6);
}

/// Ceil-mode max and average pooling (with and without padding in the
/// divisor), nearest and bilinear upsampling, adaptive pooling and
/// `pad: same`: both forwards and every gradient.
#[test]
fn resampling_ops_match_the_interpreter() {
    check_model!(netc_tests::nets::resample::Resample, "nets/resample.net", 3, 6);
}

#[test]
fn smooth_network_matches_the_interpreter() {
    check_model!(smooth::Smooth, "nets/smooth.net", 3, 6);
}

use netc_tests::nets::{
    alexnet, dense_block, densenet121, efficientnet_b0, googlenet, mobilenet_v2,
    mobilenet_v3_small, resnet18, resnet50, squeezenet1_1, vgg11,
};

/// AlexNet (LRN, overlapping max pools, dropout): both forwards, the
/// training one with the generated code's dropout masks, and one
/// coordinate of every fourth gradient tensor at one sample, since each
/// coordinate costs two runs of 1.1 billion f64 multiply-adds.
#[test]
fn alexnet_matches_the_interpreter() {
    check_model!(alexnet::AlexNet, "../cli/models/alexnet.net", 1, 1, 4);
}

/// ResNet-18 (torchvision's layout, 224x224): inference on running
/// statistics, the training forward on batch statistics, and one coordinate
/// of every 31st gradient tensor (each costs two f64 runs of 1.8 billion
/// multiply-adds), at one sample.
#[test]
fn resnet18_matches_the_interpreter() {
    check_model!(resnet18::ResNet18, "../cli/models/resnet18.net", 1, 1, 31);
}

/// ResNet-50 (torchvision's layout, 224x224, 4.1 billion multiply-adds a
/// sample): both forwards, and one coordinate of every 53rd gradient tensor.
///
/// Fifty layers of batch norm at initialisation, trained on one sample, are
/// ill-conditioned: float32 rounding moves the gradients of the early layers
/// by several percent of the tensor's largest, up to a fifth of it in
/// PyTorch's own float32 gradients against its float64 ones. The gradients
/// here are held to that (a wrong sign, branch or tensor is far outside it);
/// every op's gradient is checked tightly on the small networks, and the
/// model's against PyTorch's in `bench/peers`.
#[test]
fn resnet50_matches_the_interpreter() {
    check_model!(resnet50::ResNet50, "../cli/models/resnet50.net", 1, 1, 53, 0.2);
}

/// A DenseNet-style network at small size: twenty layers that each
/// concatenate their input with their new channels; every gradient tensor.
#[test]
fn dense_blocks_match_the_interpreter() {
    check_model!(dense_block::DenseBlock, "nets/dense_block.net", 2, 3);
}

/// DenseNet-121 (torchvision's layout, 224x224): 58 dense layers, each
/// concatenating its input with its new channels; both forwards, and one
/// coordinate of every 120th gradient tensor, held as ResNet-50's.
#[test]
fn densenet121_matches_the_interpreter() {
    check_model!(densenet121::DenseNet121, "../cli/models/densenet121.net", 1, 1, 120, 0.2);
}

/// MobileNetV2: depthwise convs, ReLU6, inverted residuals, dropout; one
/// coordinate of every 31st gradient tensor, held as ResNet-50's: 52 batch
/// norms on one sample are as ill-conditioned (PyTorch's float32 gradients
/// of the first layers are 2% from its float64 ones, netc's 0.6%).
#[test]
fn mobilenet_v2_matches_the_interpreter() {
    check_model!(mobilenet_v2::MobileNetV2, "../cli/models/mobilenet_v2.net", 1, 1, 31, 0.2);
}

/// MobileNetV3-Small: hard swish, squeeze-and-excitation with hard sigmoid
/// gates; one coordinate of every 29th gradient tensor.
#[test]
fn mobilenet_v3_small_matches_the_interpreter() {
    check_model!(
        mobilenet_v3_small::MobileNetV3Small,
        "../cli/models/mobilenet_v3_small.net",
        1,
        1,
        29
    );
}

/// SqueezeNet 1.1: fire modules, max pools in ceil mode; one coordinate of
/// every 7th gradient tensor.
#[test]
fn squeezenet1_1_matches_the_interpreter() {
    check_model!(squeezenet1_1::SqueezeNet11, "../cli/models/squeezenet1_1.net", 1, 1, 7);
}

/// GoogLeNet: inception branches, padded pools in ceil mode; one coordinate
/// of every 35th gradient tensor, held as ResNet-50's (57 batch norms).
#[test]
fn googlenet_matches_the_interpreter() {
    check_model!(googlenet::GoogLeNet, "../cli/models/googlenet.net", 1, 1, 35, 0.2);
}

/// EfficientNet-B0: SiLU, squeeze-and-excitation, stochastic depth with the
/// generated code's masks; one coordinate of every 43rd gradient tensor.
#[test]
fn efficientnet_b0_matches_the_interpreter() {
    check_model!(efficientnet_b0::EfficientNetB0, "../cli/models/efficientnet_b0.net", 1, 1, 43);
}

/// The digits autoencoder: strided convs, a transposed conv, bilinear
/// upsampling and the squared error against float targets; every gradient
/// tensor.
#[test]
fn autoencoder_matches_the_interpreter() {
    use netc_tests::nets::autoencoder::Autoencoder;
    check_model!(float Autoencoder, "../cli/models/autoencoder.net", "Autoencoder", 3, 8);
}

/// VGG-11 (224x224, 7.6 billion multiply-adds a sample, dropout):
/// inference, the training forward, and one coordinate of every 11th
/// gradient tensor.
#[test]
fn vgg11_matches_the_interpreter() {
    check_model!(vgg11::Vgg11, "../cli/models/vgg11.net", 1, 1, 11);
}

/// A network of two inputs: both are arguments of every generated method,
/// both reach the output, and the gradients of both branches match finite
/// differences of the interpreter's loss.
#[test]
fn two_input_network_matches_the_interpreter() {
    use netc_tests::nets::two_inputs::Two;
    let g = graph("nets/two_inputs.net");
    let n = 5;
    let mut model = Two::with_capacity(3, n);
    let mut weights = Weights::new();
    model.params().visit(|name, _, v| {
        weights.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
    });
    let (a, b) = (inputs(n, 8, 21), inputs(n, 8, 22));
    let (a64, b64): (Vec<f64>, Vec<f64>) =
        (a.iter().map(|&v| f64::from(v)).collect(), b.iter().map(|&v| f64::from(v)).collect());
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();

    let mut out = vec![0.0f32; n * Two::OUTPUT_LEN];
    model.forward_flat(&a, &b, &mut out).expect("forward");
    let want = interp::run(&g, &weights, &[&a64, &b64], n, Mode::Infer).expect("interpreter");
    assert_close("two inputs, inference", &out, interp::output(&g, &want), 1e-5);
    // The second input is read: swapping the two changes the outputs.
    let mut swapped = vec![0.0f32; n * Two::OUTPUT_LEN];
    model.forward_flat(&b, &a, &mut swapped).expect("forward");
    assert!(out.iter().zip(&swapped).any(|(x, y)| (x - y).abs() > 1e-4));

    let train_out = model.forward_train_flat(&a, &b).expect("forward_train").to_vec();
    let want = interp::run(&g, &weights, &[&a64, &b64], n, Mode::Train).expect("interpreter");
    assert_close("two inputs, training forward", &train_out, interp::output(&g, &want), 1e-5);
    let loss = model.backward(&labels).expect("backward");
    let want_loss = interp::loss(&g, &want, n, &labels, &[]).expect("loss");
    assert!((f64::from(loss) - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0));

    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    model
        .grads()
        .expect("gradients after a backward pass")
        .visit(|name, _, v| grads.push((name.to_string(), v.to_vec())));
    assert_eq!(grads.len(), 6, "both branches and the head have a weight and a bias");
    let eps = 1e-6;
    for (name, grad) in &grads {
        let scale = grad.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-4);
        for (i, &analytic) in grad.iter().enumerate() {
            let mut w = weights.clone();
            let loss_at = |w: &Weights| {
                let outs = interp::run(&g, w, &[&a64, &b64], n, Mode::Train).expect("run");
                interp::loss(&g, &outs, n, &labels, &[]).expect("loss")
            };
            w.get_mut(name).expect("tensor")[i] += eps;
            let plus = loss_at(&w);
            w.get_mut(name).expect("tensor")[i] -= 2.0 * eps;
            let minus = loss_at(&w);
            let numeric = (plus - minus) / (2.0 * eps);
            assert!(
                (numeric - f64::from(analytic)).abs()
                    <= 1e-3 * f64::from(scale) + 1e-4 * numeric.abs(),
                "{name}[{i}]: generated {analytic}, finite difference {numeric}"
            );
        }
    }
    assert!(grads.iter().all(|(_, g)| g.iter().any(|v| *v != 0.0)), "every branch gets a gradient");

    // Inputs of different batches are an error naming the second.
    let err = model.forward_flat(&a, &b[..8 * (n - 1)], &mut out).expect_err("batches differ");
    assert!(err.to_string().contains('b'), "{err}");
}

use netc_tests::nets::losses;

#[test]
fn bce_with_logits_and_pos_weight_match_the_interpreter() {
    check_model!(float losses::MultiLabel, "nets/losses.net", "MultiLabel", 4, 40);
}

#[test]
fn smoothed_weighted_cross_entropy_matches_the_interpreter() {
    check_model!(labels losses::SmoothedWeighted, "nets/losses.net", "SmoothedWeighted", 5, 40);
}

#[test]
fn huber_matches_the_interpreter() {
    check_model!(float losses::HuberRegression, "nets/losses.net", "HuberRegression", 4, 40);
}

#[test]
fn smooth_l1_matches_the_interpreter() {
    check_model!(float losses::SmoothL1Regression, "nets/losses.net", "SmoothL1Regression", 4, 40);
}

use netc_tests::nets::train_controls;

/// Two optimizer steps of a network with `train` statements (frozen layers,
/// multipliers) and clipping: the generated `apply_gradients` and
/// `train_step` against the interpreter's steps from the same gradients;
/// the gradients of the layers that learn against finite differences of
/// the interpreter's loss, and frozen layers' weights unchanged, bit for
/// bit.
macro_rules! check_training {
    ($ty:ty, $file:expr, $network:expr, $frozen:expr) => {{
        let g = graph_named($file, $network);
        let n = 6;
        let x = inputs(n, <$ty>::INPUT_LEN, 31);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let labels: Vec<u32> =
            (0..n as u32).map(|i| (i * 5 + 1) % <$ty>::OUTPUT_LEN as u32).collect();
        let chunks = x.as_chunks::<{ <$ty>::INPUT_LEN }>().0;
        let opt = <$ty>::default_optimizer().expect("optimizer");
        let (mut stepwise, mut whole) = (<$ty>::with_capacity(3, n), <$ty>::with_capacity(3, n));
        let weights_of = |m: &$ty| {
            let mut w = Weights::new();
            m.params().visit(|name, _, v| {
                w.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
            });
            w
        };
        let start = weights_of(&stepwise);
        let mut want = start.clone();
        let mut state = interp::OptimizerState::new();
        for step in 1..=2u64 {
            stepwise.forward_train(chunks).expect("forward");
            stepwise.backward(&labels).expect("backward");
            let grads = {
                let mut w = Weights::new();
                stepwise.grads().expect("gradients after a backward pass").visit(|name, _, v| {
                    w.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
                });
                w
            };
            if step == 1 {
                // The gradients of the layers that learn are right, and the
                // frozen ones are never computed.
                let loss_at = |w: &Weights| {
                    let outs = interp::run(&g, w, &[&x64], n, Mode::Train).expect("run");
                    interp::loss(&g, &outs, n, &labels, &[]).expect("loss")
                };
                for (name, grad) in &grads {
                    if $frozen.iter().any(|f: &&str| name.starts_with(&format!("{f}."))) {
                        assert!(
                            grad.iter().all(|&v| v == 0.0),
                            "{name} of a frozen layer has a gradient"
                        );
                        continue;
                    }
                    let scale = grad.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-4);
                    for k in 0..5.min(grad.len()) {
                        let i = (k * 7919 + 5) % grad.len();
                        let mut w = want.clone();
                        w.get_mut(name).expect("tensor")[i] += 1e-5;
                        let plus = loss_at(&w);
                        w.get_mut(name).expect("tensor")[i] -= 2e-5;
                        let numeric = (plus - loss_at(&w)) / 2e-5;
                        assert!(
                            (numeric - grad[i]).abs() <= 2e-3 * scale + 1e-3 * numeric.abs(),
                            "{name}[{i}]: generated {}, finite difference {numeric}",
                            grad[i]
                        );
                    }
                }
            }
            interp::apply_optimizer(&g, &mut want, &grads, &mut state, step).expect("step");
            stepwise.apply_gradients(&opt).expect("apply");
            whole.train_step(chunks, &labels, &opt).expect("train_step");
            for (label, model) in [("apply_gradients", &stepwise), ("train_step", &whole)] {
                let got = weights_of(model);
                for (name, w) in &want {
                    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
                    for (i, (&a, &b)) in got[name].iter().zip(w).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * scale,
                            "{label} step {step}: {name}[{i}] = {a}, interpreter {b}"
                        );
                    }
                }
            }
        }
        // Frozen layers did not move; every other tensor did.
        let end = weights_of(&whole);
        for (name, w) in &start {
            let frozen = $frozen.iter().any(|f: &&str| name.starts_with(&format!("{f}.")));
            let moved = end[name] != *w;
            assert_eq!(moved, !frozen, "{name}: moved {moved}, frozen {frozen}");
        }
    }};
}

#[test]
fn frozen_layers_multipliers_and_clipping_match_the_interpreter() {
    use train_controls::Controls;
    check_training!(Controls, "nets/train_controls.net", "Controls", ["stem"]);
    // The clipping had something to do: the first gradient's norm is above
    // the file's `clip_norm: 0.2`.
    let mut model = Controls::with_capacity(3, 6);
    let x = inputs(6, Controls::INPUT_LEN, 31);
    model.forward_train_flat(&x).expect("forward");
    model.backward(&[1, 0, 2, 1, 0, 2]).expect("backward");
    let mut squares = 0.0f64;
    model
        .grads()
        .expect("gradients after a backward pass")
        .visit(|_, _, v| squares += v.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>());
    assert!(squares.sqrt() > 0.2, "norm {}", squares.sqrt());
}

#[test]
fn adamw_multipliers_on_a_block_and_a_frozen_middle_match_the_interpreter() {
    check_training!(
        train_controls::ControlsAdam,
        "nets/train_controls.net",
        "ControlsAdam",
        ["frozen_mid"]
    );
}

#[test]
fn fused_sgd_with_a_multiplier_matches_the_interpreter() {
    let none: [&str; 0] = [];
    check_training!(
        train_controls::ControlsFused,
        "nets/train_controls.net",
        "ControlsFused",
        none
    );
}

/// A network of activations and pools alone, trained against labels: no
/// parameter, so only its forward passes and loss are compared.
#[test]
fn a_network_of_pools_and_activations_matches_the_interpreter() {
    use netc_tests::nets::no_params::PoolsOnly;
    check_model!(labels PoolsOnly, "nets/no_params.net", "PoolsOnly", 3, 1);
}
