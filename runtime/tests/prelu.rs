//! PReLU against the naive reference over odd shapes, one slope and one
//! per channel, negative slopes included; its gradients against central
//! differences in f64; wrong lengths as errors.

mod common;

use common::{assert_grad, central_diff, check_close, fill, widen};
use netc_runtime::{nn, prelu, reference};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prelu_matches_reference(
        n in 1usize..4, c in 1usize..9, hw in 1usize..23, shared in any::<bool>(), seed in any::<u64>(),
    ) {
        // One slope is the kernel on one channel of the whole sample.
        let (c, hw) = if shared { (1, c * hw) } else { (c, hw) };
        let len = n * c * hw;
        let x = fill(len, seed, -3.0, 3.0);
        let w = fill(c, seed + 1, -1.0, 1.0);
        let dy = fill(len, seed + 2, -1.0, 1.0);
        let mut y = vec![f32::NAN; len];
        nn::prelu_forward(n, c, hw, &w, &x, &mut y).unwrap();
        check_close("y", &y, &reference::prelu(n, c, hw, &w, &x), 0.0, 0.0)
            .map_err(TestCaseError::fail)?;
        let (want_dx, want_dw) = reference::prelu_backward(n, c, hw, &w, &x, &dy);
        let (mut dx, mut dw) = (vec![f32::NAN; len], vec![f32::NAN; c]);
        nn::prelu_backward(n, c, hw, &x, &w, &dy, Some(&mut dx), &mut dw).unwrap();
        check_close("dx", &dx, &want_dx, 0.0, 0.0).map_err(TestCaseError::fail)?;
        check_close("dweight", &dw, &want_dw, 1e-5, 1e-5).map_err(TestCaseError::fail)?;
        // Without dx (a network input), the same slope gradient.
        let mut dw2 = vec![f32::NAN; c];
        nn::prelu_backward(n, c, hw, &x, &w, &dy, None, &mut dw2).unwrap();
        prop_assert_eq!(dw2, dw);
    }
}

#[test]
fn prelu_gradients_match_central_differences() {
    let (n, c, hw) = (2, 3, 7);
    let len = n * c * hw;
    let mut x = fill(len, 1, -2.0, 2.0);
    for v in x.iter_mut().filter(|v| v.abs() < 0.05) {
        *v = 0.5;
    }
    let w = vec![0.25f32, -0.5, 1.5];
    let dy = fill(len, 2, -1.0, 1.0);
    let (dy64, x64, w64) = (widen(&dy), widen(&x), widen(&w));
    let loss = |x: &[f64], w: &[f64]| -> f64 {
        (0..len).map(|i| dy64[i] * if x[i] > 0.0 { x[i] } else { w[(i / hw) % c] * x[i] }).sum()
    };
    let (mut dx, mut dw) = (vec![0.0; len], vec![0.0; c]);
    prelu::prelu_backward(n, c, hw, &x, &w, &dy, Some(&mut dx), &mut dw).unwrap();
    assert_grad("dx", &dx, &central_diff(|x| loss(x, &w64), &x64, 1e-6), 1e-5, 1e-4);
    assert_grad("dweight", &dw, &central_diff(|w| loss(&x64, w), &w64, 1e-6), 1e-5, 1e-4);
}

#[test]
fn prelu_follows_pytorch_at_zero_and_nan() {
    let x = [0.0f32, -0.0, f32::NAN, -2.0, 2.0];
    let mut y = [9.0f32; 5];
    prelu::prelu_forward(1, 1, 5, &[0.25], &x, &mut y).unwrap();
    assert_eq!(&y[..2], &[0.0, 0.0]);
    assert!(y[2].is_nan());
    assert_eq!(&y[3..], &[-0.5, 2.0]);
    // At 0 the negative side's slope, and 0 adds nothing to the slope's gradient.
    let (mut dx, mut dw) = ([9.0f32; 2], [9.0f32]);
    prelu::prelu_backward(1, 1, 2, &[0.0, -2.0], &[0.25], &[1.0, 1.0], Some(&mut dx), &mut dw)
        .unwrap();
    assert_eq!(dx, [0.25, 0.25]);
    assert_eq!(dw, [-2.0]);
}

#[test]
fn wrong_lengths_are_errors() {
    let x = vec![0.0f32; 12];
    let mut y = vec![0.0f32; 12];
    let err = prelu::prelu_forward(2, 3, 2, &[0.25; 2], &x, &mut y).unwrap_err();
    assert_eq!((err.tensor, err.expected, err.found), ("weight", 3, 2));
    let err = prelu::prelu_forward(2, 3, 2, &[0.25; 3], &x, &mut y[..11]).unwrap_err();
    assert_eq!(err.tensor, "y");
    let mut dw = [0.0f32; 3];
    let err = prelu::prelu_backward(2, 3, 2, &x, &[0.25; 3], &x, Some(&mut y[..11]), &mut dw)
        .unwrap_err();
    assert_eq!(err.tensor, "dx");
    let err = prelu::prelu_backward(2, 3, 2, &x, &[0.25; 3], &x[..11], None, &mut dw).unwrap_err();
    assert_eq!(err.tensor, "dy");
    let err = prelu::prelu_backward(2, 3, 2, &x, &[0.25; 3], &x, None, &mut dw[..2]).unwrap_err();
    assert_eq!(err.tensor, "dweight");
    assert!(prelu::prelu_forward(usize::MAX, 3, 2, &[0.25; 3], &x, &mut y).is_err());
}
