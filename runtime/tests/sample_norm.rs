//! Layer norm and group norm against the f64 references over random odd
//! shapes (batch 1, one value per row, rows big enough to split across
//! threads), with and without affine parameters; the saved statistics;
//! the references' gradients against central differences; and length
//! errors.

use netc_runtime::reference;
use netc_runtime::sample_norm::{
    group_norm_backward, group_norm_forward, layer_norm_backward, layer_norm_forward, GroupNorm,
    LayerNorm,
};
use netc_runtime::{nn, Error};
use proptest::prelude::*;

mod common;
use common::{central_diff_vjp, fill, widen};

/// `|got - want| <= tol·scale`, `scale` the largest `|want|` (at least 1):
/// normalised outputs and their gradients are differences of terms of
/// that size.
fn close(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        // Written so that a NaN fails.
        let ok = (f64::from(g) - w).abs() <= tol * scale;
        if !ok {
            return Err(format!("{what}[{i}] = {g}, expected {w}"));
        }
    }
    Ok(())
}

/// The tolerance of normalised outputs: each is `x·a + b` with `a` a
/// row's rstd (times the weight), so f32 rounding of `x` grows with the
/// rstd, up to `1/sqrt(eps)` (316 at 1e-5) for a row of one value, whose
/// exact output is the bias alone.
fn y_tolerance(rstd: &[f64]) -> f64 {
    1e-5 * rstd.iter().fold(1.0f64, |m, &r| m.max(r))
}

/// The saved `(mean, rstd)` pairs against the reference's.
fn check_saved(saved: &[f32], mean: &[f64], rstd: &[f64]) -> Result<(), String> {
    let means: Vec<f32> = saved.iter().step_by(2).copied().collect();
    let rstds: Vec<f32> = saved.iter().skip(1).step_by(2).copied().collect();
    close("saved mean", &means, mean, 1e-5)?;
    let rel: Vec<f32> = rstds.iter().zip(rstd).map(|(&g, &w)| (f64::from(g) / w) as f32).collect();
    close("saved rstd", &rel, &vec![1.0; rstd.len()], 1e-5)
}

/// Forward (training and inference calls) and backward of one layer norm
/// against the reference, with `affine` or without.
fn check_layer_norm(ln: LayerNorm, seed: u64, affine: bool) -> Result<(), String> {
    let x = fill(ln.x_len(), seed, -2.0, 3.0);
    let dy = fill(ln.x_len(), seed + 1, -1.0, 1.0);
    let (w, b) = (fill(ln.len, seed + 2, 0.5, 1.5), fill(ln.len, seed + 3, -0.5, 0.5));
    let (w64, b64) = (widen(&w), widen(&b));
    let aff = affine.then_some((&w[..], &b[..]));
    let (want_y, mean, rstd) =
        reference::layer_norm(ln, &widen(&x), affine.then_some((&w64[..], &b64[..])));
    let mut y = vec![f32::NAN; ln.x_len()];
    let mut saved = vec![f32::NAN; ln.saved_len()];
    layer_norm_forward(ln, &x, aff, &mut y, Some(&mut saved)).map_err(|e| e.to_string())?;
    close("layer norm y", &y, &want_y, y_tolerance(&rstd))?;
    check_saved(&saved, &mean, &rstd)?;
    let mut y_infer = vec![f32::NAN; ln.x_len()];
    layer_norm_forward(ln, &x, aff, &mut y_infer, None).map_err(|e| e.to_string())?;
    if y_infer != y {
        return Err("inference differs from training".into());
    }
    let (want_dx, want_dw, want_db) =
        reference::layer_norm_backward(ln, &widen(&x), affine.then_some(&w64[..]), &widen(&dy));
    let mut dx = vec![f32::NAN; ln.x_len()];
    let (mut dw, mut db) = (vec![f32::NAN; ln.len], vec![f32::NAN; ln.len]);
    let grads = affine.then_some((&mut dw[..], &mut db[..]));
    let weight = affine.then_some(&w[..]);
    layer_norm_backward(ln, &x, weight, &saved, &dy, Some(&mut dx), grads)
        .map_err(|e| e.to_string())?;
    close("layer norm dx", &dx, &want_dx, 1e-4)?;
    if affine {
        close("layer norm dweight", &dw, &want_dw, 1e-4)?;
        close("layer norm dbias", &db, &want_db, 1e-4)?;
    }
    Ok(())
}

/// As [`check_layer_norm`], for a group norm.
fn check_group_norm(gn: GroupNorm, seed: u64, affine: bool) -> Result<(), String> {
    let x = fill(gn.x_len(), seed, -2.0, 3.0);
    let dy = fill(gn.x_len(), seed + 1, -1.0, 1.0);
    let (w, b) = (fill(gn.c, seed + 2, 0.5, 1.5), fill(gn.c, seed + 3, -0.5, 0.5));
    let (w64, b64) = (widen(&w), widen(&b));
    let aff = affine.then_some((&w[..], &b[..]));
    let (want_y, mean, rstd) =
        reference::group_norm(gn, &widen(&x), affine.then_some((&w64[..], &b64[..])));
    let mut y = vec![f32::NAN; gn.x_len()];
    let mut saved = vec![f32::NAN; gn.saved_len()];
    group_norm_forward(gn, &x, aff, &mut y, Some(&mut saved)).map_err(|e| e.to_string())?;
    close("group norm y", &y, &want_y, y_tolerance(&rstd))?;
    check_saved(&saved, &mean, &rstd)?;
    let mut y_infer = vec![f32::NAN; gn.x_len()];
    group_norm_forward(gn, &x, aff, &mut y_infer, None).map_err(|e| e.to_string())?;
    if y_infer != y {
        return Err("inference differs from training".into());
    }
    let (want_dx, want_dw, want_db) =
        reference::group_norm_backward(gn, &widen(&x), affine.then_some(&w64[..]), &widen(&dy));
    let mut dx = vec![f32::NAN; gn.x_len()];
    let (mut dw, mut db) = (vec![f32::NAN; gn.c], vec![f32::NAN; gn.c]);
    let grads = affine.then_some((&mut dw[..], &mut db[..]));
    let weight = affine.then_some(&w[..]);
    group_norm_backward(gn, &x, weight, &saved, &dy, Some(&mut dx), grads)
        .map_err(|e| e.to_string())?;
    close("group norm dx", &dx, &want_dx, 1e-4)?;
    if affine {
        close("group norm dweight", &dw, &want_dw, 1e-4)?;
        close("group norm dbias", &db, &want_db, 1e-4)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn layer_norm_matches_the_reference(
        n in 1usize..5, rows in 1usize..6, len in 1usize..70,
        eps in prop_oneof![Just(1e-5f32), Just(1e-2)], affine in any::<bool>(), seed in any::<u64>(),
    ) {
        check_layer_norm(LayerNorm { n, rows, len, eps }, seed, affine).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn group_norm_matches_the_reference(
        n in 1usize..5, groups in 1usize..5, per_group in 1usize..5, inner in 1usize..40,
        eps in prop_oneof![Just(1e-5f32), Just(1e-2)], affine in any::<bool>(), seed in any::<u64>(),
    ) {
        let gn = GroupNorm { n, c: groups * per_group, inner, groups, eps };
        check_group_norm(gn, seed, affine).map_err(TestCaseError::fail)?;
    }
}

/// Tensors big enough for the kernels to split rows and parameter
/// columns across threads.
#[test]
fn big_tensors_split_across_threads_match_the_reference() {
    check_layer_norm(LayerNorm { n: 3, rows: 1, len: 3 * 5000 + 7, eps: 1e-5 }, 1, true).unwrap();
    check_layer_norm(LayerNorm { n: 4, rows: 700, len: 33, eps: 1e-5 }, 2, true).unwrap();
    check_group_norm(GroupNorm { n: 3, c: 32, inner: 17 * 19, groups: 8, eps: 1e-5 }, 3, true)
        .unwrap();
    check_group_norm(GroupNorm { n: 2, c: 6, inner: 7000, groups: 3, eps: 1e-5 }, 4, false)
        .unwrap();
}

/// The references' gradients are the derivatives of their forwards.
#[test]
fn reference_gradients_match_central_differences() {
    let ln = LayerNorm { n: 2, rows: 3, len: 5, eps: 1e-5 };
    let x = widen(&fill(ln.x_len(), 7, -2.0, 2.0));
    let dy = widen(&fill(ln.x_len(), 8, -1.0, 1.0));
    let (w, b) = (widen(&fill(5, 9, 0.5, 1.5)), widen(&fill(5, 10, -1.0, 1.0)));
    let (dx, dw, db) = reference::layer_norm_backward(ln, &x, Some(&w), &dy);
    let num_dx =
        central_diff_vjp(&x, &dy, 1e-6, |x| reference::layer_norm(ln, x, Some((&w, &b))).0);
    let num_dw =
        central_diff_vjp(&w, &dy, 1e-6, |w| reference::layer_norm(ln, &x, Some((w, &b))).0);
    let num_db =
        central_diff_vjp(&b, &dy, 1e-6, |b| reference::layer_norm(ln, &x, Some((&w, b))).0);
    for (got, want) in [(&dx, &num_dx), (&dw, &num_dw), (&db, &num_db)] {
        for (g, n) in got.iter().zip(want.iter()) {
            assert!((g - n).abs() < 1e-6, "layer norm: {g} vs {n}");
        }
    }

    let gn = GroupNorm { n: 2, c: 6, inner: 4, groups: 3, eps: 1e-5 };
    let x = widen(&fill(gn.x_len(), 11, -2.0, 2.0));
    let dy = widen(&fill(gn.x_len(), 12, -1.0, 1.0));
    let (w, b) = (widen(&fill(6, 13, 0.5, 1.5)), widen(&fill(6, 14, -1.0, 1.0)));
    let (dx, dw, db) = reference::group_norm_backward(gn, &x, Some(&w), &dy);
    let num_dx =
        central_diff_vjp(&x, &dy, 1e-6, |x| reference::group_norm(gn, x, Some((&w, &b))).0);
    let num_dw =
        central_diff_vjp(&w, &dy, 1e-6, |w| reference::group_norm(gn, &x, Some((w, &b))).0);
    let num_db =
        central_diff_vjp(&b, &dy, 1e-6, |b| reference::group_norm(gn, &x, Some((&w, b))).0);
    for (got, want) in [(&dx, &num_dx), (&dw, &num_dw), (&db, &num_db)] {
        for (g, n) in got.iter().zip(want.iter()) {
            assert!((g - n).abs() < 1e-6, "group norm: {g} vs {n}");
        }
    }
}

/// A constant row has variance 0: `x̂ = 0`, so `y` is the bias, as in
/// PyTorch, and nothing is NaN.
#[test]
fn constant_rows_give_the_bias() {
    let ln = LayerNorm { n: 2, rows: 1, len: 9, eps: 1e-5 };
    let x = vec![3.25f32; 18];
    let (w, b) = (vec![2.0f32; 9], fill(9, 1, -1.0, 1.0));
    let mut y = vec![0.0f32; 18];
    let mut saved = vec![0.0f32; 4];
    layer_norm_forward(ln, &x, Some((&w, &b)), &mut y, Some(&mut saved)).unwrap();
    assert_eq!(&y[..9], &b[..]);
    assert_eq!(saved[0], 3.25);
    assert!((saved[1] - 1.0 / 1e-5f32.sqrt()).abs() < 1.0);
}

fn len_error(r: Result<(), Error>) -> (String, usize, usize) {
    match r {
        Err(Error::Len(e)) => (e.tensor.to_string(), e.expected, e.found),
        other => panic!("expected a length error, got {other:?}"),
    }
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let ln = nn_layer(2, 3, 4);
    let x = vec![0.5f32; 24];
    let w = vec![1.0f32; 4];
    let mut y = vec![0.0f32; 24];
    let mut saved = vec![0.0f32; 12];
    let r = nn::layer_norm_forward(&ln, &x[..23], Some(&w), Some(&w), None, &mut y);
    assert_eq!(len_error(r), ("x".into(), 24, 23));
    let r = nn::layer_norm_forward(&ln, &x, Some(&w[..3]), Some(&w), None, &mut y);
    assert_eq!(len_error(r), ("weight".into(), 4, 3));
    let r = nn::layer_norm_forward(&ln, &x, Some(&w), None, None, &mut y);
    assert_eq!(len_error(r).0, "bias");
    let r = nn::layer_norm_forward(&ln, &x, None, None, Some(&mut saved[..11]), &mut y);
    assert_eq!(len_error(r), ("saved".into(), 12, 11));
    let mut dx = [0.0f32; 24];
    let r = nn::layer_norm_backward(&ln, &x, None, &saved, &x, Some(&mut dx[..20]), None, None);
    assert_eq!(len_error(r), ("dx".into(), 24, 20));

    let gn = netc_runtime::pass::batch(netc_runtime::pass::group_norm(6, 4, 4, 1e-5), 1);
    let (x, w) = (vec![0.5f32; 24], vec![1.0f32; 6]);
    let r = nn::group_norm_forward(&gn, &x, Some(&w), Some(&w), None, &mut y);
    assert_eq!(len_error(r).0, "channels", "6 channels do not split into 4 groups");
    let gn = GroupNorm { groups: 3, ..gn };
    let mut saved = vec![0.0f32; 6];
    nn::group_norm_forward(&gn, &x, Some(&w), Some(&w), Some(&mut saved), &mut y).unwrap();
    let (mut dw, mut db) = (vec![0.0f32; 6], vec![0.0f32; 5]);
    let r =
        nn::group_norm_backward(&gn, &x, Some(&w), &saved, &x, None, Some(&mut dw), Some(&mut db));
    assert_eq!(len_error(r), ("dbias".into(), 6, 5));
}

fn nn_layer(n: usize, rows: usize, len: usize) -> LayerNorm {
    netc_runtime::pass::batch(netc_runtime::pass::layer_norm(rows, len, 1e-5), n)
}
