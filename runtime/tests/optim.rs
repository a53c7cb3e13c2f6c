//! SGD, Adam and AdamW: hand-computed steps for every feature (momentum,
//! Nesterov, weight decay, bias correction, decoupled decay), random runs
//! against the f64 reference, per-tensor state slices, and bad input as
//! errors.

mod common;

use common::fill;
use netc_runtime::optim::{Adam, AdamMoments, AdamState, AdamW, OptimizerError, Sgd, SgdState};
use netc_runtime::reference;
use proptest::prelude::*;

fn assert_near(got: f32, want: f64, what: &str) {
    assert!(
        (f64::from(got) - want).abs() <= 1e-6 * (1.0 + want.abs()),
        "{what}: {got}, expected {want}"
    );
}

/// Runs `sgd` for `grads.len()` steps on a one-element tensor from `p0`.
fn sgd_trace(sgd: Sgd, p0: f32, grads: &[f32]) -> Vec<f32> {
    let mut state = SgdState::new(1);
    let mut p = [p0];
    grads
        .iter()
        .map(|&g| {
            sgd.step(state.buffer_mut(), &mut p, &[g]).unwrap();
            p[0]
        })
        .collect()
}

#[test]
fn sgd_by_hand() {
    // Plain: p = 1 − 0.1·0.5.
    assert_near(sgd_trace(Sgd::new(0.1), 1.0, &[0.5])[0], 0.95, "plain");

    // Momentum 0.9, gradient 1: buffers 1, 1.9, 2.71.
    let momentum =
        Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0, clip_norm: None };
    for (got, want) in sgd_trace(momentum, 1.0, &[1.0; 3]).into_iter().zip([0.9, 0.71, 0.439]) {
        assert_near(got, want, "momentum");
    }

    // Nesterov: updates g + 0.9·b = 1.9, 2.71, 3.439.
    let nesterov = Sgd { nesterov: true, ..momentum };
    for (got, want) in sgd_trace(nesterov, 1.0, &[1.0; 3]).into_iter().zip([0.81, 0.539, 0.1951]) {
        assert_near(got, want, "nesterov");
    }

    // L2 decay 0.1 with no gradient: p·(1 − 0.5·0.1) each step.
    let decay = Sgd { lr: 0.5, momentum: 0.0, nesterov: false, weight_decay: 0.1, clip_norm: None };
    for (got, want) in sgd_trace(decay, 2.0, &[0.0; 2]).into_iter().zip([1.9, 1.805]) {
        assert_near(got, want, "weight decay");
    }

    // Decay enters the momentum buffer: b1 = 1 + 0.1·1 = 1.1, p1 = 0.89;
    // b2 = 0.9·1.1 + 1 + 0.089 = 2.079, p2 = 0.89 − 0.2079.
    let both = Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.1, clip_norm: None };
    for (got, want) in sgd_trace(both, 1.0, &[1.0; 2]).into_iter().zip([0.89, 0.6821]) {
        assert_near(got, want, "momentum + decay");
    }
}

/// Runs an Adam-like `step` for `grads.len()` steps from `p0`.
fn adam_trace(
    step: impl Fn(u64, &mut AdamState, &mut [f32], &[f32]) -> Result<(), OptimizerError>,
    p0: f32,
    grads: &[f32],
) -> Vec<f32> {
    let mut state = AdamState::new(1);
    let mut p = [p0];
    (1..)
        .zip(grads)
        .map(|(t, &g)| {
            step(t, &mut state, &mut p, &[g]).unwrap();
            p[0]
        })
        .collect()
}

/// State that decays below f32's normal range is flushed to zero (x86
/// computes on subnormals a hundred times slower), and only that: a
/// normal value just above the range keeps decaying as PyTorch's would.
#[test]
fn decayed_state_is_flushed_below_the_normal_range() {
    let tiny = f32::MIN_POSITIVE;
    let sgd = Sgd { lr: 0.1, momentum: 0.5, nesterov: false, weight_decay: 0.0, clip_norm: None };
    let (mut p, mut b) = ([1.0f32, 1.0], [tiny, 4.0 * tiny]);
    sgd.step(&mut b, &mut p, &[0.0, 0.0]).unwrap();
    assert_eq!(b, [0.0, 2.0 * tiny], "half of the smallest normal is subnormal");

    let (mut p, mut m, mut v) = ([1.0f32, 1.0], [tiny, 20.0 * tiny], [0.0f32, 0.0]);
    let moments = AdamMoments { m: &mut m, v: &mut v };
    Adam::new(1e-3).step(1, moments, &mut p, &[0.0, 0.0]).unwrap();
    assert_eq!(m[0], 0.0, "0.9 of the smallest normal is subnormal");
    assert!(m[1].is_normal() && m[1] < 20.0 * tiny, "{}", m[1]);
}

#[test]
fn adam_by_hand() {
    let adam = Adam::new(0.1);
    let run =
        |a: Adam, p0, g: &[f32]| adam_trace(|t, s, p, g| a.step(t, s.moments_mut(), p, g), p0, g);

    // A constant gradient moves by lr per step: bias correction makes
    // m̂ = g and v̂ = g² from the first step.
    for (got, want) in run(adam, 1.0, &[2.0; 3]).into_iter().zip([0.9, 0.8, 0.7]) {
        assert_near(got, want, "constant gradient");
    }

    // Gradients 1 then −1: m2 = −0.01, v2 = 0.001999, m̂ = −0.01/0.19,
    // v̂ = 1, so p2 = 0.9 + 0.1·0.01/0.19. Without the correction the step
    // would be 0.1·0.01/√0.001999 ≈ 0.022.
    let got = run(adam, 1.0, &[1.0, -1.0]);
    assert_near(got[1], 0.9 + 0.1 * 0.01 / 0.19, "bias correction");

    // eps outside the square root: a gradient of 1e-6 gives
    // p −= 0.1 · 1e-6 / (1e-6 + 1e-4).
    let got = run(Adam { eps: 1e-4, ..adam }, 0.0, &[1e-6]);
    assert_near(got[0], -0.1 * 1e-6 / (1e-6 + 1e-4), "eps outside sqrt");

    // L2 decay is coupled: with no gradient, g = 0.5·p = 0.5 still moves p
    // by lr, the sign-like Adam step.
    let got = run(Adam { weight_decay: 0.5, ..adam }, 1.0, &[0.0]);
    assert_near(got[0], 0.9, "adam L2");
}

#[test]
fn adamw_by_hand() {
    let adamw = AdamW { weight_decay: 0.5, ..AdamW::new(0.1) };
    let run =
        |a: AdamW, p0, g: &[f32]| adam_trace(|t, s, p, g| a.step(t, s.moments_mut(), p, g), p0, g);

    // Decoupled: with no gradient only the shrink p·(1 − 0.1·0.5) acts.
    for (got, want) in run(adamw, 1.0, &[0.0; 2]).into_iter().zip([0.95, 0.9025]) {
        assert_near(got, want, "decoupled decay alone");
    }
    // With gradient 2: 1·0.95 − 0.1.
    assert_near(run(adamw, 1.0, &[2.0])[0], 0.85, "decay then Adam step");
    assert_eq!(AdamW::new(1e-3).weight_decay, 0.01, "PyTorch's AdamW default");
}

#[derive(Debug, Clone)]
struct Run {
    len: usize,
    steps: usize,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    wd: f64,
    seed: u64,
}

fn run_strategy() -> impl Strategy<Value = Run> {
    (0usize..40, 1usize..7, 0.001f64..0.3, prop_oneof![Just(0.0), 0.0f64..0.99], any::<bool>())
        .prop_flat_map(|(len, steps, lr, momentum, nesterov)| {
            (
                Just((len, steps, lr, momentum, nesterov)),
                prop_oneof![Just(0.0), 0.0f64..0.1],
                any::<u64>(),
            )
        })
        .prop_map(|((len, steps, lr, momentum, nesterov), wd, seed)| Run {
            len,
            steps,
            lr,
            momentum,
            nesterov,
            wd,
            seed,
        })
}

fn close(got: &[f32], want: &[f64], tol: f64) -> Result<(), TestCaseError> {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (f64::from(g) - w).abs() <= tol * (1.0 + w.abs());
        prop_assert!(ok, "p[{}] = {}, reference {}", i, g, w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sgd_matches_reference(r in run_strategy()) {
        let sgd = Sgd { lr: r.lr, momentum: r.momentum, nesterov: r.nesterov, weight_decay: r.wd, clip_norm: None };
        let mut p = fill(r.len, r.seed, -1.0, 1.0);
        let mut p64: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
        let mut state = SgdState::new(r.len);
        let mut buf64 = vec![0.0; r.len];
        for s in 0..r.steps {
            let g = fill(r.len, r.seed + 1 + s as u64, -1.0, 1.0);
            let g64: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
            sgd.step(state.buffer_mut(), &mut p, &g).unwrap();
            reference::sgd_step(r.lr, r.momentum, r.nesterov, r.wd, s == 0, &mut buf64, &mut p64, &g64);
        }
        close(&p, &p64, 1e-5)?;
    }

    #[test]
    fn adam_and_adamw_match_reference(r in run_strategy(), decoupled in any::<bool>()) {
        let (beta1, beta2, eps) = (0.9, 0.999, 1e-8);
        let mut p = fill(r.len, r.seed, -1.0, 1.0);
        let mut p64: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
        let mut state = AdamState::new(r.len);
        let (mut m64, mut v64) = (vec![0.0; r.len], vec![0.0; r.len]);
        for t in 1..=r.steps as u64 {
            let g = fill(r.len, r.seed + t, -1.0, 1.0);
            let g64: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
            if decoupled {
                let opt = AdamW { lr: r.lr, beta1, beta2, eps, weight_decay: r.wd, clip_norm: None };
                opt.step(t, state.moments_mut(), &mut p, &g).unwrap();
            } else {
                let opt = Adam { lr: r.lr, beta1, beta2, eps, weight_decay: r.wd, clip_norm: None };
                opt.step(t, state.moments_mut(), &mut p, &g).unwrap();
            }
            reference::adam_step(
                r.lr, beta1, beta2, eps, r.wd, decoupled, t, &mut m64, &mut v64, &mut p64, &g64,
            );
        }
        close(&p, &p64, 2e-5)?;
    }
}

/// Two tensors updated per step through slices of one flat state equal one
/// call over the flat buffer: the step count is shared, not per tensor.
#[test]
fn per_tensor_state_slices_equal_one_flat_step() {
    let (a, b) = (5, 8);
    let adam = Adam { weight_decay: 0.01, ..Adam::new(0.01) };
    let sgd = Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01, clip_norm: None };
    let mut flat = fill(a + b, 1, -1.0, 1.0);
    let (mut wa, mut wb) = (flat[..a].to_vec(), flat[a..].to_vec());
    let mut flat_sgd = flat.clone();
    let (mut sa, mut sb) = (wa.clone(), wb.clone());
    let mut flat_state = AdamState::new(a + b);
    let mut split_state = AdamState::new(a + b);
    let mut flat_sgd_state = SgdState::new(a + b);
    let mut split_sgd_state = SgdState::new(a + b);
    for t in 1..=4 {
        let g = fill(a + b, 10 + t, -1.0, 1.0);
        adam.step(t, flat_state.moments_mut(), &mut flat, &g).unwrap();
        adam.step(t, split_state.tensor_mut(0, a).unwrap(), &mut wa, &g[..a]).unwrap();
        adam.step(t, split_state.tensor_mut(a, b).unwrap(), &mut wb, &g[a..]).unwrap();
        sgd.step(flat_sgd_state.buffer_mut(), &mut flat_sgd, &g).unwrap();
        sgd.step(split_sgd_state.tensor_mut(0, a).unwrap(), &mut sa, &g[..a]).unwrap();
        sgd.step(split_sgd_state.tensor_mut(a, b).unwrap(), &mut sb, &g[a..]).unwrap();
    }
    assert_eq!(flat, [wa, wb].concat());
    assert_eq!(flat_sgd, [sa, sb].concat());
    assert_eq!(flat_state, split_state);
}

/// A tensor big enough to be split across the pool steps exactly as the
/// same tensor stepped in small, sequential slices: the split changes who
/// computes each element, never the arithmetic.
#[test]
fn big_tensors_on_the_pool_equal_sequential_slices() {
    let len = 3 * (1 << 15) + 7;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let slices = |len: usize| (0..len).step_by(1000).map(move |a| (a, 1000.min(len - a)));
    let adam = Adam { weight_decay: 0.01, ..Adam::new(0.01) };
    let adamw = AdamW::new(0.01);
    let sgds = [
        Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01, clip_norm: None },
        Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0, clip_norm: None },
        Sgd { lr: 0.1, momentum: 0.0, nesterov: false, weight_decay: 0.01, clip_norm: None },
    ];
    for t in 1..=3u64 {
        let g = fill(len, 20 + t, -1.0, 1.0);
        let p0 = fill(len, 40 + t, -1.0, 1.0);
        for sgd in sgds {
            let (mut whole, mut parts) = (p0.clone(), p0.clone());
            let (mut ws, mut ps) = (SgdState::new(len), SgdState::new(len));
            pool.install(|| sgd.step(ws.buffer_mut(), &mut whole, &g)).unwrap();
            for (a, n) in slices(len) {
                let buf = ps.tensor_mut(a, n).unwrap();
                sgd.step(buf, &mut parts[a..a + n], &g[a..a + n]).unwrap();
            }
            assert_eq!(whole, parts, "{sgd:?}");
            assert_eq!(ws, ps, "{sgd:?}");
        }
        let (mut whole, mut parts) = (p0.clone(), p0.clone());
        let (mut ws, mut ps) = (AdamState::new(len), AdamState::new(len));
        pool.install(|| adam.step(t, ws.moments_mut(), &mut whole, &g)).unwrap();
        pool.install(|| adamw.step(t, ws.moments_mut(), &mut whole, &g)).unwrap();
        for (a, n) in slices(len) {
            let (p, g) = (&mut parts[a..a + n], &g[a..a + n]);
            adam.step(t, ps.tensor_mut(a, n).unwrap(), p, g).unwrap();
            adamw.step(t, ps.tensor_mut(a, n).unwrap(), p, g).unwrap();
        }
        assert_eq!(whole, parts);
        assert_eq!(ws, ps);
    }
}

#[test]
fn bad_input_is_an_error() {
    let mut p = [0.0f32; 4];
    let g = [0.0f32; 4];
    let sgd = Sgd::new(0.1);
    assert_eq!(sgd.step(&mut [0.0; 4], &mut p, &g[..3]).unwrap_err().tensor, "grads");
    let momentum = Sgd { momentum: 0.9, ..sgd };
    assert_eq!(momentum.step(&mut [0.0; 3], &mut p, &g).unwrap_err().tensor, "momentum_buf");
    // Without momentum there is no buffer to pass.
    assert!(sgd.step(&mut [], &mut p, &g).is_ok());
    let mut state = AdamState::new(4);
    let adam = Adam::new(0.1);
    let zero_step = OptimizerError::ZeroStep { optimizer: "adam" };
    assert_eq!(adam.step(0, state.moments_mut(), &mut p, &g), Err(zero_step.clone()));
    assert_eq!(zero_step.to_string(), "adam: `step` is 1-based, found 0");
    let adamw_zero = AdamW::new(0.1).step(0, state.moments_mut(), &mut p, &g);
    assert_eq!(adamw_zero, Err(OptimizerError::ZeroStep { optimizer: "adamw" }));
    // A generated model reports it as its own variant, not as a weights error.
    let model_error = netc_runtime::Error::from(zero_step);
    assert!(matches!(model_error, netc_runtime::Error::Optimizer(_)), "{model_error:?}");
    assert_eq!(model_error.to_string(), "adam: `step` is 1-based, found 0");
    assert!(matches!(
        adam.step(1, state.tensor_mut(0, 3).unwrap(), &mut p, &g),
        Err(OptimizerError::Len(e)) if e.tensor == "m"
    ));
    assert!(AdamW::new(0.1).step(1, state.moments_mut(), &mut p, &g[..2]).is_err());
    assert!(state.tensor_mut(2, 3).is_err());
    assert!(state.tensor_mut(usize::MAX, 2).is_err());
    assert!(SgdState::new(4).tensor_mut(4, 1).is_err());
    assert_eq!(p, [0.0; 4], "refused steps write nothing");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Clipping by the global norm over several tensors of odd sizes,
    /// against the f64 reference, with `max_norm` both above and below
    /// the norm.
    #[test]
    fn clip_grad_norm_matches_reference(
        sizes in proptest::collection::vec(0usize..5000, 1..5),
        seed in any::<u64>(),
        max_norm in 0.01f64..100.0,
    ) {
        let mut grads: Vec<Vec<f32>> =
            sizes.iter().enumerate().map(|(i, &n)| fill(n, seed + i as u64, -1.0, 1.0)).collect();
        let mut want: Vec<Vec<f64>> =
            grads.iter().map(|g| g.iter().map(|&v| f64::from(v)).collect()).collect();
        let want_norm = reference::clip_grad_norm(&mut want, max_norm);
        let mut views: Vec<&mut [f32]> = grads.iter_mut().map(|g| &mut g[..]).collect();
        let norm = netc_runtime::optim::clip_grad_norm(&mut views, max_norm);
        prop_assert!((norm - want_norm).abs() <= 1e-5 * (1.0 + want_norm), "{} vs {}", norm, want_norm);
        for (g, w) in grads.iter().zip(&want) {
            for (&g, &w) in g.iter().zip(w) {
                prop_assert!((f64::from(g) - w).abs() <= 1e-6 * (1.0 + w.abs()), "{} vs {}", g, w);
            }
        }
    }
}

#[test]
fn clipping_leaves_small_gradients_alone_and_turns_fusion_off() {
    let mut a = [3.0f32, 0.0];
    let mut b = [4.0f32];
    // Norm 5: a max of 10 leaves the gradients as they are.
    assert_eq!(netc_runtime::optim::clip_grad_norm(&mut [&mut a, &mut b], 10.0), 5.0);
    assert_eq!((a, b), ([3.0, 0.0], [4.0]));
    // A max of 1 scales them by 1/(5 + 1e-6).
    netc_runtime::optim::clip_grad_norm(&mut [&mut a, &mut b], 1.0);
    assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6, "{a:?} {b:?}");
    // Zero gradients stay zero (the 1e-6 keeps the scale finite).
    let mut z = [0.0f32; 3];
    assert_eq!(netc_runtime::optim::clip_grad_norm(&mut [&mut z], 1.0), 0.0);
    assert_eq!(z, [0.0; 3]);
    let sgd = Sgd { momentum: 0.9, ..Sgd::new(0.1) };
    assert!(sgd.fusable());
    assert!(!Sgd { clip_norm: Some(1.0), ..sgd }.fusable(), "the scale needs every gradient first");
}
