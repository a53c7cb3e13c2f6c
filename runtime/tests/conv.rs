//! conv2d against the reference, on every algorithm, over random shapes with
//! odd sizes, padding larger than 1, strides, dilation, groups and batch 1;
//! and the reference's gradients against central finite differences in f64.

use netc_runtime::conv::winograd::{self, Isa};
use netc_runtime::conv::winograd_split;
use netc_runtime::conv::{
    conv2d_backward_data, conv2d_backward_data_depthwise, conv2d_backward_data_direct,
    conv2d_backward_data_using, conv2d_backward_weights, conv2d_backward_weights_depthwise,
    conv2d_backward_weights_direct, conv2d_backward_weights_using, conv2d_bn_forward_cached,
    conv2d_forward, conv2d_forward_bf16, conv2d_forward_cached, conv2d_forward_depthwise,
    conv2d_forward_direct, conv2d_forward_using, BatchNormParams, Conv2d, ConvAlgo, ForwardCache,
};
use netc_runtime::error::ConvError;
use netc_runtime::gemm::{Activation, Par};
use netc_runtime::reference::conv as reference;
use proptest::prelude::*;

mod common;
use common::conv::{assert_close, f64s, fill};

fn shape_strategy() -> impl Strategy<Value = Conv2d> {
    (
        (1usize..4, 1usize..4, 1usize..5),
        (1usize..13, 1usize..13),
        (1usize..5, 1usize..5, 1usize..4, 1usize..4),
        (0usize..4, 0usize..3, 1usize..3, 1usize..3),
    )
        .prop_map(|((n, groups, cpg), (h, w), (kh, kw, sh, sw), (ph, pw, dh, dw))| Conv2d {
            n,
            c: groups * cpg,
            h,
            w,
            o: groups * (1 + (h + w) % 4),
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups,
        })
        .prop_filter("window fits", |s| s.is_valid())
}

fn check_all_passes(s: &Conv2d, seed: u64, act: Activation, par: Par) -> Result<(), TestCaseError> {
    let x = fill(s.input_len(), seed);
    let w = fill(s.weight_len(), seed + 1);
    let b = fill(s.o, seed + 2);
    let dy = fill(s.output_len(), seed + 3);
    let terms = s.c / s.groups * s.kh * s.kw;

    let mut y = vec![f32::NAN; s.output_len()];
    conv2d_forward(s, &x, &w, Some(&b), act, &mut y, par)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut want = reference::conv2d_forward(s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
    for v in &mut want {
        *v = f64::from(act.apply(*v as f32));
    }
    assert_close("forward", &y, &want, terms, s)?;

    let mut dx = vec![f32::NAN; s.input_len()];
    conv2d_backward_data(s, &dy, &w, None, &mut dx, par)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = reference::conv2d_backward_data(s, &f64s(&dy), &f64s(&w));
    assert_close("backward data", &dx, &want, s.o * s.kh * s.kw, s)?;

    let mut dw = vec![f32::NAN; s.weight_len()];
    let mut db = vec![f32::NAN; s.o];
    conv2d_backward_weights(s, &x, &dy, &mut dw, Some(&mut db), par)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (want_w, want_b) = reference::conv2d_backward_weights(s, &f64s(&x), &f64s(&dy));
    let positions = s.n * s.out_h() * s.out_w();
    assert_close("backward weights", &dw, &want_w, positions, s)?;
    assert_close("backward bias", &db, &want_b, positions, s)?;
    Ok(())
}

/// The bf16 passes ([`Conv2d::bf16_algo`]) against the reference on the
/// operands rounded to bf16, as the GEMM rounds them: the sums are f32, so
/// the tolerance is f32's. The bias, and the bias gradient's sum, stay f32.
/// A depthwise shape keeps its f32 path, and is held to the f32 operands.
fn check_bf16_passes(
    s: &Conv2d,
    seed: u64,
    act: Activation,
    par: Par,
) -> Result<(), TestCaseError> {
    let (x, w, b) =
        (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
    let dy = fill(s.output_len(), seed + 3);
    let mask = fill(s.input_len(), seed + 4);
    let operand = |v: &[f32]| -> Vec<f64> {
        v.iter().map(|&x| f64::from(netc_runtime::bf16::quantize(x))).collect()
    };
    let bf16 = ConvAlgo::Im2colBf16;
    let fail = |e: ConvError| TestCaseError::fail(e.to_string());

    let mut y = vec![f32::NAN; s.output_len()];
    conv2d_forward_using(bf16, s, &x, &w, Some(&b), act, &mut y, par).map_err(fail)?;
    let mut want = reference::conv2d_forward(s, &operand(&x), &operand(&w), Some(&f64s(&b)));
    for v in &mut want {
        *v = f64::from(act.apply(*v as f32));
    }
    assert_close("bf16 forward", &y, &want, s.c / s.groups * s.kh * s.kw, s)?;

    let mut dx = vec![f32::NAN; s.input_len()];
    conv2d_backward_data_using(bf16, s, &dy, &w, Some(&mask), &mut dx, par).map_err(fail)?;
    let mut want = reference::conv2d_backward_data(s, &operand(&dy), &operand(&w));
    want.iter_mut().zip(&mask).filter(|(_, &m)| m <= 0.0).for_each(|(v, _)| *v = 0.0);
    assert_close("bf16 backward data", &dx, &want, s.o * s.kh * s.kw, s)?;

    let (mut dw, mut db) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; s.o]);
    conv2d_backward_weights_using(bf16, s, &x, &dy, &mut dw, Some(&mut db), par).map_err(fail)?;
    let (want_w, _) = reference::conv2d_backward_weights(s, &operand(&x), &operand(&dy));
    let (_, want_b) = reference::conv2d_backward_weights(s, &f64s(&x), &f64s(&dy));
    let positions = s.n * s.out_h() * s.out_w();
    assert_close("bf16 backward weights", &dw, &want_w, positions, s)?;
    assert_close("bf16 backward bias", &db, &want_b, positions, s)?;
    Ok(())
}

/// A `precision bf16` network's convs take the bf16 GEMMs where they pay,
/// and keep the f32 algorithm elsewhere (a small or depthwise conv).
#[test]
fn bf16_convs_go_bf16_where_it_pays() {
    let bf16 = ConvAlgo::Im2colBf16;
    let alexnet_conv3 = Conv2d::square(8, 256, 13, 13, 384, 3, 1, 1);
    assert_eq!(alexnet_conv3.bf16_or(alexnet_conv3.forward_algo()), bf16);
    assert_eq!(alexnet_conv3.bf16_or(alexnet_conv3.backward_data_algo()), bf16);
    assert_eq!(alexnet_conv3.bf16_or(alexnet_conv3.backward_weights_algo()), bf16);
    let resnet20_conv = Conv2d::square(64, 16, 32, 32, 16, 3, 1, 1);
    assert_eq!(resnet20_conv.bf16_or(resnet20_conv.forward_algo()), resnet20_conv.forward_algo());
    let depthwise = Conv2d { groups: 256, ..Conv2d::square(8, 256, 56, 56, 256, 3, 1, 1) };
    assert_eq!(depthwise.bf16_or(depthwise.forward_algo()), ConvAlgo::Depthwise);
    // The entry point computes what the algorithm does.
    let (x, w) = (fill(alexnet_conv3.input_len(), 1), fill(alexnet_conv3.weight_len(), 2));
    let (mut y, mut want) =
        (vec![0.0; alexnet_conv3.output_len()], vec![0.0; alexnet_conv3.output_len()]);
    let act = Activation::Relu;
    conv2d_forward_bf16(&alexnet_conv3, &x, &w, None, act, &mut y, Par::Rayon).unwrap();
    conv2d_forward_using(bf16, &alexnet_conv3, &x, &w, None, act, &mut want, Par::Rayon).unwrap();
    assert_eq!(y, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn bf16_passes_match_the_reference_on_rounded_operands(s in shape_strategy(), seed in any::<u64>(), relu in any::<bool>(), threads in any::<bool>()) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        check_bf16_passes(&s, seed, act, if threads { Par::Rayon } else { Par::Seq })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn every_pass_matches_the_reference(s in shape_strategy(), seed in any::<u64>(), relu in any::<bool>()) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        check_all_passes(&s, seed, act, Par::Seq)?;
    }

    #[test]
    fn threads_give_the_same_result(s in shape_strategy(), seed in any::<u64>()) {
        check_all_passes(&s, seed, Activation::Identity, Par::Rayon)?;
    }
}

/// Shapes that take each algorithm, including LeNet's and ResNet's layers.
#[test]
fn each_algorithm_is_exercised() {
    let cases = [
        (Conv2d::square(2, 16, 8, 8, 32, 1, 1, 0), ConvAlgo::Pointwise),
        (Conv2d::square(1, 1, 28, 28, 6, 5, 1, 2), ConvAlgo::Direct),
        (Conv2d::square(2, 1, 15, 35, 8, 4, 1, 3), ConvAlgo::Direct),
        (Conv2d::square(2, 3, 15, 35, 8, 4, 1, 3), ConvAlgo::Direct),
        (Conv2d::square(2, 3, 15, 35, 72, 4, 1, 3), ConvAlgo::Im2col),
        (Conv2d::square(2, 3, 15, 15, 8, 4, 3, 2), ConvAlgo::Im2col),
        (Conv2d::square(2, 16, 9, 9, 16, 3, 1, 1), ConvAlgo::Winograd),
        (Conv2d::square(2, 3, 9, 9, 16, 3, 1, 1), ConvAlgo::Direct),
        (Conv2d::square(1, 16, 8, 8, 32, 1, 2, 0), ConvAlgo::Im2col),
        // More samples than threads, in uneven shares.
        (Conv2d::square(21, 16, 32, 32, 16, 3, 1, 1), ConvAlgo::Winograd),
        (Conv2d::square(3, 8, 7, 7, 8, 3, 1, 3), ConvAlgo::Winograd),
    ];
    // With 3 input channels, forward takes direct and backward-data im2col
    // (measured) while the weight gradient takes Winograd.
    assert_eq!(cases[7].0.backward_data_algo(), ConvAlgo::Im2col);
    assert_eq!(cases[7].0.backward_weights_algo(), ConvAlgo::Winograd);
    assert_eq!(cases[6].0.backward_data_algo(), ConvAlgo::Winograd);
    for (i, (s, algo)) in cases.iter().enumerate() {
        assert_eq!(s.forward_algo(), *algo, "{s:?}");
        check_all_passes(s, i as u64, Activation::Relu, Par::Seq).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// LeNet-5's convs take the direct path for all three passes; so does
/// ResNet-20's first conv forward, while its 16-channel convs take Winograd.
#[test]
fn small_stride_1_convs_go_direct() {
    let algos = |s: Conv2d| (s.forward_algo(), s.backward_data_algo(), s.backward_weights_algo());
    let d = ConvAlgo::Direct;
    assert_eq!(algos(Conv2d::square(64, 1, 28, 28, 6, 5, 1, 2)), (d, ConvAlgo::Im2col, d));
    assert_eq!(algos(Conv2d::square(64, 6, 14, 14, 16, 5, 1, 0)), (d, d, d));
    assert_eq!(Conv2d::square(64, 3, 32, 32, 16, 3, 1, 1).forward_algo(), d);
    assert_eq!(Conv2d::square(64, 16, 32, 32, 16, 3, 1, 1).forward_algo(), ConvAlgo::Winograd);
    // From 32 input channels, 5x5 convs go Winograd, their kernels split
    // in 3x3 pieces; a lone sample with more than a few channels keeps the
    // GEMM that splits it between threads.
    let split = ConvAlgo::WinogradSplit;
    assert_eq!(Conv2d::square(8, 96, 27, 27, 256, 5, 1, 2).forward_algo(), split);
    assert_eq!(Conv2d::square(64, 32, 16, 16, 64, 5, 1, 2).forward_algo(), split);
    assert_eq!(Conv2d::square(64, 16, 14, 14, 32, 5, 1, 0).forward_algo(), d);
    assert_eq!(Conv2d::square(1, 16, 14, 14, 32, 5, 1, 0).forward_algo(), ConvAlgo::Im2col);
    assert_eq!(Conv2d::square(1, 6, 14, 14, 16, 5, 1, 0).forward_algo(), d);
}

/// Small output planes put several samples' im2col matrices side by side in
/// one GEMM: a batch that splits into uneven chunks (of 8 samples, and
/// across threads), with and without groups.
#[test]
fn samples_side_by_side_in_one_gemm() {
    let grouped = Conv2d { groups: 2, ..Conv2d::square(13, 6, 9, 9, 4, 3, 2, 1) };
    for (i, s) in [Conv2d::square(21, 6, 27, 27, 16, 5, 2, 0), grouped].iter().enumerate() {
        assert_eq!(s.forward_algo(), ConvAlgo::Im2col, "{s:?}");
        for par in [Par::Seq, Par::Rayon] {
            check_all_passes(s, 60 + i as u64, Activation::Relu, par)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// One sample big enough that its im2col GEMM is split across threads:
/// each thread's panels start mid-row of the output (the im2col panels are
/// filled from the input, not copied from a matrix), at stride 1 and 2.
#[test]
fn one_sample_im2col_split_across_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (i, s) in
        [Conv2d::square(1, 8, 45, 45, 48, 5, 2, 2), Conv2d::square(1, 3, 37, 41, 64, 5, 1, 1)]
            .iter()
            .enumerate()
    {
        assert_eq!(s.forward_algo(), ConvAlgo::Im2col);
        let macs = s.o * s.out_h() * s.out_w() * s.c * s.kh * s.kw;
        assert!(macs >= 4_000_000, "big enough to split");
        pool.install(|| check_all_passes(s, 40 + i as u64, Activation::Relu, Par::Rayon))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Winograd is picked where it was measured to win (see `winograd::pays`):
/// small channel products from 16 tiles a call, AlexNet's 384-channel convs only
/// over 128+ tiles and never for their weight gradient.
#[test]
fn winograd_is_picked_where_it_pays() {
    let algos = |s: Conv2d| (s.forward_algo(), s.backward_data_algo(), s.backward_weights_algo());
    let w = ConvAlgo::Winograd;
    let i = ConvAlgo::Im2col;
    assert_eq!(algos(Conv2d::square(64, 16, 32, 32, 16, 3, 1, 1)), (w, w, w));
    assert_eq!(algos(Conv2d::square(4, 64, 8, 8, 64, 3, 1, 1)), (w, w, w));
    // Under 16 tiles, making U costs more than the tiles save.
    assert_eq!(algos(Conv2d::square(1, 64, 8, 8, 64, 3, 1, 1)), (i, i, i));
    assert_eq!(algos(Conv2d::square(1, 32, 16, 16, 32, 3, 1, 1)), (w, w, w));
    assert_eq!(algos(Conv2d::square(8, 384, 13, 13, 384, 3, 1, 1)), (w, w, i));
    // Past 1 MB of U, forward and backward-data from 128 tiles whatever the
    // channel counts: AlexNet's conv3 (256->384) and conv5 (384->256).
    assert_eq!(algos(Conv2d::square(8, 256, 13, 13, 384, 3, 1, 1)), (w, w, i));
    assert_eq!(algos(Conv2d::square(8, 384, 13, 13, 256, 3, 1, 1)), (w, w, i));
    assert_eq!(algos(Conv2d::square(4, 384, 13, 13, 256, 3, 1, 1)), (i, i, i));
    assert_eq!(algos(Conv2d::square(1, 384, 13, 13, 384, 3, 1, 1)), (i, i, i));
    assert_eq!(algos(Conv2d::square(64, 16, 32, 32, 32, 3, 2, 1)), (i, i, i));
    // With U made once (inference), from 16 tiles whatever U's size.
    assert_eq!(Conv2d::square(1, 384, 13, 13, 384, 3, 1, 1).prepared_forward_algo(), w);
    assert_eq!(Conv2d::square(1, 64, 8, 8, 64, 3, 1, 1).prepared_forward_algo(), i);
    assert_eq!(Conv2d::square(8, 3, 32, 32, 16, 3, 1, 1).prepared_forward_algo(), ConvAlgo::Direct);
}

/// Weight gradients computed by many callers at once on one rayon pool
/// (some find the shared partial-sum buffer busy and use their own) equal
/// the sequential result.
#[test]
fn concurrent_weight_gradients_equal_sequential_ones() {
    let s = Conv2d::square(8, 8, 16, 16, 16, 3, 1, 1);
    let (x, dy) = (fill(s.input_len(), 1), fill(s.output_len(), 2));
    let mut want = vec![0.0; s.weight_len()];
    conv2d_backward_weights(&s, &x, &dy, &mut want, None, Par::Seq).expect("sequential");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let results: Vec<Vec<f32>> = pool.install(|| {
        use rayon::prelude::*;
        (0..64)
            .into_par_iter()
            .map(|_| {
                let mut dw = vec![0.0; s.weight_len()];
                conv2d_backward_weights(&s, &x, &dy, &mut dw, None, Par::Rayon).expect("parallel");
                dw
            })
            .collect()
    });
    for dw in &results {
        for (i, (&g, &w)) in dw.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "dw[{i}] = {g}, sequential {w}");
        }
    }
}

/// The reference's gradients are the true derivatives of its forward pass:
/// central differences of `L = ⟨dy, conv(x, w) + b⟩` in f64.
#[test]
fn reference_gradients_match_finite_differences() {
    let shapes = [
        Conv2d {
            n: 2,
            c: 4,
            h: 5,
            w: 6,
            o: 4,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 1,
            ph: 2,
            pw: 1,
            dh: 1,
            dw: 2,
            groups: 2,
        },
        Conv2d::square(1, 3, 7, 7, 2, 3, 1, 1),
    ];
    for s in shapes {
        let x = f64s(&fill(s.input_len(), 7));
        let w = f64s(&fill(s.weight_len(), 8));
        let b = f64s(&fill(s.o, 9));
        let dy = f64s(&fill(s.output_len(), 10));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            reference::conv2d_forward(&s, x, w, Some(b)).iter().zip(&dy).map(|(y, d)| y * d).sum()
        };
        let dx = reference::conv2d_backward_data(&s, &dy, &w);
        let (dw, db) = reference::conv2d_backward_weights(&s, &x, &dy);
        let eps = 1e-6;
        let numeric = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| {
            let (mut plus, mut minus) = (v.to_vec(), v.to_vec());
            plus[i] += eps;
            minus[i] -= eps;
            (f(&plus) - f(&minus)) / (2.0 * eps)
        };
        for (i, analytic) in dx.iter().enumerate() {
            let d = numeric(&x, i, &|x| loss(x, &w, &b));
            assert!((d - analytic).abs() < 1e-6, "dx[{i}]: {d} vs {analytic}");
        }
        for (i, analytic) in dw.iter().enumerate() {
            let d = numeric(&w, i, &|w| loss(&x, w, &b));
            assert!((d - analytic).abs() < 1e-6, "dw[{i}]: {d} vs {analytic}");
        }
        for (i, analytic) in db.iter().enumerate() {
            let d = numeric(&b, i, &|b| loss(&x, &w, b));
            assert!((d - analytic).abs() < 1e-6, "db[{i}]: {d} vs {analytic}");
        }
    }
}

#[test]
fn relu_mask_zeroes_the_input_gradient() {
    let s = Conv2d::square(2, 4, 6, 6, 3, 3, 1, 1);
    let dy = fill(s.output_len(), 1);
    let w = fill(s.weight_len(), 2);
    let mask = fill(s.input_len(), 3);
    let mut plain = vec![0.0; s.input_len()];
    let mut masked = vec![0.0; s.input_len()];
    conv2d_backward_data(&s, &dy, &w, None, &mut plain, Par::Seq).expect("valid");
    conv2d_backward_data(&s, &dy, &w, Some(&mask), &mut masked, Par::Seq).expect("valid");
    for ((p, m), k) in plain.iter().zip(&masked).zip(&mask) {
        assert_eq!(*m, if *k > 0.0 { *p } else { 0.0 });
    }
}

/// The tensor a length error names.
fn tensor(r: Result<(), ConvError>) -> &'static str {
    match r {
        Err(ConvError::Len(e)) => e.tensor,
        other => panic!("not a length error: {other:?}"),
    }
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let s = Conv2d::square(2, 3, 8, 8, 4, 3, 1, 1);
    let x = vec![0.0; s.input_len()];
    let w = vec![0.0; s.weight_len() - 1];
    let mut y = vec![0.0; s.output_len()];
    let r = conv2d_forward(&s, &x, &w, None, Activation::Identity, &mut y, Par::Seq);
    assert_eq!(tensor(r), "weight");
    let w = vec![0.0; s.weight_len()];
    let r = conv2d_forward(&s, &x, &w, Some(&[0.0; 3]), Activation::Identity, &mut y, Par::Seq);
    assert_eq!(tensor(r), "bias");
    let mut short = vec![0.0; 5];
    let r = conv2d_backward_data(&s, &y, &w, None, &mut short, Par::Seq);
    assert_eq!(tensor(r), "input");
}

#[test]
fn invalid_shapes_and_unsupported_algorithms_have_their_own_errors() {
    // Groups that do not divide the channels.
    let s = Conv2d { groups: 2, ..Conv2d::square(1, 3, 8, 8, 4, 3, 1, 1) };
    let (x, w) = (vec![0.0; s.input_len()], vec![0.0; s.weight_len()]);
    let mut y = vec![0.0; s.output_len()];
    let err = conv2d_forward(&s, &x, &w, None, Activation::Identity, &mut y, Par::Seq).unwrap_err();
    assert_eq!(err, ConvError::InvalidShape { op: "conv2d_forward", shape: Box::new(s) });
    let shown = err.to_string();
    assert!(shown.starts_with("conv2d_forward: invalid shape (n 1, 3x8x8 -> 4,"), "{shown}");
    assert!(shown.ends_with("groups must divide both channel counts"), "{shown}");
    // A window larger than the padded input.
    let s = Conv2d::square(1, 1, 2, 2, 1, 5, 1, 1);
    assert_eq!(s.invalid_reason(), Some("the dilated window is larger than the padded input"));
    // A valid shape that the algorithm asked for cannot compute.
    let s = Conv2d::square(1, 4, 8, 8, 4, 3, 2, 1);
    let (x, w) = (vec![0.0; s.input_len()], vec![0.0; s.weight_len()]);
    let mut y = vec![0.0; s.output_len()];
    let r = conv2d_forward_using(
        ConvAlgo::Direct,
        &s,
        &x,
        &w,
        None,
        Activation::Identity,
        &mut y,
        Par::Seq,
    );
    let err = r.unwrap_err();
    assert_eq!(
        err,
        ConvError::Unsupported { op: "conv2d_forward", algo: ConvAlgo::Direct, shape: Box::new(s) }
    );
    assert!(err.to_string().starts_with("conv2d_forward: the direct algorithm cannot compute ("));
    // A generated model sees each as its own variant; lengths stay `Len`.
    let model = netc_runtime::Error::from(err);
    assert!(matches!(model, netc_runtime::Error::Conv(ConvError::Unsupported { .. })));
    let len = netc_runtime::Error::from(ConvError::Len(netc_runtime::LenError {
        op: "conv2d_forward",
        tensor: "weight",
        expected: 2,
        found: 1,
    }));
    assert!(matches!(len, netc_runtime::Error::Len(_)));
}

/// The selection rule as it stood before the algorithms became
/// `ConvAlgorithm`s, kept to show that the split moved no shape.
fn old_rule(s: &Conv2d) -> [ConvAlgo; 4] {
    use ConvAlgo::*;
    let pointwise = (s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.groups) == (1, 1, 1, 1, 0, 0, 1);
    let direct = s.groups == 1 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1;
    let on = winograd::enabled();
    let forward = if pointwise {
        Pointwise
    } else if on && s.c >= 8 && winograd::applies(s) && winograd::pays(s) {
        Winograd
    } else if on && s.c >= 32 && winograd_split::pays(s) {
        WinogradSplit
    } else if direct && s.o <= 64 && (s.n > 1 || s.c * s.o <= 128) {
        Direct
    } else {
        Im2col
    };
    let prepared = if forward != Im2col || !on || s.c < 8 {
        forward
    } else if winograd::pays_prepared(s) {
        Winograd
    } else if s.c >= 32 && winograd_split::pays_prepared(s) {
        WinogradSplit
    } else {
        forward
    };
    let backward_data = if pointwise {
        Pointwise
    } else if on
        && s.c >= 4
        && winograd::applies_backward_data(s)
        && winograd::pays_backward_data(s)
    {
        Winograd
    } else if direct
        && (4..=64).contains(&s.c)
        && s.o <= 64
        && (s.o <= 16 || s.kh * s.kw <= 9)
        && (s.n > 1 || s.c * s.o <= 128)
    {
        Direct
    } else {
        Im2col
    };
    let backward_weights = if pointwise {
        Pointwise
    } else if on && winograd::applies(s) && winograd::pays_weight_grad(s) {
        Winograd
    } else if direct && s.c * s.o <= 256 {
        Direct
    } else {
        Im2col
    };
    [forward, prepared, backward_data, backward_weights]
}

#[test]
fn selection_is_the_old_rule() {
    let mut shapes = 0;
    for n in [1, 2, 8, 64] {
        for (c, o) in [(1, 6), (3, 16), (4, 8), (6, 16), (8, 8), (16, 32), (32, 64), (64, 64)]
            .into_iter()
            .chain([(96, 256), (256, 384), (384, 384), (3, 72), (48, 16), (128, 8)])
        {
            for hw in [5, 8, 13, 14, 16, 27, 32] {
                for (k, stride, pad) in [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 1, 0), (3, 2, 1)]
                    .into_iter()
                    .chain([(3, 1, 3), (5, 1, 2), (5, 1, 0), (5, 1, 5), (4, 1, 3), (7, 2, 3)])
                {
                    for (dilation, groups) in [(1, 1), (2, 1), (1, 2)] {
                        let s = Conv2d {
                            dh: dilation,
                            dw: dilation,
                            groups,
                            ..Conv2d::square(n, c, hw, hw, o, k, stride, pad)
                        };
                        if !s.is_valid() {
                            continue;
                        }
                        let new = [
                            s.forward_algo(),
                            s.prepared_forward_algo(),
                            s.backward_data_algo(),
                            s.backward_weights_algo(),
                        ];
                        assert_eq!(new, old_rule(&s), "{s:?}");
                        shapes += 1;
                    }
                }
            }
        }
    }
    assert!(shapes > 10_000, "{shapes} shapes");
}

fn winograd_strategy() -> impl Strategy<Value = Conv2d> {
    ((1usize..5, 1usize..20, 1usize..20), (1usize..12, 1usize..12), (0usize..3, 0usize..3))
        .prop_map(|((n, c, o), (h, w), (ph, pw))| Conv2d {
            n,
            c,
            h: h + 2,
            w: w + 2,
            o,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph,
            pw,
            dh: 1,
            dw: 1,
            groups: 1,
        })
}

/// Operands of one conv from `seed`, and the reference's forward pass
/// (with bias, then `act`) and backward-data pass (zeroed where `mask` is
/// `≤ 0`).
struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    mask: Vec<f32>,
    want_y: Vec<f64>,
    want_dx: Vec<f64>,
}

impl Case {
    fn new(s: &Conv2d, seed: u64, act: Activation) -> Self {
        let x = fill(s.input_len(), seed);
        let w = fill(s.weight_len(), seed + 1);
        let b = fill(s.o, seed + 2);
        let dy = fill(s.output_len(), seed + 3);
        let mask = fill(s.input_len(), seed + 4);
        let mut want_y = reference::conv2d_forward(s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
        for v in &mut want_y {
            *v = f64::from(act.apply(*v as f32));
        }
        let mut want_dx = reference::conv2d_backward_data(s, &f64s(&dy), &f64s(&w));
        for (d, &m) in want_dx.iter_mut().zip(&mask) {
            if m <= 0.0 {
                *d = 0.0;
            }
        }
        Case { x, w, b, dy, mask, want_y, want_dx }
    }
}

/// Winograd on every instruction set this CPU has, forward with bias and
/// activation, backward-data with the ReLU mask, and backward-weights,
/// against the reference.
fn check_winograd(s: &Conv2d, seed: u64, act: Activation, par: Par) -> Result<(), TestCaseError> {
    let Case { x, w, b, dy, mask, want_y, want_dx } = Case::new(s, seed, act);
    let (want_dw, _) = reference::conv2d_backward_weights(s, &f64s(&x), &f64s(&dy));
    let positions = s.n * s.out_h() * s.out_w();
    for &isa in Isa::supported() {
        let fail = |e: ConvError| TestCaseError::fail(format!("{isa:?}: {e}"));
        let mut y = vec![f32::NAN; s.output_len()];
        winograd::forward(s, isa, &x, &w, Some(&b), act, &mut y, par).map_err(fail)?;
        assert_close(&format!("{isa:?} forward"), &y, &want_y, s.c * 9, s)?;
        let mut dx = vec![f32::NAN; s.input_len()];
        winograd::backward_data(s, isa, &dy, &w, Some(&mask), &mut dx, par).map_err(fail)?;
        assert_close(&format!("{isa:?} backward data"), &dx, &want_dx, s.o * 9, s)?;
        let mut dw = vec![f32::NAN; s.weight_len()];
        winograd::backward_weights(s, isa, &x, &dy, &mut dw, par).map_err(fail)?;
        assert_close(&format!("{isa:?} backward weights"), &dw, &want_dw, positions, s)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn winograd_matches_the_reference(s in winograd_strategy(), seed in any::<u64>(), relu in any::<bool>(), threads in any::<bool>()) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        check_winograd(&s, seed, act, if threads { Par::Rayon } else { Par::Seq })?;
    }
}

/// Model-sized Winograd shapes: many chunks, channel counts off the register
/// blocks, AlexNet's 13x13 (tiles hanging over the edge), and planes wider
/// than the 32 floats the AVX-512 input transform's row tables take, which
/// it reads by gathers instead.
#[test]
fn winograd_matches_the_reference_on_model_shapes() {
    let shapes = [
        Conv2d::square(5, 16, 32, 32, 16, 3, 1, 1),
        Conv2d::square(2, 8, 37, 37, 12, 3, 1, 1),
        Conv2d::square(3, 64, 8, 8, 64, 3, 1, 1),
        Conv2d::square(2, 40, 13, 13, 27, 3, 1, 1),
        Conv2d::square(17, 32, 16, 16, 32, 3, 1, 1),
    ];
    for (i, s) in shapes.iter().enumerate() {
        check_winograd(s, 100 + i as u64, Activation::Relu, Par::Rayon)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

fn split_strategy() -> impl Strategy<Value = Conv2d> {
    ((1usize..4, 1usize..14, 1usize..20), (1usize..10, 1usize..10), (0usize..5, 0usize..5))
        .prop_map(|((n, c, o), (h, w), (ph, pw))| Conv2d {
            h: h + 4,
            w: w + 4,
            ph,
            pw,
            ..Conv2d::square(n, c, 1, 1, o, 5, 1, 0)
        })
}

/// 5x5 stride-1 convs as four 3x3 Winograd convs, forward with bias and
/// activation and backward-data with the ReLU mask, against the reference,
/// on one thread or the pool, over odd sizes and every padding up to 4.
fn check_split(s: &Conv2d, seed: u64, act: Activation, par: Par) -> Result<(), TestCaseError> {
    let algo = ConvAlgo::WinogradSplit;
    let Case { x, w, b, dy, mask, want_y, want_dx } = Case::new(s, seed, act);
    let fail = |e: ConvError| TestCaseError::fail(e.to_string());
    let mut y = vec![f32::NAN; s.output_len()];
    conv2d_forward_using(algo, s, &x, &w, Some(&b), act, &mut y, par).map_err(fail)?;
    assert_close("split forward", &y, &want_y, 4 * s.c * 9, s)?;
    let mut dx = vec![f32::NAN; s.input_len()];
    conv2d_backward_data_using(algo, s, &dy, &w, Some(&mask), &mut dx, par).map_err(fail)?;
    assert_close("split backward data", &dx, &want_dx, 4 * s.o * 9, s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn split_5x5_matches_the_reference(s in split_strategy(), seed in any::<u64>(), relu in any::<bool>(), threads in any::<bool>()) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        check_split(&s, seed, act, if threads { Par::Rayon } else { Par::Seq })?;
    }
}

/// AlexNet's conv2 in miniature (5x5, pad 2, 27x27) is picked split where
/// it pays, and shapes the split cannot compute are refused.
#[test]
fn split_5x5_on_model_shapes_and_refusals() {
    let conv2 = Conv2d::square(2, 24, 27, 27, 40, 5, 1, 2);
    check_split(&conv2, 7, Activation::Relu, Par::Rayon).unwrap_or_else(|e| panic!("{e}"));
    let alexnet = Conv2d::square(8, 96, 27, 27, 256, 5, 1, 2);
    let split = ConvAlgo::WinogradSplit;
    assert_eq!((alexnet.forward_algo(), alexnet.backward_data_algo()), (split, ConvAlgo::Im2col));
    let one = Conv2d { n: 1, ..alexnet };
    assert_eq!((one.forward_algo(), one.prepared_forward_algo()), (ConvAlgo::Im2col, split));
    let (x, w) = (vec![0.0; 4 * 5 * 5], vec![0.0; 4 * 4 * 9]);
    let three = Conv2d::square(1, 4, 5, 5, 4, 3, 1, 1);
    let r = conv2d_forward_using(
        split,
        &three,
        &x,
        &w,
        None,
        Activation::Identity,
        &mut [0.0; 100],
        Par::Seq,
    );
    assert!(r.is_err(), "a 3x3 conv is not split");
    let wide_pad = Conv2d::square(1, 4, 3, 3, 4, 5, 1, 5);
    let (dy, w) = (vec![0.0; wide_pad.output_len()], vec![0.0; wide_pad.weight_len()]);
    let mut dx = vec![0.0; wide_pad.input_len()];
    let r = conv2d_backward_data_using(split, &wide_pad, &dy, &w, None, &mut dx, Par::Seq);
    assert!(r.is_err(), "backward-data needs pad <= 4");
}

/// Fewer samples than threads: each sample's output channels are cut into
/// parts that run on their own threads, including parts off the tuple
/// GEMM's blocks of 8 channels and a last part shorter than the others.
#[test]
fn winograd_splits_few_samples_across_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let shapes = [
        Conv2d::square(1, 24, 13, 13, 27, 3, 1, 1),
        Conv2d::square(2, 16, 10, 10, 40, 3, 1, 1),
        Conv2d::square(1, 8, 9, 9, 5, 3, 1, 1),
        Conv2d { pw: 2, ..Conv2d::square(1, 12, 11, 8, 17, 3, 1, 0) },
    ];
    for (i, s) in shapes.iter().enumerate() {
        pool.install(|| check_winograd(s, 200 + i as u64, Activation::Relu, Par::Rayon))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Shapes Winograd cannot compute are refused, not miscomputed.
#[test]
fn winograd_refuses_other_shapes() {
    // The selection rules answer "no" for shapes Winograd cannot run, rather
    // than computing tile counts from a negative size.
    // A pad of 3 still runs forward (over a padded copy), not backward-data.
    for (s, want) in [
        (Conv2d::square(1, 4, 1, 1, 4, 3, 1, 0), (false, false, false)),
        (Conv2d::square(64, 4, 8, 8, 4, 3, 1, 3), (true, true, false)),
        (Conv2d::square(64, 4, 8, 8, 4, 3, 2, 1), (false, false, false)),
    ] {
        let rules = (winograd::pays(&s), winograd::pays_weight_grad(&s));
        assert_eq!((rules.0, rules.1, winograd::pays_backward_data(&s)), want, "{s:?}");
    }
    let strided = Conv2d::square(1, 4, 8, 8, 4, 3, 2, 1);
    let (x, w) = (fill(strided.input_len(), 1), fill(strided.weight_len(), 2));
    let mut y = vec![0.0; strided.output_len()];
    let r = winograd::forward(
        &strided,
        Isa::best(),
        &x,
        &w,
        None,
        Activation::Identity,
        &mut y,
        Par::Seq,
    );
    assert!(r.is_err());
    let padded = Conv2d::square(1, 4, 8, 8, 4, 3, 1, 3);
    assert!(winograd::applies(&padded) && !winograd::applies_backward_data(&padded));
    let dy = fill(padded.output_len(), 3);
    let mut dx = vec![0.0; padded.input_len()];
    let r = winograd::backward_data(
        &padded,
        Isa::best(),
        &dy,
        &fill(padded.weight_len(), 4),
        None,
        &mut dx,
        Par::Seq,
    );
    assert!(r.is_err());
}

/// Shapes the direct convolution takes (stride 1, no dilation, one group):
/// channel counts on both sides of its blocks of 1, 2, 4, 6 and 8 (the
/// last block overlapping the one before), planes from one position to
/// many vectors of 16, kernels wider than its runs of 5 taps, and padding
/// up to and past the kernel (backward-data crops `dy` then).
fn direct_strategy() -> impl Strategy<Value = Conv2d> {
    (
        (1usize..4, 1usize..8, 1usize..21),
        (1usize..30, 1usize..36),
        (1usize..8, 1usize..8, 0usize..5, 0usize..5),
    )
        .prop_map(|((n, c, o), (h, w), (kh, kw, ph, pw))| Conv2d {
            kw,
            pw,
            ..Conv2d::square(n, c, h, w, o, kh, 1, ph)
        })
        .prop_filter("window fits", |s| s.is_valid())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The direct convolution, forward, backward-data and weight gradient,
    /// on every instruction set this CPU has.
    #[test]
    fn direct_matches_the_reference_on_every_isa(s in direct_strategy(), seed in any::<u64>(), relu in any::<bool>()) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let (x, w, b) = (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
        let mut want = reference::conv2d_forward(&s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
        for v in &mut want {
            *v = f64::from(act.apply(*v as f32));
        }
        let dy = fill(s.output_len(), seed + 3);
        let (want_dw, _) = reference::conv2d_backward_weights(&s, &f64s(&x), &f64s(&dy));
        let want_dx = reference::conv2d_backward_data(&s, &f64s(&dy), &f64s(&w));
        for &isa in Isa::supported() {
            let fail = |e: ConvError| TestCaseError::fail(format!("{isa:?}: {e}"));
            let mut y = vec![f32::NAN; s.output_len()];
            conv2d_forward_direct(&s, isa, &x, &w, Some(&b), act, &mut y).map_err(fail)?;
            assert_close(&format!("{isa:?} direct"), &y, &want, s.c * s.kh * s.kw, &s)?;
            let mut dw = vec![f32::NAN; s.weight_len()];
            conv2d_backward_weights_direct(&s, isa, &x, &dy, &mut dw).map_err(fail)?;
            let positions = s.n * s.out_h() * s.out_w();
            assert_close(&format!("{isa:?} direct weight gradient"), &dw, &want_dw, positions, &s)?;
            let mut dx = vec![f32::NAN; s.input_len()];
            conv2d_backward_data_direct(&s, isa, &dy, &w, &mut dx).map_err(fail)?;
            assert_close(&format!("{isa:?} direct backward-data"), &dx, &want_dx, s.o * s.kh * s.kw, &s)?;
        }
    }
}

/// Shapes the forward kernel with 16 output channels in the lanes takes
/// (AVX-512): whole blocks of 16 channels, rows of 4 to 12 outputs, and
/// any window, padding and channel count around them; some have fewer
/// rows than a block.
fn channel_lanes_strategy() -> impl Strategy<Value = Conv2d> {
    (
        (1usize..4, 1usize..7, 1usize..4),
        (1usize..16, 4usize..13),
        (1usize..7, 1usize..7, 0usize..3, 0usize..3),
    )
        .prop_map(|((n, c, blocks), (out_h, out_w), (kh, kw, ph, pw))| {
            let h = (out_h + kh).saturating_sub(1 + 2 * ph).max(1);
            let w = (out_w + kw).saturating_sub(1 + 2 * pw).max(1);
            Conv2d { kw, pw, ..Conv2d::square(n, c, h, w, 16 * blocks, kh, 1, ph) }
        })
        .prop_filter("window fits", |s| s.is_valid())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The direct forward with the output channels in the lanes, with bias
    /// and each kind of activation, on every instruction set this CPU has.
    #[test]
    fn direct_forward_with_channels_in_lanes(s in channel_lanes_strategy(), seed in any::<u64>(), act in 0usize..3) {
        let act = [Activation::Identity, Activation::Relu, Activation::Tanh][act];
        let (x, w, b) = (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
        let mut want = reference::conv2d_forward(&s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
        for v in &mut want {
            *v = f64::from(act.apply(*v as f32));
        }
        for &isa in Isa::supported() {
            let mut y = vec![f32::NAN; s.output_len()];
            conv2d_forward_direct(&s, isa, &x, &w, Some(&b), act, &mut y)
                .map_err(|e| TestCaseError::fail(format!("{isa:?}: {e}")))?;
            assert_close(&format!("{isa:?} direct"), &y, &want, s.c * s.kh * s.kw, &s)?;
        }
    }
}

/// The weight gradient's kernel with the output channels in the lanes
/// (AVX-512, square 3x3 and 5x5 windows, 12 or more of each block's 16
/// channels): LeNet-5's conv2, a partial second block, rectangular inputs,
/// padding wider than the window's half, and more samples than one round
/// keeps.
#[test]
fn direct_weight_gradient_with_channels_in_lanes() {
    let sq = Conv2d::square;
    let shapes = [
        sq(3, 6, 14, 14, 16, 5, 1, 0),
        Conv2d { h: 9, w: 13, ..sq(2, 4, 9, 9, 12, 3, 1, 1) },
        sq(2, 3, 7, 7, 24, 5, 1, 2),
        Conv2d { ph: 2, pw: 0, ..sq(1, 2, 6, 6, 13, 3, 1, 0) },
        sq(9, 8, 16, 16, 16, 3, 1, 1),
    ];
    for (k, s) in shapes.iter().enumerate() {
        let (x, dy) = (fill(s.input_len(), 30 + k as u64), fill(s.output_len(), 40 + k as u64));
        let (want, _) = reference::conv2d_backward_weights(s, &f64s(&x), &f64s(&dy));
        for &isa in Isa::supported() {
            let mut dw = vec![f32::NAN; s.weight_len()];
            conv2d_backward_weights_direct(s, isa, &x, &dy, &mut dw).unwrap();
            let positions = s.n * s.out_h() * s.out_w();
            assert_close(&format!("{isa:?}"), &dw, &want, positions, s)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Backward-data by scattering (AVX-512: windows that shrink the plane by 2
/// or more on each side, or `dy` with 16 channels or more): input channel
/// counts that take every block of the kernel (8, 6, 4, 2, 1), rectangular
/// planes and windows, rows past 16 columns, padding up to the window.
#[test]
fn direct_backward_data_by_scattering() {
    let sq = Conv2d::square;
    let shapes = [
        sq(3, 6, 14, 14, 16, 5, 1, 0),
        Conv2d { h: 11, w: 17, kw: 6, ..sq(2, 9, 11, 11, 5, 7, 1, 1) },
        sq(2, 7, 12, 12, 3, 5, 1, 0),
        Conv2d { w: 9, ..sq(1, 3, 8, 8, 20, 5, 1, 0) },
        sq(2, 1, 9, 9, 2, 7, 1, 0),
        Conv2d { w: 19, kw: 3, pw: 2, ..sq(2, 5, 6, 6, 16, 3, 1, 1) },
        sq(1, 8, 5, 5, 17, 3, 1, 1),
    ];
    for (k, s) in shapes.iter().enumerate() {
        let (w, dy) = (fill(s.weight_len(), 50 + k as u64), fill(s.output_len(), 60 + k as u64));
        let want = reference::conv2d_backward_data(s, &f64s(&dy), &f64s(&w));
        for &isa in Isa::supported() {
            let mut dx = vec![f32::NAN; s.input_len()];
            conv2d_backward_data_direct(s, isa, &dy, &w, &mut dx).unwrap();
            let terms = s.o * s.kh * s.kw;
            assert_close(&format!("{isa:?}"), &dx, &want, terms, s)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// An infinite input reaches only the weights whose windows cover it: the
/// direct weight gradient pads `dy`'s rows to whole blocks, and those
/// padding outputs must not meet the real input cells past the row (0·∞
/// would make NaN in weights PyTorch leaves finite).
#[test]
fn direct_weight_gradient_keeps_an_infinite_input_to_its_taps() {
    let s = Conv2d::square(1, 1, 6, 21, 2, 5, 1, 0);
    let mut x = fill(s.input_len(), 7);
    x[20] = f32::INFINITY; // row 0, last column: only kernel column 4 sees it
    let dy = fill(s.output_len(), 8);
    let (want, _) = reference::conv2d_backward_weights(&s, &f64s(&x), &f64s(&dy));
    for &isa in Isa::supported() {
        let mut dw = vec![0.0f32; s.weight_len()];
        conv2d_backward_weights_direct(&s, isa, &x, &dy, &mut dw).unwrap();
        for (i, (&g, &w)) in dw.iter().zip(&want).enumerate() {
            assert_eq!(g.is_finite(), w.is_finite(), "{isa:?} dw[{i}] = {g}, want {w}");
            if w.is_finite() {
                assert!((f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()), "{isa:?} dw[{i}]");
            }
        }
    }
}

/// The inference forward with the weights prepared once: against the
/// reference on the first call and on calls after, for Winograd's kept `U`,
/// the im2col GEMMs' packed weights (one sample, several on the pool, and
/// groups), and a pass that keeps nothing (pointwise); and after
/// `invalidate`, on new weights.
#[test]
fn cached_forward_matches_the_reference_and_follows_invalidation() {
    let grouped = Conv2d { groups: 2, ..Conv2d::square(1, 6, 7, 7, 4, 3, 1, 1) };
    // (shape, whether the cache keeps a prepared form)
    let shapes = [
        (Conv2d::square(1, 64, 8, 8, 64, 3, 1, 1), true),
        (Conv2d::square(1, 48, 13, 13, 40, 3, 1, 1), true),
        (Conv2d::square(3, 16, 13, 11, 24, 3, 1, 2), true),
        (Conv2d::square(5, 5, 9, 9, 40, 5, 2, 1), true),
        (grouped, true),
        (Conv2d::square(2, 8, 5, 5, 16, 1, 1, 0), true),
        (Conv2d { groups: 8, ..Conv2d::square(2, 8, 5, 5, 8, 3, 1, 1) }, false),
    ];
    for (i, (s, kept)) in shapes.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let x = fill(s.input_len(), seed);
        let b = fill(s.o, seed + 1);
        let mut cache = ForwardCache::new();
        for (round, w_seed) in [seed + 2, seed + 2, seed + 3].into_iter().enumerate() {
            let w = fill(s.weight_len(), w_seed);
            if round == 2 {
                // The weights change: until invalidated, the cache answers
                // with the old ones, which is why the models clear it.
                let mut stale = vec![0.0; s.output_len()];
                conv2d_forward_cached(
                    s,
                    &x,
                    &w,
                    Some(&b),
                    Activation::Relu,
                    &mut stale,
                    &cache,
                    Par::Rayon,
                )
                .unwrap();
                let mut fresh = vec![0.0; s.output_len()];
                conv2d_forward(s, &x, &w, Some(&b), Activation::Relu, &mut fresh, Par::Rayon)
                    .unwrap();
                assert_eq!(stale != fresh, *kept, "{s:?}: stale weights answered");
                cache.invalidate();
            }
            let mut want = reference::conv2d_forward(s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
            for v in &mut want {
                *v = v.max(0.0);
            }
            for par in [Par::Rayon, Par::Seq] {
                let mut y = vec![f32::NAN; s.output_len()];
                conv2d_forward_cached(s, &x, &w, Some(&b), Activation::Relu, &mut y, &cache, par)
                    .unwrap();
                assert_eq!(cache.is_ready(), *kept, "{s:?}");
                assert_close(&format!("round {round} {par:?}"), &y, &want, s.c * s.kh * s.kw, s)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let mut y = vec![0.0; s.output_len()];
        let w = fill(s.weight_len(), seed + 3);
        let err =
            conv2d_forward_cached(s, &x[1..], &w, None, Activation::Relu, &mut y, &cache, Par::Seq);
        assert!(err.unwrap_err().to_string().contains("input"), "{s:?}");
    }
}

/// A conv with a batch norm (running statistics) and an activation folded
/// into its weights is the reference conv, then the batch norm in f64, then
/// the activation: on every algorithm the shapes pick (Winograd, one-sample
/// im2col, pointwise, depthwise), with and without a conv bias, with the
/// cache kept and lean; and a wrong-length batch-norm tensor is an error
/// naming it.
#[test]
fn batch_norm_folded_into_the_cached_forward_is_conv_then_batch_norm() {
    let depthwise = Conv2d { groups: 24, ..Conv2d::square(1, 24, 9, 9, 24, 3, 2, 1) };
    let shapes = [
        Conv2d::square(1, 32, 10, 10, 32, 3, 1, 1),
        Conv2d::square(4, 16, 12, 12, 24, 3, 1, 1),
        Conv2d::square(1, 7, 11, 9, 13, 5, 2, 2),
        Conv2d::square(2, 8, 5, 5, 16, 1, 1, 0),
        depthwise,
    ];
    let act = Activation::HardTanh(0.0, 6.0);
    for (i, s) in shapes.iter().enumerate() {
        let seed = 700 + 10 * i as u64;
        let (x, w, b) =
            (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
        let gamma = fill(s.o, seed + 3);
        let beta = fill(s.o, seed + 4);
        let mean = fill(s.o, seed + 5);
        let var: Vec<f32> = fill(s.o, seed + 6).iter().map(|v| v.abs() + 0.1).collect();
        let norm = BatchNormParams {
            gamma: &gamma,
            beta: &beta,
            running_mean: &mean,
            running_var: &var,
            eps: 1e-5,
        };
        for bias in [None, Some(&b[..])] {
            let conv =
                reference::conv2d_forward(s, &f64s(&x), &f64s(&w), bias.map(f64s).as_deref());
            let plane = s.out_h() * s.out_w();
            let want: Vec<f64> = conv
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let o = k / plane % s.o;
                    let scale = f64::from(gamma[o]) / (f64::from(var[o]) + 1e-5).sqrt();
                    ((v - f64::from(mean[o])) * scale + f64::from(beta[o])).clamp(0.0, 6.0)
                })
                .collect();
            for keep in [true, false] {
                let mut cache = ForwardCache::new();
                cache.keep(keep);
                for round in 0..2 {
                    let mut y = vec![f32::NAN; s.output_len()];
                    conv2d_bn_forward_cached(
                        s,
                        &x,
                        &w,
                        bias,
                        norm,
                        act,
                        &mut y,
                        &cache,
                        Par::Rayon,
                    )
                    .unwrap();
                    let what = format!("bias {} kept {keep} round {round}", bias.is_some());
                    assert_close(&what, &y, &want, 4 * s.c * s.kh * s.kw, s)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                cache.invalidate();
            }
        }
        let short = BatchNormParams { running_var: &var[1..], ..norm };
        let mut y = vec![0.0; s.output_len()];
        let err = conv2d_bn_forward_cached(
            s,
            &x,
            &w,
            None,
            short,
            act,
            &mut y,
            &ForwardCache::new(),
            Par::Seq,
        );
        assert!(err.unwrap_err().to_string().contains("running_var"), "{s:?}");
    }
}

/// The batch picks the forward algorithm (64 channels at 8x8: im2col at
/// batch 1, under 16 tiles, and Winograd at 8), so one cache serves both,
/// each form made when first needed and both cleared by `invalidate`.
#[test]
fn cached_forward_serves_batches_that_pick_other_algorithms() {
    let (one, eight) =
        (Conv2d::square(1, 64, 8, 8, 64, 3, 1, 1), Conv2d::square(8, 64, 8, 8, 64, 3, 1, 1));
    let algos = (one.prepared_forward_algo(), eight.prepared_forward_algo());
    assert_eq!(algos, (ConvAlgo::Im2col, ConvAlgo::Winograd));
    let x = fill(eight.input_len(), 1);
    let mut cache = ForwardCache::new();
    for w_seed in [2, 3] {
        let w = fill(eight.weight_len(), w_seed);
        cache.invalidate();
        for s in [&one, &eight, &one] {
            let x = &x[..s.input_len()];
            let want = reference::conv2d_forward(s, &f64s(x), &f64s(&w), None);
            let mut y = vec![f32::NAN; s.output_len()];
            conv2d_forward_cached(s, x, &w, None, Activation::Identity, &mut y, &cache, Par::Rayon)
                .unwrap();
            assert_close(&format!("n = {}", s.n), &y, &want, s.c * 9, s)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Depthwise shapes: one input channel per group, up to 4 output channels
/// each, odd planes, every window up to 7, strides up to 3, padding and
/// dilation.
fn depthwise_strategy() -> impl Strategy<Value = Conv2d> {
    (
        (1usize..4, 1usize..7, 1usize..5),
        (1usize..40, 1usize..40),
        (1usize..8, 1usize..8, 1usize..4, 1usize..4),
        (0usize..4, 0usize..4, 1usize..4, 1usize..4),
    )
        .prop_map(|((n, c, multiplier), (h, w), (kh, kw, sh, sw), (ph, pw, dh, dw))| Conv2d {
            n,
            c,
            h,
            w,
            o: c * multiplier,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups: c,
        })
        .prop_filter("window fits", |s| s.is_valid())
}

/// The depthwise kernels, forward (with bias and activation),
/// backward-data and weight gradient, on every instruction set this CPU
/// has, on one thread or several.
fn check_depthwise(s: &Conv2d, seed: u64, act: Activation, par: Par) -> Result<(), TestCaseError> {
    let (x, w, b) =
        (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
    let mut want = reference::conv2d_forward(s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
    for v in &mut want {
        *v = f64::from(act.apply(*v as f32));
    }
    let dy = fill(s.output_len(), seed + 3);
    let (want_dw, _) = reference::conv2d_backward_weights(s, &f64s(&x), &f64s(&dy));
    let want_dx = reference::conv2d_backward_data(s, &f64s(&dy), &f64s(&w));
    let positions = s.n * s.out_h() * s.out_w();
    for &isa in Isa::supported() {
        let fail = |e: ConvError| TestCaseError::fail(format!("{isa:?}: {e}"));
        let mut y = vec![f32::NAN; s.output_len()];
        conv2d_forward_depthwise(s, isa, &x, &w, Some(&b), act, &mut y, par).map_err(fail)?;
        assert_close(&format!("{isa:?} depthwise"), &y, &want, s.kh * s.kw, s)?;
        let mut dx = vec![f32::NAN; s.input_len()];
        conv2d_backward_data_depthwise(s, isa, &dy, &w, &mut dx, par).map_err(fail)?;
        let terms = s.o / s.c * s.kh * s.kw;
        assert_close(&format!("{isa:?} depthwise backward-data"), &dx, &want_dx, terms, s)?;
        let mut dw = vec![f32::NAN; s.weight_len()];
        conv2d_backward_weights_depthwise(s, isa, &x, &dy, &mut dw, par).map_err(fail)?;
        assert_close(&format!("{isa:?} depthwise weight gradient"), &dw, &want_dw, positions, s)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn depthwise_matches_the_reference_on_every_isa(
        s in depthwise_strategy(),
        seed in any::<u64>(),
        act in 0usize..3,
        threads in any::<bool>(),
    ) {
        let act = [Activation::Identity, Activation::Relu, Activation::Sigmoid][act];
        check_depthwise(&s, seed, act, if threads { Par::Rayon } else { Par::Seq })?;
    }
}

/// MobileNetV2's and EfficientNet's depthwise layers (channels cut down)
/// take the depthwise path for every pass, and match the reference; two
/// outputs per channel take it forward and for the weight gradient; a
/// larger multiplier, or one channel in all, does not.
#[test]
fn depthwise_layers_take_their_own_path() {
    let depthwise = |c, hw, k, stride| Conv2d {
        groups: c,
        ..Conv2d::square(2, c, hw, hw, c, k, stride, k / 2)
    };
    let shapes = [
        depthwise(8, 112, 3, 1),
        depthwise(12, 56, 3, 2),
        depthwise(16, 7, 3, 1),
        depthwise(6, 28, 5, 2),
        depthwise(10, 14, 5, 1),
        Conv2d { dh: 2, dw: 2, ph: 2, pw: 2, ..depthwise(5, 17, 3, 1) },
        Conv2d { o: 20, ..depthwise(10, 9, 3, 1) },
    ];
    for (i, s) in shapes.iter().enumerate() {
        let algos = [s.forward_algo(), s.backward_data_algo(), s.backward_weights_algo()];
        // Backward-data with several outputs per channel goes by im2col.
        let backward_data = if s.o > s.c { ConvAlgo::Im2col } else { ConvAlgo::Depthwise };
        let want = [ConvAlgo::Depthwise, backward_data, ConvAlgo::Depthwise];
        assert_eq!(algos, want, "{s:?}");
        check_all_passes(s, i as u64, Activation::Relu, Par::Rayon)
            .unwrap_or_else(|e| panic!("{e}"));
        check_depthwise(s, i as u64, Activation::Relu, Par::Seq).unwrap_or_else(|e| panic!("{e}"));
    }
    let wide = Conv2d { o: 40, ..depthwise(8, 14, 3, 1) };
    assert_eq!(wide.forward_algo(), ConvAlgo::Im2col);
    assert_eq!(Conv2d::square(2, 1, 28, 28, 2, 5, 1, 2).forward_algo(), ConvAlgo::Direct);
}

/// The fused ReLU mask of the depthwise backward-data zeroes where the
/// mask is not positive, and leaves the rest as it was.
#[test]
fn depthwise_backward_data_applies_the_relu_mask() {
    let s = Conv2d { groups: 6, ..Conv2d::square(3, 6, 11, 9, 6, 3, 2, 1) };
    let (dy, w) = (fill(s.output_len(), 1), fill(s.weight_len(), 2));
    let mask = fill(s.input_len(), 3);
    let mut plain = vec![f32::NAN; s.input_len()];
    conv2d_backward_data(&s, &dy, &w, None, &mut plain, Par::Rayon).unwrap();
    let mut masked = vec![f32::NAN; s.input_len()];
    conv2d_backward_data(&s, &dy, &w, Some(&mask), &mut masked, Par::Rayon).unwrap();
    assert_eq!(s.backward_data_algo(), ConvAlgo::Depthwise);
    for ((&p, &m), &k) in plain.iter().zip(&masked).zip(&mask) {
        assert_eq!(m, if k <= 0.0 { 0.0 } else { p });
    }
}
