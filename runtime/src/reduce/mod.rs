//! Contiguous f32 reductions shared by the pooling and normalisation kernels.
//!
//! Each keeps many independent partial sums. A vector add has a latency of
//! about four cycles, so a sum kept in one or two registers runs at a few
//! floats a cycle however fast memory is. The AVX-512 versions keep four registers per sum. Splitting a long sum
//! also keeps its rounding error far below that of one running f32 total.

#[deny(unsafe_code)]
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::lane_sums8;

use crate::isa::Isa;

/// `Σ x`.
#[inline]
pub(crate) fn sum(x: &[f32]) -> f32 {
    sum_dev(x, 0.0)
}

/// `Σ (x - shift)`.
#[inline]
fn sum_dev(x: &[f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx512 {
        // SAFETY: the CPU supports AVX-512F.
        return unsafe { x86::sum_dev(x, shift) };
    }
    portable::sum_dev(x, shift)
}

/// The mean of `x` and the sum of its squared deviations from it, in f64,
/// from two passes while `x` sits in cache. The sum is taken about `x[0]`,
/// so a constant `x` has its own value as the mean, exactly, and no
/// variance: normalising it gives zeros rather than its rounding error
/// times `1/sqrt(eps)`. The squared deviations are taken about the mean
/// rounded to f32, and corrected: `Σ(x - a)² = Σ(x - μ)² + len·(μ - a)²`.
pub(crate) fn mean_and_ssd(x: &[f32]) -> (f64, f64) {
    let Some(&shift) = x.first() else { return (0.0, 0.0) };
    let len = x.len() as f64;
    let mean = f64::from(shift) + f64::from(sum_dev(x, shift)) / len;
    let rounded = mean as f32;
    let off = mean - f64::from(rounded);
    let ssd = f64::from(sum_sq_dev(x, rounded)) - len * off * off;
    (mean, ssd.max(0.0))
}

/// `Σ (x - mean)²`: the two-pass variance, which unlike `Σx² - m·mean²`
/// cannot cancel to a negative number.
#[inline]
pub(crate) fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx512 {
        // SAFETY: the CPU supports AVX-512F.
        return unsafe { x86::sum_sq_dev(x, mean) };
    }
    portable::sum_sq_dev(x, mean)
}

/// `(Σ dy, Σ dy·(x - mean))` in one pass over both slices (the shorter
/// one's length), so each is read from memory once.
#[inline]
pub(crate) fn sum_and_dot_dev(dy: &[f32], x: &[f32], mean: f32) -> (f32, f32) {
    let len = dy.len().min(x.len());
    let (dy, x) = (&dy[..len], &x[..len]);
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx512 {
        // SAFETY: the CPU supports AVX-512F, and the slices are as long.
        return unsafe { x86::sum_and_dot_dev(dy, x, mean) };
    }
    portable::sum_and_dot_dev(dy, x, mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 1013) as f32 / 101.0) - 4.0).collect()
    }

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-5 * scale.max(1.0)
    }

    /// Every path this CPU has agrees with an f64 sum at every length up to
    /// past two unrolled blocks, so the masked tails and the 16-wide steps
    /// are all covered.
    #[test]
    fn reductions_match_f64_sums_at_every_length() {
        for len in 0..200 {
            let (x, dy) = (values(len, 3), values(len, 11));
            let (mean, shift) = (0.37f32, -1.25f32);
            let sum64: f64 = x.iter().map(|&v| f64::from(v) - f64::from(shift)).sum();
            let ssd64: f64 = x.iter().map(|&v| (f64::from(v) - f64::from(mean)).powi(2)).sum();
            let dy64: f64 = dy.iter().map(|&v| f64::from(v)).sum();
            let dot64: f64 = dy
                .iter()
                .zip(&x)
                .map(|(&g, &v)| f64::from(g) * (f64::from(v) - f64::from(mean)))
                .sum();
            let abs: f32 = x.iter().map(|v| v.abs() * 5.0).sum();
            let mut results = vec![(
                "portable",
                portable::sum_dev(&x, shift),
                portable::sum_sq_dev(&x, mean),
                portable::sum_and_dot_dev(&dy, &x, mean),
            )];
            #[cfg(target_arch = "x86_64")]
            if Isa::supported().contains(&Isa::Avx512) {
                // SAFETY: the CPU supports AVX-512F; the slices match.
                results.push(unsafe {
                    (
                        "avx512",
                        x86::sum_dev(&x, shift),
                        x86::sum_sq_dev(&x, mean),
                        x86::sum_and_dot_dev(&dy, &x, mean),
                    )
                });
            } else {
                eprintln!("reductions: no AVX-512 on this CPU; portable path only");
            }
            for (path, s, ssd, (sdy, dot)) in results {
                assert!(close(s, sum64 as f32, abs), "{path} sum at {len}: {s} vs {sum64}");
                assert!(close(ssd, ssd64 as f32, abs * 5.0), "{path} ssd at {len}");
                assert!(close(sdy, dy64 as f32, abs), "{path} Σdy at {len}: {sdy} vs {dy64}");
                assert!(close(dot, dot64 as f32, abs * 5.0), "{path} dot at {len}");
            }
        }
    }

    /// A constant slice has its value as its mean, exactly, and no
    /// variance, at every length (where a plain sum of 0.1s rounds), so
    /// normalising a constant row or channel gives exact zeros.
    #[test]
    fn constant_values_have_their_value_as_mean_and_no_variance() {
        for len in 1..150 {
            for c in [0.1f32, -3.7, 1e-8, 12345.679] {
                let x = vec![c; len];
                assert_eq!(mean_and_ssd(&x), (f64::from(c), 0.0), "{c} x {len}");
            }
        }
        assert_eq!(mean_and_ssd(&[]), (0.0, 0.0));
        let (mean, ssd) = mean_and_ssd(&[1.0, 2.0, 3.0, 6.0]);
        assert!((mean - 3.0).abs() < 1e-12 && (ssd - 14.0).abs() < 1e-9, "{mean} {ssd}");
    }
}
