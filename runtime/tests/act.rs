//! Activations, softmax, log-softmax and the fused bias + activation
//! against the naive reference over random shapes (batch 1 and odd sizes
//! included) on every instruction set the CPU has, every backward against
//! central differences in f64, and wrong lengths as errors.

mod common;

use common::{assert_close, assert_grad, central_diff, check_close, fill, widen};
use netc_runtime::act::{self, Activation};
use netc_runtime::isa::Isa;
use netc_runtime::reference;
use proptest::prelude::*;

const ACTIVATIONS: [Activation; 10] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::HardTanh(-1.0, 1.0),
    // relu6
    Activation::HardTanh(0.0, 6.0),
    Activation::HardSigmoid,
    Activation::Elu(1.0),
    Activation::Elu(0.3),
];

/// The activations in f64, for finite differences.
fn act64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                f64::from(s) * x
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::HardTanh(min, max) => x.clamp(f64::from(min), f64::from(max)),
        Activation::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Elu(alpha) => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Gated(g) => reference::gated(g, x),
    }
}

/// Inputs away from the kinks (ReLU's and ELU's at 0, hardtanh's at ±1,
/// relu6's at 0 and 6, hardsigmoid's at ±3), where central differences
/// straddle two slopes.
fn away_from_kinks(x: &mut [f32]) {
    for x in x.iter_mut() {
        if [0.0, -1.0, 1.0, 6.0, -3.0, 3.0].iter().any(|k| (*x - k).abs() < 0.05) {
            *x = 0.5;
        }
    }
}

fn softmax64(n: usize, c: usize, hw: usize, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for i in 0..n {
        for s in 0..hw {
            let at = |k: usize| i * c * hw + k * hw + s;
            let max = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..c).map(|k| (x[at(k)] - max).exp()).sum();
            for k in 0..c {
                y[at(k)] = (x[at(k)] - max).exp() / sum;
            }
        }
    }
    y
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn elementwise_matches_reference(len in 0usize..70, which in 0usize..ACTIVATIONS.len(), seed in any::<u64>()) {
        let act = ACTIVATIONS[which];
        let x = fill(len, seed, -6.0, 6.0);
        let dy = fill(len, seed + 1, -2.0, 2.0);
        let mut y = vec![f32::NAN; len];
        act::forward(act, &x, &mut y).unwrap();
        check_close("y", &y, &reference::activation_forward(act, &x), 1e-6, 1e-6)
            .map_err(TestCaseError::fail)?;
        let mut in_place = x.clone();
        act::forward_in_place(act, &mut in_place);
        prop_assert_eq!(&in_place, &y);

        let mut dx = vec![f32::NAN; len];
        act::backward(act, &y, &dy, &mut dx).unwrap();
        check_close("dx", &dx, &reference::activation_backward(act, &x, &dy), 1e-6, 1e-5)
            .map_err(TestCaseError::fail)?;
        let mut g = dy.clone();
        act::backward_in_place(act, &y, &mut g).unwrap();
        prop_assert_eq!(&g, &dx);
        let mut from_input = vec![f32::NAN; len];
        act::backward_from_input(act, &x, &dy, &mut from_input).unwrap();
        check_close("dx from x", &from_input, &reference::activation_backward(act, &x, &dy), 1e-6, 1e-5)
            .map_err(TestCaseError::fail)?;

        // Every instruction set's kernels give the same bits.
        for &isa in Isa::supported() {
            let mut y_isa = vec![f32::NAN; len];
            act::forward_on(isa, act, &x, &mut y_isa).unwrap();
            prop_assert!(same_bits(&y_isa, &y), "{:?} {:?} forward", isa, act);
            let mut y_isa = x.clone();
            act::forward_in_place_on(isa, act, &mut y_isa);
            prop_assert!(same_bits(&y_isa, &y), "{:?} {:?} forward in place", isa, act);
            let mut dx_isa = vec![f32::NAN; len];
            act::backward_on(isa, act, &y, &dy, &mut dx_isa).unwrap();
            prop_assert!(same_bits(&dx_isa, &dx), "{:?} {:?} backward", isa, act);
            let mut dx_isa = vec![f32::NAN; len];
            act::backward_from_input_on(isa, act, &x, &dy, &mut dx_isa).unwrap();
            prop_assert!(same_bits(&dx_isa, &from_input), "{:?} {:?} backward from x", isa, act);
        }
    }

    #[test]
    fn softmax_matches_reference(
        n in 1usize..5, c in 1usize..13, hw in 1usize..6, seed in any::<u64>(), scale in 0.1f32..30.0,
    ) {
        let len = n * c * hw;
        let x = fill(len, seed, -scale, scale);
        let dy = fill(len, seed + 1, -1.0, 1.0);
        let mut y = vec![f32::NAN; len];
        act::softmax(n, c, hw, &x, &mut y).unwrap();
        check_close("softmax", &y, &reference::softmax(n, c, hw, &x), 1e-7, 1e-5)
            .map_err(TestCaseError::fail)?;
        let mut in_place = x.clone();
        act::softmax_in_place(n, c, hw, &mut in_place).unwrap();
        prop_assert_eq!(&in_place, &y);
        let mut dx = vec![f32::NAN; len];
        act::softmax_backward(n, c, hw, &y, &dy, &mut dx).unwrap();
        check_close("dx", &dx, &reference::softmax_backward(n, c, hw, &x, &dy), 1e-6, 1e-4)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn log_softmax_matches_reference(
        n in 1usize..5, c in 1usize..40, hw in 1usize..6, seed in any::<u64>(), scale in 0.1f32..60.0,
    ) {
        let len = n * c * hw;
        let x = fill(len, seed, -scale, scale);
        let dy = fill(len, seed + 1, -1.0, 1.0);
        let mut y = vec![f32::NAN; len];
        act::log_softmax(n, c, hw, &x, &mut y).unwrap();
        check_close("log_softmax", &y, &reference::log_softmax(n, c, hw, &x), 1e-5, 1e-6)
            .map_err(TestCaseError::fail)?;
        let mut dx = vec![f32::NAN; len];
        act::log_softmax_backward(n, c, hw, &y, &dy, &mut dx).unwrap();
        let want = reference::log_softmax_backward(n, c, hw, &x, &dy);
        check_close("dx", &dx, &want, 1e-5, 1e-4).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn bias_add_act_matches_reference(
        n in 1usize..4, c in 1usize..9, hw in 1usize..11, which in 0usize..ACTIVATIONS.len(), seed in any::<u64>(),
    ) {
        let act = ACTIVATIONS[which];
        let len = n * c * hw;
        let x = fill(len, seed, -4.0, 4.0);
        let bias = fill(c, seed + 1, -1.0, 1.0);
        let dy = fill(len, seed + 2, -1.0, 1.0);
        let want = reference::bias_add_act(n, c, hw, &x, &bias, act);
        let mut y = vec![f32::NAN; len];
        act::bias_add_act_to(n, c, hw, &x, &bias, act, &mut y).unwrap();
        check_close("y", &y, &want, 1e-6, 1e-6).map_err(TestCaseError::fail)?;
        let mut in_place = x.clone();
        act::bias_add_act(n, c, hw, &bias, act, &mut in_place).unwrap();
        prop_assert_eq!(&in_place, &y);

        // dz from the reference derivative at z = x + b; dbias its sum.
        let z: Vec<f32> = (0..len).map(|i| x[i] + bias[(i / hw) % c]).collect();
        let want_dz = reference::activation_backward(act, &z, &dy);
        let want_db: Vec<f32> = (0..c)
            .map(|k| (0..len).filter(|i| (i / hw) % c == k).map(|i| f64::from(want_dz[i])).sum::<f64>() as f32)
            .collect();
        let mut dz = vec![f32::NAN; len];
        let mut db = vec![f32::NAN; c];
        act::bias_act_backward(n, c, hw, act, &y, &dy, &mut dz, &mut db).unwrap();
        check_close("dz", &dz, &want_dz, 1e-6, 1e-5).map_err(TestCaseError::fail)?;
        check_close("dbias", &db, &want_db, 1e-5, 1e-4).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn elementwise_backward_matches_central_differences() {
    for (t, act) in ACTIVATIONS.into_iter().enumerate() {
        for len in [1, 7, 33] {
            let mut x = fill(len, 10 + t as u64, -3.0, 3.0);
            away_from_kinks(&mut x);
            let dy = fill(len, 20 + t as u64, -1.0, 1.0);
            let mut y = vec![0.0; len];
            act::forward(act, &x, &mut y).unwrap();
            let mut dx = vec![0.0; len];
            act::backward(act, &y, &dy, &mut dx).unwrap();
            let dy64 = widen(&dy);
            let loss =
                |x: &[f64]| dot(&dy64, &x.iter().map(|&x| act64(act, x)).collect::<Vec<_>>());
            let want = central_diff(loss, &widen(&x), 1e-6);
            assert_grad(&format!("{act:?} dx"), &dx, &want, 1e-5, 1e-4);
        }
    }
}

#[test]
fn named_wrappers_agree_with_the_generic_kernels() {
    let x = fill(29, 3, -3.0, 3.0);
    let dy = fill(29, 4, -1.0, 1.0);
    type Fwd = fn(&[f32], &mut [f32]) -> Result<(), netc_runtime::LenError>;
    type Bwd = fn(&[f32], &[f32], &mut [f32]) -> Result<(), netc_runtime::LenError>;
    let cases: [(Activation, Fwd, Bwd); 3] = [
        (Activation::Relu, act::relu, act::relu_backward),
        (Activation::Sigmoid, act::sigmoid, act::sigmoid_backward),
        (Activation::Tanh, act::tanh, act::tanh_backward),
    ];
    for (a, fwd, bwd) in cases {
        let (mut y1, mut y2) = (vec![0.0; 29], vec![0.0; 29]);
        fwd(&x, &mut y1).unwrap();
        act::forward(a, &x, &mut y2).unwrap();
        assert_eq!(y1, y2, "{a:?}");
        let (mut d1, mut d2) = (vec![0.0; 29], vec![0.0; 29]);
        bwd(&y1, &dy, &mut d1).unwrap();
        act::backward(a, &y1, &dy, &mut d2).unwrap();
        assert_eq!(d1, d2, "{a:?}");
    }
    let mut y = vec![0.0; 29];
    act::leaky_relu(0.2, &x, &mut y).unwrap();
    let mut d1 = vec![0.0; 29];
    act::leaky_relu_backward(0.2, &y, &dy, &mut d1).unwrap();
    let mut d2 = vec![0.0; 29];
    act::leaky_relu_backward_from_input(0.2, &x, &dy, &mut d2).unwrap();
    assert_eq!(d1, d2);
}

#[test]
fn leaky_relu_with_negative_slope_needs_the_input() {
    let x = [-2.0f32, -0.5, 0.5, 2.0];
    let dy = [1.0f32; 4];
    let mut dx = [0.0f32; 4];
    act::leaky_relu_backward_from_input(-0.5, &x, &dy, &mut dx).unwrap();
    assert_eq!(dx, [-0.5, -0.5, 1.0, 1.0]);
}

#[test]
fn pytorch_conventions_at_zero_and_nan() {
    let x = [0.0f32, -0.0, f32::NAN];
    let mut y = [1.0f32; 3];
    act::relu(&x, &mut y).unwrap();
    assert_eq!(y[0], 0.0);
    assert!(y[2].is_nan(), "relu propagates NaN like torch.relu");
    // The gradient at 0 is that of the negative side.
    let mut dx = [9.0f32; 3];
    act::relu_backward(&[0.0, 0.0, 1.0], &[1.0, 1.0, 1.0], &mut dx).unwrap();
    assert_eq!(dx, [0.0, 0.0, 1.0]);
    act::leaky_relu_backward(0.01, &[0.0, -0.01, 1.0], &[1.0, 1.0, 1.0], &mut dx).unwrap();
    assert_eq!(dx, [0.01, 0.01, 1.0]);
    // Sigmoid saturates without NaN at both ends.
    let mut s = [0.0f32; 2];
    act::sigmoid(&[-200.0, 200.0], &mut s).unwrap();
    assert_eq!(s, [0.0, 1.0]);
}

#[test]
fn softmax_backward_matches_central_differences() {
    for &(n, c, hw) in &[(1, 1, 1), (1, 5, 1), (3, 4, 1), (2, 3, 5), (1, 7, 3)] {
        let len = n * c * hw;
        let x = fill(len, len as u64, -3.0, 3.0);
        let dy = fill(len, len as u64 + 1, -1.0, 1.0);
        let mut y = vec![0.0; len];
        act::softmax(n, c, hw, &x, &mut y).unwrap();
        let mut dx = vec![0.0; len];
        act::softmax_backward(n, c, hw, &y, &dy, &mut dx).unwrap();
        let dy64 = widen(&dy);
        let want = central_diff(|x| dot(&dy64, &softmax64(n, c, hw, x)), &widen(&x), 1e-6);
        assert_grad("softmax dx", &dx, &want, 1e-5, 1e-4);
    }
}

#[test]
fn bias_act_backward_matches_central_differences() {
    let (n, c, hw) = (2, 3, 5);
    let len = n * c * hw;
    for (t, a) in ACTIVATIONS.into_iter().enumerate() {
        let mut x = fill(len, 50 + t as u64, -2.0, 2.0);
        let bias = vec![0.0f32; c];
        away_from_kinks(&mut x);
        let dy = fill(len, 60 + t as u64, -1.0, 1.0);
        let mut y = vec![0.0; len];
        act::bias_add_act_to(n, c, hw, &x, &bias, a, &mut y).unwrap();
        let (mut dz, mut db) = (vec![0.0; len], vec![0.0; c]);
        act::bias_act_backward(n, c, hw, a, &y, &dy, &mut dz, &mut db).unwrap();
        let dy64 = widen(&dy);
        let x64 = widen(&x);
        let f = |x: &[f64], b: &[f64]| {
            (0..len).map(|i| dy64[i] * act64(a, x[i] + b[(i / hw) % c])).sum::<f64>()
        };
        let want_dz = central_diff(|x| f(x, &[0.0; 3]), &x64, 1e-6);
        let want_db = central_diff(|b| f(&x64, b), &[0.0; 3], 1e-6);
        assert_grad(&format!("{a:?} dz"), &dz, &want_dz, 1e-5, 1e-4);
        assert_grad(&format!("{a:?} dbias"), &db, &want_db, 1e-5, 1e-4);
    }
}

#[test]
fn softmax_is_stable_for_huge_logits() {
    let x = [1000.0f32, -1000.0, 0.0, 1000.0];
    let mut y = [0.0f32; 4];
    act::softmax(1, 4, 1, &x, &mut y).unwrap();
    assert_close("softmax", &y, &[0.5, 0.0, 0.0, 0.5], 1e-7, 0.0);
}

#[test]
fn wrong_lengths_are_errors() {
    let x = vec![0.0f32; 6];
    let mut short = vec![0.0f32; 5];
    let err = act::forward(Activation::Relu, &x, &mut short).unwrap_err();
    assert_eq!((err.tensor, err.expected, err.found), ("y", 6, 5));
    assert!(act::backward(Activation::Tanh, &x, &x[..5], &mut [0.0; 6]).is_err());
    assert!(act::backward(Activation::Tanh, &x, &x, &mut short).is_err());
    assert!(act::backward_in_place(Activation::Tanh, &x, &mut short).is_err());
    assert!(act::softmax(2, 2, 2, &x, &mut [0.0; 6]).is_err());
    assert!(act::softmax(2, 3, 1, &x, &mut short).is_err());
    assert!(act::softmax_in_place(usize::MAX, 2, 2, &mut short).is_err(), "overflowing shape");
    assert!(act::softmax_backward(2, 3, 1, &x, &x, &mut short).is_err());
    let err = act::bias_add_act(2, 3, 1, &[0.0; 2], Activation::Relu, &mut [0.0; 6]).unwrap_err();
    assert_eq!(err.tensor, "bias");
    let mut db = vec![0.0; 2];
    let err = act::bias_act_backward(2, 3, 1, Activation::Relu, &x, &x, &mut [0.0; 6], &mut db)
        .unwrap_err();
    assert!(matches!(&err, netc_runtime::Error::Len(e) if e.tensor == "dbias"), "{err}");
}

/// The fused GEMM/conv epilogue and the unfused activation kernels give the
/// same value for every activation, edge cases included (the fused ReLU
/// used to turn NaN into 0).
#[test]
fn fused_epilogue_activation_equals_the_unfused_one() {
    let specials =
        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -100.0, -1e-30, 0.0, -0.0, 3.5, 100.0];
    for a in ACTIVATIONS {
        for x in specials {
            let (fused, unfused) = (a.apply(x), act::activate(a, x));
            let same = fused == unfused
                || (fused.is_nan() && unfused.is_nan())
                // The fused sigmoid flushes its tail below 1e-38 to zero.
                || (a == Activation::Sigmoid && fused.abs() < 1e-38 && unfused.abs() < 1e-38);
            assert!(same, "{a:?}({x}): fused {fused}, unfused {unfused}");
        }
    }
    assert!(Activation::Relu.apply(f32::NAN).is_nan(), "ReLU passes NaN through, as PyTorch");
}

/// The residual add with each activation fused: the activation of the sum,
/// bit for bit as the activation's own kernel gives it, at a length that
/// splits across threads and one that does not.
#[test]
fn add_with_a_fused_activation_is_the_activation_of_the_sum() {
    for len in [37, 1 << 16] {
        let (a, b) = (fill(len, 3, -2.0, 2.0), fill(len, 4, -2.0, 2.0));
        let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        for act in ACTIVATIONS {
            let mut want = vec![0.0f32; len];
            act::forward(act, &sum, &mut want).unwrap();
            let mut got = vec![f32::NAN; len];
            netc_runtime::nn::add(&a, &b, act, &mut got).unwrap();
            let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{act:?} at length {len}");
        }
    }
    let err = netc_runtime::nn::add(&[0.0; 3], &[0.0; 2], Activation::Relu, &mut [0.0; 3]);
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("`b` has 2 elements, expected 3"), "the short operand is named: {msg}");
}

/// The bounds of hardtanh, relu6 and hardsigmoid pass no gradient, as
/// PyTorch's `hardtanh_backward` and `hardsigmoid_backward` (strict
/// inequalities); ELU at 0 takes its negative side's `alpha`; NaN passes
/// through the forwards. From the output and from the input alike.
#[test]
fn pytorch_conventions_at_the_bounds() {
    // An activation, inputs, and its outputs and derivatives there.
    type Case = (Activation, Vec<f32>, Vec<f32>, Vec<f32>);
    let cases: [Case; 4] = [
        (
            Activation::HardTanh(-1.0, 1.0),
            vec![-1.0, 1.0, -0.999, 0.999, -7.0, 7.0],
            vec![-1.0, 1.0, -0.999, 0.999, -1.0, 1.0],
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
        ),
        (
            Activation::HardTanh(0.0, 6.0),
            vec![0.0, 6.0, 3.0, -1.0, 8.0, 1e-3],
            vec![0.0, 6.0, 3.0, 0.0, 6.0, 1e-3],
            vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        ),
        (
            Activation::HardSigmoid,
            vec![-3.0, 3.0, 0.0, -4.0, 4.0, -2.9],
            vec![0.0, 1.0, 0.5, 0.0, 1.0, 0.1 / 6.0],
            vec![0.0, 0.0, 1.0 / 6.0, 0.0, 0.0, 1.0 / 6.0],
        ),
        (
            Activation::Elu(0.5),
            vec![0.0, -1.0, 2.0, -100.0],
            vec![0.0, 0.5 * (-1.0f32).exp_m1(), 2.0, -0.5],
            vec![0.5, 0.5 * (-1.0f32).exp(), 1.0, 0.0],
        ),
    ];
    for (a, x, want_y, want_d) in cases {
        let mut y = vec![f32::NAN; x.len()];
        act::forward(a, &x, &mut y).unwrap();
        assert_close(&format!("{a:?} y"), &y, &want_y, 1e-7, 1e-6);
        let mut d = vec![1.0f32; x.len()];
        act::backward_in_place(a, &y, &mut d).unwrap();
        assert_close(&format!("{a:?} dx from y"), &d, &want_d, 1e-7, 1e-6);
        let mut d = vec![1.0f32; x.len()];
        act::backward_from_input_in_place(a, &x, &mut d).unwrap();
        assert_close(&format!("{a:?} dx from x"), &d, &want_d, 1e-7, 1e-6);
        let mut nan = [0.0f32];
        act::forward(a, &[f32::NAN], &mut nan).unwrap();
        assert!(nan[0].is_nan(), "{a:?} passes NaN through");
    }
    // The one input where hardsigmoid's output does not tell its slope from
    // its flat side: x + 3 rounds to 6 at x = 3 − 2⁻²², so the forward gives
    // 1 (as PyTorch's does) and the output-based derivative 0, while the
    // input-based one (PyTorch's) is 1/6.
    let x = 3.0f32 - 2f32.powi(-22);
    assert_eq!(act::activate(Activation::HardSigmoid, x), 1.0);
    assert_eq!(act::derivative_from_output(Activation::HardSigmoid, 1.0), 0.0);
    assert_eq!(act::derivative_from_input(Activation::HardSigmoid, x), 1.0 / 6.0);
}

/// ELU's `eˣ − 1` keeps its relative accuracy near 0, where `exp(x) − 1`
/// cancels, and meets the far tail at exactly `−alpha`.
#[test]
fn elu_is_accurate_near_zero_and_in_the_tail() {
    for x in [-1e-8f32, -1e-5, -0.01, -0.3, -0.49, -0.5, -0.51, -2.0, -20.0, -90.0, -1e4] {
        let got = act::activate(Activation::Elu(1.0), x);
        let want = f64::from(x).exp_m1();
        let rel = (f64::from(got) - want).abs() / want.abs();
        assert!(rel <= 3e-7, "elu({x}) = {got}, want {want}: relative error {rel:e}");
    }
    assert_eq!(act::activate(Activation::Elu(2.0), f32::NEG_INFINITY), -2.0);
    assert_eq!(act::activate(Activation::Elu(2.0), f32::INFINITY), f32::INFINITY);
}

fn log_softmax64(n: usize, c: usize, hw: usize, x: &[f64]) -> Vec<f64> {
    softmax64(n, c, hw, x).into_iter().map(f64::ln).collect()
}

#[test]
fn log_softmax_backward_matches_central_differences() {
    for &(n, c, hw) in &[(1, 1, 1), (1, 5, 1), (3, 17, 1), (2, 3, 5), (1, 7, 3)] {
        let len = n * c * hw;
        let x = fill(len, len as u64, -3.0, 3.0);
        let dy = fill(len, len as u64 + 1, -1.0, 1.0);
        let mut y = vec![0.0; len];
        act::log_softmax(n, c, hw, &x, &mut y).unwrap();
        let mut dx = vec![0.0; len];
        act::log_softmax_backward(n, c, hw, &y, &dy, &mut dx).unwrap();
        let dy64 = widen(&dy);
        let want = central_diff(|x| dot(&dy64, &log_softmax64(n, c, hw, x)), &widen(&x), 1e-6);
        assert_grad("log_softmax dx", &dx, &want, 1e-5, 1e-4);
    }
}

/// Logits thousands apart give each its exact distance below the largest
/// (less the log of the sum), where `ln(softmax)` would be `ln 0`.
#[test]
fn log_softmax_is_stable_for_huge_logits() {
    for (n, c, hw) in [(1, 4, 1), (1, 4, 2)] {
        let x: Vec<f32> =
            [1000.0f32, -1000.0, 0.0, 1000.0].iter().flat_map(|&v| vec![v; hw]).collect();
        let mut y = vec![0.0f32; x.len()];
        act::log_softmax(n, c, hw, &x, &mut y).unwrap();
        let ln2 = std::f32::consts::LN_2;
        let want: Vec<f32> =
            [-ln2, -2000.0 - ln2, -1000.0 - ln2, -ln2].iter().flat_map(|&v| vec![v; hw]).collect();
        assert_close("log_softmax", &y, &want, 1e-6, 1e-6);
    }
    let mut short = vec![0.0f32; 5];
    assert!(act::log_softmax(2, 3, 1, &[0.0; 6], &mut short).is_err());
    assert!(act::log_softmax_backward(2, 3, 1, &[0.0; 6], &[0.0; 6], &mut short).is_err());
}
