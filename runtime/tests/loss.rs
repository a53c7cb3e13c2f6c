//! Softmax cross-entropy and the halved squared error against the naive
//! reference over random shapes, their gradients against central
//! differences in f64, stability at logits of ±1000, out-of-range labels
//! and wrong lengths as errors.

mod common;

use common::{assert_close, assert_grad, central_diff, check_close, fill, widen};
use netc_runtime::loss::{self, LossError};
use netc_runtime::reference;
use proptest::prelude::*;

fn labels_for(batch: usize, classes: usize, seed: u64) -> Vec<usize> {
    fill(batch, seed, 0.0, classes as f32).iter().map(|&x| (x as usize).min(classes - 1)).collect()
}

/// Mean cross-entropy in f64, for finite differences.
fn cross_entropy64(batch: usize, classes: usize, logits: &[f64], labels: &[usize]) -> f64 {
    let mut total = 0.0;
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln() + max;
        total += lse - row[label];
    }
    total / batch as f64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn cross_entropy_matches_reference(
        batch in 1usize..9, classes in 1usize..14, seed in any::<u64>(), scale in 0.1f32..50.0,
    ) {
        let logits = fill(batch * classes, seed, -scale, scale);
        let labels = labels_for(batch, classes, seed + 1);
        let (want_loss, want_grad) = reference::softmax_cross_entropy(batch, classes, &logits, &labels);
        let mut grad = vec![f32::NAN; batch * classes];
        let got = loss::softmax_cross_entropy(batch, classes, &logits, &labels, &mut grad).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 1e-5 * (1.0 + want_loss.abs()), "{} vs {}", got, want_loss);
        check_close("dlogits", &grad, &want_grad, 1e-7, 1e-4).map_err(TestCaseError::fail)?;
        let forward_only = loss::softmax_cross_entropy_loss(batch, classes, &logits, &labels).unwrap();
        prop_assert!((forward_only - got).abs() <= 1e-6 * (1.0 + got.abs()));
        // u32 labels give the same result.
        let labels32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let mut grad32 = vec![0.0; batch * classes];
        let got32 = loss::softmax_cross_entropy(batch, classes, &logits, &labels32, &mut grad32).unwrap();
        prop_assert_eq!(got32, got);
        prop_assert_eq!(grad32, grad);
    }

    #[test]
    fn mse_matches_reference(batch in 1usize..9, features in 0usize..14, seed in any::<u64>()) {
        let len = batch * features;
        let y = fill(len, seed, -3.0, 3.0);
        let t = fill(len, seed + 1, -3.0, 3.0);
        let (want_loss, want_grad) = reference::mse(batch, &y, &t);
        let got = loss::mse(batch, features, &y, &t).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 1e-6 * (1.0 + want_loss));
        let mut grad = vec![f32::NAN; len];
        loss::mse_backward(batch, features, &y, &t, &mut grad).unwrap();
        check_close("dy", &grad, &want_grad, 1e-7, 1e-6).map_err(TestCaseError::fail)?;
        let mut fused = vec![f32::NAN; len];
        let fused_loss = loss::mse_with_grad(batch, features, &y, &t, &mut fused).unwrap();
        prop_assert_eq!(fused_loss, got);
        prop_assert_eq!(fused, grad);
    }
}

#[test]
fn cross_entropy_gradient_matches_central_differences() {
    for &(batch, classes) in &[(1, 1), (1, 2), (3, 5), (4, 10), (2, 17)] {
        let logits = fill(batch * classes, classes as u64, -4.0, 4.0);
        let labels = labels_for(batch, classes, 7);
        let mut grad = vec![0.0; batch * classes];
        loss::softmax_cross_entropy(batch, classes, &logits, &labels, &mut grad).unwrap();
        let want =
            central_diff(|x| cross_entropy64(batch, classes, x, &labels), &widen(&logits), 1e-6);
        assert_grad("dlogits", &grad, &want, 1e-6, 1e-4);
    }
}

#[test]
fn mse_gradient_matches_central_differences() {
    let (batch, features) = (3, 4);
    let y = fill(12, 1, -2.0, 2.0);
    let t = widen(&fill(12, 2, -2.0, 2.0));
    let mut grad = vec![0.0; 12];
    loss::mse_backward(batch, features, &y, &fill(12, 2, -2.0, 2.0), &mut grad).unwrap();
    let f = |y: &[f64]| {
        y.iter().zip(&t).map(|(y, t)| (t - y).powi(2)).sum::<f64>() / (2.0 * batch as f64)
    };
    assert_grad("dy", &grad, &central_diff(f, &widen(&y), 1e-6), 1e-6, 1e-5);
}

#[test]
fn mse_divides_by_the_batch_not_the_elements() {
    // Two samples of two outputs, every error 1: ½ · 4 / 2 = 1.
    let y = [1.0f32, 2.0, 3.0, 4.0];
    let t = [0.0f32, 1.0, 2.0, 3.0];
    assert_eq!(loss::mse(2, 2, &y, &t).unwrap(), 1.0);
    let mut dy = [0.0f32; 4];
    loss::mse_backward(2, 2, &y, &t, &mut dy).unwrap();
    assert_eq!(dy, [0.5; 4]);
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let logits = [1000.0f32, -1000.0, 0.0, -1000.0, 1000.0, 1000.0];
    let mut grad = [f32::NAN; 6];
    let labels: [u32; 2] = [0, 2];
    let got = loss::softmax_cross_entropy(2, 3, &logits, &labels, &mut grad).unwrap();
    // Sample 0 is certain and right (loss 0); sample 1 splits 1000 and
    // 1000 (loss ln 2).
    assert!((got - std::f32::consts::LN_2 / 2.0).abs() < 1e-6, "{got}");
    assert_close("dlogits", &grad, &[0.0, 0.0, 0.0, 0.0, 0.25, -0.25], 1e-7, 0.0);

    // Sure and wrong: loss 2000, not inf or NaN.
    let got = loss::softmax_cross_entropy_loss(1, 2, &[1000.0f32, -1000.0], &[1usize]).unwrap();
    assert_eq!(got, 2000.0);
    let got = loss::softmax_cross_entropy_loss(1, 3, &[-1000.0f32; 3], &[2usize]).unwrap();
    assert!((got - 3f32.ln()).abs() < 1e-6, "{got}");
}

#[test]
fn out_of_range_labels_are_errors_naming_the_sample() {
    let logits = [0.0f32; 6];
    let mut grad = [7.0f32; 6];
    let err = loss::softmax_cross_entropy(2, 3, &logits, &[1u32, 3], &mut grad).unwrap_err();
    assert_eq!(err, LossError::Label { sample: 1, label: 3, classes: 3 });
    assert_eq!(
        err.to_string(),
        "softmax_cross_entropy: label 3 of sample 1 is out of range for 3 classes"
    );
    assert_eq!(grad, [7.0; 6], "a bad batch writes nothing");
    let err = loss::softmax_cross_entropy_loss(2, 3, &logits, &[usize::MAX, 0]).unwrap_err();
    assert!(matches!(err, LossError::Label { sample: 0, .. }), "{err}");
}

#[test]
fn wrong_lengths_are_errors() {
    let x = [0.0f32; 6];
    let mut g5 = [0.0f32; 5];
    let mut g6 = [0.0f32; 6];
    let len_tensor = |e: LossError| match e {
        LossError::Len(e) => e.tensor,
        other => panic!("{other}"),
    };
    assert_eq!(
        len_tensor(loss::softmax_cross_entropy(2, 3, &x[..5], &[0u32, 0], &mut g6).unwrap_err()),
        "logits"
    );
    assert_eq!(
        len_tensor(loss::softmax_cross_entropy(2, 3, &x, &[0u32], &mut g6).unwrap_err()),
        "labels"
    );
    assert_eq!(
        len_tensor(loss::softmax_cross_entropy(2, 3, &x, &[0u32, 0], &mut g5).unwrap_err()),
        "dlogits"
    );
    assert_eq!(loss::mse(2, 3, &x, &x[..5]).unwrap_err().tensor, "target");
    assert_eq!(loss::mse_backward(2, 3, &x, &x, &mut g5).unwrap_err().tensor, "dy");
    assert_eq!(loss::mse_with_grad(3, 3, &x, &x, &mut g6).unwrap_err().tensor, "y");
}

/// Class weights in `[0.1, 2)`, one per class.
fn class_weights(classes: usize, seed: u64) -> Vec<f32> {
    fill(classes, seed, 0.1, 2.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn smoothed_weighted_cross_entropy_matches_reference(
        batch in 1usize..9, classes in 1usize..14, seed in any::<u64>(), scale in 0.1f32..30.0,
        eps in 0.0f32..0.99, weighted in any::<bool>(),
    ) {
        let logits = fill(batch * classes, seed, -scale, scale);
        let labels = labels_for(batch, classes, seed + 1);
        let weight = weighted.then(|| class_weights(classes, seed + 2));
        let (want_loss, want_grad) = reference::softmax_cross_entropy_with(
            batch, classes, &logits, &labels, f64::from(eps), weight.as_deref());
        let mut grad = vec![f32::NAN; batch * classes];
        let options = loss::CrossEntropyOptions { label_smoothing: eps, weight: weight.as_deref() };
        let got = loss::softmax_cross_entropy_with(batch, classes, &logits, &labels, options, &mut grad).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 2e-5 * (1.0 + want_loss.abs()), "{} vs {}", got, want_loss);
        check_close("dlogits", &grad, &want_grad, 1e-6, 1e-4).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn bce_with_logits_matches_reference(
        batch in 1usize..9, features in 1usize..23, seed in any::<u64>(), scale in 0.1f32..12.0,
        period in 0usize..4,
    ) {
        let len = batch * features;
        let x = fill(len, seed, -scale, scale);
        // Soft targets in [0, 1], not only 0 and 1.
        let t = fill(len, seed + 1, 0.0, 1.0);
        // `period` 0 is no pos_weight; else a length that divides `features`.
        let divisors: Vec<usize> = (1..=features).filter(|d| features % d == 0).collect();
        let pw = (period > 0).then(|| fill(divisors[period % divisors.len()], seed + 2, 0.2, 4.0));
        let (want_loss, want_grad) = reference::bce_with_logits(features, &x, &t, pw.as_deref());
        let mut grad = vec![f32::NAN; len];
        let got = loss::bce_with_logits(batch, features, &x, &t, pw.as_deref(), &mut grad).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 1e-5 * (1.0 + want_loss.abs()), "{} vs {}", got, want_loss);
        check_close("dx", &grad, &want_grad, 1e-7, 1e-4).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn smooth_l1_and_huber_match_reference(
        batch in 1usize..9, features in 1usize..300, seed in any::<u64>(), width in 0.0f32..3.0,
    ) {
        let len = batch * features;
        let y = fill(len, seed, -4.0, 4.0);
        let t = fill(len, seed + 1, -4.0, 4.0);
        let mut grad = vec![f32::NAN; len];
        let (want_loss, want_grad) = reference::smooth_l1(&y, &t, f64::from(width));
        let got = loss::smooth_l1(batch, features, &y, &t, width, &mut grad).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 1e-5 * (1.0 + want_loss), "{} vs {}", got, want_loss);
        check_close("smooth_l1 dy", &grad, &want_grad, 1e-7, 1e-4).map_err(TestCaseError::fail)?;
        let delta = width.max(1e-3);
        let (want_loss, want_grad) = reference::huber(&y, &t, f64::from(delta));
        let got = loss::huber(batch, features, &y, &t, delta, &mut grad).unwrap();
        prop_assert!((f64::from(got) - want_loss).abs() <= 1e-5 * (1.0 + want_loss), "{} vs {}", got, want_loss);
        check_close("huber dy", &grad, &want_grad, 1e-7, 1e-4).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn smoothed_weighted_cross_entropy_gradient_matches_central_differences() {
    let (batch, classes) = (4, 5);
    let logits = fill(batch * classes, 3, -4.0, 4.0);
    let labels = labels_for(batch, classes, 9);
    let weight = class_weights(classes, 4);
    let mut grad = vec![0.0; batch * classes];
    let options = loss::CrossEntropyOptions { label_smoothing: 0.2, weight: Some(&weight) };
    loss::softmax_cross_entropy_with(batch, classes, &logits, &labels, options, &mut grad).unwrap();
    let f = |x: &[f64]| {
        let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        reference::softmax_cross_entropy_with(batch, classes, &x, &labels, 0.2, Some(&weight)).0
    };
    // The reference in f64 from f32 logits: a step well above f32 rounding.
    assert_grad("dlogits", &grad, &central_diff(f, &widen(&logits), 1e-3), 1e-4, 1e-2);
}

#[test]
fn cross_entropy_options_follow_pytorch_on_a_worked_example() {
    // Uniform logits over 4 classes: −log p = ln 4 for every class, so any
    // smoothing leaves the loss at ln 4; the weights' mean is per label.
    let logits = [0.0f32; 8];
    let labels = [1u32, 3];
    let mut grad = [0.0f32; 8];
    let weight = [1.0f32, 2.0, 3.0, 4.0];
    let options = loss::CrossEntropyOptions { label_smoothing: 0.3, weight: Some(&weight) };
    let got = loss::softmax_cross_entropy_with(2, 4, &logits, &labels, options, &mut grad).unwrap();
    // nll = ln 4 (weighted mean), smooth = Σ_c w_c ln 4 / 4 per sample / (2 + 4) · 2
    //     = (10/4 · ln 4 · 2) / 6 = ln 4 · 5/6.
    let want = 0.7 * 4f32.ln() + 0.3 * 4f32.ln() * 5.0 / 6.0;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // The gradient of every sample sums to 0 without weights only; check
    // one value by hand: sample 0, class 0: [p·(0.7·2 + 0.3/4·10) − 0.3/4·1] / 6.
    let want0 = (0.25 * (0.7 * 2.0 + 0.075 * 10.0) - 0.075) / 6.0;
    assert!((grad[0] - want0).abs() < 1e-7, "{} vs {want0}", grad[0]);
    // Without options it is the plain kernel, bit for bit.
    let mut plain = [0.0f32; 8];
    let a = loss::softmax_cross_entropy(2, 4, &logits, &labels, &mut plain).unwrap();
    let b = loss::softmax_cross_entropy_with(2, 4, &logits, &labels, Default::default(), &mut grad)
        .unwrap();
    assert_eq!((a, plain), (b, grad));
}

#[test]
fn bce_with_logits_is_stable_for_huge_logits() {
    let x = [1000.0f32, -1000.0, 1000.0, -1000.0];
    let t = [1.0f32, 0.0, 0.0, 1.0];
    let mut dx = [f32::NAN; 4];
    let got = loss::bce_with_logits(1, 4, &x, &t, None, &mut dx).unwrap();
    // Right and sure twice (0), wrong and sure twice (1000 each).
    assert_eq!(got, 500.0);
    assert_close("dx", &dx, &[0.0, 0.0, 0.25, -0.25], 1e-7, 0.0);
}

#[test]
fn smooth_l1_with_zero_beta_is_l1() {
    let y = [1.0f32, -2.0, 0.5, 3.0];
    let t = [0.0f32, 0.0, 0.5, 1.0];
    let mut dy = [f32::NAN; 4];
    assert_eq!(loss::smooth_l1(2, 2, &y, &t, 0.0, &mut dy).unwrap(), (1.0 + 2.0 + 0.0 + 2.0) / 4.0);
    assert_eq!(dy, [0.25, -0.25, 0.0, 0.25]);
}

#[test]
fn float_target_losses_name_their_wrong_buffer() {
    let x = [0.0f32; 6];
    let mut g5 = [0.0f32; 5];
    let mut g6 = [0.0f32; 6];
    let e = loss::bce_with_logits(2, 3, &x, &x[..5], None, &mut g6).unwrap_err();
    assert_eq!((e.op, e.tensor), ("bce_with_logits", "targets"));
    let e = loss::bce_with_logits(2, 3, &x, &x, Some(&[1.0, 2.0]), &mut g6).unwrap_err();
    assert_eq!(e.tensor, "pos_weight");
    assert_eq!(loss::smooth_l1(2, 3, &x, &x, 1.0, &mut g5).unwrap_err().tensor, "dy");
    assert_eq!(loss::huber(2, 3, &x[..5], &x, 1.0, &mut g6).unwrap_err().tensor, "y");
    let options = loss::CrossEntropyOptions { label_smoothing: 0.1, weight: Some(&[1.0, 2.0]) };
    let e = loss::softmax_cross_entropy_with(2, 3, &x, &[0u32, 1], options, &mut g6).unwrap_err();
    assert!(matches!(e, LossError::Len(ref l) if l.tensor == "weight"), "{e}");
}
