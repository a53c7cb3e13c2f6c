//! The elementwise product and its backward against naive loops, over odd
//! sizes (split across threads or not), and wrong lengths as errors that
//! name the tensor.

mod common;

use common::fill;
use netc_runtime::{elementwise, nn, Error};
use proptest::prelude::*;

const SIZES: [usize; 8] = [0, 1, 15, 16, 17, 33, 1000, 100_003];

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

fn naive_mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    (0..a.len()).map(|i| a[i] * b[i]).collect()
}

/// `mul` and every combination of `mul_backward`'s outputs against the
/// naive products, bit for bit (one rounding each way).
fn check(a: &[f32], b: &[f32], dy: &[f32]) -> Result<(), String> {
    let len = a.len();
    let mut y = vec![f32::NAN; len];
    nn::mul(a, b, &mut y).map_err(|e| e.to_string())?;
    if !same_bits(&y, &naive_mul(a, b)) {
        return Err(format!("mul at length {len}"));
    }
    let (want_da, want_db) = (naive_mul(dy, b), naive_mul(dy, a));
    let (mut da, mut db) = (vec![f32::NAN; len], vec![f32::NAN; len]);
    nn::mul_backward(a, b, dy, Some(&mut da), Some(&mut db)).map_err(|e| e.to_string())?;
    if !same_bits(&da, &want_da) || !same_bits(&db, &want_db) {
        return Err(format!("mul_backward at length {len}"));
    }
    let mut only_a = vec![f32::NAN; len];
    nn::mul_backward(a, b, dy, Some(&mut only_a), None).map_err(|e| e.to_string())?;
    let mut only_b = vec![f32::NAN; len];
    nn::mul_backward(a, b, dy, None, Some(&mut only_b)).map_err(|e| e.to_string())?;
    if !same_bits(&only_a, &want_da) || !same_bits(&only_b, &want_db) {
        return Err(format!("mul_backward with one gradient at length {len}"));
    }
    nn::mul_backward(a, b, dy, None, None).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn mul_and_its_backward_at_odd_sizes() {
    for (t, &len) in SIZES.iter().enumerate() {
        let t = t as u64;
        let (a, b, dy) =
            (fill(len, t, -3.0, 3.0), fill(len, t + 50, -3.0, 3.0), fill(len, t + 99, -1.0, 1.0));
        check(&a, &b, &dy).unwrap_or_else(|e| panic!("{e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mul_matches_naive_loops(len in 0usize..200, seed in any::<u64>()) {
        let a = fill(len, seed, -10.0, 10.0);
        let b = fill(len, seed ^ 1, -10.0, 10.0);
        let dy = fill(len, seed ^ 2, -1.0, 1.0);
        check(&a, &b, &dy).map_err(TestCaseError::fail)?;
    }
}

/// NaN and infinities follow IEEE products, as PyTorch's `mul`.
#[test]
fn special_values_multiply_as_ieee() {
    let a = [f32::NAN, f32::INFINITY, 0.0, -0.0, 2.0];
    let b = [1.0, 0.0, -1.0, 3.0, f32::NEG_INFINITY];
    let mut y = [0.0; 5];
    nn::mul(&a, &b, &mut y).unwrap();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!(y[2].to_bits(), (-0.0f32).to_bits());
    assert_eq!(y[3].to_bits(), (-0.0f32).to_bits());
    assert_eq!(y[4], f32::NEG_INFINITY);
}

fn len_error(r: Result<(), Error>) -> (String, usize, usize) {
    match r {
        Err(Error::Len(e)) => (e.tensor.to_string(), e.expected, e.found),
        other => panic!("expected a length error, got {other:?}"),
    }
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let (a, b5) = (vec![1.0f32; 6], vec![1.0f32; 5]);
    let mut y = vec![0.0f32; 6];
    assert_eq!(len_error(nn::mul(&a, &b5, &mut y)), ("b".into(), 6, 5));
    assert_eq!(len_error(nn::mul(&a, &a, &mut y[..5])), ("y".into(), 6, 5));
    let msg = nn::mul(&a, &b5, &mut y).unwrap_err().to_string();
    assert!(msg.contains("mul: `b` has 5 elements, expected 6"), "{msg}");
    assert_eq!(y, [0.0; 6], "nothing written");

    let (mut da, mut db) = (vec![0.0f32; 6], vec![0.0f32; 5]);
    let r = nn::mul_backward(&a, &b5, &a, Some(&mut da), None);
    assert_eq!(len_error(r), ("b".into(), 6, 5));
    let r = nn::mul_backward(&a, &a, &b5, Some(&mut da), None);
    assert_eq!(len_error(r), ("dy".into(), 6, 5));
    let r = nn::mul_backward(&a, &a, &a, Some(&mut da[..5]), None);
    assert_eq!(len_error(r), ("da".into(), 6, 5));
    let r = nn::mul_backward(&a, &a, &a, Some(&mut da), Some(&mut db));
    assert_eq!(len_error(r), ("db".into(), 6, 5));
    assert_eq!(da, [0.0; 6], "checked before anything is written");

    // The kernel-level functions give the bare length error.
    let err = elementwise::mul(&a, &a, &mut [0.0; 2]).unwrap_err();
    assert_eq!((err.op, err.tensor), ("mul", "y"));
    let err = elementwise::mul_backward(&a, &a, &a, None, Some(&mut [0.0; 2])).unwrap_err();
    assert_eq!((err.op, err.tensor), ("mul_backward", "db"));
}

/// The per-channel product and its backward against the f64 reference:
/// `dscale` sums a plane, so it is compared with a tolerance.
fn check_channels(n: usize, c: usize, inner: usize, seed: u64) -> Result<(), String> {
    use netc_runtime::elementwise::ChannelScale;
    let cs = ChannelScale { n, c, inner };
    let x = fill(cs.x_len(), seed, -3.0, 3.0);
    let s = fill(cs.scale_len(), seed + 1, -2.0, 2.0);
    let dy = fill(cs.x_len(), seed + 2, -1.0, 1.0);
    let mut y = vec![f32::NAN; cs.x_len()];
    nn::mul_channels(&cs, &x, &s, &mut y).map_err(|e| e.to_string())?;
    let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let want = netc_runtime::reference::mul_channels(cs, &wide(&x), &wide(&s));
    // The f64 product of two f32 values is exact, so rounded it is the
    // f32 product.
    let round = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    if !same_bits(&y, &round(&want)) {
        return Err(format!("mul_channels {n}x{c}x{inner}"));
    }
    let (want_dx, want_ds) =
        netc_runtime::reference::mul_channels_backward(cs, &wide(&x), &wide(&s), &wide(&dy));
    let (mut dx, mut ds) = (vec![f32::NAN; cs.x_len()], vec![f32::NAN; cs.scale_len()]);
    nn::mul_channels_backward(&cs, &x, &s, &dy, Some(&mut dx), Some(&mut ds))
        .map_err(|e| e.to_string())?;
    if !same_bits(&dx, &round(&want_dx)) {
        return Err(format!("mul_channels_backward dx {n}x{c}x{inner}"));
    }
    for (i, (&g, &w)) in ds.iter().zip(&want_ds).enumerate() {
        if (f64::from(g) - w).abs() > 1e-5 * (inner as f64).max(1.0) * 3.0 {
            return Err(format!("dscale[{i}] = {g}, expected {w}"));
        }
    }
    let mut only = vec![f32::NAN; cs.scale_len()];
    nn::mul_channels_backward(&cs, &x, &s, &dy, None, Some(&mut only))
        .map_err(|e| e.to_string())?;
    if only != ds {
        return Err("dscale alone differs".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mul_channels_matches_the_reference(
        n in 0usize..4, c in 1usize..9, inner in 1usize..70, seed in any::<u64>(),
    ) {
        check_channels(n, c, inner, seed).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn big_channel_products_split_across_threads() {
    check_channels(3, 40, 33 * 33, 5).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn channel_products_check_lengths() {
    use netc_runtime::elementwise::ChannelScale;
    let cs = ChannelScale { n: 2, c: 3, inner: 4 };
    let (x, s) = (vec![1.0f32; 24], vec![1.0f32; 5]);
    let mut y = vec![0.0f32; 24];
    assert_eq!(len_error(nn::mul_channels(&cs, &x, &s, &mut y)), ("scale".into(), 6, 5));
    let mut ds = vec![0.0f32; 6];
    let r = nn::mul_channels_backward(&cs, &x, &s[..], &x, None, Some(&mut ds));
    assert_eq!(len_error(r), ("scale".into(), 6, 5));
    let r = nn::mul_channels_backward(&cs, &x, &ds.clone(), &x, Some(&mut y[..3]), None);
    assert_eq!(len_error(r), ("dx".into(), 24, 3));
}
