//! Dense layers against the definition in f64, including the fused bias,
//! activation and ReLU mask, over odd sizes and batch 1, on each side of
//! batch 8 (streamed passes up to it; past it the GEMM, or the dot-product
//! forward on AVX-512); and the bf16 forward and backward-data passes,
//! against the definition on the operands rounded to bf16 where they take
//! the bf16 GEMM.

use netc_runtime::bf16::quantize;
use netc_runtime::dense::bf16::{dense_backward_data_bf16, dense_forward_bf16, pays};
use netc_runtime::dense::{
    dense_backward_data, dense_backward_weights, dense_backward_weights_sgd, dense_forward, Dense,
};
use netc_runtime::gemm::{Activation, Par};
use netc_runtime::optim::Sgd;
use proptest::prelude::*;

fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn close(a: f32, b: f64, terms: usize) -> bool {
    (f64::from(a) - b).abs() <= 1e-6 * (terms as f64 + 10.0) * (1.0 + b.abs())
}

proptest! {
    #[test]
    fn dense_passes_match_the_definition(
        n in 1usize..20, input in 1usize..40, output in 1usize..40, seed in any::<u64>(), masked in any::<bool>(),
        bf16 in any::<bool>(),
    ) {
        // The bf16 passes from the sizes where they pay, and a little past.
        let grow = if bf16 { 63 } else { 0 };
        let (n, input, output) = (n + grow, input + grow, output + grow);
        let s = Dense { n, input, output };
        let x = fill(n * input, seed);
        let w = fill(output * input, seed + 1);
        let b = fill(output, seed + 2);
        let dy = fill(n * output, seed + 3);
        let mask = fill(n * input, seed + 4);
        // What each pass multiplies: the values rounded to bf16 where it
        // takes the bf16 GEMM.
        let rounds = bf16 && pays(&s);
        let rounded = |v: &[f32]| -> Vec<f32> {
            v.iter().map(|&x| if rounds { quantize(x) } else { x }).collect()
        };
        let par = Par::Seq;

        let mut y = vec![f32::NAN; n * output];
        if bf16 {
            dense_forward_bf16(&s, &x, &w, Some(&b), Activation::Relu, &mut y, par).unwrap();
        } else {
            dense_forward(&s, &x, &w, Some(&b), Activation::Relu, &mut y, par).unwrap();
        }
        let (xq, wq) = (rounded(&x), rounded(&w));
        for r in 0..n {
            for o in 0..output {
                let z: f64 = f64::from(b[o]) + (0..input).map(|i| f64::from(xq[r * input + i]) * f64::from(wq[o * input + i])).sum::<f64>();
                prop_assert!(close(y[r * output + o], z.max(0.0), input), "y[{}][{}]", r, o);
            }
        }

        let mut dx = vec![f32::NAN; n * input];
        let mask = masked.then_some(&mask[..]);
        if bf16 {
            dense_backward_data_bf16(&s, &dy, &w, mask, &mut dx, par).unwrap();
        } else {
            dense_backward_data(&s, &dy, &w, mask, &mut dx, par).unwrap();
        }
        let dyq = rounded(&dy);
        for r in 0..n {
            for i in 0..input {
                let mut d: f64 = (0..output).map(|o| f64::from(dyq[r * output + o]) * f64::from(wq[o * input + i])).sum();
                if mask.is_some_and(|m| m[r * input + i] <= 0.0) {
                    d = 0.0;
                }
                prop_assert!(close(dx[r * input + i], d, output), "dx[{}][{}]", r, i);
            }
        }

        let mut dw = vec![f32::NAN; output * input];
        let mut db = vec![f32::NAN; output];
        dense_backward_weights(&s, &x, &dy, &mut dw, Some(&mut db), par).unwrap();
        for o in 0..output {
            let want_b: f64 = (0..n).map(|r| f64::from(dy[r * output + o])).sum();
            prop_assert!(close(db[o], want_b, n));
            for i in 0..input {
                let want: f64 = (0..n).map(|r| f64::from(dy[r * output + o]) * f64::from(x[r * input + i])).sum();
                prop_assert!(close(dw[o * input + i], want, n), "dw[{}][{}]", o, i);
            }
        }
    }
}

/// `steps` SGD steps on one dense layer, fused (`dense_backward_weights_sgd`)
/// and unfused (`dense_backward_weights`, then `Sgd::step`); returns the
/// largest relative difference of the weights, momentum and bias gradient.
fn fused_sgd_gap(s: Dense, sgd: Sgd, steps: u64, seed: u64, par: Par) -> f32 {
    let len = s.input * s.output;
    let mut fused = (fill(len, seed), vec![0.0; len], vec![f32::NAN; s.output]);
    let mut plain = fused.clone();
    let mut grads = vec![f32::NAN; len];
    for step in 0..steps {
        let (x, dy) =
            (fill(s.n * s.input, seed + 10 + step), fill(s.n * s.output, seed + 20 + step));
        let (w, b, db) = &mut fused;
        dense_backward_weights_sgd(&s, &x, &dy, w, b, Some(db), &sgd, par).unwrap();
        let (w, b, db) = &mut plain;
        dense_backward_weights(&s, &x, &dy, &mut grads, Some(db), par).unwrap();
        sgd.step(b, w, &grads).unwrap();
    }
    let gap = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0f32, f32::max)
    };
    gap(&fused.0, &plain.0).max(gap(&fused.1, &plain.1)).max(gap(&fused.2, &plain.2))
}

proptest! {
    #[test]
    fn the_fused_sgd_step_is_the_unfused_one(
        n in 0usize..9, input in 1usize..60, output in 1usize..60, seed in any::<u64>(),
        momentum in prop::sample::select(vec![0.0, 0.9]),
        weight_decay in prop::sample::select(vec![0.0, 5e-2]),
        steps in 1u64..4,
    ) {
        let sgd = Sgd { lr: 0.1, momentum, nesterov: false, weight_decay, clip_norm: None };
        let gap = fused_sgd_gap(Dense { n, input, output }, sgd, steps, seed, Par::Seq);
        // Only the order of the additions differs.
        prop_assert!(gap <= 1e-5, "gap {}", gap);
    }
}

/// The fused step flushes momentum that decays below f32's normal range,
/// as `Sgd::step` does: a zero gradient halves it each step here.
#[test]
fn the_fused_sgd_step_flushes_subnormal_momentum() {
    let tiny = f32::MIN_POSITIVE;
    let s = Dense { n: 1, input: 2, output: 1 };
    let sgd = Sgd { lr: 0.1, momentum: 0.5, nesterov: false, weight_decay: 0.0, clip_norm: None };
    let (mut w, mut b) = (vec![1.0f32; 2], vec![tiny, 4.0 * tiny]);
    dense_backward_weights_sgd(&s, &[0.0; 2], &[1.0], &mut w, &mut b, None, &sgd, Par::Seq)
        .unwrap();
    assert_eq!(b, [0.0, 2.0 * tiny]);
}

/// Large enough (over 4M multiply-adds) that the GEMM splits across
/// threads, both straight and transposed (5 columns), and each thread's
/// epilogue steps only its own weights.
#[test]
fn the_fused_sgd_step_is_the_unfused_one_on_the_pool() {
    for (input, output) in [(400, 200), (5, 20_000), (20_000, 5)] {
        for momentum in [0.0, 0.9] {
            let sgd =
                Sgd { lr: 0.05, momentum, nesterov: false, weight_decay: 1e-3, clip_norm: None };
            let gap = fused_sgd_gap(Dense { n: 64, input, output }, sgd, 3, 7, Par::Rayon);
            assert!(gap <= 1e-5, "{input}x{output}, momentum {momentum}: gap {gap}");
        }
    }
}

/// A batch longer than the GEMM's kc block (384 here): beta applies on the
/// first block only and the SGD step on the last only.
#[test]
fn the_fused_sgd_step_is_the_unfused_one_over_several_k_blocks() {
    for momentum in [0.0, 0.9] {
        let sgd = Sgd { lr: 0.05, momentum, nesterov: false, weight_decay: 1e-3, clip_norm: None };
        for par in [Par::Seq, Par::Rayon] {
            let gap = fused_sgd_gap(Dense { n: 1000, input: 37, output: 29 }, sgd, 2, 11, par);
            assert!(gap <= 1e-5, "momentum {momentum}, {par:?}: gap {gap}");
        }
    }
}

#[test]
fn a_nesterov_step_cannot_be_fused() {
    let s = Dense { n: 2, input: 3, output: 4 };
    let sgd = Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0, clip_norm: None };
    let (mut w, mut b) = (vec![1.0; 12], vec![0.0; 12]);
    let err =
        dense_backward_weights_sgd(&s, &[1.0; 6], &[1.0; 8], &mut w, &mut b, None, &sgd, Par::Seq)
            .unwrap_err();
    assert_eq!(err.tensor, "nesterov");
    assert!(w.iter().all(|&v| v == 1.0), "the weights were stepped");
}

/// Plain SGD with `lr·weight_decay = 1` makes the fused GEMM's beta 0, which
/// would not read (so not keep) a NaN weight: it is refused, untouched.
#[test]
fn a_step_that_zeroes_the_decayed_weights_cannot_be_fused() {
    use netc_runtime::nn::Optimizer;
    let s = Dense { n: 2, input: 3, output: 4 };
    let sgd = Sgd { lr: 0.5, momentum: 0.0, nesterov: false, weight_decay: 2.0, clip_norm: None };
    assert!(!sgd.fusable());
    assert!(Optimizer::Sgd(sgd).fusable_sgd().is_none());
    let mut w = vec![f32::NAN; 12];
    let err =
        dense_backward_weights_sgd(&s, &[1.0; 6], &[1.0; 8], &mut w, &mut [], None, &sgd, Par::Seq)
            .unwrap_err();
    assert_eq!(err.tensor, "weight_decay");
    assert!(w.iter().all(|v| v.is_nan()), "the weights were stepped");
}

#[test]
fn wrong_lengths_are_errors() {
    let s = Dense { n: 2, input: 3, output: 4 };
    let mut y = vec![0.0; 8];
    let err =
        dense_forward(&s, &[0.0; 6], &[0.0; 11], None, Activation::Identity, &mut y, Par::Seq)
            .unwrap_err();
    assert_eq!(err.tensor, "weight");
    let err = dense_forward(
        &s,
        &[0.0; 6],
        &[0.0; 12],
        Some(&[0.0; 3]),
        Activation::Identity,
        &mut y,
        Par::Seq,
    )
    .unwrap_err();
    assert_eq!(err.tensor, "bias");
}

/// Layers with no inputs or no outputs, at small and large batches: no
/// panic, and with no inputs the output is `act(bias)`.
#[test]
fn empty_rows_are_not_a_panic() {
    for n in [1, 2, 5, 40] {
        for (input, output) in [(0, 3), (3, 0), (0, 0)] {
            let s = Dense { n, input, output };
            let (x, w, b) = (fill(n * input, 1), fill(input * output, 2), fill(output, 3));
            let mut y = vec![f32::NAN; n * output];
            dense_forward(&s, &x, &w, Some(&b), Activation::Relu, &mut y, Par::Rayon)
                .expect("forward");
            for (i, v) in y.iter().enumerate() {
                assert_eq!(*v, b[i % output].max(0.0), "{s:?}: y[{i}]");
            }
            let dy = fill(n * output, 4);
            let mut dx = vec![f32::NAN; n * input];
            dense_backward_data(&s, &dy, &w, None, &mut dx, Par::Rayon).expect("backward data");
            assert!(dx.iter().all(|&v| v == 0.0), "{s:?}: dx of an empty layer");
            let (mut dw, mut db) = (vec![f32::NAN; input * output], vec![f32::NAN; output]);
            dense_backward_weights(&s, &x, &dy, &mut dw, Some(&mut db), Par::Rayon)
                .expect("backward weights");
            for (j, d) in db.iter().enumerate() {
                let want: f32 = (0..n).map(|r| dy[r * output + j]).sum();
                assert!((d - want).abs() <= 1e-5 * (1.0 + want.abs()), "{s:?}: db[{j}]");
            }
        }
    }
}

/// The streamed small-batch passes on every instruction set this CPU has,
/// on shapes that cross their blocks (2,500 inputs: two input blocks of the
/// forward, three column blocks of backward-data; 70 outputs: not a
/// multiple of 4 rows), odd batches, both sequential and on the pool.
#[test]
fn streamed_passes_match_the_definition_on_every_path() {
    use netc_runtime::dense::streamed;
    use netc_runtime::isa::Isa;
    for (n, par) in [(1, Par::Seq), (3, Par::Rayon), (8, Par::Rayon), (5, Par::Seq)] {
        let s = Dense { n, input: 2500, output: 70 };
        let (x, w, b) = (fill(n * s.input, 1), fill(s.output * s.input, 2), fill(s.output, 3));
        let (dy, mask) = (fill(n * s.output, 4), fill(n * s.input, 5));
        for &isa in Isa::supported() {
            let mut y = vec![f32::NAN; n * s.output];
            streamed::forward(&s, isa, &x, &w, Some(&b), Activation::Relu, &mut y, par).unwrap();
            for r in 0..n {
                for o in 0..s.output {
                    let z: f64 = f64::from(b[o])
                        + (0..s.input)
                            .map(|i| f64::from(x[r * s.input + i]) * f64::from(w[o * s.input + i]))
                            .sum::<f64>();
                    let got = y[r * s.output + o];
                    assert!(
                        close(got, z.max(0.0), s.input),
                        "{isa:?} n={n} y[{r}][{o}] = {got}, want {z}"
                    );
                }
            }
            let mut dx = vec![f32::NAN; n * s.input];
            streamed::backward_data(&s, isa, &dy, &w, Some(&mask), &mut dx, par).unwrap();
            for r in 0..n {
                for i in 0..s.input {
                    let mut d: f64 = (0..s.output)
                        .map(|o| f64::from(dy[r * s.output + o]) * f64::from(w[o * s.input + i]))
                        .sum();
                    if mask[r * s.input + i] <= 0.0 {
                        d = 0.0;
                    }
                    let got = dx[r * s.input + i];
                    assert!(
                        close(got, d, s.output),
                        "{isa:?} n={n} dx[{r}][{i}] = {got}, want {d}"
                    );
                }
            }
        }
    }
}

proptest! {
    /// The dot-product forward on every instruction set this CPU has, with
    /// tiles cut at every edge: batches not a multiple of 3 samples, outputs
    /// not a multiple of 8 rows, inputs not a multiple of 16 lanes, and past
    /// one input block (1,024); each activation kind, with and without bias,
    /// on one thread and on the pool, the weights at every offset from a
    /// cache line (`shift` floats), which must not change a bit of `y`.
    #[test]
    fn dot_forward_matches_the_definition_on_every_path(
        n in 1usize..14,
        input in prop_oneof![1usize..70, 1020usize..1100],
        output in 1usize..30,
        seed in any::<u64>(),
        activation in prop_oneof![Just(Activation::Identity), Just(Activation::Relu), Just(Activation::Tanh)],
        biased in any::<bool>(),
        pooled in any::<bool>(),
        shift in 0usize..16,
    ) {
        use netc_runtime::dense::dot;
        use netc_runtime::isa::Isa;
        let s = Dense { n, input, output };
        let (x, b) = (fill(n * input, seed), fill(output, seed + 2));
        let at_offset = |shift: usize| {
            let mut buf = vec![0.0f32; output * input + 32];
            let at = buf.as_ptr().align_offset(64) + shift;
            buf[at..at + output * input].copy_from_slice(&fill(output * input, seed + 1));
            (buf, at)
        };
        let (shifted, at) = at_offset(shift);
        let w = &shifted[at..at + output * input];
        let (aligned, at0) = at_offset(0);
        let w0 = &aligned[at0..at0 + output * input];
        let bias = biased.then_some(&b[..]);
        let par = if pooled { Par::Rayon } else { Par::Seq };
        for &isa in Isa::supported() {
            let mut y = vec![f32::NAN; n * output];
            dot::forward(&s, isa, &x, w, bias, activation, &mut y, par).unwrap();
            // Where the weights lie must not change the order of the sums.
            let mut y0 = vec![f32::NAN; n * output];
            dot::forward(&s, isa, &x, w0, bias, activation, &mut y0, par).unwrap();
            prop_assert!(
                y.iter().zip(&y0).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{:?}: weights {} floats off a line give other outputs", isa, shift
            );
            for r in 0..n {
                for o in 0..output {
                    let z = bias.map_or(0.0, |b| f64::from(b[o]))
                        + (0..input).map(|i| f64::from(x[r * input + i]) * f64::from(w[o * input + i])).sum::<f64>();
                    let want = match activation {
                        Activation::Relu => z.max(0.0),
                        Activation::Tanh => z.tanh(),
                        _ => z,
                    };
                    let got = y[r * output + o];
                    prop_assert!(close(got, want, input), "{:?} y[{}][{}] = {}, want {}", isa, r, o, got, want);
                }
            }
        }
    }
}
