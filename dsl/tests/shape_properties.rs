//! Property tests of shape inference against brute force: the output extent
//! of a conv or pooling window is the number of window positions that fit,
//! counted one by one, and generated networks have the parameter counts
//! their formulas give.

use netc_dsl::ir::{Conv2d, Op, Pool2d, Shape};
use netc_dsl::ops::PoolKind;
use proptest::prelude::*;

/// Counts the window start positions that fit in the padded input, stepping
/// by `stride`: the definition the closed-form rule must agree with.
fn positions(input: usize, kernel: usize, stride: usize, pad: usize, dilation: usize) -> usize {
    let padded = input + 2 * pad;
    let reach = dilation * (kernel - 1) + 1;
    (0..padded).step_by(stride).filter(|start| start + reach <= padded).count()
}

/// Counts PyTorch's ceil-mode windows one by one: each starts inside the
/// input or its left padding, and overhangs the padded input by less than
/// a stride (which for all but the first says the window before it did
/// not reach the end).
fn ceil_positions(input: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    let padded = input + 2 * pad;
    (0..input + pad).step_by(stride).filter(|start| start + kernel < padded + stride).count()
}

proptest! {
    #[test]
    fn conv_extent_counts_window_positions(
        c in 1usize..5, h in 1usize..40, w in 1usize..40,
        kh in 1usize..8, kw in 1usize..8, s in 1usize..5, p in 0usize..4, d in 1usize..4,
    ) {
        let op = Op::new(Conv2d {
            out_channels: 3, kernel: [kh, kw], stride: [s, s], pad: [p, p],
            dilation: [d, d], groups: 1, bias: true, same: false,
        });
        let x = Shape(vec![c, h, w]);
        let (ph, pw) = (positions(h, kh, s, p, d), positions(w, kw, s, p, d));
        match op.infer(&[&x]) {
            Ok(out) => prop_assert_eq!(out.dims(), &[3, ph, pw]),
            Err(_) => prop_assert!(ph == 0 || pw == 0, "rejected although {ph}x{pw} positions fit"),
        }
    }

    #[test]
    fn pool_extent_counts_window_positions(
        h in 1usize..30, w in 1usize..30, k in 1usize..6, s in 1usize..4, p in 0usize..3,
        ceil_mode: bool,
    ) {
        let op = Op::new(Pool2d {
            kind: PoolKind::Avg, kernel: [k, k], stride: [s, s], pad: [p, p],
            ceil_mode, count_include_pad: true,
        });
        let x = Shape(vec![2, h, w]);
        let (ph, pw) = if ceil_mode {
            (ceil_positions(h, k, s, p), ceil_positions(w, k, s, p))
        } else {
            (positions(h, k, s, p, 1), positions(w, k, s, p, 1))
        };
        match op.infer(&[&x]) {
            Ok(out) => prop_assert_eq!(out.dims(), &[2, ph, pw]),
            Err(_) => prop_assert!(p > k / 2 || ph == 0 || pw == 0),
        }
    }

    #[test]
    fn generated_mlps_have_the_formula_parameter_count(
        widths in proptest::collection::vec(1usize..300, 2..6),
    ) {
        let mut src = format!("network M {{\n input x: [{}]\n y = x", widths[0]);
        for w in &widths[1..] {
            src.push_str(&format!(" -> dense({w}) -> relu"));
        }
        src.push_str("\n output y\n}\n");
        let checked = netc_dsl::check_source("m.net", &src).map_err(|d| TestCaseError::fail(d.to_string()))?;
        let g = &checked.graphs[0];
        let expected: usize = widths.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
        let macs: u64 = widths.windows(2).map(|p| (p[0] * p[1]) as u64).sum();
        prop_assert_eq!(g.total_params(), expected);
        prop_assert_eq!(g.total_macs(), macs);
        prop_assert_eq!(g.node(g.output).shape.dims(), &[*widths.last().unwrap()]);
    }

    /// Whatever the bytes, checking returns; it never panics.
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        let _ = netc_dsl::check_source("any.net", &src).map(|c| c.graphs.len());
    }
}
