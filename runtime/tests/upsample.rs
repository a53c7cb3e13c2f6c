//! The upsampling kernels against the f64 references over random shapes
//! (odd sizes, H != W, different factors per axis, both modes, batch 0),
//! their gradients against central differences of the reference forward,
//! PyTorch's values and corner cases, and length errors.

use netc_runtime::reference;
use netc_runtime::upsample::{
    nearest_source, upsample_bilinear2d_backward, upsample_bilinear2d_forward,
    upsample_nearest2d_backward, upsample_nearest2d_forward, Upsample2d,
};
use proptest::prelude::*;

mod common;
use common::{central_diff_vjp, fill, widen as wide};

fn close(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if (f64::from(g) - w).abs() > tol * (1.0 + w.abs()) {
            return Err(format!("{what}[{i}] = {g}, expected {w}"));
        }
    }
    Ok(())
}

type Kernel = fn(Upsample2d, &[f32], &mut [f32]) -> Result<(), netc_runtime::LenError>;

fn kernels(bilinear: bool) -> (Kernel, Kernel) {
    if bilinear {
        (upsample_bilinear2d_forward, upsample_bilinear2d_backward)
    } else {
        (upsample_nearest2d_forward, upsample_nearest2d_backward)
    }
}

fn check(p: Upsample2d, bilinear: bool, seed: u64) -> Result<(), String> {
    let (forward, backward) = kernels(bilinear);
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let mut y = vec![f32::NAN; p.y_len()];
    forward(p, &x, &mut y).map_err(|e| e.to_string())?;
    close("y", &y, &reference::upsample2d(p, bilinear, &wide(&x)), 1e-6)?;
    let mut dx = vec![f32::NAN; p.x_len()];
    backward(p, &dy, &mut dx).map_err(|e| e.to_string())?;
    close("dx", &dx, &reference::upsample2d_backward(p, bilinear, &wide(&dy)), 1e-5)?;
    let fd =
        central_diff_vjp(&wide(&x), &wide(&dy), 1e-6, |x| reference::upsample2d(p, bilinear, x));
    close("dx against central differences", &dx, &fd, 1e-5)
}

fn shape() -> impl Strategy<Value = Upsample2d> {
    (0usize..=2, 1usize..=3, 1usize..=9, 1usize..=9, 1usize..=5, 1usize..=5)
        .prop_map(|(n, c, h, w, sh, sw)| Upsample2d { n, c, h, w, sh, sw })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn upsampling_matches_reference(p in shape(), bilinear: bool, seed in any::<u64>()) {
        check(p, bilinear, seed)
            .map_err(|e| TestCaseError::fail(format!("{e} in {p:?}, bilinear {bilinear}")))?;
    }
}

/// Model-shaped upsamplings: a U-Net decoder's 2x, an FPN's 4x.
#[test]
fn model_shapes_match_reference() {
    for (t, p) in [
        Upsample2d { n: 1, c: 4, h: 28, w: 28, sh: 2, sw: 2 },
        Upsample2d { n: 2, c: 2, h: 13, w: 17, sh: 4, sw: 4 },
    ]
    .into_iter()
    .enumerate()
    {
        for bilinear in [false, true] {
            check(p, bilinear, t as u64).unwrap_or_else(|e| panic!("{e} in {p:?}, {bilinear}"));
        }
    }
}

/// `F.interpolate(x, scale_factor=(2, 3), mode='bilinear')` of a 2x3 input,
/// printed by PyTorch 2.15: the edges clamp (the source coordinate of
/// output 0 is negative) and the last input repeats on the right.
#[test]
fn bilinear_values_are_pytorch_s() {
    let p = Upsample2d { n: 1, c: 1, h: 2, w: 3, sh: 2, sw: 3 };
    let mut y = [0.0; 36];
    upsample_bilinear2d_forward(p, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0], &mut y).unwrap();
    #[rustfmt::skip]
    let torch = [
        1.0, 1.0, 1.3333333730697632, 1.6666667461395264, 2.0, 2.6666667461395264, 3.3333334922790527, 4.0, 4.0,
        2.75, 2.75, 3.6666667461395264, 4.583333492279053, 5.5, 7.333333492279053, 9.166666984558105, 11.0, 11.0,
        6.25, 6.25, 8.333333969116211, 10.416666030883789, 12.5, 16.666667938232422, 20.83333396911621, 25.0, 25.0,
        8.0, 8.0, 10.666666030883789, 13.333333969116211, 16.0, 21.333332061767578, 26.66666603088379, 32.0, 32.0,
    ];
    for (i, (&g, &t)) in y.iter().zip(&torch).enumerate() {
        assert!((f64::from(g) - t).abs() <= 1e-6 * t, "y[{i}] = {g}, PyTorch {t}");
    }
    let p = Upsample2d { n: 1, c: 1, h: 1, w: 4, sh: 1, sw: 2 };
    let mut y = [0.0; 8];
    upsample_bilinear2d_forward(p, &[1.0, 2.0, 3.0, 4.0], &mut y).unwrap();
    assert_eq!(y, [1.0, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4.0]);
}

/// Nearest reads input `⌊o · scale⌋` with the scale `1/factor` rounded to
/// f32, as ATen does: the same as `o / factor` for the factors networks
/// use, but not for all (PyTorch's output 41 of a 41x upsampling reads
/// input 0).
#[test]
fn nearest_sources_follow_aten_s_f32_rule() {
    for factor in 1..=40 {
        for o in 0..4096 {
            assert_eq!(nearest_source(o, factor, 4096), o / factor, "factor {factor}, output {o}");
        }
    }
    assert_eq!(nearest_source(41, 41, 3), 0);
    assert_eq!(nearest_source(42, 41, 3), 1);
    let p = Upsample2d { n: 1, c: 1, h: 1, w: 2, sh: 2, sw: 3 };
    let mut y = [0.0; 12];
    upsample_nearest2d_forward(p, &[1.0, 2.0], &mut y).unwrap();
    assert_eq!(y, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let mut dx = [9.0; 2];
    upsample_nearest2d_backward(p, &[1.0; 12], &mut dx).unwrap();
    assert_eq!(dx, [6.0, 6.0]);
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let p = Upsample2d { n: 2, c: 1, h: 2, w: 3, sh: 2, sw: 2 };
    let tensor = |r: Result<(), netc_runtime::LenError>| r.unwrap_err().tensor;
    for bilinear in [false, true] {
        let (forward, backward) = kernels(bilinear);
        assert_eq!(tensor(forward(p, &[0.0; 11], &mut [0.0; 48])), "x");
        assert_eq!(tensor(forward(p, &[0.0; 12], &mut [0.0; 47])), "y");
        assert_eq!(tensor(backward(p, &[0.0; 47], &mut [0.0; 12])), "dy");
        assert_eq!(tensor(backward(p, &[0.0; 48], &mut [0.0; 13])), "dx");
        forward(Upsample2d { n: 0, ..p }, &[], &mut []).unwrap();
        backward(Upsample2d { n: 0, ..p }, &[], &mut []).unwrap();
    }
}
