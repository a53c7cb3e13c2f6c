//! The gated activations (GELU, tanh GELU, SiLU, hardswish): forward and input-based
//! backward against the f64 reference on every instruction set the CPU
//! has, the reference against its own finite differences, the fused
//! forward kernels against unfused ones, and the output-based backwards
//! refusing them with an error.

mod common;

use common::fill;
use netc_runtime::act::{self, Activation, Gated};
use netc_runtime::conv::{self, winograd, Conv2d, ConvAlgo};
use netc_runtime::dense::{self, Dense};
use netc_runtime::gemm::Par;
use netc_runtime::isa::Isa;
use netc_runtime::norm::{self, BatchNorm};
use netc_runtime::pool::{self, Pool2d};
use netc_runtime::{nn, reference, Error};
use proptest::prelude::*;

const GATED: [Gated; 4] = [Gated::Gelu, Gated::GeluTanh, Gated::Silu, Gated::HardSwish];

const SIZES: [usize; 8] = [0, 1, 15, 16, 17, 33, 1000, 100_003];

/// The accuracy every path must reach: `2e-6·|want| + 1e-6`.
const REL: f64 = 2e-6;
const ABS: f64 = 1e-6;

/// Inputs over [-12, 12], evenly spread, with the special values spliced
/// in at the front (as many as fit): ±0, far tails, NaN.
fn inputs(len: usize, seed: u64) -> Vec<f32> {
    let specials = [0.0, -0.0, 100.0, -100.0, 1e4, -1e4, f32::NAN, 12.0, -12.0, 1e-30, -1e-30];
    let mut x = fill(len, seed, -12.0, 12.0);
    for (x, &s) in x.iter_mut().zip(&specials) {
        *x = s;
    }
    x
}

/// Whether `got` is within tolerance of `want`; NaN must meet NaN, and the
/// sign of a zero is not compared (`0.0 == -0.0`).
fn close(got: f32, want: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    (f64::from(got) - want).abs() <= ABS + REL * want.abs()
}

fn check(what: &str, x: &[f32], got: &[f32], want: impl Fn(f64) -> f64) -> Result<(), String> {
    for (i, (&x, &g)) in x.iter().zip(got).enumerate() {
        let w = want(f64::from(x));
        if !close(g, w) {
            return Err(format!("{what}: at x[{i}] = {x:e}, got {g:e}, the reference gives {w:e}"));
        }
    }
    Ok(())
}

/// Every kernel, out of place and in place, on `isa`, against the
/// reference; in place must equal out of place bit for bit.
fn check_kernels(isa: Isa, g: Gated, x: &[f32], dy: &[f32]) -> Result<(), String> {
    let len = x.len();
    let what = |k: &str| format!("{isa:?} {g:?} {k} (len {len})");
    let mut y = vec![f32::NAN; len];
    act::gated_forward_on(isa, g, x, &mut y).map_err(|e| e.to_string())?;
    check(&what("forward"), x, &y, |x| reference::gated(g, x))?;
    let mut in_place = x.to_vec();
    act::gated_forward_in_place_on(isa, g, &mut in_place);
    if !same_bits(&in_place, &y) {
        return Err(what("in-place forward differs from out of place"));
    }

    let mut dx = vec![f32::NAN; len];
    act::gated_backward_from_input_on(isa, g, x, dy, &mut dx).map_err(|e| e.to_string())?;
    // dy = 1 in the first element (a special), so the derivative itself is
    // checked there too.
    for (i, (&x, (&d, &dy))) in x.iter().zip(dx.iter().zip(dy)).enumerate() {
        let w = f64::from(dy) * reference::gated_derivative(g, f64::from(x));
        if !close(d, w) {
            return Err(format!("{}: at x[{i}] = {x:e}, dx {d:e}, want {w:e}", what("backward")));
        }
    }
    let mut d = dy.to_vec();
    act::gated_backward_from_input_in_place_on(isa, g, x, &mut d).map_err(|e| e.to_string())?;
    if !same_bits(&d, &dx) {
        return Err(what("in-place backward differs from out of place"));
    }
    Ok(())
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

#[test]
fn every_path_matches_the_reference_at_odd_sizes() {
    for g in GATED {
        for (t, &len) in SIZES.iter().enumerate() {
            let x = inputs(len, 10 + t as u64);
            let mut dy = fill(len, 20 + t as u64, -2.0, 2.0);
            if let Some(d) = dy.first_mut() {
                *d = 1.0;
            }
            for &isa in Isa::supported() {
                check_kernels(isa, g, &x, &dy).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

/// The paths compute the same operations in the same order, so they agree
/// bit for bit (the vector width changes nothing), and the scalar
/// functions of the fused epilogues do too.
#[test]
fn every_path_gives_the_same_bits() {
    let x = inputs(4099, 5);
    let dy = fill(4099, 6, -1.0, 1.0);
    for g in GATED {
        let run = |isa: Isa| {
            let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            act::gated_forward_on(isa, g, &x, &mut y).unwrap();
            act::gated_backward_from_input_on(isa, g, &x, &dy, &mut dx).unwrap();
            (y, dx)
        };
        let (y, dx) = run(Isa::Portable);
        for &isa in Isa::supported() {
            let (y2, dx2) = run(isa);
            assert!(same_bits(&y, &y2) && same_bits(&dx, &dx2), "{isa:?} {g:?}");
        }
        let scalar: Vec<f32> = x.iter().map(|&x| g.forward(x)).collect();
        assert!(same_bits(&scalar, &y), "{g:?}: Gated::forward");
        let fused: Vec<f32> = x.iter().map(|&x| Activation::Gated(g).apply(x)).collect();
        assert!(same_bits(&fused, &y), "{g:?}: Activation::apply");
        let unit: Vec<f32> = x.iter().map(|&x| g.derivative(x)).collect();
        let from_input: Vec<f32> =
            x.iter().map(|&x| act::derivative_from_input(Activation::Gated(g), x)).collect();
        assert!(same_bits(&unit, &from_input), "{g:?}: derivative_from_input");
    }
}

/// An instruction set the CPU lacks runs the portable kernels instead.
#[test]
fn every_isa_can_be_asked_for() {
    let x = inputs(100, 7);
    for g in GATED {
        let mut want = vec![0.0; 100];
        act::gated_forward_on(Isa::Portable, g, &x, &mut want).unwrap();
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            let mut y = vec![0.0; 100];
            act::gated_forward_on(isa, g, &x, &mut y).unwrap();
            assert!(same_bits(&y, &want), "{isa:?} {g:?}");
        }
    }
}

/// The maximum error of each path over a dense grid of [-12, 12] and the
/// far tails, in units of the tolerance and absolute; printed with
/// `--nocapture`.
#[test]
fn accuracy_over_a_dense_grid() {
    let steps = 1 << 20;
    let mut x: Vec<f32> =
        (0..=steps).map(|i| -12.0 + 24.0 * (i as f64 / steps as f64) as f32).collect();
    x.extend([100.0, -100.0, 1e4, -1e4, 1e-30, -1e-30, 0.0, -0.0]);
    let ones = vec![1.0f32; x.len()];
    for g in GATED {
        let want_y: Vec<f64> = x.iter().map(|&x| reference::gated(g, f64::from(x))).collect();
        let want_d: Vec<f64> =
            x.iter().map(|&x| reference::gated_derivative(g, f64::from(x))).collect();
        for &isa in Isa::supported() {
            let (mut y, mut d) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            act::gated_forward_on(isa, g, &x, &mut y).unwrap();
            act::gated_backward_from_input_on(isa, g, &x, &ones, &mut d).unwrap();
            for (what, got, want) in [("f", &y, &want_y), ("f'", &d, &want_d)] {
                let (mut worst, mut abs, mut rel) = (0.0f64, 0.0f64, 0.0f64);
                for (&got, &want) in got.iter().zip(want.iter()) {
                    let err = (f64::from(got) - want).abs();
                    worst = worst.max(err / (ABS + REL * want.abs()));
                    abs = abs.max(err);
                    if want.abs() >= 1e-3 {
                        rel = rel.max(err / want.abs());
                    }
                }
                println!(
                    "{isa:?} {g:?} {what}: max abs error {abs:.2e}, max relative error \
                     (|want| >= 1e-3) {rel:.2e}, worst {worst:.3} of the tolerance"
                );
                assert!(worst <= 1.0, "{isa:?} {g:?} {what}: {worst} of the tolerance");
            }
        }
    }
}

#[test]
fn special_values() {
    for g in GATED {
        let x = [f32::NAN, -100.0, -1e4, 100.0, 1e4, 0.0, -0.0];
        for &isa in Isa::supported() {
            let mut y = [1.0f32; 7];
            act::gated_forward_on(isa, g, &x, &mut y).unwrap();
            assert!(y[0].is_nan(), "{isa:?} {g:?}: NaN passes through");
            // PyTorch gives -0 here (x times a gate that underflowed); the
            // sign of the zero is not part of the contract.
            assert_eq!(&y[1..], &[0.0, 0.0, 100.0, 1e4, 0.0, 0.0], "{isa:?} {g:?}");
            let mut d = [1.0f32; 7];
            act::gated_backward_from_input_in_place_on(isa, g, &x, &mut d).unwrap();
            assert!(d[0].is_nan(), "{isa:?} {g:?}: NaN passes through the derivative");
            assert_eq!(&d[1..5], &[0.0, 0.0, 1.0, 1.0], "{isa:?} {g:?}");
            assert!((d[5] - 0.5).abs() <= 1e-7, "{isa:?} {g:?}: f'(0) = g(0) = 1/2, not {}", d[5]);
        }
    }
}

/// The reference's derivatives are the derivatives of its forwards.
#[test]
fn reference_derivative_matches_central_differences() {
    let h = 1e-5;
    for g in GATED {
        for i in -1200..=1200 {
            let x = f64::from(i) * 0.01 + 0.003;
            let fd = (reference::gated(g, x + h) - reference::gated(g, x - h)) / (2.0 * h);
            let d = reference::gated_derivative(g, x);
            assert!((fd - d).abs() <= 1e-8 * (1.0 + d.abs()), "{g:?}'({x}): {d}, differences {fd}");
        }
    }
}

/// The reference agrees with textbook values: Φ(1) = 0.841344746…,
/// σ(1) = 0.731058578…, and the tanh form within 1e-3 of the exact GELU.
#[test]
fn reference_known_values() {
    assert!((reference::gated(Gated::Gelu, 1.0) - 0.841_344_746_068_543).abs() < 1e-14);
    assert!((reference::gated(Gated::Silu, 1.0) - 0.731_058_578_630_005).abs() < 1e-14);
    assert!((reference::gated(Gated::Gelu, -3.0) + 3.0 * 0.001_349_898_031_630_095).abs() < 1e-15);
    for i in -60..=60 {
        let x = f64::from(i) * 0.1;
        let (a, b) = (reference::gated(Gated::Gelu, x), reference::gated(Gated::GeluTanh, x));
        assert!((a - b).abs() < 1e-3, "gelu({x}) = {a}, tanh form {b}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_lengths_and_values(len in 0usize..300, which in 0usize..GATED.len(), seed in any::<u64>(), scale in 0.1f32..20.0) {
        let g = GATED[which];
        let x = fill(len, seed, -scale, scale);
        let dy = fill(len, seed ^ 1, -3.0, 3.0);
        for &isa in Isa::supported() {
            check_kernels(isa, g, &x, &dy).map_err(TestCaseError::fail)?;
        }
    }
}

/// The generic entry points route gated activations to these kernels.
#[test]
fn the_generic_activation_kernels_serve_gated_ones() {
    let x = inputs(1000, 8);
    let dy = fill(1000, 9, -1.0, 1.0);
    for g in GATED {
        let a = Activation::Gated(g);
        assert!(a.needs_input());
        let mut want = vec![0.0; 1000];
        act::gated_forward(g, &x, &mut want).unwrap();
        let mut y = vec![0.0; 1000];
        nn::activation_forward(a, &x, &mut y).unwrap();
        assert!(same_bits(&y, &want), "{g:?} activation_forward");
        let mut y = x.clone();
        act::forward_in_place(a, &mut y);
        assert!(same_bits(&y, &want), "{g:?} forward_in_place");

        let mut want = vec![0.0; 1000];
        act::gated_backward_from_input(g, &x, &dy, &mut want).unwrap();
        let mut d = dy.clone();
        nn::activation_backward_from_input_in_place(a, &x, &mut d).unwrap();
        assert!(same_bits(&d, &want), "{g:?} activation_backward_from_input_in_place");
        let mut dx = vec![0.0; 1000];
        act::backward_from_input(a, &x, &dy, &mut dx).unwrap();
        assert!(same_bits(&dx, &want), "{g:?} backward_from_input");
    }
    for a in [Activation::Identity, Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        assert!(!a.needs_input());
    }
    assert!(!Activation::LeakyRelu(0.1).needs_input());
}

/// The input-based backward serves the other activations too, against the
/// reference (whose derivatives are from the input).
#[test]
fn backward_from_input_serves_every_activation() {
    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::LeakyRelu(-0.5),
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gated(Gated::Gelu),
        Activation::Gated(Gated::GeluTanh),
        Activation::Gated(Gated::Silu),
        Activation::Gated(Gated::HardSwish),
        Activation::HardTanh(-1.0, 2.0),
        Activation::HardSigmoid,
        Activation::Elu(0.5),
    ];
    for len in [0, 1, 17, 100_003] {
        let x = fill(len, len as u64, -6.0, 6.0);
        let dy = fill(len, len as u64 + 1, -2.0, 2.0);
        for a in acts {
            let want = reference::activation_backward(a, &x, &dy);
            let mut d = dy.clone();
            nn::activation_backward_from_input_in_place(a, &x, &mut d).unwrap();
            common::assert_close(&format!("{a:?}"), &d, &want, 1e-6, 1e-5);
            let mut dx = vec![f32::NAN; len];
            act::backward_from_input(a, &x, &dy, &mut dx).unwrap();
            assert!(same_bits(&dx, &d), "{a:?}: out of place");
        }
    }
    // ReLU's kink: the negative side's gradient, as from the output.
    let mut d = [1.0f32; 3];
    nn::activation_backward_from_input_in_place(Activation::Relu, &[0.0, -1.0, 1.0], &mut d)
        .unwrap();
    assert_eq!(d, [0.0, 0.0, 1.0]);
}

#[test]
fn wrong_lengths_are_errors() {
    let x = vec![0.0f32; 6];
    let mut short = vec![0.0f32; 5];
    let g = Gated::Gelu;
    let err = act::gated_forward(g, &x, &mut short).unwrap_err();
    assert_eq!((err.tensor, err.expected, err.found), ("y", 6, 5));
    let err = act::gated_backward_from_input(g, &x, &x[..5], &mut [0.0; 6]).unwrap_err();
    assert_eq!(err.tensor, "dy");
    let err = act::gated_backward_from_input(g, &x, &x, &mut short).unwrap_err();
    assert_eq!(err.tensor, "dx");
    let err = act::gated_backward_from_input_in_place(g, &x, &mut short).unwrap_err();
    assert_eq!(err.tensor, "d");
    let a = Activation::Gated(g);
    let err = nn::activation_backward_from_input_in_place(a, &x, &mut short).unwrap_err();
    assert!(err.to_string().contains("`d` has 5 elements, expected 6"), "{err}");
    let err = nn::activation_backward_from_input_in_place(Activation::Tanh, &x, &mut short);
    assert!(matches!(err, Err(Error::Len(_))));
}

fn is_needs_input(r: Result<(), Error>, op: &str) {
    match r {
        Err(Error::NeedsInput { op: got }) => {
            assert_eq!(got, op);
            let msg = Error::NeedsInput { op: got }.to_string();
            assert_eq!(
                msg,
                format!("{op}: this activation's derivative needs its input, not its output")
            );
        }
        other => panic!("{op}: expected NeedsInput, got {other:?}"),
    }
}

/// Every backward that reads the activation's output refuses a gated
/// activation with an error naming the op, before looking at lengths.
#[test]
fn output_based_backwards_refuse_gated_activations() {
    for g in GATED {
        let a = Activation::Gated(g);
        let (y, dy) = (vec![0.5f32; 8], vec![1.0f32; 8]);
        let mut dx = vec![0.0f32; 8];
        is_needs_input(act::backward(a, &y, &dy, &mut dx), "activation_backward");
        is_needs_input(nn::activation_backward(a, &y, &dy, &mut dx), "activation_backward");
        let mut d = dy.clone();
        is_needs_input(act::backward_in_place(a, &y, &mut d), "activation_backward");
        is_needs_input(nn::activation_backward_in_place(a, &y, &mut d), "activation_backward");
        assert_eq!(d, dy, "untouched");
        is_needs_input(act::backward_in_place(a, &y, &mut [0.0; 3]), "activation_backward");
        let mut db = vec![0.0; 2];
        is_needs_input(
            act::bias_act_backward(2, 2, 2, a, &y, &dy, &mut dx, &mut db),
            "bias_act_backward",
        );
        assert!(act::derivative_from_output(a, 0.5).is_nan());

        let p = Pool2d::square(1, 2, 4, 4, 2, 2, 0);
        let pooled = vec![0.5f32; p.y_len()];
        let argmax = vec![0u32; p.y_len()];
        let mut px = vec![0.0f32; p.x_len()];
        let op = "max_pool2d_backward_through";
        is_needs_input(
            nn::max_pool_backward_through(&p, &pooled, &argmax, a, &pooled, &mut px),
            op,
        );
        is_needs_input(
            pool::max_pool2d_backward_through(p, &pooled, &argmax, a, &pooled, &mut px),
            op,
        );
        for &isa in Isa::supported() {
            let r =
                pool::max_pool2d_backward_through_on(isa, p, &pooled, &argmax, a, &pooled, &mut px);
            is_needs_input(r, op);
        }
    }
}

/// `y = act(pre)`, by the gated kernel.
fn activated(g: Gated, pre: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; pre.len()];
    act::gated_forward(g, pre, &mut y).unwrap();
    y
}

/// Within rounding of each other (a fused pass may order its sums
/// differently from an unfused one).
fn assert_near(what: &str, got: &[f32], want: &[f32]) {
    common::assert_close(what, got, want, 1e-5, 1e-5);
}

/// conv2d with a gated activation fused, by every algorithm, equals the
/// convolution without activation followed by the gated kernel.
#[test]
fn conv2d_forward_with_a_fused_gated_activation() {
    let cases = [
        (Conv2d::square(2, 16, 8, 8, 32, 1, 1, 0), ConvAlgo::Pointwise),
        (Conv2d::square(1, 1, 28, 28, 6, 5, 1, 2), ConvAlgo::Direct),
        (Conv2d::square(2, 3, 15, 35, 8, 4, 1, 3), ConvAlgo::Direct),
        (Conv2d::square(2, 3, 15, 35, 72, 4, 1, 3), ConvAlgo::Im2col),
        (Conv2d::square(2, 3, 15, 15, 8, 4, 3, 2), ConvAlgo::Im2col),
        (Conv2d::square(2, 16, 9, 9, 16, 3, 1, 1), ConvAlgo::Winograd),
        (Conv2d::square(2, 24, 27, 27, 40, 5, 1, 2), ConvAlgo::WinogradSplit),
    ];
    for (t, (s, algo)) in cases.into_iter().enumerate() {
        let x = fill(s.input_len(), 100 + t as u64, -2.0, 2.0);
        let w = fill(s.weight_len(), 200 + t as u64, -0.5, 0.5);
        let b = fill(s.o, 300 + t as u64, -1.0, 1.0);
        for par in [Par::Seq, Par::Rayon] {
            let mut pre = vec![f32::NAN; s.output_len()];
            let id = Activation::Identity;
            conv::conv2d_forward_using(algo, &s, &x, &w, Some(&b), id, &mut pre, par).unwrap();
            for g in GATED {
                let a = Activation::Gated(g);
                let want = activated(g, &pre);
                let mut y = vec![f32::NAN; s.output_len()];
                conv::conv2d_forward_using(algo, &s, &x, &w, Some(&b), a, &mut y, par).unwrap();
                assert_near(&format!("{algo:?} {g:?} {s:?}"), &y, &want);
                if algo == ConvAlgo::Direct {
                    for &isa in Isa::supported() {
                        let mut pre = vec![f32::NAN; s.output_len()];
                        conv::conv2d_forward_direct(&s, isa, &x, &w, Some(&b), id, &mut pre)
                            .unwrap();
                        let mut y = vec![f32::NAN; s.output_len()];
                        conv::conv2d_forward_direct(&s, isa, &x, &w, Some(&b), a, &mut y).unwrap();
                        assert_near(&format!("direct {isa:?} {g:?}"), &y, &activated(g, &pre));
                    }
                }
                if algo == ConvAlgo::Winograd {
                    for &isa in Isa::supported() {
                        let mut pre = vec![f32::NAN; s.output_len()];
                        winograd::forward(&s, isa, &x, &w, Some(&b), id, &mut pre, par).unwrap();
                        let mut y = vec![f32::NAN; s.output_len()];
                        winograd::forward(&s, isa, &x, &w, Some(&b), a, &mut y, par).unwrap();
                        assert_near(&format!("winograd {isa:?} {g:?}"), &y, &activated(g, &pre));
                    }
                }
            }
        }
        // The generic entry point and the cached one take the same path.
        let g = Gated::Silu;
        let a = Activation::Gated(g);
        let mut pre = vec![f32::NAN; s.output_len()];
        nn::conv2d_forward(&s, &x, &w, Some(&b), Activation::Identity, &mut pre).unwrap();
        let mut y = vec![f32::NAN; s.output_len()];
        nn::conv2d_forward(&s, &x, &w, Some(&b), a, &mut y).unwrap();
        assert_near(&format!("nn::conv2d_forward {s:?}"), &y, &activated(g, &pre));
        let cache = conv::ForwardCache::default();
        let mut y = vec![f32::NAN; s.output_len()];
        nn::conv2d_forward_cached(&s, &x, &w, Some(&b), a, &mut y, &cache).unwrap();
        assert_near(&format!("cached {s:?}"), &y, &activated(g, &pre));
    }
}

/// Dense layers with a gated activation fused, through the GEMM, the dot
/// kernels and the streamed ones, on every instruction set.
#[test]
fn dense_forward_with_a_fused_gated_activation() {
    for (t, &(n, input, output)) in
        [(1, 37, 19), (2, 64, 33), (5, 100, 17), (8, 9, 70), (64, 48, 40)].iter().enumerate()
    {
        let s = Dense { n, input, output };
        let x = fill(n * input, 400 + t as u64, -1.0, 1.0);
        let w = fill(s.weight_len(), 500 + t as u64, -0.5, 0.5);
        let b = fill(output, 600 + t as u64, -1.0, 1.0);
        let id = Activation::Identity;
        let mut pre = vec![f32::NAN; n * output];
        nn::dense_forward(&s, &x, &w, Some(&b), id, &mut pre).unwrap();
        for g in GATED {
            let a = Activation::Gated(g);
            let want = activated(g, &pre);
            let mut y = vec![f32::NAN; n * output];
            nn::dense_forward(&s, &x, &w, Some(&b), a, &mut y).unwrap();
            assert_near(&format!("dense {g:?} {s:?}"), &y, &want);
            for &isa in Isa::supported() {
                for par in [Par::Seq, Par::Rayon] {
                    let mut y = vec![f32::NAN; n * output];
                    dense::dot::forward(&s, isa, &x, &w, Some(&b), a, &mut y, par).unwrap();
                    assert_near(&format!("dot {isa:?} {g:?} {s:?}"), &y, &want);
                    let mut y = vec![f32::NAN; n * output];
                    dense::streamed::forward(&s, isa, &x, &w, Some(&b), a, &mut y, par).unwrap();
                    assert_near(&format!("streamed {isa:?} {g:?} {s:?}"), &y, &want);
                }
            }
        }
    }
}

/// Batch norm at inference and in training with the activation fused, and
/// the residual add with it fused, equal the unfused passes.
#[test]
fn batch_norm_and_add_with_a_fused_gated_activation() {
    let bn = BatchNorm::new(3, 5, 7, 9);
    let x = fill(bn.x_len(), 1, -3.0, 3.0);
    let gamma = fill(bn.c, 2, 0.5, 1.5);
    let beta = fill(bn.c, 3, -0.5, 0.5);
    let (rm, rv) = (fill(bn.c, 4, -0.2, 0.2), fill(bn.c, 5, 0.5, 2.0));
    let id = Activation::Identity;
    let mut pre = vec![0.0; bn.x_len()];
    norm::batch_norm_forward_inference_act(bn, id, &x, &gamma, &beta, (&rm, &rv), &mut pre)
        .unwrap();
    for g in GATED {
        let a = Activation::Gated(g);
        let mut y = vec![f32::NAN; bn.x_len()];
        norm::batch_norm_forward_inference_act(bn, a, &x, &gamma, &beta, (&rm, &rv), &mut y)
            .unwrap();
        assert_near(&format!("bn inference {g:?}"), &y, &activated(g, &pre));

        let train = |act: Activation| {
            let (mut m, mut v) = (vec![0.0; bn.c], vec![1.0; bn.c]);
            let mut saved = vec![0.0; 2 * bn.c];
            let mut y = vec![f32::NAN; bn.x_len()];
            nn::batch_norm_forward_train(
                &bn, "bn", act, &x, &gamma, &beta, &mut m, &mut v, &mut saved, &mut y,
            )
            .unwrap();
            y
        };
        assert_near(&format!("bn train {g:?}"), &train(a), &activated(g, &train(id)));
    }
    for len in [37, 1 << 16] {
        let (p, q) = (fill(len, 3, -4.0, 4.0), fill(len, 4, -4.0, 4.0));
        let sum: Vec<f32> = p.iter().zip(&q).map(|(p, q)| p + q).collect();
        for g in GATED {
            let mut y = vec![f32::NAN; len];
            nn::add(&p, &q, Activation::Gated(g), &mut y).unwrap();
            assert!(same_bits(&y, &activated(g, &sum)), "add {g:?} at length {len}");
        }
    }
    // The fused bias + activation of an unfused epilogue.
    let (n, c, hw) = (2, 3, 5);
    let z = fill(n * c * hw, 7, -3.0, 3.0);
    let bias = fill(c, 8, -1.0, 1.0);
    for g in GATED {
        let a = Activation::Gated(g);
        let want = reference::bias_add_act(n, c, hw, &z, &bias, a);
        let mut y = vec![f32::NAN; z.len()];
        act::bias_add_act_to(n, c, hw, &z, &bias, a, &mut y).unwrap();
        common::assert_close(&format!("bias_add_act {g:?}"), &y, &want, 1e-6, 2e-6);
        let mut in_place = z.clone();
        act::bias_add_act(n, c, hw, &bias, a, &mut in_place).unwrap();
        assert!(same_bits(&in_place, &y));
    }
}

/// Hardswish's derivative at and around its bounds, as PyTorch's
/// `hardswish_backward`: 0 below −3, `x/3 + 1/2` on the closed [−3, 3]
/// (−1/2 at −3, 3/2 at 3), 1 above 3; the forward is 0 and `x` beyond.
#[test]
fn hardswish_follows_pytorch_at_its_bounds() {
    let x = [-3.0f32, 3.0, -3.001, 3.001, 0.0, 1.5];
    // `x·6/6` in PyTorch's order, which rounds.
    let want_y = [0.0f32, 3.0, 0.0, 3.001 * 6.0 / 6.0, 0.0, 1.125];
    let want_d = [-0.5f32, 1.5, 0.0, 1.0, 0.5, 1.0];
    for &isa in Isa::supported() {
        let mut y = [f32::NAN; 6];
        act::gated_forward_on(isa, Gated::HardSwish, &x, &mut y).unwrap();
        assert_eq!(y, want_y, "{isa:?}");
        let mut d = [1.0f32; 6];
        act::gated_backward_from_input_in_place_on(isa, Gated::HardSwish, &x, &mut d).unwrap();
        assert_eq!(d, want_d, "{isa:?}");
    }
}
