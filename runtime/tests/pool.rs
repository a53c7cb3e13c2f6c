//! The pooling kernels against the f64 references over random geometries
//! (odd sizes, H != W, stride != kernel, every legal padding, floor and ceil
//! mode, padding counted in the divisor or not, batch 0 and 1), their
//! gradients against central differences of the reference forward,
//! PyTorch's corner cases (output size, ties, NaN, `-inf`, overlapping
//! windows, `count_include_pad`, ceil-mode windows past the padding) and
//! length errors. Adaptive average pooling likewise.

use netc_runtime::gemm::Activation;
use netc_runtime::isa::Isa;
use netc_runtime::pool::{
    adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
    avg_pool2d_forward, global_avg_pool_backward, global_avg_pool_forward, max_pool2d_backward,
    max_pool2d_backward_on, max_pool2d_backward_through_on, max_pool2d_forward,
    max_pool2d_forward_infer_on, max_pool2d_forward_on, AdaptivePool2d, Pool2d,
};
use netc_runtime::reference;
use proptest::prelude::*;

mod common;
use common::{central_diff_vjp, fill, widen as wide};

/// The finite-difference step. The pooling forwards are piecewise linear, so
/// it only has to be smaller than the gap between distinct inputs.
const H: f64 = 1e-7;

/// `|got - want| <= tol·(1 + |want|)` everywhere; NaN matches only NaN and
/// an infinity only itself.
fn close(what: &str, got: &[f32], want: &[f64], tol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g64 = f64::from(g);
        let ok = (g.is_nan() && w.is_nan()) || g64 == w || (g64 - w).abs() <= tol * (1.0 + w.abs());
        if !ok {
            return Err(format!("{what}[{i}] = {g}, expected {w}"));
        }
    }
    Ok(())
}

/// A legal geometry: padding at most half the kernel, the padded input at
/// least one window (in ceil mode, at least one window less the stride
/// plus one, the smallest input that has an output).
fn geometry(max_nc: usize, max_hw: usize) -> impl Strategy<Value = Pool2d> {
    (
        (0..=max_nc, 1..=max_nc, 1..=max_hw, 1..=max_hw),
        (1usize..=5, 1usize..=5, 1usize..=4, 1usize..=4),
        (0usize..3, 0usize..3),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |((n, c, h, w), (kh, kw, sh, sw), (ph, pw), (ceil_mode, count_include_pad))| {
                let (ph, pw) = (ph % (kh / 2 + 1), pw % (kw / 2 + 1));
                let (rh, rw) = if ceil_mode { (sh - 1, sw - 1) } else { (0, 0) };
                let h = h.max(kh.saturating_sub(2 * ph + rh));
                let w = w.max(kw.saturating_sub(2 * pw + rw));
                Pool2d { n, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad }
            },
        )
}

/// With `ties`, inputs are multiples of 1/4 with some `-inf` and NaN, so
/// windows have tied maxima and ATen's tie and NaN rules are exercised.
fn check_max(p: Pool2d, seed: u64, ties: bool) -> Result<(), String> {
    assert!(p.out_h() > 0 && p.out_w() > 0, "{p:?} is legal");
    let mut x = fill(p.x_len(), seed, -1.0, 1.0);
    if ties {
        for v in &mut x {
            *v = match *v {
                v if v < -0.9 => f32::NEG_INFINITY,
                v if v > 0.95 => f32::NAN,
                v => (v * 4.0).round() / 4.0,
            };
        }
    }
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let (want_y, want_argmax) = reference::max_pool2d(p, &wide(&x));
    let want_dx = reference::max_pool2d_backward(p, &wide(&dy), &want_argmax);
    for &isa in Isa::supported() {
        let mut y = vec![f32::NAN; p.y_len()];
        let mut argmax = vec![u32::MAX; p.y_len()];
        max_pool2d_forward_on(isa, p, &x, &mut y, &mut argmax).map_err(|e| e.to_string())?;
        close(&format!("{isa:?} y"), &y, &want_y, 0.0)?;
        if argmax != want_argmax {
            return Err(format!("{isa:?} argmax {argmax:?}, expected {want_argmax:?}"));
        }
        let mut y_infer = vec![f32::NAN; p.y_len()];
        max_pool2d_forward_infer_on(isa, p, &x, &mut y_infer).map_err(|e| e.to_string())?;
        close(&format!("{isa:?} inference y"), &y_infer, &want_y, 0.0)?;
        let mut dx = vec![f32::NAN; p.x_len()];
        max_pool2d_backward_on(isa, p, &dy, &argmax, &mut dx).map_err(|e| e.to_string())?;
        close(&format!("{isa:?} dx"), &dx, &want_dx, 1e-6)?;
    }
    Ok(())
}

fn check_avg(p: Pool2d, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let mut y = vec![f32::NAN; p.y_len()];
    avg_pool2d_forward(p, &x, &mut y).map_err(|e| e.to_string())?;
    close("y", &y, &reference::avg_pool2d(p, &wide(&x)), 1e-6)?;
    let mut dx = vec![f32::NAN; p.x_len()];
    avg_pool2d_backward(p, &dy, &mut dx).map_err(|e| e.to_string())?;
    close("dx", &dx, &reference::avg_pool2d_backward(p, &wide(&dy)), 1e-6)
}

fn check_max_gradient(p: Pool2d, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let mut y = vec![0.0; p.y_len()];
    let mut argmax = vec![0; p.y_len()];
    max_pool2d_forward(p, &x, &mut y, &mut argmax).map_err(|e| e.to_string())?;
    let mut dx = vec![0.0; p.x_len()];
    max_pool2d_backward(p, &dy, &argmax, &mut dx).map_err(|e| e.to_string())?;
    let fd = central_diff_vjp(&wide(&x), &wide(&dy), H, |x| reference::max_pool2d(p, x).0);
    close("dx against central differences", &dx, &fd, 1e-5)
}

fn check_avg_gradient(p: Pool2d, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let mut dx = vec![0.0; p.x_len()];
    avg_pool2d_backward(p, &dy, &mut dx).map_err(|e| e.to_string())?;
    let fd = central_diff_vjp(&wide(&x), &wide(&dy), H, |x| reference::avg_pool2d(p, x));
    close("dx against central differences", &dx, &fd, 1e-5)
}

fn check_global(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Result<(), String> {
    let x = fill(n * c * h * w, seed, -1.0, 1.0);
    let dy = fill(n * c, seed + 1, -1.0, 1.0);
    let mut y = vec![f32::NAN; n * c];
    global_avg_pool_forward(n, c, h, w, &x, &mut y).map_err(|e| e.to_string())?;
    close("y", &y, &reference::global_avg_pool(n, c, h, w, &wide(&x)), 1e-6)?;
    let mut dx = vec![f32::NAN; x.len()];
    global_avg_pool_backward(n, c, h, w, &dy, &mut dx).map_err(|e| e.to_string())?;
    close("dx", &dx, &reference::global_avg_pool_backward(n, c, h, w, &wide(&dy)), 1e-6)?;
    let fd =
        central_diff_vjp(&wide(&x), &wide(&dy), H, |x| reference::global_avg_pool(n, c, h, w, x));
    close("dx against central differences", &dx, &fd, 1e-5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn max_pool_matches_reference(
        p in geometry(3, 13),
        seed in any::<u64>(),
        ties in any::<bool>(),
    ) {
        check_max(p, seed, ties).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }

    #[test]
    fn avg_pool_matches_reference(p in geometry(3, 13), seed in any::<u64>()) {
        check_avg(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }

    #[test]
    fn max_pool_gradient_matches_central_differences(p in geometry(2, 7), seed in any::<u64>()) {
        check_max_gradient(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }

    #[test]
    fn avg_pool_gradient_matches_central_differences(p in geometry(2, 7), seed in any::<u64>()) {
        check_avg_gradient(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }

    #[test]
    fn global_avg_pool_matches_reference_and_central_differences(
        (n, c, h, w) in (0usize..4, 1usize..5, 1usize..9, 1usize..9),
        seed in any::<u64>(),
    ) {
        check_global(n, c, h, w, seed)
            .map_err(|e| TestCaseError::fail(format!("{e} in {:?}", (n, c, h, w))))?;
    }
}

/// The pool backward with an activation's backward fused in equals the two
/// passes one after the other: exactly for ReLU (each cell is scaled by 0 or
/// 1), within rounding for the others (overlapping windows sum before or
/// after the scaling).
fn check_through(p: Pool2d, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let acts = [
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::HardTanh(-0.5, 0.5),
        Activation::HardSigmoid,
        Activation::Elu(0.7),
    ];
    for act in acts {
        let mut y = vec![0.0; p.x_len()];
        netc_runtime::act::forward(act, &x, &mut y).map_err(|e| e.to_string())?;
        let (mut pooled, mut argmax) = (vec![0.0; p.y_len()], vec![0u32; p.y_len()]);
        max_pool2d_forward(p, &y, &mut pooled, &mut argmax).map_err(|e| e.to_string())?;
        let mut want = vec![f32::NAN; p.x_len()];
        max_pool2d_backward(p, &dy, &argmax, &mut want).map_err(|e| e.to_string())?;
        netc_runtime::act::backward_in_place(act, &y, &mut want).map_err(|e| e.to_string())?;
        for &isa in Isa::supported() {
            let mut got = vec![f32::NAN; p.x_len()];
            max_pool2d_backward_through_on(isa, p, &dy, &argmax, act, &pooled, &mut got)
                .map_err(|e| e.to_string())?;
            let exact = act == Activation::Relu;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let ok = if exact { g == w } else { (g - w).abs() <= 1e-6 * (1.0 + w.abs()) };
                if !ok {
                    return Err(format!("{isa:?} {act:?}: dx[{i}] = {g}, two passes give {w}"));
                }
            }
        }
    }
    Ok(())
}

/// 2x2 windows at stride 2 without padding, which have kernels of their
/// own: odd sizes, rows of several 16-window blocks and a short last one,
/// and in ceil mode a clipped last window where a size is odd (which the
/// general path takes).
fn geometry_2x2() -> impl Strategy<Value = Pool2d> {
    (0usize..=2, 1usize..=3, 2usize..=9, 2usize..=75, any::<bool>()).prop_map(
        |(n, c, h, w, ceil_mode)| Pool2d { ceil_mode, ..Pool2d::square(n, c, h, w, 2, 2, 0) },
    )
}

proptest! {
    #[test]
    fn max_pool_backward_through_an_activation_equals_two_passes(
        p in geometry(3, 13),
        seed in any::<u64>(),
    ) {
        check_through(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }

    #[test]
    fn max_pool_2x2_matches_reference(p in geometry_2x2(), seed in any::<u64>(), ties: bool) {
        check_max(p, seed, ties).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
        check_through(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }
}

/// Model-shaped pools, larger than the random ones.
#[test]
fn model_shapes_match_reference() {
    let floor = Pool2d::square(1, 1, 1, 1, 1, 1, 0);
    let shapes = [
        Pool2d::square(2, 3, 28, 28, 2, 2, 0),   // LeNet
        Pool2d::square(1, 4, 55, 55, 3, 2, 0),   // AlexNet: overlapping windows
        Pool2d::square(2, 3, 112, 112, 3, 2, 1), // ResNet stem
        Pool2d { n: 1, c: 2, h: 17, w: 31, kh: 5, kw: 3, sh: 3, sw: 1, ph: 2, pw: 1, ..floor },
        Pool2d { ceil_mode: true, ..Pool2d::square(1, 8, 55, 55, 3, 2, 0) }, // SqueezeNet
        Pool2d { ceil_mode: true, ..Pool2d::square(1, 4, 28, 28, 3, 2, 0) }, // GoogLeNet
        Pool2d {
            ceil_mode: true,
            count_include_pad: false,
            ..Pool2d::square(1, 3, 14, 13, 3, 2, 1)
        },
    ];
    for (t, p) in shapes.into_iter().enumerate() {
        check_max(p, t as u64, t % 2 == 1).unwrap_or_else(|e| panic!("max: {e} in {p:?}"));
        check_avg(p, t as u64).unwrap_or_else(|e| panic!("avg: {e} in {p:?}"));
    }
    check_global(2, 64, 7, 7, 1).unwrap_or_else(|e| panic!("global: {e}"));
    check_global(1, 3, 56, 56, 2).unwrap_or_else(|e| panic!("global: {e}"));
}

#[test]
fn output_size_is_pytorch_floor_mode() {
    let square = Pool2d::square(1, 1, 1, 1, 1, 1, 0);
    assert_eq!(Pool2d::square(1, 1, 7, 7, 3, 2, 1).out_h(), 4);
    assert_eq!(Pool2d::square(1, 1, 6, 6, 2, 2, 0).out_w(), 3);
    assert_eq!(Pool2d::square(1, 1, 5, 5, 2, 2, 0).out_h(), 2, "floor, not ceil");
    assert_eq!(Pool2d::square(1, 1, 1, 1, 3, 1, 1).out_h(), 1);
    let p = Pool2d { h: 10, w: 4, kh: 4, kw: 3, sh: 3, sw: 2, ph: 2, pw: 1, ..square };
    assert_eq!((p.out_h(), p.out_w()), (4, 2));
    // Geometries PyTorch rejects have no output.
    assert_eq!(Pool2d::square(1, 1, 7, 7, 3, 2, 2).out_h(), 0, "pad > kernel/2");
    assert_eq!(Pool2d::square(1, 1, 7, 7, 3, 0, 1).out_h(), 0, "stride 0");
    assert_eq!(Pool2d::square(1, 1, 7, 7, 0, 1, 0).out_h(), 0, "kernel 0");
    assert_eq!(Pool2d::square(1, 1, 2, 2, 5, 1, 1).out_h(), 0, "kernel past the padding");
    assert_eq!(Pool2d::square(1, 1, 0, 0, 2, 1, 1).out_h(), 0, "empty plane");
}

#[test]
fn max_pool_ties_nan_and_infinity_follow_aten() {
    let p = Pool2d::square(1, 1, 2, 4, 2, 2, 0);
    let x = [1.0, 1.0, f32::NAN, 0.0, 0.5, 1.0, 5.0, f32::NAN];
    let (mut y, mut argmax) = ([0.0; 2], [0; 2]);
    max_pool2d_forward(p, &x, &mut y, &mut argmax).unwrap();
    assert_eq!((y[0], argmax[0]), (1.0, 0), "a tie goes to the first cell");
    assert!(y[1].is_nan());
    assert_eq!(argmax[1], 7, "the last NaN wins");

    let p = Pool2d::square(1, 1, 2, 2, 2, 1, 1);
    let x = [f32::NEG_INFINITY; 4];
    let (mut y, mut argmax) = ([0.0; 9], [u32::MAX; 9]);
    max_pool2d_forward(p, &x, &mut y, &mut argmax).unwrap();
    assert!(y.iter().all(|&v| v == f32::NEG_INFINITY));
    // Each window points at its first input cell, as ATen's initial index.
    assert_eq!(argmax, [0, 0, 1, 0, 0, 1, 2, 2, 3]);
}

/// An argmax that is not a cell of its window (so not one the forward
/// wrote) still gets its gradient as ATen's scatter would give it, and one
/// outside the plane is skipped, on every path, the 2x2 kernels included.
#[test]
fn max_pool_backward_takes_any_argmax_in_the_plane() {
    let p = Pool2d::square(1, 1, 4, 5, 2, 2, 0);
    let dy = [1.0, 2.0, 3.0, 4.0];
    // Window 0 names window 3's cell (3, 3), window 1 a cell past the plane.
    let argmax = [18, 99, 10, 18];
    let mut want = [0.0; 20];
    want[10] = 3.0;
    want[18] = 5.0;
    for &isa in Isa::supported() {
        let mut dx = [f32::NAN; 20];
        max_pool2d_backward_on(isa, p, &dy, &argmax, &mut dx).unwrap();
        assert_eq!(dx, want, "{isa:?}");
        let pooled = [0.5; 4];
        let mut dx = [f32::NAN; 20];
        max_pool2d_backward_through_on(isa, p, &dy, &argmax, Activation::Relu, &pooled, &mut dx)
            .unwrap();
        assert_eq!(dx, want, "{isa:?} through ReLU");
    }
}

#[test]
fn max_pool_backward_accumulates_overlapping_windows() {
    // The centre is the maximum of all four 2x2 windows of a 3x3 plane.
    let p = Pool2d::square(1, 1, 3, 3, 2, 1, 0);
    let x = [0.0, 0.1, 0.2, 0.3, 9.0, 0.4, 0.5, 0.6, 0.7];
    let (mut y, mut argmax) = ([0.0; 4], [0; 4]);
    max_pool2d_forward(p, &x, &mut y, &mut argmax).unwrap();
    assert_eq!(argmax, [4; 4]);
    let mut dx = [7.0; 9];
    max_pool2d_backward(p, &[1.0, 2.0, 3.0, 4.0], &argmax, &mut dx).unwrap();
    assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    // An index the forward cannot have written is ignored, not a panic.
    max_pool2d_backward(p, &[1.0; 4], &[0, 1, 2, 99], &mut dx).unwrap();
    assert_eq!(dx, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn avg_pool_counts_padding_in_the_divisor() {
    let p = Pool2d::square(1, 1, 2, 2, 3, 1, 1);
    let mut y = [0.0; 4];
    avg_pool2d_forward(p, &[1.0; 4], &mut y).unwrap();
    assert_eq!(y, [4.0 / 9.0; 4]);
    let mut dx = [0.0; 4];
    avg_pool2d_backward(p, &[9.0; 4], &mut dx).unwrap();
    assert_eq!(dx, [4.0; 4]);
}

#[test]
fn empty_batches_are_fine() {
    let p = Pool2d::square(0, 3, 5, 5, 3, 2, 1);
    assert_eq!((p.x_len(), p.y_len()), (0, 0));
    max_pool2d_forward(p, &[], &mut [], &mut []).unwrap();
    max_pool2d_backward(p, &[], &[], &mut []).unwrap();
    avg_pool2d_forward(p, &[], &mut []).unwrap();
    avg_pool2d_backward(p, &[], &mut []).unwrap();
    global_avg_pool_forward(0, 3, 5, 5, &[], &mut []).unwrap();
    global_avg_pool_backward(0, 3, 5, 5, &[], &mut []).unwrap();
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let p = Pool2d::square(2, 3, 6, 5, 2, 2, 0); // y is [2, 3, 3, 2]
    let (x, y, a) = (vec![0.0; 180], vec![0.0; 36], vec![0u32; 36]);
    let tensor = |r: Result<(), netc_runtime::LenError>| r.unwrap_err().tensor;

    assert_eq!(tensor(max_pool2d_forward(p, &x[1..], &mut y.clone(), &mut a.clone())), "x");
    assert_eq!(tensor(max_pool2d_forward(p, &x, &mut y.clone()[1..], &mut a.clone())), "y");
    assert_eq!(tensor(max_pool2d_forward(p, &x, &mut y.clone(), &mut a.clone()[1..])), "argmax");
    assert_eq!(tensor(max_pool2d_backward(p, &y[1..], &a, &mut x.clone())), "dy");
    assert_eq!(tensor(max_pool2d_backward(p, &y, &a[1..], &mut x.clone())), "argmax");
    assert_eq!(tensor(max_pool2d_backward(p, &y, &a, &mut x.clone()[1..])), "dx");
    assert_eq!(tensor(avg_pool2d_forward(p, &x[1..], &mut y.clone())), "x");
    assert_eq!(tensor(avg_pool2d_forward(p, &x, &mut y.clone()[1..])), "y");
    assert_eq!(tensor(avg_pool2d_backward(p, &y[1..], &mut x.clone())), "dy");
    assert_eq!(tensor(avg_pool2d_backward(p, &y, &mut x.clone()[1..])), "dx");
    assert_eq!(tensor(global_avg_pool_forward(2, 3, 6, 5, &x[1..], &mut [0.0; 6])), "x");
    assert_eq!(tensor(global_avg_pool_forward(2, 3, 6, 5, &x, &mut [0.0; 5])), "y");
    assert_eq!(tensor(global_avg_pool_backward(2, 3, 6, 5, &[0.0; 5], &mut x.clone())), "dy");
    assert_eq!(tensor(global_avg_pool_backward(2, 3, 6, 5, &[0.0; 6], &mut x.clone()[1..])), "dx");

    let err = max_pool2d_forward(p, &x, &mut [0.0; 37], &mut a.clone()).unwrap_err();
    assert_eq!((err.op, err.expected, err.found), ("max_pool2d_forward", 36, 37));
    // An illegal geometry shows up as an output of the wrong length.
    let bad = Pool2d { ph: 2, ..p };
    assert_eq!(tensor(avg_pool2d_forward(bad, &x, &mut [0.0; 72])), "y");

    let a = AdaptivePool2d { n: 2, c: 3, h: 6, w: 5, oh: 2, ow: 3 };
    assert_eq!(tensor(adaptive_avg_pool2d_forward(a, &x[1..], &mut y.clone())), "x");
    assert_eq!(tensor(adaptive_avg_pool2d_forward(a, &x, &mut y.clone()[1..])), "y");
    assert_eq!(tensor(adaptive_avg_pool2d_backward(a, &y[1..], &mut x.clone())), "dy");
    assert_eq!(tensor(adaptive_avg_pool2d_backward(a, &y, &mut x.clone()[1..])), "dx");
}

/// PyTorch's ceil-mode sizes, as `F.max_pool2d(..., ceil_mode=True)` gives
/// them for a square input `(h, kernel, stride, pad)`: rounded up, then one
/// less where the last window would start in the right padding, and an
/// output where the window is wider than the padded input but not by a
/// stride.
#[test]
fn output_size_in_ceil_mode_is_pytorch_s() {
    let cases = [
        ((7, 3, 2, 0), (3, 3)),
        ((6, 3, 2, 0), (2, 3)),
        ((5, 2, 2, 0), (2, 3)),
        ((2, 3, 2, 0), (0, 1)),
        ((6, 3, 2, 1), (3, 4)),
        ((8, 3, 3, 1), (3, 3)),
        ((10, 4, 3, 2), (4, 4)),
        ((13, 3, 2, 1), (7, 7)),
        ((1, 3, 2, 1), (1, 1)),
        ((4, 4, 3, 2), (2, 2)),
        ((5, 3, 3, 1), (2, 2)),
        ((55, 3, 2, 0), (27, 27)),
        ((112, 3, 2, 0), (55, 56)),
    ];
    for ((h, k, s, p), (floor, ceil)) in cases {
        let pool = Pool2d::square(1, 1, h, h, k, s, p);
        assert_eq!(pool.out_h(), floor, "floor {:?}", (h, k, s, p));
        assert_eq!(Pool2d { ceil_mode: true, ..pool }.out_w(), ceil, "ceil {:?}", (h, k, s, p));
    }
    assert_eq!(Pool2d { ceil_mode: true, ..Pool2d::square(1, 1, 1, 1, 3, 1, 0) }.out_h(), 0);
}

/// A ceil-mode window that runs past the padded input: the max never takes
/// a padded cell, and the average's divisor is clipped at the padded edge
/// with `count_include_pad`, at the input without (ATen's
/// `divide_factor`).
#[test]
fn ceil_mode_windows_past_the_edge_follow_aten() {
    // 5 columns, kernel 3, stride 2, pad 1, ceil: 3 windows, the last
    // covering padded columns 4..7 of 0..7, so input columns 3, 4 and one
    // padding cell.
    let p = Pool2d { ceil_mode: true, ..Pool2d::square(1, 1, 1, 5, 1, 1, 0) };
    let p = Pool2d { kw: 3, sw: 2, pw: 1, ..p };
    assert_eq!(p.out_w(), 3);
    let x = [-1.0, -2.0, -3.0, -4.0, -5.0];
    let (mut y, mut argmax) = ([0.0; 3], [0; 3]);
    max_pool2d_forward(p, &x, &mut y, &mut argmax).unwrap();
    assert_eq!((y, argmax), ([-1.0, -2.0, -4.0], [0, 1, 3]), "never a padded zero");
    let mut y = [0.0; 3];
    avg_pool2d_forward(p, &x, &mut y).unwrap();
    assert_eq!(y, [-3.0 / 3.0, -9.0 / 3.0, -9.0 / 3.0]);
    // 6 columns: padded 0..8, and a fourth window 6..9 past it, which
    // divides by 2 with padding counted (input column 5 and one padding
    // cell), by 1 without. The values are PyTorch's.
    let p = Pool2d { w: 6, ..p };
    assert_eq!(p.out_w(), 4);
    let mut y = [0.0; 4];
    avg_pool2d_forward(p, &[1.0; 6], &mut y).unwrap();
    assert_eq!(y, [2.0 / 3.0, 1.0, 1.0, 0.5]);
    let mut y = [0.0; 4];
    avg_pool2d_forward(Pool2d { count_include_pad: false, ..p }, &[1.0; 6], &mut y).unwrap();
    assert_eq!(y, [1.0; 4]);
    let mut dx = [0.0; 6];
    avg_pool2d_backward(p, &[3.0, 3.0, 3.0, 2.0], &mut dx).unwrap();
    assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
}

/// An adaptive geometry: any input and output extents, outputs larger
/// than inputs included (bins then repeat inputs).
fn adaptive_geometry() -> impl Strategy<Value = AdaptivePool2d> {
    (0usize..=2, 1usize..=3, 1usize..=13, 1usize..=13, 1usize..=9, 1usize..=9)
        .prop_map(|(n, c, h, w, oh, ow)| AdaptivePool2d { n, c, h, w, oh, ow })
}

fn check_adaptive(p: AdaptivePool2d, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let dy = fill(p.y_len(), seed + 1, -1.0, 1.0);
    let mut y = vec![f32::NAN; p.y_len()];
    adaptive_avg_pool2d_forward(p, &x, &mut y).map_err(|e| e.to_string())?;
    close("y", &y, &reference::adaptive_avg_pool2d(p, &wide(&x)), 1e-6)?;
    let mut dx = vec![f32::NAN; p.x_len()];
    adaptive_avg_pool2d_backward(p, &dy, &mut dx).map_err(|e| e.to_string())?;
    close("dx", &dx, &reference::adaptive_avg_pool2d_backward(p, &wide(&dy)), 1e-6)?;
    let fd = central_diff_vjp(&wide(&x), &wide(&dy), H, |x| reference::adaptive_avg_pool2d(p, x));
    close("dx against central differences", &dx, &fd, 1e-5)
}

proptest! {
    #[test]
    fn adaptive_avg_pool_matches_reference_and_central_differences(
        p in adaptive_geometry(),
        seed in any::<u64>(),
    ) {
        check_adaptive(p, seed).map_err(|e| TestCaseError::fail(format!("{e} in {p:?}")))?;
    }
}

/// PyTorch's bins, `[⌊i·len/out⌋, ⌈(i+1)·len/out⌉)`: overlapping when the
/// output does not divide the input, repeating inputs when it is larger;
/// an output of one is global average pooling.
#[test]
fn adaptive_bins_are_pytorch_s() {
    use netc_runtime::pool::adaptive_bin;
    let bins = |out, len| (0..out).map(|i| adaptive_bin(i, out, len)).collect::<Vec<_>>();
    assert_eq!(bins(3, 7), [(0, 3), (2, 5), (4, 7)]);
    assert_eq!(bins(2, 6), [(0, 3), (3, 6)]);
    assert_eq!(bins(4, 2), [(0, 1), (0, 1), (1, 2), (1, 2)]);
    assert_eq!(bins(1, 5), [(0, 5)]);
    // Against global average pooling.
    let p = AdaptivePool2d { n: 2, c: 3, h: 5, w: 7, oh: 1, ow: 1 };
    let x = fill(p.x_len(), 3, -1.0, 1.0);
    let (mut y, mut g) = ([0.0; 6], [0.0; 6]);
    adaptive_avg_pool2d_forward(p, &x, &mut y).unwrap();
    global_avg_pool_forward(2, 3, 5, 7, &x, &mut g).unwrap();
    for (a, b) in y.iter().zip(&g) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
    // Overlapping bins: 7 -> 3 reads column 2 twice, and its gradient sums.
    let p = AdaptivePool2d { n: 1, c: 1, h: 1, w: 7, oh: 1, ow: 3 };
    let mut y = [0.0; 3];
    adaptive_avg_pool2d_forward(p, &[0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0], &mut y).unwrap();
    assert_eq!(y, [3.0, 9.0, 15.0]);
    let mut dx = [0.0; 7];
    adaptive_avg_pool2d_backward(p, &[3.0, 6.0, 9.0], &mut dx).unwrap();
    assert_eq!(dx, [1.0, 1.0, 3.0, 2.0, 5.0, 3.0, 3.0]);
}
