//! The counter-based RNG (Random123 known answers, bulk fills equal to the
//! per-element functions, moments), dropout (same key same mask, other
//! step or layer other mask, kept fraction, backward regenerating the
//! forward mask), stochastic depth (whole samples or the whole batch
//! against the reference's masks) and the initialisers (fans as PyTorch computes them,
//! moments against the formulas, reproducibility by seed).

mod common;

use netc_runtime::dropout::{DepthMode, Dropout, DropoutKey, MaskKey};
use netc_runtime::init::{self, FanMode, Fans, Nonlinearity};
use netc_runtime::rng;
use netc_runtime::{nn, reference};
use proptest::prelude::*;

/// Mean and (population) variance in f64.
fn moments(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = x.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// Mean within 5 standard errors of 0 and variance within 3% of `var`.
fn assert_moments(what: &str, x: &[f32], var: f64) {
    let (mean, got_var) = moments(x);
    let n = x.len() as f64;
    assert!(mean.abs() < 5.0 * (var / n).sqrt(), "{what}: mean {mean}");
    assert!((got_var / var - 1.0).abs() < 0.03, "{what}: variance {got_var}, expected {var}");
}

#[test]
fn philox_matches_random123_known_answers() {
    let cases = [
        ([0u32; 4], [0u32; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (counter, key, want) in cases {
        assert_eq!(rng::philox4x32_10(counter, key), want);
    }
}

#[test]
fn bulk_fills_equal_the_per_element_functions() {
    for len in [0, 1, 3, 4, 5, 11] {
        let mut u = vec![0.0; len];
        rng::fill_uniform(7, 3, &mut u);
        let mut z = vec![0.0; len];
        rng::fill_normal(7, 3, &mut z);
        for i in 0..len {
            assert_eq!(u[i].to_bits(), rng::uniform(7, 3, i as u64).to_bits());
            assert_eq!(z[i].to_bits(), rng::normal(7, 3, i as u64).to_bits());
        }
    }
}

#[test]
fn uniforms_and_normals_have_the_right_moments() {
    let mut u = vec![0.0; 1 << 16];
    rng::fill_uniform(42, 0, &mut u);
    assert!(u.iter().all(|&u| (0.0..1.0).contains(&u)));
    let centred: Vec<f32> = u.iter().map(|&u| u - 0.5).collect();
    assert_moments("uniform", &centred, 1.0 / 12.0);
    let mut z = vec![0.0; 1 << 16];
    rng::fill_normal(42, 1, &mut z);
    assert!(z.iter().all(|z| z.is_finite()));
    assert_moments("normal", &z, 1.0);
    // Pinned values: a change of algorithm or layout shows here.
    assert_eq!(rng::uniform(0, 0, 0), (0x6627e8d5u32 >> 8) as f32 / (1u32 << 24) as f32);
}

#[test]
fn other_seeds_and_streams_give_other_numbers() {
    let draw =
        |seed, stream| (0..64).map(|i| rng::uniform(seed, stream, i).to_bits()).collect::<Vec<_>>();
    assert_eq!(draw(1, 2), draw(1, 2));
    assert_ne!(draw(1, 2), draw(2, 2));
    assert_ne!(draw(1, 2), draw(1, 3));
}

fn key(step: u64, layer: u16) -> DropoutKey {
    DropoutKey { seed: 1234, step, layer, first: 0 }
}

#[test]
fn dropout_masks_are_deterministic_and_keyed() {
    let drop = Dropout::new(0.3).unwrap();
    let x = vec![1.0f32; 1001];
    let mask = |k| {
        let mut y = vec![0.0; x.len()];
        drop.forward(k, &x, &mut y).unwrap();
        y
    };
    let y = mask(key(5, 2));
    assert_eq!(y, mask(key(5, 2)), "same key, same mask");
    assert_ne!(y, mask(key(6, 2)), "next step, new mask");
    assert_ne!(y, mask(key(5, 3)), "other layer, other mask");
    assert_ne!(y, mask(DropoutKey { seed: 1, ..key(5, 2) }), "other seed, other mask");
    let scale = 1.0 / 0.7f32;
    for (i, &y) in y.iter().enumerate() {
        let kept = drop.keeps(key(5, 2), i as u64);
        assert_eq!(y, if kept { scale } else { 0.0 }, "element {i}");
    }
}

#[test]
fn dropout_keeps_about_one_minus_p() {
    for p in [0.1f32, 0.5, 0.9] {
        let drop = Dropout::new(p).unwrap();
        let mut x = vec![1.0f32; 100_000];
        drop.forward_in_place(key(1, 0), &mut x);
        let kept = x.iter().filter(|&&x| x != 0.0).count() as f64 / x.len() as f64;
        let sd = (f64::from(p) * f64::from(1.0 - p) / x.len() as f64).sqrt();
        assert!((kept - f64::from(1.0 - p)).abs() < 5.0 * sd, "p = {p}: kept {kept}");
        // Inverted scaling keeps the mean.
        let mean = x.iter().map(|&x| f64::from(x)).sum::<f64>() / x.len() as f64;
        assert!((mean - 1.0).abs() < 5.0 * sd / f64::from(1.0 - p), "p = {p}: mean {mean}");
    }
}

#[test]
fn dropout_backward_regenerates_the_forward_mask() {
    let drop = Dropout::new(0.5).unwrap();
    let k = key(9, 1);
    let x = common::fill(37, 1, 0.5, 1.5);
    let dy = common::fill(37, 2, -1.0, 1.0);
    let mut y = vec![0.0; 37];
    drop.forward(k, &x, &mut y).unwrap();
    let mut dx = vec![0.0; 37];
    drop.backward(k, &dy, &mut dx).unwrap();
    // Linear, so d(Σ dy·y)/dx_i = y_i/x_i · dy_i exactly.
    for i in 0..37 {
        assert_eq!(dx[i], if y[i] == 0.0 { 0.0 } else { 2.0 * dy[i] }, "element {i}");
    }
    let mut g = dy.clone();
    drop.backward_in_place(k, &mut g);
    assert_eq!(g, dx);
}

#[test]
fn dropout_edge_probabilities_and_inference() {
    let x = common::fill(10, 3, -1.0, 1.0);
    let mut y = vec![f32::NAN; 10];
    Dropout::new(0.0).unwrap().forward(key(0, 0), &x, &mut y).unwrap();
    assert_eq!(y, x, "p = 0 is the identity");
    Dropout::new(1.0).unwrap().forward(key(0, 0), &x, &mut y).unwrap();
    assert_eq!(y, vec![0.0; 10], "p = 1 drops everything");
    Dropout::new(0.5).unwrap().forward_eval(&x, &mut y).unwrap();
    assert_eq!(y, x, "inference is the identity");
    for p in [-0.1, 1.1, f32::NAN] {
        assert!(Dropout::new(p).is_err(), "p = {p}");
    }
    let drop = Dropout::new(0.5).unwrap();
    assert!(drop.forward(key(0, 0), &x, &mut [0.0; 9]).is_err());
    assert!(drop.backward(key(0, 0), &x, &mut [0.0; 11]).is_err());
    assert!(drop.forward_eval(&x, &mut [0.0; 3]).is_err());
}

#[test]
fn fans_follow_pytorch() {
    // Conv2d(6 → 16, 5x5): weight [16, 6, 5, 5].
    let conv = Fans::conv2d(16, 6, 5, 5);
    assert_eq!((conv.fan_in, conv.fan_out, conv.outputs, conv.numel), (150, 400, 16, 2400));
    assert_eq!(Fans::of_shape(&[16, 6, 5, 5]), Some(conv));
    // Grouped conv (groups 4, 8 → 12): weight [12, 2, 3, 3].
    let grouped = Fans::conv2d(12, 8 / 4, 3, 3);
    assert_eq!((grouped.fan_in, grouped.fan_out), (18, 108));
    let dense = Fans::dense(120, 400);
    assert_eq!((dense.fan_in, dense.fan_out, dense.numel), (400, 120, 48_000));
    assert_eq!(Fans::of_shape(&[120, 400]), Some(dense));
    assert_eq!(Fans::of_shape(&[5]), None);
    assert!((init::gain(Nonlinearity::Relu) - 2f64.sqrt()).abs() < 1e-15);
    assert_eq!(init::gain(Nonlinearity::Tanh), 5.0 / 3.0);
    assert_eq!(init::gain(Nonlinearity::Linear), 1.0);
    assert!(
        (init::gain(Nonlinearity::LeakyRelu(5f64.sqrt())) - (1.0f64 / 3.0).sqrt()).abs() < 1e-15
    );
}

#[test]
fn initialisers_have_the_variance_of_their_formulas() {
    let dense = Fans::dense(300, 200);
    let conv = Fans::conv2d(64, 32, 3, 3);
    let g = init::gain(Nonlinearity::Relu);
    type Init = Box<dyn Fn(&mut [f32], Fans) -> Result<(), netc_runtime::LenError>>;
    type Variance = fn(Fans) -> f64;
    let cases: Vec<(&str, Init, Variance)> = vec![
        ("lecun_uniform", Box::new(|w, f| init::lecun_uniform(w, f, 1, 0)), |f| {
            1.0 / f.fan_in as f64
        }),
        ("lecun_normal", Box::new(|w, f| init::lecun_normal(w, f, 1, 0)), |f| {
            1.0 / f.fan_in as f64
        }),
        ("xavier_uniform", Box::new(|w, f| init::xavier_uniform(w, f, 1.0, 1, 0)), |f| {
            2.0 / (f.fan_in + f.fan_out) as f64
        }),
        ("xavier_normal", Box::new(|w, f| init::xavier_normal(w, f, 1.0, 1, 0)), |f| {
            2.0 / (f.fan_in + f.fan_out) as f64
        }),
        (
            "kaiming_uniform",
            Box::new(move |w, f| init::kaiming_uniform(w, f, FanMode::FanIn, g, 1, 0)),
            |f| 2.0 / f.fan_in as f64,
        ),
        (
            "kaiming_normal",
            Box::new(move |w, f| init::kaiming_normal(w, f, FanMode::FanOut, g, 1, 0)),
            |f| 2.0 / f.fan_out as f64,
        ),
        ("default_weight", Box::new(|w, f| init::default_weight(w, f, 1, 0)), |f| {
            1.0 / (3.0 * f.fan_in as f64)
        }),
    ];
    for (name, fill, var) in &cases {
        for fans in [dense, conv] {
            let mut w = vec![f32::NAN; fans.numel];
            fill(&mut w, fans).unwrap();
            assert_moments(name, &w, var(fans));
            assert!(fill(&mut w[1..], fans).is_err(), "{name}: wrong length");
        }
    }
}

#[test]
fn pytorch_default_init_bounds_are_one_over_sqrt_fan_in() {
    let fans = Fans::conv2d(32, 16, 3, 3);
    let bound = 1.0 / (144f32).sqrt();
    let mut w = vec![0.0; fans.numel];
    init::default_weight(&mut w, fans, 5, 0).unwrap();
    assert!(w.iter().all(|w| w.abs() <= bound));
    assert!(w.iter().any(|&w| w > 0.99 * bound) && w.iter().any(|&w| w < -0.99 * bound));
    let mut b = vec![0.0; 32];
    init::default_bias(&mut b, fans, 5, 1).unwrap();
    assert!(b.iter().all(|b| b.abs() <= bound));
    assert!(init::default_bias(&mut b[1..], fans, 5, 1).is_err());
    // Same as kaiming_uniform(a = √5).
    let mut k = vec![0.0; fans.numel];
    let gain = init::gain(Nonlinearity::LeakyRelu(5f64.sqrt()));
    init::kaiming_uniform(&mut k, fans, FanMode::FanIn, gain, 5, 0).unwrap();
    common::assert_close("kaiming a=√5", &k, &w, 1e-7, 1e-6);
}

#[test]
fn initialisation_is_reproducible_by_seed_and_stream() {
    let fans = Fans::dense(10, 10);
    let run = |seed, stream| {
        let mut w = vec![0.0; 100];
        init::xavier_normal(&mut w, fans, 1.0, seed, stream).unwrap();
        w.iter().map(|w| w.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(run(3, 4), run(3, 4));
    assert_ne!(run(3, 4), run(4, 4));
    assert_ne!(run(3, 4), run(3, 5));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Stochastic depth against the reference's masks, drawn from the
    /// definition, over odd batch and sample sizes, in both modes, through
    /// the kernel and the generated code's entry points; the backward
    /// applies the forward's mask. `p` values whose `(1 − p)·2²⁴` is whole,
    /// where the reference's f64 comparison and the kernel's integer one
    /// cannot differ.
    #[test]
    fn stochastic_depth_matches_the_reference(
        n in 1usize..40, per_sample in 1usize..13, which_p in 0usize..4, batch in any::<bool>(),
        step in 0u64..1000, layer in 0u16..9, seed in any::<u64>(),
    ) {
        let p = [0.0f32, 0.125, 0.5, 0.75][which_p];
        let mode = if batch { DepthMode::Batch } else { DepthMode::Row };
        let k = DropoutKey { seed, step, layer, first: 0 };
        let x = common::fill(n * per_sample, seed ^ 5, -2.0, 2.0);
        let want = reference::stochastic_depth(f64::from(p), k, mode, per_sample, &x);
        let drop = Dropout::new(p).unwrap();
        let mut y = vec![f32::NAN; x.len()];
        drop.depth_forward(k, mode, per_sample, &x, &mut y).unwrap();
        // Within the rounding of `1/(1 − p)` to f32.
        common::check_close("y", &y, &want, 0.0, 2e-7).map_err(TestCaseError::fail)?;
        let (fwd, bwd): (Entry, Entry) = if batch {
            (nn::stochastic_depth_batch_forward, nn::stochastic_depth_batch_backward)
        } else {
            (nn::stochastic_depth_forward, nn::stochastic_depth_backward)
        };
        let masks = MaskKey { seed, step, first_sample: 0 };
        let mut y2 = vec![f32::NAN; x.len()];
        fwd(p, masks, layer, per_sample, &x, &mut y2).unwrap();
        prop_assert_eq!(&y2, &y);
        let mut dx = vec![f32::NAN; x.len()];
        bwd(p, masks, layer, per_sample, &x, &mut dx).unwrap();
        prop_assert_eq!(&dx, &y);
    }

    /// A batch split at any sample into two passes, the second numbering
    /// its samples from the split, draws the whole batch's masks: dropout
    /// and both modes of stochastic depth, forward and backward.
    #[test]
    fn a_split_batch_draws_the_whole_batch_masks(
        n in 2usize..30, per_sample in 1usize..11, split in 1usize..29, step in 0u64..100,
        seed in any::<u64>(), which_p in 0usize..3,
    ) {
        let split = split.min(n - 1);
        let p = [0.125f32, 0.5, 0.875][which_p];
        let x = common::fill(n * per_sample, seed ^ 3, -2.0, 2.0);
        let whole = MaskKey { seed, step, first_sample: 0 };
        let (head, tail) = x.split_at(split * per_sample);
        let kernels: [Entry; 6] = [
            nn::dropout_forward, nn::dropout_backward,
            nn::stochastic_depth_forward, nn::stochastic_depth_backward,
            nn::stochastic_depth_batch_forward, nn::stochastic_depth_batch_backward,
        ];
        for kernel in kernels {
            let mut all = vec![f32::NAN; x.len()];
            kernel(p, whole, 3, per_sample, &x, &mut all).unwrap();
            let mut parts = vec![f32::NAN; x.len()];
            let (first, second) = parts.split_at_mut(split * per_sample);
            kernel(p, whole, 3, per_sample, head, first).unwrap();
            let rest = MaskKey { first_sample: split as u64, ..whole };
            kernel(p, rest, 3, per_sample, tail, second).unwrap();
            prop_assert_eq!(&parts, &all);
        }
    }
}

type Entry = fn(f32, MaskKey, u16, usize, &[f32], &mut [f32]) -> Result<(), netc_runtime::Error>;

/// Row mode drops whole samples, about `p` of them, each decided on its
/// own; batch mode keeps or drops the batch at once; `p = 0` is the
/// identity, and a bad `p` an error.
#[test]
fn stochastic_depth_drops_whole_samples() {
    let (n, per_sample) = (20_000, 3);
    let x = vec![1.0f32; n * per_sample];
    let drop = Dropout::new(0.25).unwrap();
    let mut y = vec![f32::NAN; x.len()];
    drop.depth_forward(key(3, 1), DepthMode::Row, per_sample, &x, &mut y).unwrap();
    let mut kept = 0;
    for sample in y.chunks(per_sample) {
        assert!(sample.iter().all(|&v| v == sample[0]), "one decision per sample: {sample:?}");
        assert!(sample[0] == 0.0 || sample[0] == 1.0 / 0.75, "{sample:?}");
        kept += usize::from(sample[0] != 0.0);
    }
    let sd = (0.25f64 * 0.75 / n as f64).sqrt();
    assert!((kept as f64 / n as f64 - 0.75).abs() < 5.0 * sd, "kept {kept} of {n}");

    let mut outcomes = Vec::new();
    for step in 0..40 {
        let mut y = vec![f32::NAN; 12];
        drop.depth_forward(key(step, 1), DepthMode::Batch, 3, &x[..12], &mut y).unwrap();
        assert!(y.iter().all(|&v| v == y[0]), "one decision per batch: {y:?}");
        outcomes.push(y[0] != 0.0);
    }
    assert!(outcomes.contains(&true) && outcomes.contains(&false), "{outcomes:?}");

    let mut y = vec![f32::NAN; 6];
    let masks = MaskKey { seed: 1, step: 1, first_sample: 0 };
    nn::stochastic_depth_forward(0.0, masks, 1, 3, &x[..6], &mut y).unwrap();
    assert_eq!(y, &x[..6], "p = 0 keeps everything unscaled");
    let err = nn::stochastic_depth_forward(1.5, masks, 1, 3, &x[..6], &mut y).unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
    let err = nn::stochastic_depth_forward(0.5, masks, 1, 3, &x[..6], &mut y[..5]).unwrap_err();
    assert!(err.to_string().contains("`y`"), "{err}");
    let err = nn::stochastic_depth_forward(0.5, masks, 1, 4, &x[..6], &mut y).unwrap_err();
    assert!(err.to_string().contains("`x`"), "a partial sample: {err}");
}
