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
