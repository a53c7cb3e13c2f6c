//! The axis permutation against the index-by-index reference over random
//! shapes and permutations up to the largest rank (axes of one, merged
//! neighbours, moved innermost axes, tiles with remainders), its inverse
//! as the backward, ShuffleNet's channel shuffle, and bad shapes as errors.

use netc_runtime::permute::{permute, Permute, MAX_RANK};
use netc_runtime::reference;
use proptest::prelude::*;

mod common;
use common::{fill, widen};

fn shape(n: usize, dims: &[usize], perm: &[usize]) -> Permute {
    let mut p = Permute { n, rank: dims.len(), dims: [1; MAX_RANK], perm: [0; MAX_RANK] };
    p.dims[..dims.len()].copy_from_slice(dims);
    p.perm[..perm.len()].copy_from_slice(perm);
    p
}

/// The kernel equals the reference exactly (a copy), and the inverse
/// permutation gives the input back.
fn check(p: Permute, seed: u64) -> Result<(), String> {
    let x = fill(p.x_len(), seed, -1.0, 1.0);
    let mut y = vec![f32::NAN; p.x_len()];
    permute(p, &x, &mut y).map_err(|e| e.to_string())?;
    let want = reference::permute(p, &widen(&x));
    if widen(&y) != want {
        return Err(format!("{p:?}: differs from the reference"));
    }
    let mut back = vec![f32::NAN; p.x_len()];
    permute(p.inverse(), &y, &mut back).map_err(|e| e.to_string())?;
    if back != x {
        return Err(format!("{p:?}: the inverse does not give x back"));
    }
    Ok(())
}

/// Dims of 1 to 5 (so that axes of one and merges are common) or up to 40
/// (tiles with remainders), and a permutation of them.
fn permute_shape() -> impl Strategy<Value = Permute> {
    (1usize..=5).prop_flat_map(|rank| {
        let dims = proptest::collection::vec(prop_oneof![1usize..=5, 1usize..=40], rank);
        let perm = Just((0..rank).collect::<Vec<usize>>()).prop_shuffle();
        (1usize..=3, dims, perm).prop_map(|(n, dims, perm)| shape(n, &dims, &perm))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn permute_matches_the_reference(p in permute_shape(), seed in any::<u64>()) {
        prop_assume!(p.sample_len() <= 20_000);
        check(p, seed).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn every_permutation_of_rank_four_and_the_largest_rank() {
    let dims = [3, 5, 2, 7];
    let mut perm = [0, 1, 2, 3];
    // Heap's algorithm, iteratively: all 24 orders.
    let mut c = [0usize; 4];
    check(shape(2, &dims, &perm), 1).unwrap();
    let mut i = 0;
    while i < 4 {
        if c[i] < i {
            perm.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
            check(shape(2, &dims, &perm), i as u64).unwrap();
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    check(shape(1, &[2, 3, 1, 2, 3, 2, 1, 3], &[7, 5, 3, 1, 0, 2, 4, 6]), 3).unwrap();
}

/// ShuffleNet's channel shuffle of 12 channels in 3 groups: channel
/// `k·3 + g` of the output is channel `g·4 + k` of the input.
#[test]
fn channel_shuffle_interleaves_the_groups() {
    let (g, per, hw) = (3, 4, 10);
    let p = shape(2, &[g, per, hw], &[1, 0, 2]);
    let x: Vec<f32> = (0..p.x_len()).map(|i| i as f32).collect();
    let mut y = vec![0.0f32; p.x_len()];
    permute(p, &x, &mut y).unwrap();
    for s in 0..2 {
        for k in 0..per {
            for gi in 0..g {
                let out = (s * 12 + k * g + gi) * hw;
                let inp = (s * 12 + gi * per + k) * hw;
                assert_eq!(y[out..out + hw], x[inp..inp + hw]);
            }
        }
    }
}

/// A transpose big enough to be split across threads.
#[test]
fn big_transposes_match_the_reference() {
    check(shape(3, &[129, 67, 5], &[2, 1, 0]), 5).unwrap();
    check(shape(2, &[64, 33, 33], &[1, 2, 0]), 6).unwrap();
}

#[test]
fn bad_shapes_are_errors() {
    let x = vec![0.0f32; 24];
    let mut y = vec![0.0f32; 24];
    let err = permute(shape(2, &[3, 4], &[0, 0]), &x, &mut y).unwrap_err();
    assert_eq!((err.tensor, err.expected, err.found), ("perm", 2, 1));
    let err = permute(shape(2, &[3, 4], &[1, 0]), &x[..23], &mut y).unwrap_err();
    assert_eq!((err.tensor, err.expected, err.found), ("x", 24, 23));
    let err = permute(Permute { rank: 9, ..shape(2, &[3, 4], &[1, 0]) }, &x, &mut y).unwrap_err();
    assert_eq!(err.tensor, "dims");
}
