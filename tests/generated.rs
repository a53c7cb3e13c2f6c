//! The zoo compiled by build.rs: the generated models run forward, train,
//! and report bad input as errors.

use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;

use lenet5::LeNet5;
use mlp::Mlp;
use netc_tests::batch;

#[test]
fn lenet5_constants_match_the_checker() {
    assert_eq!(LeNet5::PARAMS, 61_706);
    assert_eq!(LeNet5::MACS_PER_SAMPLE, 416_520);
    assert_eq!(LeNet5::INPUT, [1, 28, 28]);
    assert_eq!(LeNet5::OUTPUT, [10]);
    const { assert!(LeNet5::TRAIN_ARENA_BYTES_PER_SAMPLE < LeNet5::UNPLANNED_BYTES_PER_SAMPLE) };
}

#[test]
fn lenet5_overfits_a_small_batch() {
    let mut model = LeNet5::with_capacity(7, 16);
    let labels: Vec<u32> = (0..16).map(|i| i % 10).collect();
    // Noise plus a bright bar whose row depends on the class.
    let mut x = batch::<784>(16, 3);
    for (img, &l) in x.iter_mut().zip(&labels) {
        for v in img.iter_mut() {
            *v *= 0.3;
        }
        for col in 4..24 {
            img[(2 + 2 * l as usize) * 28 + col] = 1.0;
        }
    }
    let opt = LeNet5::default_optimizer().expect("the file names an optimizer");
    let first = model.train_step(&x, &labels, &opt).expect("train step");
    let mut last = first;
    for _ in 0..150 {
        last = model.train_step(&x, &labels, &opt).expect("train step");
    }
    assert!(first.is_finite() && last.is_finite());
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    let mut out = vec![[0.0f32; 10]; 16];
    model.forward(&x, &mut out).expect("forward");
    let correct = out
        .iter()
        .zip(&labels)
        .filter(|(o, &l)| {
            o.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32) == Some(l)
        })
        .count();
    assert!(correct >= 14, "memorised {correct} of 16");
}

#[test]
fn mlp_trains_and_rejects_bad_input() {
    let mut model = Mlp::with_capacity(1, 8);
    let x = batch::<784>(8, 5);
    let opt = Mlp::default_optimizer().expect("optimizer");
    let labels = [0u32, 1, 2, 3, 4, 5, 6, 7];
    let loss = model.train_step(&x, &labels, &opt).expect("step");
    assert!(loss.is_finite());
    // A batch over capacity.
    let big = batch::<784>(9, 1);
    assert!(matches!(
        model.train_step(&big, &[0; 9], &opt),
        Err(netc::runtime::Error::BatchOverCapacity { .. })
    ));
    // A label out of range.
    let err = model.train_step(&x, &[0, 1, 2, 3, 4, 5, 6, 10], &opt).unwrap_err();
    assert!(matches!(err, netc::runtime::Error::Label { sample: 7, label: 10, .. }), "{err}");
    // A flat input of the wrong length.
    let mut out = vec![0.0; 10];
    let err = model.forward_flat(&[0.0; 785], &mut out).unwrap_err();
    assert!(err.to_string().contains("`x`"), "{err}");
}

/// The backward pass reuses the training activations' memory, so a second
/// `backward` is an error, not silently wrong gradients. Inference runs in
/// buffers of its own and does not disturb a pending `backward`.
#[test]
fn backward_needs_its_own_forward_train() {
    use netc::runtime::Error::NoForwardTrain;
    let mut model = LeNet5::with_capacity(3, 4);
    let x = batch::<784>(4, 9);
    let other = batch::<784>(4, 10);
    let labels = [1u32, 2, 3, 4];
    let mut out = vec![[0.0f32; 10]; 4];

    assert!(matches!(model.backward(&labels), Err(NoForwardTrain)), "before any forward_train");

    model.forward_train(&x).expect("forward_train");
    let loss = model.backward(&labels).expect("backward");
    assert!(loss.is_finite());
    let grads: Vec<Vec<f32>> =
        model.grads().expect("gradients").tensors().map(<[f32]>::to_vec).into();
    assert!(matches!(model.backward(&labels), Err(NoForwardTrain)), "a second backward");

    model.forward_train(&x).expect("forward_train");
    model.forward(&other, &mut out).expect("forward");
    assert_eq!(model.backward(&labels).expect("backward after forward"), loss);
    let after: Vec<Vec<f32>> =
        model.grads().expect("gradients").tensors().map(<[f32]>::to_vec).into();
    assert!(
        grads == after,
        "an inference between forward_train and backward changed the gradients"
    );

    // A forward that fails its length check touches nothing.
    model.forward_train(&x).expect("forward_train");
    assert!(model.forward_flat(&[0.0; 5], &mut [0.0; 10]).is_err());
    assert_eq!(model.backward(&labels).expect("backward"), loss, "same batch, same weights");
}

/// A checkpoint's optimizer state that does not fit its kind is an error,
/// not a state that the next step silently resets.
#[test]
fn optimizer_state_must_fit_its_kind() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::Adam;
    let mut model = Mlp::with_capacity(1, 8);
    let x = batch::<784>(8, 5);
    let labels = [0u32, 1, 2, 3, 4, 5, 6, 7];
    model.train_step(&x, &labels, &Optimizer::Adam(Adam::new(1e-3))).expect("step");
    let (state, kind, step) = model.optimizer_state();
    let (state, learnable) = (state.to_vec(), Mlp::PARAMS);
    assert_eq!((state.len(), kind, step), (2 * learnable, 2, 1));
    model.set_optimizer_state(&state, kind, step).expect("its own state fits");
    let half = &state[..learnable];
    assert!(model.set_optimizer_state(half, 2, step).is_err(), "Adam with one moment");
    assert!(model.set_optimizer_state(&state, 9, step).is_err(), "an unknown kind");
    assert!(model.set_optimizer_state(half, 1, step).is_ok(), "SGD momentum");
}

/// `forward_view` and `train_step_view` take ndarray views in any layout
/// and agree with the slice methods; a view of the wrong shape is an error
/// naming it.
#[test]
fn ndarray_views_agree_with_slices() {
    use netc::runtime::view::ndarray::{Array4, ArrayView2, Axis};
    let x = batch::<784>(5, 11);
    let labels: Vec<u32> = (0..5).map(|i| (i * 3) % 10).collect();
    let model = LeNet5::with_capacity(3, 8);
    let mut want = vec![[0.0f32; 10]; 5];
    model.forward(&x, &mut want).unwrap();

    // Standard layout: borrowed.
    let array = Array4::from_shape_vec((5, 1, 28, 28), x.as_flattened().to_vec()).unwrap();
    let got = model.forward_view(array.view()).unwrap();
    assert_eq!(got.shape(), &[5, 10]);
    assert_eq!(got.as_slice().unwrap(), want.as_flattened());

    // Rows and columns of every image swapped twice over: the same values
    // in a layout that is not contiguous, which is copied.
    let mut transposed = Array4::<f32>::zeros((5, 1, 28, 28));
    transposed.assign(&array.view().permuted_axes([0, 1, 3, 2]));
    let strided = transposed.view().permuted_axes([0, 1, 3, 2]);
    assert!(!strided.is_standard_layout());
    assert_eq!(model.forward_view(strided).unwrap(), got);

    let err = model.forward_view(array.index_axis(Axis(1), 0)).unwrap_err();
    assert!(
        err.to_string().contains("`x` has shape [5, 28, 28], expected [n, 1, 28, 28]"),
        "{err}"
    );
    let flat: ArrayView2<f32> = ArrayView2::from_shape((5, 784), x.as_flattened()).unwrap();
    assert!(model.forward_view(flat).is_err());

    // Training through a view is training through the slices.
    let opt = LeNet5::default_optimizer().unwrap();
    let (mut a, mut b) = (LeNet5::with_capacity(9, 8), LeNet5::with_capacity(9, 8));
    for _ in 0..2 {
        let la = a.train_step(&x, &labels, &opt).unwrap();
        let lb = b.train_step_view(strided, &labels, &opt).unwrap();
        assert_eq!(la, lb);
    }
}

/// `train_step` fuses SGD into the dense weight gradients; it must take the
/// step that `forward_train`, `backward` and `apply_gradients` take with
/// every gradient kept, for each optimizer (Nesterov and Adam are not fused
/// and must still reach the plain path), up to the order of additions.
#[test]
fn the_fused_train_step_is_the_three_calls() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::{Adam, Sgd};
    let sgd = |momentum, nesterov, weight_decay| Sgd {
        lr: 0.05,
        momentum,
        nesterov,
        weight_decay,
        clip_norm: None,
    };
    let optimizers = [
        Optimizer::Sgd(sgd(0.0, false, 0.0)),
        Optimizer::Sgd(sgd(0.0, false, 1e-2)),
        Optimizer::Sgd(sgd(0.9, false, 1e-2)),
        Optimizer::Sgd(sgd(0.9, true, 0.0)),
        Optimizer::Adam(Adam::new(1e-3)),
    ];
    let x = batch::<784>(6, 21);
    let labels: Vec<u32> = (0..6).map(|i| (i * 7) % 10).collect();
    for opt in &optimizers {
        let (mut fused, mut kept) = (LeNet5::with_capacity(4, 8), LeNet5::with_capacity(4, 8));
        for step in 0..3 {
            let a = fused.train_step(&x, &labels, opt).unwrap();
            kept.forward_train(&x).unwrap();
            let b = kept.backward(&labels).unwrap();
            kept.apply_gradients(opt).unwrap();
            // The losses are of the same weights, up to the last step's rounding.
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{opt:?} step {step}: loss {a} vs {b}"
            );
        }
        let mut kept_params = Vec::new();
        kept.params().visit(|name, _, v| kept_params.push((name.to_string(), v.to_vec())));
        let mut i = 0;
        fused.params().visit(|name, _, got| {
            let (kept_name, want) = &kept_params[i];
            assert_eq!(name, kept_name);
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{opt:?}: {name}[{j}] = {g}, kept {w}"
                );
            }
            i += 1;
        });
        let (state, kind, steps) = fused.optimizer_state();
        let (kept_state, kept_kind, kept_steps) = kept.optimizer_state();
        assert_eq!((kind, steps, state.len()), (kept_kind, kept_steps, kept_state.len()));
        for (j, (g, w)) in state.iter().zip(kept_state).enumerate() {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{opt:?}: state[{j}] = {g}, kept {w}");
        }
    }
}

/// On a pool of several threads, LeNet-5's `train_step` splits the batch
/// between them (`runtime::shard`), each thread running the whole step on
/// its samples: it must take the step that the three calls take on the
/// whole batch, leave every gradient of the batch in `grads`, and report a
/// bad label by its place in the batch without moving the weights. Three
/// threads split 29 samples unevenly.
#[test]
fn the_sharded_train_step_is_the_three_calls() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::{Adam, Sgd};
    let sgd = Optimizer::Sgd(Sgd { momentum: 0.9, weight_decay: 1e-3, ..Sgd::new(0.05) });
    let close = |what: &str, got: &[f32], want: &[f32]| {
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 2e-5 * (1.0 + w.abs()), "{what}[{j}] = {g}, whole batch {w}");
        }
    };
    for (threads, n) in [(2, 32), (3, 29)] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        assert_eq!(pool.install(|| netc::runtime::shard::count(n, 32)), threads);
        for opt in [&sgd, &Optimizer::Adam(Adam::new(1e-3))] {
            let x = batch::<784>(n, 3);
            let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 10).collect();
            let (mut sharded, mut whole) =
                (LeNet5::with_capacity(5, 32), LeNet5::with_capacity(5, 32));
            for step in 0..3 {
                let a = pool.install(|| sharded.train_step(&x, &labels, opt)).unwrap();
                whole.forward_train(&x).unwrap();
                let b = whole.backward(&labels).unwrap();
                whole.apply_gradients(opt).unwrap();
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "step {step}: loss {a} vs {b}");
            }
            let mut want = Vec::new();
            whole.params().visit(|_, _, v| want.push(v.to_vec()));
            whole
                .grads()
                .expect("gradients after a backward pass")
                .visit(|_, _, v| want.push(v.to_vec()));
            let mut i = 0;
            let mut check = |name: &str, _: &[usize], got: &[f32]| {
                close(&format!("{threads} threads, {opt:?}: {name}"), got, &want[i]);
                i += 1;
            };
            sharded.params().visit(&mut check);
            sharded.grads().expect("gradients after a backward pass").visit(&mut check);
            assert_eq!(sharded.steps(), whole.steps());

            let mut bad = labels.clone();
            bad[n - 2] = 10;
            let before = sharded.params().clone();
            let err = pool.install(|| sharded.train_step(&x, &bad, opt)).unwrap_err();
            assert!(
                matches!(err, netc::runtime::Error::Label { sample, label: 10, .. } if sample == n - 2),
                "{err}"
            );
            let err = pool.install(|| sharded.train_step(&x, &labels[1..], opt)).unwrap_err();
            assert!(err.to_string().contains("labels"), "{err}");
            let mut i = 0;
            let mut unchanged = Vec::new();
            before.visit(|_, _, v| unchanged.push(v.to_vec()));
            sharded.params().visit(|name, _, v| {
                assert_eq!(v, &unchanged[i][..], "{name} moved on a failed step");
                i += 1;
            });
        }
    }
}

/// `forward` keeps its conv weights prepared across calls (Regression's conv
/// at batch 1: packed for its one-sample GEMM); every way the parameters
/// change must clear that, so a model that ran `forward` before the change
/// answers as one that did not: `params_mut`, `load`, `apply_gradients` and
/// `train_step` (plain SGD, whose dense steps are fused, and Nesterov).
#[test]
fn forward_follows_every_change_of_the_weights() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::Sgd;
    use netc_tests::nets::regression::Regression;
    type Change = fn(&mut Regression, &[[f32; 48]]);
    fn sgd(momentum: f64, nesterov: bool) -> Optimizer {
        Optimizer::Sgd(Sgd { lr: 0.1, momentum, nesterov, weight_decay: 0.0, clip_norm: None })
    }
    const TARGETS: [[f32; 2]; 1] = [[0.5, -0.25]];
    let changes: [(&str, Change); 5] = [
        ("params_mut", |m, _| {
            m.params_mut().visit_mut(|_, _, v| v.iter_mut().for_each(|w| *w *= -1.5))
        }),
        ("load", |m, _| {
            let tmp = tempfile::tempdir().expect("a temporary folder");
            let path = tmp.path().join("other.safetensors");
            let mut other = Regression::with_capacity(99, 4);
            other.params_mut().visit_mut(|_, _, v| v.iter_mut().for_each(|w| *w += 0.5));
            other.save(&path).unwrap();
            m.load(&path).unwrap();
        }),
        ("apply_gradients", |m, x| {
            m.forward_train(x).unwrap();
            m.backward(&TARGETS).unwrap();
            m.apply_gradients(&sgd(0.9, true)).unwrap();
        }),
        ("train_step (fused SGD)", |m, x| {
            m.train_step(x, &TARGETS, &sgd(0.0, false)).unwrap();
        }),
        ("train_step (Nesterov)", |m, x| {
            m.train_step(x, &TARGETS, &sgd(0.9, true)).unwrap();
        }),
    ];
    let x = batch::<48>(1, 31);
    for (what, change) in changes {
        let (mut warm, mut cold) =
            (Regression::with_capacity(5, 4), Regression::with_capacity(5, 4));
        let mut before = [[0.0f32; 2]; 1];
        warm.forward(&x, &mut before).unwrap();
        change(&mut warm, &x);
        change(&mut cold, &x);
        let (mut got, mut want) = ([[0.0f32; 2]; 1], [[0.0f32; 2]; 1]);
        warm.forward(&x, &mut got).unwrap();
        cold.forward(&x, &mut want).unwrap();
        assert_ne!(before, want, "{what} changed nothing the test can see");
        assert_eq!(got, want, "{what}: forward kept the old conv weights");
    }
}

/// A network without parameters trains (its loss is the loss of its input)
/// and saves an empty checkpoint.
#[test]
fn a_network_without_parameters_runs() {
    use netc::runtime::{nn::Optimizer, optim::Sgd};
    use netc_tests::nets::no_params::NoParams;
    let mut model = NoParams::with_capacity(1, 8);
    assert_eq!(NoParams::PARAMS, 0);
    let x = batch::<4>(8, 3);
    let targets = vec![[0.0f32; 4]; 8];
    let opt = Optimizer::Sgd(Sgd::new(0.1));
    let loss = model.train_step(&x, &targets, &opt).expect("step");
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let mut out = vec![[0.0f32; 4]; 8];
    model.forward(&x, &mut out).expect("forward");
    assert_eq!(out, x, "dropout is the identity at inference");
}

/// Batch norm over features refuses a batch of one sample (one value per
/// channel, no variance) with an error naming the layer, and keeps its
/// running statistics: before, they turned NaN and so did every later
/// `forward`.
#[test]
fn batch_norm_refuses_one_value_per_channel() {
    use netc_tests::nets::dense_bn::DenseBn;
    let mut model = DenseBn::with_capacity(2, 4);
    let opt = DenseBn::default_optimizer().expect("the file names one");
    let x = batch::<6>(2, 9);
    let err = model.train_step(&x[..1], &[1], &opt).expect_err("one sample");
    assert!(err.to_string().contains("`bn1`"), "{err}");
    let mut running_var = Vec::new();
    model.params().visit(|name, _, v| {
        if name == "bn1.running_var" {
            running_var = v.to_vec();
        }
    });
    assert_eq!(running_var, vec![1.0; 4], "the running statistics are untouched");
    let mut out = vec![[0.0f32; 3]; 2];
    model.forward(&x, &mut out).expect("forward");
    assert!(out.as_flattened().iter().all(|v| v.is_finite()));
    model.train_step(&x, &[1, 2], &opt).expect("two samples train");
}

/// A batch of one sample is refused before the training pass runs: a
/// batch norm over images earlier in the network, which would have had
/// values enough, keeps its running statistics too, and nothing else of
/// the model moves (parameters, buffers, the step count); `backward` has
/// no batch to work on.
#[test]
fn a_refused_batch_leaves_the_whole_model_unchanged() {
    use netc_tests::nets::dense_bn::DeepBn;
    let mut model = DeepBn::with_capacity(2, 4);
    let opt = DeepBn::default_optimizer().expect("the file names one");
    let x = batch::<18>(3, 4);
    model.train_step(&x[..2], &[0, 2], &opt).expect("two samples train");
    let snapshot = |m: &DeepBn| {
        let mut all = Vec::new();
        m.params().visit(|name, _, v| all.push((name.to_string(), v.to_vec())));
        (all, m.optimizer_state().0.to_vec(), m.optimizer_state().2)
    };
    let before = snapshot(&model);
    let err = model.train_step(&x[2..], &[1], &opt).expect_err("one sample");
    assert!(err.to_string().contains("`head_bn`"), "{err}");
    let err = model.forward_train(&x[2..]).expect_err("one sample");
    assert!(err.to_string().contains("`head_bn`"), "{err}");
    assert!(model.backward(&[1]).is_err(), "no batch to go back through");
    assert!(before == snapshot(&model), "the refused batch changed the model");
    model.train_step(&x[1..], &[2, 1], &opt).expect("two samples train");
    // The trainer asks the model, to refuse `--batch 1` before any step.
    use netc::runtime::model::Model;
    assert_eq!(Model::single_value_batch_norm(&model), Some("head_bn"));
    let lenet = lenet5::LeNet5::with_capacity(1, 1);
    assert_eq!(Model::single_value_batch_norm(&lenet), None);
}

/// Stochastic depth in training: each output is its branch's dense layer
/// times the mask that the runtime's reference draws from the model's
/// seed, the step and the layer (per sample in row mode, once per batch in
/// batch mode), and the weight gradients carry the same masks; at
/// inference it is the identity.
#[test]
fn stochastic_depth_masks_match_the_reference() {
    use netc::runtime::dropout::{DepthMode, DropoutKey};
    use netc::runtime::reference;
    use netc_tests::nets::depth::Depth;
    use std::collections::HashMap;
    let (n, seed) = (16, 3);
    let mut model = Depth::with_capacity(seed, n);
    let mut params: HashMap<String, Vec<f32>> = HashMap::new();
    model.params().visit(|name, _, v| {
        params.insert(name.to_string(), v.to_vec());
    });
    let x = batch::<6>(n, 5);
    let targets = batch::<5>(n, 6);
    // `W x + b` of a dense layer [5, 6], sample by sample.
    let dense = |layer: &str| -> Vec<f64> {
        let (w, b) = (&params[&format!("{layer}.weight")], &params[&format!("{layer}.bias")]);
        x.iter()
            .flat_map(|x| {
                (0..5).map(move |o| {
                    f64::from(b[o])
                        + (0..6).map(|i| f64::from(w[o * 6 + i]) * f64::from(x[i])).sum::<f64>()
                })
            })
            .collect()
    };
    let (z1, z2) = (dense("fc1"), dense("fc2"));
    let assert_near = |what: &str, got: &[f32], want: &[f64]| {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}]: {g}, want {w}"
            );
        }
    };
    let mut out = vec![[0.0f32; 5]; n];
    model.forward(&x, &mut out).expect("forward");
    let sum: Vec<f64> = z1.iter().zip(&z2).map(|(a, b)| a + b).collect();
    assert_near("inference", out.as_flattened(), &sum);

    let (mut row_outcomes, mut batch_outcomes) = (Vec::new(), Vec::new());
    for step in 1..=12u64 {
        let got = model.forward_train(&x).expect("forward_train").as_flattened().to_vec();
        // Each sample's factor, 0 or 1/(1 − p): the mask of a sample of ones.
        let factors = |p: f64, layer: u16, mode: DepthMode| -> Vec<f64> {
            let key = DropoutKey { seed, step, layer, first: 0 };
            let ones = vec![1.0f32; n];
            reference::stochastic_depth(p, key, mode, 1, &ones).into_iter().map(f64::from).collect()
        };
        let (m1, m2) = (factors(0.5, 1, DepthMode::Row), factors(0.25, 2, DepthMode::Batch));
        let y: Vec<f64> = (0..n * 5).map(|i| m1[i / 5] * z1[i] + m2[i / 5] * z2[i]).collect();
        assert_near(&format!("training output at step {step}"), &got, &y);
        row_outcomes.extend(m1.iter().map(|&m| m != 0.0));
        batch_outcomes.push(m2[0] != 0.0);

        // E = ½·Σ(y − t)² / n, so dE/dy = (y − t)/n, masked on the way back.
        let dy: Vec<f64> =
            (0..n * 5).map(|i| (y[i] - f64::from(targets[i / 5][i % 5])) / n as f64).collect();
        model.backward(&targets).expect("backward");
        let mut grads: HashMap<String, Vec<f32>> = HashMap::new();
        model.grads().expect("gradients after a backward pass").visit(|name, _, v| {
            grads.insert(name.to_string(), v.to_vec());
        });
        for (layer, m) in [("fc1", &m1), ("fc2", &m2)] {
            let dw: Vec<f64> = (0..30)
                .map(|k| (0..n).map(|s| m[s] * dy[s * 5 + k / 6] * f64::from(x[s][k % 6])).sum())
                .collect();
            let db: Vec<f64> = (0..5).map(|o| (0..n).map(|s| m[s] * dy[s * 5 + o]).sum()).collect();
            assert_near(
                &format!("{layer}.weight grad at step {step}"),
                &grads[&format!("{layer}.weight")],
                &dw,
            );
            assert_near(
                &format!("{layer}.bias grad at step {step}"),
                &grads[&format!("{layer}.bias")],
                &db,
            );
        }
    }
    for outcomes in [row_outcomes, batch_outcomes] {
        assert!(outcomes.contains(&true) && outcomes.contains(&false), "{outcomes:?}");
    }
}

/// Each loss's generated `train_step` takes its own kind of targets, fits a
/// fixed batch (the loss falls), and refuses targets of the wrong length
/// with an error naming them.
#[test]
fn every_loss_trains_on_its_own_targets() {
    use netc_tests::nets::losses::{
        HuberRegression, MultiLabel, SmoothL1Regression, SmoothedWeighted,
    };
    macro_rules! fits {
        ($ty:ty, $targets:expr) => {{
            let mut model = <$ty>::with_capacity(3, 16);
            let x = netc_tests::batch::<{ <$ty>::INPUT_LEN }>(16, 5);
            let opt = <$ty>::default_optimizer().expect("the file names an optimizer");
            let first = model.train_step(&x, $targets, &opt).expect("step");
            let mut last = first;
            for _ in 0..60 {
                last = model.train_step(&x, $targets, &opt).expect("step");
            }
            assert!(last < 0.9 * first, "{}: loss {first} -> {last}", stringify!($ty));
            let err = model.train_step(&x, &$targets[..15], &opt).expect_err("short targets");
            err
        }};
    }
    let soft = |n: usize, seed| -> Vec<[f32; 5]> {
        netc_tests::batch::<5>(n, seed).iter().map(|t| t.map(|v| f32::from(v > 0.0))).collect()
    };
    let err = fits!(MultiLabel, &soft(16, 9));
    assert!(err.to_string().contains("`targets`"), "{err}");
    let err = fits!(HuberRegression, &netc_tests::batch::<3>(16, 9));
    assert!(err.to_string().contains("`targets`"), "{err}");
    let err = fits!(SmoothL1Regression, &netc_tests::batch::<3>(16, 9));
    assert!(err.to_string().contains("`targets`"), "{err}");
    let labels: Vec<u32> = (0..16).map(|i| i % 4).collect();
    let err = fits!(SmoothedWeighted, &labels);
    assert!(err.to_string().contains("`labels`"), "{err}");
}

/// The object-safe `Model` interface gives what the inherent methods give,
/// to the bit, and refuses targets of the wrong kind.
#[test]
fn the_model_trait_matches_the_inherent_methods() {
    use netc::runtime::model::{Model, TargetKind, Targets};
    let n = 4;
    let x: Vec<f32> = batch::<784>(n, 5).concat();
    let labels: Vec<u32> = (0..n as u32).map(|i| i * 3 % 10).collect();

    let mut direct = LeNet5::with_capacity(9, n);
    let direct_logits = direct.forward_train_flat(&x).expect("forward").to_vec();
    let direct_loss = direct.backward(&labels).expect("backward");

    let mut boxed: Box<dyn Model> = Box::new(LeNet5::with_capacity(9, n));
    assert_eq!(boxed.name(), "LeNet5");
    assert_eq!((boxed.input_shape(), boxed.output_shape()), (&[1, 28, 28][..], &[10][..]));
    assert_eq!(boxed.target_kind(), TargetKind::Labels { classes: 10 });
    assert_eq!((boxed.param_count(), boxed.capacity()), (LeNet5::PARAMS, n));
    let mut logits = vec![0.0; n * 10];
    let loss = boxed.forward_backward(&x, Targets::Labels(&labels), &mut logits).expect("step");
    assert_eq!(loss.to_bits(), direct_loss.to_bits());
    assert_eq!(logits, direct_logits);
    let mut count = 0;
    boxed.visit_params(&mut |_, shape, values| {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        count += values.len();
    });
    assert_eq!(count, LeNet5::PARAMS);

    let wrong = boxed.forward_backward(&x, Targets::Values(&x), &mut logits);
    assert!(wrong.unwrap_err().to_string().contains("class labels"));
    let short = boxed.forward_backward(&x, Targets::Labels(&labels), &mut logits[..5]);
    assert!(short.unwrap_err().to_string().contains("outputs"));

    // A loss on values takes whole samples of them.
    use netc_tests::nets::regression::Regression;
    let mut reg: Box<dyn Model> = Box::new(Regression::with_capacity(1, 2));
    let TargetKind::Values { len } = reg.target_kind() else { panic!("mse takes values") };
    let inputs = vec![0.5; 2 * reg.input_len()];
    let mut out = vec![0.0; 2 * reg.output_len()];
    let targets = vec![0.25; 2 * len];
    assert!(reg.forward_backward(&inputs, Targets::Values(&targets), &mut out).is_ok());
    let ragged = reg.forward_backward(&inputs, Targets::Values(&targets[1..]), &mut out);
    assert!(ragged.unwrap_err().to_string().contains("targets"));
}

/// The `schedule` statement reaches the generated model and its `Model`
/// interface; a file without one has none.
#[test]
fn the_files_schedule_is_the_models_default() {
    use netc::runtime::model::Model;
    use netc::runtime::schedule::{Decay, Schedule};
    use netc_tests::nets::train_controls::{Controls, ControlsAdam};
    let want = Schedule {
        decay: Decay::MultiStep { milestones: vec![2.0, 5.0], gamma: 0.5 },
        warmup: 0.25,
    };
    assert_eq!(Controls::default_schedule(), Some(want.clone()));
    let boxed: Box<dyn Model> = Box::new(Controls::with_capacity(1, 2));
    assert_eq!(boxed.default_schedule(), Some(want));
    assert_eq!(ControlsAdam::default_schedule(), None);
}

/// `Model::train_step` takes the generated step (sharded here: 32 samples
/// over the pool) and counts the correct predictions of the logits it
/// trained on, as the forward pass alone gives them.
#[test]
fn the_trait_step_counts_correct_predictions() {
    use netc::runtime::model::{Model, Targets};
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::Sgd;
    let n = 32;
    let x: Vec<f32> = batch::<784>(n, 8).concat();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let opt = Optimizer::Sgd(Sgd { momentum: 0.9, ..Sgd::new(0.1) });
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    pool.install(|| {
        let mut model: Box<dyn Model> = Box::new(LeNet5::with_capacity(4, n));
        for _ in 0..3 {
            let mut reference = LeNet5::with_capacity(0, n);
            model.visit_params(&mut |name, _, values| {
                reference.params_mut().visit_mut(|other, _, target| {
                    if other == name {
                        target.copy_from_slice(values);
                    }
                });
            });
            let logits = reference.forward_train_flat(&x).expect("forward").to_vec();
            let want = logits
                .chunks(10)
                .zip(&labels)
                .filter(|(row, &l)| {
                    let best =
                        row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
                    best == l as usize
                })
                .count() as u64;
            let want_loss = reference.backward(&labels).expect("backward");
            let (loss, correct) =
                model.train_step(&x, Targets::Labels(&labels), &opt).expect("step");
            assert_eq!(correct, want);
            assert!((loss - want_loss).abs() <= 1e-5 * want_loss.abs(), "{loss} {want_loss}");
        }
    });
}

/// An inference pass between two training steps changes nothing: the
/// steps read only what they write, whatever the shared buffers hold.
#[test]
fn inference_between_training_steps_changes_nothing() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::Sgd;
    let n = 32;
    let x = batch::<784>(n, 21);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 10).collect();
    let opt = Optimizer::Sgd(Sgd { momentum: 0.9, ..Sgd::new(0.05) });
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    pool.install(|| {
        let (mut a, mut b) = (LeNet5::with_capacity(5, n), LeNet5::with_capacity(5, n));
        for step in 0..4 {
            a.train_step(&x, &labels, &opt).expect("step");
            b.train_step(&x, &labels, &opt).expect("step");
            let m = [7, n, 1, n - 1][step as usize];
            let mut out = vec![0.0f32; m * 10];
            a.forward_flat(&batch::<784>(m, 100 + step).concat(), &mut out).expect("forward");
        }
        let (mut wa, mut wb) = (Vec::new(), Vec::new());
        a.params().visit(|_, _, v| wa.extend_from_slice(v));
        b.params().visit(|_, _, v| wb.extend_from_slice(v));
        assert!(wa == wb, "the inference pass leaked into training");
    });
}

/// A model rebuilt from another's weights, optimizer state and step count
/// continues exactly as the original does: a training step depends on
/// nothing else the model keeps.
#[test]
fn a_restored_model_steps_as_the_original() {
    use netc::runtime::nn::Optimizer;
    use netc::runtime::optim::Sgd;
    let n = 32;
    let x = batch::<784>(n, 22);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % 10).collect();
    let opt = Optimizer::Sgd(Sgd { momentum: 0.9, ..Sgd::new(0.05) });
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    pool.install(|| {
        let mut original = LeNet5::with_capacity(6, n);
        for _ in 0..2 {
            original.train_step(&x, &labels, &opt).expect("step");
        }
        let mut restored = LeNet5::with_capacity(99, n);
        *restored.params_mut() = original.params().clone();
        let (state, kind, step) = original.optimizer_state();
        let state = state.to_vec();
        restored.set_optimizer_state(&state, kind, step).expect("restore");
        original.train_step(&x, &labels, &opt).expect("step");
        restored.train_step(&x, &labels, &opt).expect("step");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        original.params().visit(|_, _, v| a.extend_from_slice(v));
        restored.params().visit(|_, _, v| b.extend_from_slice(v));
        assert!(a == b, "the restored model's step differs");
    });
}

/// Corrupt checkpoints (truncated, bytes overwritten, header lengths and
/// offsets of extreme values) are errors that leave the model as it was, or
/// load whole; none panics. The header's length is bytes 0..8 and its JSON
/// follows, so the first hundred bytes get most of the damage.
#[test]
fn corrupt_checkpoints_are_errors_that_change_nothing() {
    use netc_tests::nets::dense_bn::DeepBn;
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let path = tmp.path().join("valid.safetensors");
    DeepBn::with_capacity(5, 2).save(&path).expect("save");
    let valid = std::fs::read(&path).expect("read");
    let mut model = DeepBn::with_capacity(6, 2);
    let snapshot = |m: &DeepBn| {
        let mut all = Vec::new();
        m.params().visit(|name, _, v| all.push((name.to_string(), v.to_vec())));
        all
    };
    let before = snapshot(&model);
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |below: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % below as u64) as usize
    };
    let (mut refused, mut loaded) = (0, 0);
    for _ in 0..3000 {
        let mut bad = valid.clone();
        for _ in 0..1 + next(3) {
            let at = if next(2) == 0 { next(100.min(bad.len())) } else { next(bad.len()) };
            match next(4) {
                0 => bad.truncate(at),
                1 => bad[at] = next(256) as u8,
                2 => bad.iter_mut().skip(at).take(8).for_each(|b| *b = [0x00, 0xFF][next(2)]),
                _ => bad.insert(at, b"0123456789,:\"[]{}"[next(17)]),
            }
            if bad.is_empty() {
                break;
            }
        }
        match model.load_bytes(&bad) {
            Ok(()) => {
                // Damage to the tensors' bytes alone loads other values.
                loaded += 1;
                model = DeepBn::with_capacity(6, 2);
            }
            Err(_) => {
                refused += 1;
                assert!(snapshot(&model) == before, "a refused checkpoint changed the model");
            }
        }
    }
    assert!(refused > 2000, "{refused} refused, {loaded} loaded");
}
