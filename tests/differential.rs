//! Differential test of the compiler: random valid networks
//! (`random/generate.rs`), compiled to Rust by `build.rs` into this one
//! test crate, each checked against the f64 interpreter: the inference
//! output, the training forward and loss (with the generated code's
//! dropout masks), every gradient against central differences of the
//! interpreter's loss, the parameters after one optimizer step (kernel by
//! kernel and by `train_step`), and inference again on the trained
//! weights and running statistics.
//!
//! `build.rs` compiles the seeds `NETC_DIFF_SEED..+NETC_DIFF_COUNT`
//! (default 1 and 100) and the regression files of
//! `random/regressions/`; `tests/differential.sh` runs many more, a batch
//! per build. A failing network prints its seed and its `.net` source; its
//! minimised form belongs in `random/regressions/`.
//!
//! Tolerances are relative to each tensor's largest value. A gradient at
//! a kink (a ReLU's or a clamp's input, an L1 residual, at its bound) may
//! be either side's slope, and one that is zero by the maths (a bias
//! before a batch norm) the float32 rounding of the others. The generator
//! avoids what is ill-conditioned rather than wrong: a norm over fewer than
//! four values, or after a whole batch zeroed.

#![deny(warnings)]

#[path = "random/generate.rs"]
#[allow(dead_code)]
mod generate;

#[path = "random/shrink.rs"]
mod shrink;

use netc::runtime::dropout::{Dropout, DropoutKey};
use netc_dsl::interp::{self, Mode, Weights};

/// Prints the failing network's seed and source when a check panics.
struct Report {
    seed: u64,
    source: &'static str,
}

impl Drop for Report {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "random network of seed {} failed (NETC_DIFF_SEED={} NETC_DIFF_COUNT=1 reruns it alone):\n{}",
                self.seed, self.seed, self.source
            );
        }
    }
}

/// A network the generator wrote that netc could not compile (used only
/// by the tests `build.rs` writes for such networks).
#[allow(dead_code)]
fn refused(seed: u64, message: &str, source: &'static str) {
    let _report = Report { seed, source };
    panic!("{message}");
}

/// One network's graph and inputs, and the interpreter's side of each
/// check.
struct Case {
    graph: netc_dsl::Graph,
    seed: u64,
    n: usize,
    inputs: Vec<Vec<f32>>,
    inputs64: Vec<Vec<f64>>,
}

/// Largest magnitude of `v`, at least `floor`.
fn scale_of(v: impl Iterator<Item = f64>, floor: f64) -> f64 {
    v.fold(0.0f64, |m, x| m.max(x.abs())).max(floor)
}

/// `noise`, where measured, widens the tolerance by four times how far
/// float32 rounding can move a value ([`Case::rounding`]).
fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64, noise: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = scale_of(want.iter().copied(), 1e-3);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tolerance = rel * scale + 4.0 * noise;
        assert!(
            (f64::from(g) - w).abs() <= tolerance,
            "{what}[{i}]: generated {g}, interpreter {w} (tolerance {tolerance})"
        );
    }
}

/// Moves every value of `v` by four float32 ulps, up or down at random
/// (keyed by `stream`), to measure how far rounding can move a result.
fn jitter(v: &mut [f32], stream: u64) {
    let mut bits = netc::runtime::splitmix::SplitMix64::new(stream);
    for x in v.iter_mut() {
        let sign = if bits.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
        *x *= 1.0 + sign * 4.0 * f32::EPSILON;
    }
}

/// The interpreter's tensors moved by four float32 ulps: up for `up`,
/// else down.
fn nudged(tensors: &Weights, up: bool) -> Weights {
    let factor = 1.0 + if up { 4.0 } else { -4.0 } * f64::from(f32::EPSILON);
    let mut moved = tensors.clone();
    moved.values_mut().flatten().for_each(|x| *x *= factor);
    moved
}

/// The larger of `a`'s and `b`'s values, tensor by tensor.
fn larger(a: Weights, b: &Weights) -> Weights {
    let mut a = a;
    for (name, v) in a.iter_mut() {
        v.iter_mut().zip(&b[name]).for_each(|(x, &y)| *x = x.max(y));
    }
    a
}

/// How far each value of `b` is from `a`'s, tensor by tensor.
fn distance(a: &Weights, b: &Weights) -> Weights {
    a.iter()
        .map(|(name, g)| {
            let moved = g.iter().zip(&b[name]).map(|(x, y)| (x - y).abs()).collect();
            (name.clone(), moved)
        })
        .collect()
}

/// The model's parameters (or gradients) as the interpreter takes them.
fn weights_of(visit: impl FnOnce(&mut dyn FnMut(&str, &[usize], &[f32]))) -> Weights {
    let mut w = Weights::new();
    visit(&mut |name, _, v| {
        w.insert(name.to_string(), v.iter().map(|&x| f64::from(x)).collect());
    });
    w
}

impl Case {
    fn new(seed: u64, source: &str, n: usize, lens: &[usize]) -> Case {
        let checked =
            netc_dsl::check_source("random.net", source).unwrap_or_else(|d| panic!("{d}"));
        let graph = checked.graphs.into_iter().next().expect("one network");
        let inputs: Vec<Vec<f32>> = lens
            .iter()
            .enumerate()
            .map(|(k, &len)| {
                let seed = seed.wrapping_mul(31).wrapping_add(k as u64 + 1);
                netc_tests::batch::<1>(n * len, seed).into_iter().map(|[v]| v).collect()
            })
            .collect();
        let inputs64 = inputs.iter().map(|x| x.iter().map(|&v| f64::from(v)).collect()).collect();
        Case { graph, seed, n, inputs, inputs64 }
    }

    fn feeds(&self) -> Vec<&[f64]> {
        self.inputs64.iter().map(|v| v.as_slice()).collect()
    }

    fn infer(&self, what: &str, weights: &Weights, out: &[f32]) {
        let outs = interp::run(&self.graph, weights, &self.feeds(), self.n, Mode::Infer)
            .expect("interpreter");
        assert_close(what, out, interp::output(&self.graph, &outs), 1e-4, 0.0);
    }

    /// The interpreter's training pass; with `rounded`, with every node's
    /// output a few float32 ulps off, as generated code rounds it
    /// ([`interp::run_training_rounded`]).
    fn train_run(&self, weights: &Weights, step: u64, rounded: bool) -> Vec<Vec<f64>> {
        let seed = self.seed;
        let keeps = move |layer: u16, index: u64, p: f32| {
            let dropout = Dropout::new(p).expect("a checked probability");
            dropout.keeps(DropoutKey { seed, step, layer, first: 0 }, index)
        };
        let (g, feeds) = (&self.graph, self.feeds());
        let outs = if rounded {
            interp::run_training_rounded(g, weights, &feeds, self.n, &keeps, 4.0)
        } else {
            interp::run_training(g, weights, &feeds, self.n, &keeps)
        };
        outs.expect("interpreter")
    }

    /// How far float32 rounding can move a value of the training forward
    /// `out`: the most that any of its values moved, in the generated code
    /// when its inputs and weights moved by a few ulps (`noisy_out`), or in
    /// the interpreter (`want`) when every layer's output moved by a few
    /// ulps (`rounded`). The second catches rounding that a badly
    /// conditioned layer amplifies where the inputs' changes cannot reach
    /// it: a batch norm over a channel whose values differ in the last
    /// digits of a log-softmax of saturated units. Each value's movement is
    /// one draw of random signs, which may happen to cancel, so the most
    /// over the tensor stands for all of them.
    fn rounding(out: &[f32], noisy_out: &[f32], want: &[f64], rounded: &[f64]) -> f64 {
        (out.iter().zip(noisy_out))
            .zip(want.iter().zip(rounded))
            .map(|((&o, &n), (&w, &r))| f64::from((n - o).abs()).max((r - w).abs()))
            .fold(0.0, f64::max)
    }

    /// The training forward's output and loss, then every gradient at up
    /// to three coordinates a tensor.
    /// `noisy_out` and `noise` are the training forward's output and how
    /// far each gradient moved when every input and parameter moved by a
    /// few float32 ulps ([`jitter`]).
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        weights: &Weights,
        step: u64,
        out: &[f32],
        loss: f32,
        grads: &Weights,
        noisy_out: &[f32],
        noise: &Weights,
        t: &T,
    ) {
        let (labels, floats) = (t.labels.as_slice(), t.floats.as_slice());
        let outs = self.train_run(weights, step, false);
        let want = interp::output(&self.graph, &outs);
        let rounded = self.train_run(weights, step, true);
        let noise_out = Case::rounding(out, noisy_out, want, interp::output(&self.graph, &rounded));
        assert_close("training forward", out, want, 1e-4, noise_out);
        let want = interp::loss(&self.graph, &outs, self.n, labels, floats).expect("loss");
        let moved =
            interp::loss(&self.graph, &rounded, self.n, labels, floats).expect("loss") - want;
        assert!(
            (f64::from(loss) - want).abs() <= 1e-4 * want.abs().max(1.0) + 4.0 * moved.abs(),
            "loss: generated {loss}, interpreter {want}"
        );
        let loss_at = |w: &Weights, rounded: bool| {
            let outs = self.train_run(w, step, rounded);
            interp::loss(&self.graph, &outs, self.n, labels, floats).expect("loss")
        };
        // A frozen layer's gradients are not computed (batch norm's are
        // by-products, and written), so only learning layers are checked.
        let frozen: Vec<String> = (self.graph.nodes.iter().zip(&self.graph.multipliers))
            .filter(|(_, m)| m.frozen())
            .map(|(node, _)| format!("{}.", node.name))
            .collect();
        let learns = |name: &str| !frozen.iter().any(|f| name.starts_with(f.as_str()));
        let learnable =
            || grads.iter().filter(|(name, _)| !name.contains("running_") && learns(name));
        // A gradient that is zero by the maths (a bias before a batch
        // norm) is float32 rounding of the others: a floor from them.
        let global = scale_of(learnable().flat_map(|(_, g)| g.iter().copied()), 1e-2);
        let floor = 1e-2 * global;
        let at = loss_at(weights, false);
        for (name, grad) in learnable() {
            let scale = scale_of(grad.iter().copied(), floor);
            // As for the forward, the most any gradient of the tensor moved.
            let moved = noise[name.as_str()].iter().copied().fold(0.0, f64::max);
            // Up to three coordinates a tensor are judged; one where several
            // units sit at their kink at once is skipped (see below).
            let mut judged = 0;
            for k in 0..9.min(grad.len()) {
                if judged == 3 {
                    break;
                }
                let i = (k * 7919 + 5) % grad.len();
                let eps = 1e-5;
                let mut w = weights.clone();
                w.get_mut(name).expect("tensor")[i] += eps;
                let plus = loss_at(&w, false);
                let plus_rounded = loss_at(&w, true);
                w.get_mut(name).expect("tensor")[i] -= 2.0 * eps;
                let minus = loss_at(&w, false);
                let central = (plus - minus) / (2.0 * eps);
                let central_rounded = (plus_rounded - loss_at(&w, true)) / (2.0 * eps);
                // Float32 rounding is amplified where the maths is
                // ill-conditioned (a batch norm over a feature that barely
                // varies across the batch): the measured noise, of the
                // generated gradient when the inputs and weights move and
                // of the interpreter's when every layer's output does,
                // widens the tolerance there, and is negligible elsewhere.
                let noise = moved.max((central_rounded - central).abs());
                let tolerance = |numeric: f64| 2e-3 * scale + 1e-3 * numeric.abs() + 4.0 * noise;
                let close = |numeric: f64| (numeric - grad[i]).abs() <= tolerance(numeric);
                // At a kink (a ReLU or clamp input, or an L1 residual, at
                // exactly its bound) the gradient is one side's slope.
                let (left, right) = ((at - minus) / eps, (plus - at) / eps);
                // A gradient that is zero by the maths (a bias before a
                // batch norm) is the float32 rounding of larger terms. Its
                // difference quotients are the interpreter's own rounding,
                // which a batch norm over a channel that barely varies
                // amplifies to about 1e-7 of the largest gradient.
                let zero =
                    [central, left, right].iter().all(|d| d.abs() < 1e-9f64.max(1e-7 * global))
                        && grad[i].abs() <= 1e-2 * global;
                if zero || close(central) || close(left) || close(right) {
                    judged += 1;
                    continue;
                }
                // Where several units are at their kink at once (a sample
                // zeroed before a layer without bias), each side's slope
                // counts a different set of them, and the gradient, which
                // takes each unit's slope at its kink as PyTorch does, may
                // be neither: no difference can judge it, so the coordinate
                // is skipped. At a smooth point the sides agree, to within
                // eps times the curvature: sides a quarter of their size
                // apart mean a kink even where the slopes are small beside
                // the tensor's largest (ReLUs of averages of layer-normed
                // rows, all exactly at zero by the maths, whose slopes of
                // mixed signs nearly cancel when all of them count). Sides
                // apart by no more than the interpreter's rounding (see
                // `zero`) are no kink.
                let (apart, larger) = ((left - right).abs(), left.abs().max(right.abs()));
                let kink = apart > 10.0 * tolerance(larger)
                    || (apart > 0.25 * larger && apart > 1e-9f64.max(1e-7 * global));
                assert!(
                    kink,
                    "gradient {name}[{i}]: generated {}, finite difference {central} \
                     (one-sided {left} and {right}; tolerance {}, largest gradient {global}, \
                     loss {at})",
                    grad[i],
                    tolerance(central)
                );
            }
        }
    }

    /// One optimizer step from `grads`, against the model's parameters
    /// after it (`what` names how the model took it). Unused when no
    /// network of the build has an optimizer, as a shrinker's may not.
    #[allow(dead_code)]
    fn step(&self, what: &str, before: &Weights, grads: &Weights, after: &Weights) {
        let step_from = |weights: &Weights, grads: &Weights| {
            let mut stepped = weights.clone();
            let mut state = interp::OptimizerState::new();
            interp::apply_optimizer(&self.graph, &mut stepped, grads, &mut state, 1).expect("step");
            stepped
        };
        let want = step_from(before, grads);
        // Adam divides by the gradient's size: where a gradient nearly
        // cancels its weight decay, float32 rounding of that sum moves the
        // step far. The same step from weights and gradients a few ulps
        // away, moved in opposite directions so that the sum moves most,
        // measures how far.
        let apart = |up| distance(&want, &step_from(&nudged(before, up), &nudged(grads, !up)));
        let noise = larger(apart(true), &apart(false));
        for (name, w) in &want {
            if name.contains("running_") {
                continue;
            }
            let scale = scale_of(w.iter().copied(), 1e-3);
            for (i, (&a, &b)) in after[name].iter().zip(w).enumerate() {
                let tolerance = 1e-5 * scale + 4.0 * noise[name][i];
                assert!(
                    (a - b).abs() <= tolerance,
                    "{what}: {name}[{i}] = {a}, interpreter {b} (tolerance {tolerance})"
                );
            }
        }
    }

    /// The generated model's learning-rate schedule against the file's,
    /// rate by rate over a run of six epochs, by PyTorch's formulas.
    #[allow(dead_code)]
    fn schedule(&self, got: Option<netc::runtime::schedule::Schedule>) {
        let (Some(want), Some(got)) = (&self.graph.schedule, &got) else {
            assert_eq!(self.graph.schedule.is_some(), got.is_some(), "default_schedule()");
            return;
        };
        let (base, epochs) = (0.1, 6.0);
        for progress in [0.125, 0.5, 0.75, 1.0, 1.25, 2.0, 2.5, 3.0, 3.5, 5.0, 5.875, 6.0] {
            let expected = reference_lr(want, base, progress, epochs);
            let lr = got.lr(base, progress, epochs);
            assert!(
                (lr - expected).abs() <= 1e-12 * base,
                "the rate at {progress} epochs of {want:?}: generated {lr}, reference {expected}"
            );
        }
    }
}

/// The rate of `schedule` for the step that ends at `progress` epochs of
/// a run of `epochs`: linear warmup, then `StepLR`, `MultiStepLR` or
/// `CosineAnnealingLR` over the epochs completed before the step.
#[allow(dead_code)]
fn reference_lr(schedule: &netc_dsl::ir::Schedule, base: f64, progress: f64, epochs: f64) -> f64 {
    use netc_dsl::ir::Decay;
    if progress < schedule.warmup {
        return base * progress / schedule.warmup;
    }
    let completed = (progress.ceil() - 1.0).max(0.0);
    match &schedule.decay {
        Decay::Constant => base,
        Decay::Step { every, gamma } => base * gamma.powi((completed / every).floor() as i32),
        Decay::MultiStep { milestones, gamma } => {
            milestones.iter().filter(|&&m| m <= completed).fold(base, |lr, _| lr * gamma)
        }
        Decay::Cosine { min_lr } => {
            let t = ((progress - schedule.warmup) / (epochs - schedule.warmup)).min(1.0);
            min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
        }
    }
}

/// A batch's targets for both sides.
struct T {
    labels: Vec<u32>,
    floats: Vec<f64>,
}

/// Every learned tensor's gradient was handed over once by the backward
/// pass, and it was then what the pass ended with: no step wrote it after.
fn handed_over_once_and_final(handed: &[(usize, Vec<f32>)], learned: &[Vec<f32>]) {
    let mut seen = vec![0; learned.len()];
    for (k, values) in handed {
        seen[*k] += 1;
        assert!(
            values.iter().map(|v| v.to_bits()).eq(learned[*k].iter().map(|v| v.to_bits())),
            "learned tensor {k}'s gradient changed after its hand-over"
        );
    }
    assert!(seen.iter().all(|&s| s == 1), "hand-overs per learned tensor: {seen:?}");
}

/// The checks of one network: `$ty`, `$seed`, its source, the batch, its
/// inputs as `(index, values a sample)`, its targets (`infer`, `labels
/// CLASSES` or `values LEN`) and whether it has an optimizer.
macro_rules! check_net {
    ($ty:ty, $seed:expr, $source:expr, $n:expr, [$(($i:tt, $len:tt)),*], $($rest:tt)*) => {{
        let _report = Report { seed: $seed, source: $source };
        let case = Case::new($seed, $source, $n, &[$($len),*]);
        #[allow(unused_mut)]
        let mut model = <$ty>::with_capacity($seed, $n);
        let weights = weights_of(|f| model.params().visit(f));
        let x = &case.inputs;
        let mut out = vec![0.0f32; $n * <$ty>::OUTPUT_LEN];
        model.forward_flat($(&x[$i],)* &mut out).expect("forward");
        case.infer("inference", &weights, &out);
        check_net!(@train $ty, case, model, weights, $n, [$(($i, $len)),*], $($rest)*);
    }};
    (@train $ty:ty, $case:ident, $model:ident, $weights:ident, $n:expr, $inputs:tt, infer, none) => {};
    (@train $ty:ty, $case:ident, $model:ident, $weights:ident, $n:expr, $inputs:tt, labels $classes:literal, $opt:ident) => {{
        let labels: Vec<u32> = (0..$n as u32).map(|s| (s * 5 + 1) % $classes).collect();
        let t = T { labels: labels.clone(), floats: Vec::new() };
        check_net!(@learn $ty, $case, $model, $weights, $n, $inputs, &labels[..], t, $opt);
    }};
    (@train $ty:ty, $case:ident, $model:ident, $weights:ident, $n:expr, $inputs:tt, values $len:literal, $opt:ident) => {{
        let flat: Vec<f32> = netc_tests::batch::<1>($n * $len, $case.seed ^ 0xF00D)
            .into_iter()
            .map(|[v]| (v + 1.0) / 2.0)
            .collect();
        let targets = flat.as_chunks::<$len>().0;
        let t = T { labels: Vec::new(), floats: flat.iter().map(|&v| f64::from(v)).collect() };
        check_net!(@learn $ty, $case, $model, $weights, $n, $inputs, targets, t, $opt);
    }};
    (@learn $ty:ty, $case:ident, $model:ident, $weights:ident, $n:expr, [$(($i:tt, $len:tt)),*], $targets:expr, $t:ident, $opt:ident) => {{
        let x = &$case.inputs;
        let out = $model.forward_train_flat($(&x[$i]),*).expect("forward_train").to_vec();
        let step = $model.steps();
        let mut handed: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut ready = |finished: &[(usize, &[f32])]| {
            handed.extend(finished.iter().map(|&(k, g)| (k, g.to_vec())));
        };
        let loss = $model.backward_streaming($targets, &mut ready).expect("backward");
        let grads = weights_of(|f| $model.grads().expect("gradients after backward").visit(f));
        // Batch norm's running statistics are the only tensors not learned.
        let mut learned: Vec<Vec<f32>> = Vec::new();
        $model.grads().expect("gradients").visit(|name, _, g| {
            if !name.contains("running_") {
                learned.push(g.to_vec());
            }
        });
        handed_over_once_and_final(&handed, &learned);
        // The same pass from inputs and parameters a few ulps away.
        let mut noisy = <$ty>::with_capacity($case.seed, $n);
        noisy.params_mut().visit_mut(|_, _, w| jitter(w, 1));
        let mut moved = $case.inputs.clone();
        for (k, v) in moved.iter_mut().enumerate() {
            jitter(v, k as u64 + 2);
        }
        let noisy_out = noisy.forward_train_flat($(&moved[$i]),*).expect("forward_train").to_vec();
        noisy.backward_streaming($targets, &mut |_: &[(usize, &[f32])]| {}).expect("backward");
        let noise = distance(&grads, &weights_of(|f| noisy.grads().expect("gradients").visit(f)));
        $case.train(&$weights, step, &out, loss, &grads, &noisy_out, &noise, &$t);
        check_net!(@step $opt, $ty, $case, $model, $weights, grads, $n, [$(($i, $len)),*], $targets);
    }};
    (@step none, $($rest:tt)*) => {};
    (@step optimizer, $ty:ty, $case:ident, $model:ident, $weights:ident, $grads:ident, $n:expr, [$(($i:tt, $len:tt)),*], $targets:expr) => {{
        let opt = <$ty>::default_optimizer().expect("the file names one");
        $model.apply_gradients(&opt).expect("apply_gradients");
        let after = weights_of(|f| $model.params().visit(f));
        $case.step("apply_gradients", &$weights, &$grads, &after);
        // The whole step, which may fuse SGD into the dense layers'
        // gradients, from the same start.
        let mut whole = <$ty>::with_capacity($case.seed, $n);
        let x = &$case.inputs;
        whole.train_step($(x[$i].as_chunks::<$len>().0,)* $targets, &opt).expect("train_step");
        let whole_after = weights_of(|f| whole.params().visit(f));
        $case.step("train_step", &$weights, &$grads, &whole_after);
        // Inference on the trained weights and running statistics.
        let mut out = vec![0.0f32; $n * <$ty>::OUTPUT_LEN];
        $model.forward_flat($(&x[$i],)* &mut out).expect("forward");
        $case.infer("inference after a step", &after, &out);
        $case.schedule(<$ty>::default_schedule());
    }};
}

include!(concat!(env!("OUT_DIR"), "/random_nets.rs"));

/// The generator writes every op of the language: a new op must be added
/// to it (and to `generate::COVERED`).
#[test]
fn the_generator_covers_every_op() {
    for def in netc_dsl::ops::OPS {
        assert!(
            generate::COVERED.contains(&def.name),
            "the random network generator never writes `{}`",
            def.name
        );
    }
}

/// Many more networks than are compiled are checked by the checker, and
/// every op of [`generate::COVERED`] appears in some of them.
#[test]
fn generated_networks_check_and_cover_every_op() {
    let mut seen = vec![false; generate::COVERED.len()];
    for seed in 10_000..10_400 {
        let net = generate::generate(seed);
        if let Err(d) = netc_dsl::check_source("random.net", &net.source) {
            panic!("seed {seed}: the checker refused\n{d}\n{}", net.source);
        }
        for (k, op) in generate::COVERED.iter().enumerate() {
            seen[k] |= net.source.contains(&format!("{op}("))
                || net.source.contains(&format!("> {op}\n"))
                || net.source.contains(&format!("> {op} "));
        }
    }
    let missing: Vec<&str> =
        generate::COVERED.iter().zip(&seen).filter(|(_, s)| !**s).map(|(op, _)| *op).collect();
    assert!(missing.is_empty(), "no generated network uses {missing:?}");
    for kind in generate::SCHEDULES {
        assert!(
            (10_000..10_400)
                .any(|seed| generate::generate(seed).source.contains(&format!("schedule {kind}("))),
            "no generated network has a `{kind}` schedule"
        );
    }
}

/// The shrinker, on networks whose "failure" is that they use an op, ends
/// at a network that the checker accepts and that still uses the op, after
/// taking away at least two thirds of the rest.
#[test]
fn the_shrinker_keeps_the_failure_and_takes_the_rest() {
    let valid = |s: &str| netc_dsl::check_source("shrink.net", s).is_ok();
    let (mut shrunk, mut before, mut after) = (0, 0, 0);
    for seed in 10_000..10_040 {
        let source = shrink::without_annotations(&generate::generate(seed).source);
        assert!(valid(&source), "seed {seed}: annotations are all that go\n{source}");
        for op in ["conv2d(", "batch_norm(", "concat("] {
            if !source.contains(op) {
                continue;
            }
            let mut rounds = 0;
            let fails = |c: &[String]| {
                rounds += 1;
                Ok::<_, ()>(c.iter().map(|s| s.contains(op)).collect())
            };
            let minimal = shrink::minimise(&source, valid, fails).expect("no error");
            assert!(valid(&minimal) && minimal.contains(op), "seed {seed}, {op}:\n{minimal}");
            assert!(rounds < 40, "seed {seed}, {op}: {rounds} rounds");
            before += shrink::size(&source).0;
            after += shrink::size(&minimal).0;
            shrunk += 1;
        }
    }
    eprintln!("{shrunk} networks shrunk from {before} to {after} bytes");
    assert!(after * 3 < before, "{shrunk} networks shrunk only from {before} to {after} bytes");
    assert!(shrunk >= 10, "only {shrunk} networks had the ops");
}
