//! conv_transpose2d against its reference, over random shapes with odd
//! sizes, strides, padding, output padding (up to the larger of stride and
//! dilation, beyond the stride where the dilation allows), dilation and
//! groups, on one thread and several; the reference's gradients against
//! central finite differences in f64; output sizes as PyTorch's, and shapes
//! it refuses.

use netc_runtime::conv::ConvAlgo;
use netc_runtime::conv_transpose::{
    conv_transpose2d_backward_data, conv_transpose2d_backward_weights, conv_transpose2d_forward,
    ConvTranspose2d,
};
use netc_runtime::error::ConvError;
use netc_runtime::gemm::{Activation, Par};
use netc_runtime::reference::conv as reference;
use proptest::prelude::*;

mod common;
use common::conv::{assert_close, f64s, fill};

#[allow(clippy::too_many_arguments)]
fn square(
    n: usize,
    c: usize,
    hw: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    output_pad: usize,
) -> ConvTranspose2d {
    ConvTranspose2d {
        n,
        c,
        h: hw,
        w: hw,
        o,
        kh: k,
        kw: k,
        sh: stride,
        sw: stride,
        ph: pad,
        pw: pad,
        oph: output_pad,
        opw: output_pad,
        dh: 1,
        dw: 1,
        groups: 1,
    }
}

fn shape_strategy() -> impl Strategy<Value = ConvTranspose2d> {
    (
        (1usize..4, 1usize..4, 1usize..5, 1usize..5),
        (1usize..11, 1usize..11),
        (1usize..5, 1usize..5, 1usize..4, 1usize..4),
        (0usize..3, 0usize..3, 1usize..4, 1usize..3),
        (0usize..3, 0usize..3),
    )
        .prop_map(
            |((n, groups, cpg, opg), (h, w), (kh, kw, sh, sw), (ph, pw, dh, dw), (oph, opw))| {
                ConvTranspose2d {
                    n,
                    c: groups * cpg,
                    h,
                    w,
                    o: groups * opg,
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                    oph: oph % sh.max(dh),
                    opw: opw % sw.max(dw),
                    dh,
                    dw,
                    groups,
                }
            },
        )
        .prop_filter("a valid shape", |s| s.is_valid())
}

fn check(s: &ConvTranspose2d, seed: u64, act: Activation, par: Par) -> Result<(), TestCaseError> {
    let fail = |e: ConvError| TestCaseError::fail(e.to_string());
    let (x, w, b) =
        (fill(s.input_len(), seed), fill(s.weight_len(), seed + 1), fill(s.o, seed + 2));
    let dy = fill(s.output_len(), seed + 3);
    let mut y = vec![f32::NAN; s.output_len()];
    conv_transpose2d_forward(s, &x, &w, Some(&b), act, &mut y, par).map_err(fail)?;
    let mut want = reference::conv_transpose2d_forward(s, &f64s(&x), &f64s(&w), Some(&f64s(&b)));
    for v in &mut want {
        *v = f64::from(act.apply(*v as f32));
    }
    let fan = s.c / s.groups * s.kh * s.kw;
    assert_close("forward", &y, &want, fan, s)?;

    let mut dx = vec![f32::NAN; s.input_len()];
    conv_transpose2d_backward_data(s, &dy, &w, &mut dx, par).map_err(fail)?;
    let want = reference::conv_transpose2d_backward_data(s, &f64s(&dy), &f64s(&w));
    assert_close("backward data", &dx, &want, s.o / s.groups * s.kh * s.kw, s)?;

    let mut dw = vec![f32::NAN; s.weight_len()];
    let mut db = vec![f32::NAN; s.o];
    conv_transpose2d_backward_weights(s, &x, &dy, &mut dw, Some(&mut db), par).map_err(fail)?;
    let (want_w, want_b) = reference::conv_transpose2d_backward_weights(s, &f64s(&x), &f64s(&dy));
    assert_close("backward weights", &dw, &want_w, s.n * s.h * s.w, s)?;
    assert_close("backward bias", &db, &want_b, s.n * s.out_h() * s.out_w(), s)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn every_pass_matches_the_reference(
        s in shape_strategy(),
        seed in any::<u64>(),
        relu in any::<bool>(),
        threads in any::<bool>(),
    ) {
        let act = if relu { Activation::Relu } else { Activation::Identity };
        check(&s, seed, act, if threads { Par::Rayon } else { Par::Seq })?;
    }
}

/// Decoder and U-Net layers: 2x upsampling by 2x2 and 4x4 windows, a 3x3
/// with output padding, a depthwise one, one whose output padding is past
/// the stride (dilation 3), and an empty batch.
#[test]
fn model_shapes_match_the_reference() {
    let shapes = [
        square(4, 32, 8, 16, 2, 2, 0, 0),
        square(2, 16, 14, 8, 4, 2, 1, 0),
        square(3, 8, 7, 4, 3, 2, 1, 1),
        ConvTranspose2d { groups: 12, ..square(2, 12, 9, 12, 3, 2, 1, 1) },
        ConvTranspose2d { dh: 3, dw: 3, oph: 2, opw: 1, ..square(2, 3, 5, 4, 3, 1, 0, 0) },
        square(0, 3, 5, 4, 3, 2, 1, 1),
    ];
    for (i, s) in shapes.iter().enumerate() {
        check(s, i as u64, Activation::Sigmoid, Par::Rayon).unwrap_or_else(|e| panic!("{e}"));
    }
    // The depthwise transposed conv runs on the depthwise kernels.
    assert_eq!(shapes[3].conv().backward_data_algo(), ConvAlgo::Depthwise);
}

/// PyTorch's sizes: `(h − 1)·s − 2·p + d·(k − 1) + output_pad + 1`.
#[test]
fn output_sizes_follow_pytorch() {
    assert_eq!(square(1, 1, 7, 1, 3, 2, 1, 1).out_h(), 14);
    assert_eq!(square(1, 1, 7, 1, 3, 2, 1, 0).out_h(), 13);
    assert_eq!(square(1, 1, 16, 1, 4, 2, 1, 0).out_h(), 32);
    let dilated =
        ConvTranspose2d { dh: 2, dw: 3, oph: 1, opw: 2, ..square(1, 1, 5, 1, 3, 1, 0, 0) };
    assert_eq!((dilated.out_h(), dilated.out_w()), (5 + 4 + 1, 5 + 6 + 2));
}

/// Output padding not below both stride and dilation, groups that do not
/// divide, and padding that leaves nothing are errors naming the pass, as
/// are wrong lengths.
#[test]
fn invalid_shapes_are_errors() {
    let too_much = square(1, 2, 5, 2, 3, 2, 1, 2);
    let mut y = vec![0.0; 4 * 11 * 11];
    let err = conv_transpose2d_forward(
        &too_much,
        &[0.0; 50],
        &[0.0; 36],
        None,
        Activation::Identity,
        &mut y,
        Par::Seq,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConvError::InvalidTranspose { op: "conv_transpose2d_forward", shape: Box::new(too_much) }
    );
    assert!(err.to_string().contains("output padding must be smaller"), "{err}");
    let groups = ConvTranspose2d { groups: 2, ..square(1, 3, 5, 2, 3, 1, 0, 0) };
    assert_eq!(groups.invalid_reason(), Some("groups must divide both channel counts"));
    let nothing = square(1, 1, 1, 1, 1, 1, 1, 0);
    assert_eq!(nothing.invalid_reason(), Some("the padding leaves no output"));
    let s = square(2, 2, 4, 3, 3, 2, 1, 1);
    let mut dx = vec![0.0; s.input_len() + 1];
    let err = conv_transpose2d_backward_data(
        &s,
        &fill(s.output_len(), 1),
        &fill(s.weight_len(), 2),
        &mut dx,
        Par::Seq,
    );
    assert!(matches!(err, Err(ConvError::Len(e)) if e.tensor == "input"));
}

/// The reference's backward passes against central differences of
/// `L = ⟨dy, conv_transpose(x, w) + b⟩` in f64.
#[test]
fn reference_gradients_match_finite_differences() {
    let shapes = [
        ConvTranspose2d { groups: 2, dw: 2, oph: 1, ..square(2, 4, 4, 6, 3, 2, 1, 0) },
        ConvTranspose2d { kw: 2, sw: 3, opw: 2, ..square(1, 3, 3, 2, 3, 1, 1, 0) },
    ];
    for s in shapes {
        assert!(s.is_valid(), "{s:?}");
        let x = f64s(&fill(s.input_len(), 7));
        let w = f64s(&fill(s.weight_len(), 8));
        let b = f64s(&fill(s.o, 9));
        let dy = f64s(&fill(s.output_len(), 10));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            let y = reference::conv_transpose2d_forward(&s, x, w, Some(b));
            y.iter().zip(&dy).map(|(y, d)| y * d).sum()
        };
        let dx = reference::conv_transpose2d_backward_data(&s, &dy, &w);
        let (dw, db) = reference::conv_transpose2d_backward_weights(&s, &x, &dy);
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
