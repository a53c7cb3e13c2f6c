//! Batch norm and LRN against the f64 references over random shapes
//! (including `[N, C]`, batch 1 and odd planes), their gradients against
//! central differences of the reference forward, the running-statistics
//! update, PyTorch's window and edge cases, and length errors.

use netc_runtime::act;
use netc_runtime::gemm::Activation;
use netc_runtime::norm::{
    batch_norm_backward, batch_norm_forward_inference, batch_norm_forward_inference_act,
    batch_norm_forward_train, batch_norm_forward_train_act, lrn_backward, lrn_forward, BatchNorm,
    Lrn,
};
use netc_runtime::reference;
use proptest::prelude::*;

mod common;
use common::{central_diff_vjp, fill, widen as wide};

/// The finite-difference step.
const H: f64 = 1e-6;

/// `|got - want| <= tol·(1 + |want|)` everywhere, NaN failing.
fn close(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (f64::from(g) - w).abs() <= tol * (1.0 + w.abs());
        if !ok {
            return Err(format!("{what}[{i}] = {g}, expected {w}"));
        }
    }
    Ok(())
}

/// Like [`close`], but relative to the largest `|want|`: for gradients that
/// are differences of large terms, whose small elements carry the absolute
/// error of the large ones.
fn close_to_scale(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), String> {
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    let want_scaled: Vec<f64> = want.iter().map(|w| w / scale).collect();
    let got_scaled: Vec<f32> = got.iter().map(|&g| (f64::from(g) / scale) as f32).collect();
    close(what, &got_scaled, &want_scaled, tol)
}

/// Shapes with at least two values per channel (one gives a NaN running
/// variance, tested on its own). `h = w = 1` is the `[N, C]` case.
fn bn_shape(max_n: usize, max_hw: usize) -> impl Strategy<Value = BatchNorm> {
    (
        (1..=max_n, 1usize..=5, 1..=max_hw, 1..=max_hw, any::<bool>()),
        (prop_oneof![Just(1e-5f32), Just(1e-3)], 0.0f32..=1.0),
    )
        .prop_map(|((n, c, h, w, flat), (eps, momentum))| {
            let (h, w) = if flat { (1, 1) } else { (h, w) };
            // With two values per channel the normalised outputs are ±1
            // whatever the input, so dx is only the eps term: a difference of
            // near-equal numbers that no f32 tolerance can check. Four values
            // make the gradient well conditioned.
            let n = if n * h * w < 4 { 4usize.div_ceil(h * w) } else { n };
            BatchNorm { n, c, h, w, eps, momentum }
        })
}

/// Everything the training forward writes, and what it was given.
struct BnRun {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
    y: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    rm_after: Vec<f32>,
    rv_after: Vec<f32>,
}

fn run_bn_train(bn: BatchNorm, seed: u64) -> Result<BnRun, String> {
    // An offset mean and a spread that differs by channel, so the
    // normalisation has something to do.
    let x: Vec<f32> = fill(bn.x_len(), seed, -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / (bn.h * bn.w)) % bn.c;
            v * (1.0 + ch as f32) + 0.5 * ch as f32 - 1.0
        })
        .collect();
    let gamma = fill(bn.c, seed + 1, 0.5, 2.0);
    let beta = fill(bn.c, seed + 2, -1.0, 1.0);
    let rm = fill(bn.c, seed + 3, -1.0, 1.0);
    let rv = fill(bn.c, seed + 4, 0.5, 2.0);
    let mut y = vec![f32::NAN; bn.x_len()];
    let (mut mean, mut invstd) = (vec![f32::NAN; bn.c], vec![f32::NAN; bn.c]);
    let (mut rm_after, mut rv_after) = (rm.clone(), rv.clone());
    batch_norm_forward_train(
        bn,
        &x,
        &gamma,
        &beta,
        &mut y,
        &mut mean,
        &mut invstd,
        &mut rm_after,
        &mut rv_after,
    )
    .map_err(|e| e.to_string())?;
    Ok(BnRun { x, gamma, beta, rm, rv, y, mean, invstd, rm_after, rv_after })
}

fn check_bn_train(bn: BatchNorm, seed: u64) -> Result<(), String> {
    let r = run_bn_train(bn, seed)?;
    let want = reference::batch_norm_train(
        bn,
        &wide(&r.x),
        &wide(&r.gamma),
        &wide(&r.beta),
        &wide(&r.rm),
        &wide(&r.rv),
    );
    close("y", &r.y, &want.y, 2e-5)?;
    close("save_mean", &r.mean, &want.mean, 1e-6)?;
    close("save_invstd", &r.invstd, &want.invstd, 1e-5)?;
    close("running_mean", &r.rm_after, &want.running_mean, 1e-6)?;
    close("running_var", &r.rv_after, &want.running_var, 1e-5)
}

fn check_bn_backward(bn: BatchNorm, seed: u64, against_fd: bool) -> Result<(), String> {
    let r = run_bn_train(bn, seed)?;
    let dy = fill(bn.x_len(), seed + 5, -1.0, 1.0);
    let mut dx = vec![f32::NAN; bn.x_len()];
    let (mut dgamma, mut dbeta) = (vec![f32::NAN; bn.c], vec![f32::NAN; bn.c]);
    batch_norm_backward(
        bn,
        &r.x,
        &dy,
        &r.gamma,
        &r.mean,
        &r.invstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    )
    .map_err(|e| e.to_string())?;
    let (x, g, b, dy) = (wide(&r.x), wide(&r.gamma), wide(&r.beta), wide(&dy));
    let (want_dx, want_dgamma, want_dbeta) = reference::batch_norm_backward(bn, &x, &dy, &g);
    close_to_scale("dx", &dx, &want_dx, 1e-4)?;
    close("dgamma", &dgamma, &want_dgamma, 1e-4)?;
    close("dbeta", &dbeta, &want_dbeta, 1e-5)?;
    if !against_fd {
        return Ok(());
    }
    let (rm, rv) = (wide(&r.rm), wide(&r.rv));
    let y_of =
        |x: &[f64], g: &[f64], b: &[f64]| reference::batch_norm_train(bn, x, g, b, &rm, &rv).y;
    let fd_x = central_diff_vjp(&x, &dy, H, |x| y_of(x, &g, &b));
    let fd_gamma = central_diff_vjp(&g, &dy, H, |g| y_of(&x, g, &b));
    let fd_beta = central_diff_vjp(&b, &dy, H, |b| y_of(&x, &g, b));
    close_to_scale("dx against central differences", &dx, &fd_x, 1e-4)?;
    close("dgamma against central differences", &dgamma, &fd_gamma, 1e-4)?;
    close("dbeta against central differences", &dbeta, &fd_beta, 1e-5)
}

fn check_bn_inference(bn: BatchNorm, seed: u64) -> Result<(), String> {
    let x = fill(bn.x_len(), seed, -3.0, 3.0);
    let gamma = fill(bn.c, seed + 1, 0.5, 2.0);
    let beta = fill(bn.c, seed + 2, -1.0, 1.0);
    let rm = fill(bn.c, seed + 3, -1.0, 1.0);
    let rv = fill(bn.c, seed + 4, 0.1, 2.0);
    let mut y = vec![f32::NAN; bn.x_len()];
    batch_norm_forward_inference(bn, &x, &gamma, &beta, &rm, &rv, &mut y)
        .map_err(|e| e.to_string())?;
    let want = reference::batch_norm_inference(
        bn,
        &wide(&x),
        &wide(&gamma),
        &wide(&beta),
        &wide(&rm),
        &wide(&rv),
    );
    close("y", &y, &want, 1e-5)
}

/// LRN shapes with window sizes from 1 to 7, odd and even, some wider than
/// the channel count, and a large `alpha` so the cross-channel term of the
/// gradient is not negligible (with PyTorch's default 1e-4 it nearly is).
fn lrn_shape(max_n: usize, max_hw: usize) -> impl Strategy<Value = Lrn> {
    (
        (0..=max_n, 1usize..=8, 1..=max_hw, 1..=max_hw, 1usize..=7),
        (
            prop_oneof![Just(1e-4f32), 0.1f32..3.0],
            prop_oneof![Just(0.75f32), 0.5f32..1.0],
            0.5f32..2.0,
        ),
    )
        .prop_map(|((n, c, h, w, size), (alpha, beta, k))| Lrn {
            n,
            c,
            h,
            w,
            size,
            alpha,
            beta,
            k,
        })
}

fn check_lrn(l: Lrn, seed: u64, against_fd: bool) -> Result<(), String> {
    let x = fill(l.x_len(), seed, -2.0, 2.0);
    let dy = fill(l.x_len(), seed + 1, -1.0, 1.0);
    let (mut y, mut scale) = (vec![f32::NAN; l.x_len()], vec![f32::NAN; l.x_len()]);
    lrn_forward(l, &x, &mut y, &mut scale).map_err(|e| e.to_string())?;
    let (xw, dyw) = (wide(&x), wide(&dy));
    close("scale", &scale, &reference::lrn_scale(l, &xw), 1e-6)?;
    close("y", &y, &reference::lrn(l, &xw), 1e-5)?;
    let mut dx = vec![f32::NAN; l.x_len()];
    lrn_backward(l, &x, &y, &scale, &dy, &mut dx).map_err(|e| e.to_string())?;
    close_to_scale("dx", &dx, &reference::lrn_backward(l, &xw, &dyw), 2e-5)?;
    if against_fd {
        let fd = central_diff_vjp(&xw, &dyw, H, |x| reference::lrn(l, x));
        close_to_scale("dx against central differences", &dx, &fd, 2e-5)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn batch_norm_train_matches_reference(bn in bn_shape(5, 9), seed in any::<u64>()) {
        check_bn_train(bn, seed).map_err(|e| TestCaseError::fail(format!("{e} in {bn:?}")))?;
    }

    #[test]
    fn batch_norm_inference_matches_reference(bn in bn_shape(5, 9), seed in any::<u64>()) {
        check_bn_inference(bn, seed).map_err(|e| TestCaseError::fail(format!("{e} in {bn:?}")))?;
    }

    #[test]
    fn batch_norm_backward_matches_reference(bn in bn_shape(5, 9), seed in any::<u64>()) {
        check_bn_backward(bn, seed, false)
            .map_err(|e| TestCaseError::fail(format!("{e} in {bn:?}")))?;
    }

    #[test]
    fn batch_norm_backward_matches_central_differences(
        bn in bn_shape(3, 4),
        seed in any::<u64>(),
    ) {
        check_bn_backward(bn, seed, true)
            .map_err(|e| TestCaseError::fail(format!("{e} in {bn:?}")))?;
    }

    #[test]
    fn batch_norm_with_a_fused_activation_is_the_activation_of_batch_norm(
        bn in bn_shape(4, 9),
        seed in any::<u64>(),
        which in 0usize..4,
    ) {
        let activation = [
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Sigmoid,
            Activation::Tanh,
        ][which];
        check_fused_activation(bn, seed, activation)
            .map_err(|e| TestCaseError::fail(format!("{e} in {bn:?}, {activation:?}")))?;
    }

    #[test]
    fn lrn_matches_reference(l in lrn_shape(3, 9), seed in any::<u64>()) {
        check_lrn(l, seed, false).map_err(|e| TestCaseError::fail(format!("{e} in {l:?}")))?;
    }

    #[test]
    fn lrn_backward_matches_central_differences(l in lrn_shape(2, 3), seed in any::<u64>()) {
        check_lrn(l, seed, true).map_err(|e| TestCaseError::fail(format!("{e} in {l:?}")))?;
    }
}

/// Tensors big enough to run in parallel (the proptests' are not): a lone
/// sample, whose output channels split between the threads, in uneven
/// blocks, and two samples on three threads.
#[test]
fn lrn_in_parallel_matches_reference() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let big = Lrn { alpha: 0.3, k: 1.5, ..Lrn::new(1, 37, 31, 29, 5) };
    for (i, l) in [big, Lrn { n: 2, size: 4, ..big }].into_iter().enumerate() {
        assert!(l.x_len() >= 1 << 15, "large enough to go parallel");
        pool.install(|| check_lrn(l, 90 + i as u64, false)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The fused forwards (training and inference) against the plain ones
/// followed by the activation's own kernel: the same arithmetic, so the same
/// bits, and the same statistics.
fn check_fused_activation(bn: BatchNorm, seed: u64, activation: Activation) -> Result<(), String> {
    let r = run_bn_train(bn, seed)?;
    let mut want = vec![0.0f32; bn.x_len()];
    act::forward(activation, &r.y, &mut want).map_err(|e| e.to_string())?;
    let mut y = vec![f32::NAN; bn.x_len()];
    let (mut mean, mut invstd) = (vec![f32::NAN; bn.c], vec![f32::NAN; bn.c]);
    let (mut rm, mut rv) = (r.rm.clone(), r.rv.clone());
    let stats = (&mut mean[..], &mut invstd[..], &mut rm[..], &mut rv[..]);
    batch_norm_forward_train_act(bn, activation, &r.x, &r.gamma, &r.beta, &mut y, stats)
        .map_err(|e| e.to_string())?;
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    if !same(&y, &want) || !same(&mean, &r.mean) || !same(&rv, &r.rv_after) {
        return Err("fused training forward differs from batch norm then the activation".into());
    }
    let mut plain = vec![0.0f32; bn.x_len()];
    batch_norm_forward_inference(bn, &r.x, &r.gamma, &r.beta, &r.rm, &r.rv, &mut plain)
        .map_err(|e| e.to_string())?;
    act::forward(activation, &plain, &mut want).map_err(|e| e.to_string())?;
    let running = (&r.rm[..], &r.rv[..]);
    batch_norm_forward_inference_act(bn, activation, &r.x, &r.gamma, &r.beta, running, &mut y)
        .map_err(|e| e.to_string())?;
    if !same(&y, &want) {
        return Err("fused inference forward differs from batch norm then the activation".into());
    }
    Ok(())
}

/// Model-shaped layers: ResNet's batch norms, a dense batch norm, AlexNet's LRN.
#[test]
fn model_shapes_match_reference() {
    for (t, bn) in
        [BatchNorm::new(4, 16, 28, 28), BatchNorm::new(2, 64, 7, 7), BatchNorm::new(32, 120, 1, 1)]
            .into_iter()
            .enumerate()
    {
        check_bn_train(bn, t as u64).unwrap_or_else(|e| panic!("{e} in {bn:?}"));
        check_bn_inference(bn, t as u64).unwrap_or_else(|e| panic!("{e} in {bn:?}"));
        check_bn_backward(bn, t as u64, false).unwrap_or_else(|e| panic!("{e} in {bn:?}"));
    }
    let l = Lrn { alpha: 1e-3, ..Lrn::new(1, 24, 13, 13, 5) };
    check_lrn(l, 7, false).unwrap_or_else(|e| panic!("{e} in {l:?}"));
    // AlexNet's first LRN, big enough to split samples across threads.
    let l = Lrn { alpha: 1e-3, ..Lrn::new(2, 96, 55, 55, 5) };
    check_lrn(l, 8, false).unwrap_or_else(|e| panic!("{e} in {l:?}"));
}

#[test]
fn defaults_are_pytorchs() {
    let bn = BatchNorm::new(1, 2, 3, 4);
    assert_eq!((bn.eps, bn.momentum), (1e-5, 0.1));
    let l = Lrn::new(1, 2, 3, 4, 5);
    assert_eq!((l.alpha, l.beta, l.k), (1e-4, 0.75, 1.0));
}

/// One channel of [1, 2, 3, 4] by hand: mean 2.5, biased variance 1.25,
/// unbiased 5/3.
#[test]
fn running_statistics_follow_the_momentum_formula() {
    let bn = BatchNorm { eps: 0.0, momentum: 0.1, ..BatchNorm::new(2, 1, 1, 2) };
    let x = [1.0, 2.0, 3.0, 4.0];
    let mut y = [0.0; 4];
    let (mut mean, mut invstd) = ([0.0], [0.0]);
    let (mut rm, mut rv) = ([1.0], [2.0]);
    batch_norm_forward_train(
        bn,
        &x,
        &[1.0],
        &[0.0],
        &mut y,
        &mut mean,
        &mut invstd,
        &mut rm,
        &mut rv,
    )
    .unwrap();
    assert_eq!(mean[0], 2.5);
    assert!((invstd[0] - 1.0 / 1.25f32.sqrt()).abs() < 1e-7);
    assert!((rm[0] - (0.9 * 1.0 + 0.1 * 2.5)).abs() < 1e-7, "{}", rm[0]);
    assert!((rv[0] - (0.9 * 2.0 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{}", rv[0]);
    let s = 1.25f32.sqrt();
    for (got, want) in y.iter().zip([-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    // Momentum 1 replaces the running stats, momentum 0 keeps them.
    for (momentum, want_rm, want_rv) in [(1.0, 2.5, 5.0 / 3.0), (0.0, 1.0, 2.0)] {
        let bn = BatchNorm { momentum, ..bn };
        let (mut rm, mut rv) = ([1.0], [2.0]);
        batch_norm_forward_train(
            bn,
            &x,
            &[1.0],
            &[0.0],
            &mut y,
            &mut mean,
            &mut invstd,
            &mut rm,
            &mut rv,
        )
        .unwrap();
        assert!((rm[0] - want_rm).abs() < 1e-6 && (rv[0] - want_rv).abs() < 1e-6);
    }
}

#[test]
fn batch_norm_edge_batches() {
    // One value per channel: y is beta, the unbiased variance 0/0 (as ATen).
    let bn = BatchNorm::new(1, 2, 1, 1);
    let (mut y, mut mean, mut invstd) = ([0.0; 2], [0.0; 2], [0.0; 2]);
    let (mut rm, mut rv) = ([0.0; 2], [1.0; 2]);
    batch_norm_forward_train(
        bn,
        &[3.0, -4.0],
        &[2.0, 2.0],
        &[0.5, -0.5],
        &mut y,
        &mut mean,
        &mut invstd,
        &mut rm,
        &mut rv,
    )
    .unwrap();
    assert_eq!(y, [0.5, -0.5]);
    assert_eq!(mean, [3.0, -4.0]);
    assert!(rv.iter().all(|v| v.is_nan()));

    // An empty batch leaves the running stats alone and has zero gradients.
    let bn = BatchNorm::new(0, 2, 3, 3);
    let (mut rm, mut rv) = ([0.25; 2], [1.5; 2]);
    batch_norm_forward_train(
        bn,
        &[],
        &[1.0; 2],
        &[0.0; 2],
        &mut [],
        &mut mean,
        &mut invstd,
        &mut rm,
        &mut rv,
    )
    .unwrap();
    assert_eq!((rm, rv), ([0.25; 2], [1.5; 2]));
    assert!(invstd.iter().all(|v| v.is_finite()));
    batch_norm_forward_inference(bn, &[], &[1.0; 2], &[0.0; 2], &rm, &rv, &mut []).unwrap();
    let (mut dgamma, mut dbeta) = ([f32::NAN; 2], [f32::NAN; 2]);
    batch_norm_backward(bn, &[], &[], &[1.0; 2], &mean, &invstd, &mut [], &mut dgamma, &mut dbeta)
        .unwrap();
    assert_eq!((dgamma, dbeta), ([0.0; 2], [0.0; 2]));

    let l = Lrn::new(0, 3, 4, 4, 3);
    lrn_forward(l, &[], &mut [], &mut []).unwrap();
    lrn_backward(l, &[], &[], &[], &[], &mut []).unwrap();
}

/// An even window leans towards the lower channels: with size 2 channel c
/// sums c-1 and c (PyTorch pads size/2 = 1 zero channel before, 0 after).
#[test]
fn lrn_window_is_pytorchs() {
    // alpha = size, k = 0, beta = 1: scale is the plain sum of squares.
    let l = Lrn { n: 1, c: 3, h: 1, w: 1, size: 2, alpha: 2.0, beta: 1.0, k: 0.0 };
    let (mut y, mut scale) = ([0.0; 3], [0.0; 3]);
    lrn_forward(l, &[1.0, 2.0, 3.0], &mut y, &mut scale).unwrap();
    assert_eq!(scale, [1.0, 5.0, 13.0]);
    assert_eq!(y, [1.0, 2.0 / 5.0, 3.0 / 13.0]);
    // Size 3 is centred; size 4 takes two below and one above.
    for (size, want) in [(3, [5.0, 14.0, 13.0]), (4, [5.0, 14.0, 14.0])] {
        let l = Lrn { size, alpha: size as f32, ..l };
        lrn_forward(l, &[1.0, 2.0, 3.0], &mut y, &mut scale).unwrap();
        assert_eq!(scale, want, "size {size}");
    }
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let tensor = |r: Result<(), netc_runtime::LenError>| r.unwrap_err().tensor;
    let bn = BatchNorm::new(2, 3, 2, 2);
    let (x, c) = (vec![0.0f32; 24], vec![1.0f32; 3]);
    let train = |skip: usize| {
        let mut v: Vec<Vec<f32>> = vec![x.clone(), c.clone(), c.clone(), x.clone()];
        v.extend(std::iter::repeat_n(c.clone(), 4));
        v[skip].pop();
        let [x, g, b, y, m, s, rm, rv] = &mut v[..] else { unreachable!() };
        tensor(batch_norm_forward_train(bn, x, g, b, y, m, s, rm, rv))
    };
    let names = ["x", "gamma", "beta", "y", "save_mean", "save_invstd", "running_mean"];
    for (i, name) in names.iter().chain(&["running_var"]).enumerate() {
        assert_eq!(train(i), *name);
    }
    let inference = |skip: usize| {
        let mut v = [x.clone(), c.clone(), c.clone(), c.clone(), c.clone(), x.clone()];
        v[skip].pop();
        let [x, g, b, rm, rv, y] = &mut v[..] else { unreachable!() };
        tensor(batch_norm_forward_inference(bn, x, g, b, rm, rv, y))
    };
    for (i, name) in ["x", "gamma", "beta", "running_mean", "running_var", "y"].iter().enumerate() {
        assert_eq!(inference(i), *name);
    }
    let backward = |skip: usize| {
        let mut v = vec![x.clone(), x.clone(), c.clone(), c.clone(), c.clone(), x.clone()];
        v.extend([c.clone(), c.clone()]);
        v[skip].pop();
        let [x, dy, g, m, s, dx, dg, db] = &mut v[..] else { unreachable!() };
        tensor(batch_norm_backward(bn, x, dy, g, m, s, dx, dg, db))
    };
    let names = ["x", "dy", "gamma", "save_mean", "save_invstd", "dx", "dgamma", "dbeta"];
    for (i, name) in names.iter().enumerate() {
        assert_eq!(backward(i), *name);
    }

    let l = Lrn::new(2, 3, 2, 2, 3);
    let lrn_fwd = |skip: usize| {
        let mut v = vec![x.clone(); 3];
        v[skip].pop();
        let [x, y, s] = &mut v[..] else { unreachable!() };
        tensor(lrn_forward(l, x, y, s))
    };
    for (i, name) in ["x", "y", "scale"].iter().enumerate() {
        assert_eq!(lrn_fwd(i), *name);
    }
    let lrn_bwd = |skip: usize| {
        let mut v = vec![x.clone(); 5];
        v[skip].pop();
        let [x, y, s, dy, dx] = &mut v[..] else { unreachable!() };
        tensor(lrn_backward(l, x, y, s, dy, dx))
    };
    for (i, name) in ["x", "y", "scale", "dy", "dx"].iter().enumerate() {
        assert_eq!(lrn_bwd(i), *name);
    }
    let err = lrn_forward(l, &x, &mut [0.0; 25], &mut x.clone()).unwrap_err();
    assert_eq!((err.op, err.expected, err.found), ("lrn_forward", 24, 25));
}
