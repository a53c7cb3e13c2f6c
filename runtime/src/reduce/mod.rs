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
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx512 {
        // SAFETY: the CPU supports AVX-512F.
        return unsafe { x86::sum(x) };
    }
    portable::sum(x)
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
            let mean = 0.37f32;
            let sum64: f64 = x.iter().map(|&v| f64::from(v)).sum();
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
                portable::sum(&x),
                portable::sum_sq_dev(&x, mean),
                portable::sum_and_dot_dev(&dy, &x, mean),
            )];
            #[cfg(target_arch = "x86_64")]
            if Isa::supported().contains(&Isa::Avx512) {
                // SAFETY: the CPU supports AVX-512F; the slices match.
                results.push(unsafe {
                    (
                        "avx512",
                        x86::sum(&x),
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
}
