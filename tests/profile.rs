//! Per-layer timing of the generated training passes
//! (`Model::profile_forward_backward`): the profiled step computes exactly
//! what the plain one does, names every layer of the `.net` file once, and
//! its times add up to about the measured step.

use netc::runtime::model::{Model, TargetKind, Targets};
use netc::runtime::nn::Optimizer;
use netc::runtime::optim::Sgd;
use netc::runtime::profile::StepProfile;
use netc_tests::nets::{lenet5, no_params, resnet20};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn net_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// A batch's targets, of either kind.
enum Owned {
    Labels(Vec<u32>),
    Values(Vec<f32>),
}

impl Owned {
    fn get(&self) -> Targets<'_> {
        match self {
            Owned::Labels(l) => Targets::Labels(l),
            Owned::Values(v) => Targets::Values(v),
        }
    }
}

/// `len` values in `[-1, 1)`, reproducible (xorshift).
fn values(len: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Reproducible inputs and targets for a batch of `n`.
fn batch_for(model: &dyn Model, n: usize) -> (Vec<f32>, Owned) {
    let x = values(n * model.input_len());
    let targets = match model.target_kind() {
        TargetKind::Labels { classes } => {
            Owned::Labels((0..n as u32).map(|i| (i * 7) % classes as u32).collect())
        }
        TargetKind::Values { len } => Owned::Values(values(n * len + 3)[3..].to_vec()),
    };
    (x, targets)
}

/// The file's optimizer, else plain SGD.
fn optimizer(model: &dyn Model) -> Optimizer {
    let sgd = Sgd { lr: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0, clip_norm: None };
    model.default_optimizer().unwrap_or(Optimizer::Sgd(sgd))
}

fn params_of(model: &dyn Model) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    model.visit_params(&mut |_, _, values| out.push(values.to_vec()));
    out
}

fn bits(tensors: &[Vec<f32>]) -> Vec<Vec<u32>> {
    tensors.iter().map(|t| t.iter().map(|v| v.to_bits()).collect()).collect()
}

/// Two models from one seed, one step each (one of them profiled), then an
/// update and a second such step: losses, outputs, gradients and updated
/// parameters agree bit for bit. Returns the second step's profile.
fn same_as_plain<M: Model>(
    make: impl Fn() -> M,
    grads: impl Fn(&M) -> Vec<Vec<f32>>,
    n: usize,
) -> StepProfile {
    let (mut plain, mut profiled) = (make(), make());
    let (x, targets) = batch_for(&plain, n);
    let opt = optimizer(&plain);
    let mut last = None;
    for _ in 0..2 {
        let mut out_plain = vec![0.0; n * plain.output_len()];
        let mut out_profiled = out_plain.clone();
        let loss = plain.forward_backward(&x, targets.get(), &mut out_plain).unwrap();
        let step = profiled
            .profile_forward_backward(&x, targets.get(), &mut out_profiled)
            .unwrap()
            .expect("generated models profile");
        assert_eq!(loss.to_bits(), step.loss.to_bits());
        assert_eq!(bits(&[out_plain]), bits(&[out_profiled]));
        assert_eq!(bits(&grads(&plain)), bits(&grads(&profiled)));
        plain.apply_gradients(&opt).unwrap();
        profiled.apply_gradients(&opt).unwrap();
        assert_eq!(bits(&params_of(&plain)), bits(&params_of(&profiled)));
        last = Some(step);
    }
    // The profile is detached after the call: the slot is empty again.
    assert!(profiled.profile_slot().is_some_and(|slot| slot.profile.is_none()));
    last.expect("two steps ran")
}

/// Every node of the checked file once, in order; layers with weights
/// (whose kernels always run) have forward and backward time.
fn names_every_layer(step: &StepProfile, file: &str) {
    let source = std::fs::read_to_string(net_path(file)).expect("read the .net file");
    let checked = netc_dsl::check_source(file, &source).expect("the file checks");
    let g = &checked.graphs[0];
    let names: Vec<&str> = step.layers.iter().map(|l| l.name).collect();
    let expected: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, expected);
    let mut weighted = 0;
    for (layer, node) in step.layers.iter().zip(&g.nodes) {
        if g.param_count_of(node) > 0 {
            weighted += 1;
            assert!(layer.forward > Duration::ZERO, "{}: no forward time", layer.name);
            assert!(layer.backward > Duration::ZERO, "{}: no backward time", layer.name);
        }
        if node.inputs.is_empty() {
            assert_eq!(layer.forward + layer.backward, Duration::ZERO, "an input runs nothing");
        }
    }
    assert_eq!(weighted > 0, g.total_params() > 0);
    assert!(step.loss_time > Duration::ZERO);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The profiled layers' times add up to about a plain training step's
/// (forward, backward and update), medians of interleaved runs.
fn adds_up_to_the_step(model: &mut dyn Model, n: usize) {
    let (x, targets) = batch_for(model, n);
    let opt = optimizer(model);
    let mut out = vec![0.0; n * model.output_len()];
    let (mut steps, mut sums) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let t = Instant::now();
        model.forward_backward(&x, targets.get(), &mut out).unwrap();
        model.apply_gradients(&opt).unwrap();
        steps.push(t.elapsed());
        let step = model.profile_forward_backward(&x, targets.get(), &mut out).unwrap();
        sums.push(step.expect("profiled").total());
        model.apply_gradients(&opt).unwrap();
    }
    let (step, sum) = (median(steps), median(sums));
    assert!(sum <= step.mul_f64(1.5) && sum >= step.mul_f64(0.3), "layers {sum:?}, step {step:?}");
}

/// Copies of a model's gradient tensors.
fn owned(tensors: &[&[f32]]) -> Vec<Vec<f32>> {
    tensors.iter().map(|t| t.to_vec()).collect()
}

#[test]
fn lenet5_profiles_exactly_and_names_every_layer() {
    let make = || lenet5::LeNet5::with_capacity(3, 16);
    let grads =
        |m: &lenet5::LeNet5| owned(&m.grads().expect("gradients after a backward pass").tensors());
    let step = same_as_plain(make, grads, 16);
    names_every_layer(&step, "../cli/models/lenet5.net");
    adds_up_to_the_step(&mut make(), 16);
}

#[test]
fn resnet20_profiles_exactly_and_names_every_layer() {
    let make = || resnet20::ResNet20::with_capacity(5, 4);
    let grads = |m: &resnet20::ResNet20| {
        owned(&m.grads().expect("gradients after a backward pass").tensors())
    };
    let step = same_as_plain(make, grads, 4);
    names_every_layer(&step, "../cli/models/resnet20.net");
    adds_up_to_the_step(&mut make(), 4);
}

#[test]
fn dropout_without_parameters_profiles_exactly() {
    let make = || no_params::NoParams::with_capacity(2, 8);
    let step = same_as_plain(make, |_| Vec::new(), 8);
    names_every_layer(&step, "nets/no_params.net");
}

#[test]
fn a_plain_pass_after_a_profiled_one_records_nothing() {
    let mut model = lenet5::LeNet5::with_capacity(1, 4);
    let (x, targets) = batch_for(&model, 4);
    let Owned::Labels(labels) = targets else { unreachable!("LeNet-5 takes labels") };
    let mut out = vec![0.0; 40];
    model.profile_forward_backward(&x, Targets::Labels(&labels), &mut out).unwrap();
    model.forward_backward(&x, Targets::Labels(&labels), &mut out).unwrap();
    let slot = model.profile_slot().expect("generated models profile");
    assert!(slot.profile.is_none());
    // A failed step (labels for another batch) detaches the profile too.
    let bad = model.profile_forward_backward(&x, Targets::Labels(&labels[..3]), &mut out);
    assert!(bad.is_err());
    assert!(model.profile_slot().is_some_and(|slot| slot.profile.is_none()));
}
