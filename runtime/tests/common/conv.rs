//! Helpers of the convolution tests (plain and transposed): signed fills
//! and a comparison against an f64 reference whose tolerance grows with
//! the number of terms summed.

use proptest::prelude::*;

/// A deterministic xorshift fill in [-1, 1).
pub fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `got` against the f64 `want` of sums of `terms` products, for shape `s`.
pub fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    terms: usize,
    s: &impl std::fmt::Debug,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    // f32 rounding grows with the number of terms summed; anything looser
    // would hide a wrong scale factor on a long sum.
    let tol = 1e-6 * (terms as f64 + 10.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (f64::from(g) - w).abs() <= tol * (1.0 + w.abs());
        prop_assert!(ok, "{} [{}]: got {}, want {} for {:?}", what, i, g, w, s);
    }
    Ok(())
}
