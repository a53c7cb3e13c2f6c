//! Measures the FP32 FMA peak of one core: a loop of independent FMAs with
//! enough accumulators to cover the FMA latency on every port. The GEMM
//! benchmark reports its throughput as a share of this figure.

use std::time::{Duration, Instant};

/// FLOP/s of one core running only FMAs, with the widest instruction set
/// available, measured for about `budget`. Returns the set's name too.
pub fn fma_peak(budget: Duration) -> (&'static str, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            let has_avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx2 = if has_avx2 {
                // SAFETY: AVX2 and FMA were detected just above.
                measure(budget / 2, 16 * 8 * 2, |n| unsafe { x86::fma_loop_avx2(n) })
            } else {
                0.0
            };
            // SAFETY: AVX-512F was detected above.
            let avx512 = measure(budget / 2, 24 * 16 * 2, |n| unsafe { x86::fma_loop_avx512(n) });
            // Some cores fuse two 256-bit FMA units into one 512-bit unit: the
            // peak is whichever width runs faster.
            return if avx512 >= avx2 { ("avx512", avx512) } else { ("avx2", avx2) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected above.
            return ("avx2", measure(budget, 16 * 8 * 2, |n| unsafe { x86::fma_loop_avx2(n) }));
        }
    }
    ("scalar", measure(budget, 8 * 2, scalar_loop))
}

/// Runs `f(iterations)` (each iteration doing `flops_per_iter`) for about
/// `budget`, and returns the best FLOP/s of several runs.
fn measure(budget: Duration, flops_per_iter: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut n = 1 << 16;
    let mut best = 0.0f64;
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        let sink = f(n);
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.max((n * flops_per_iter) as f64 / dt);
        if dt < 0.02 {
            n *= 2;
        }
    }
    best
}

fn scalar_loop(n: usize) -> f32 {
    let mut acc = [1.0f32; 8];
    let x = std::hint::black_box(0.999_999f32);
    for _ in 0..n {
        for a in &mut acc {
            *a = a.mul_add(x, 1e-7);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 16 independent chains of 8-wide FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_loop_avx2(n: usize) -> f32 {
        let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 16];
        for _ in 0..n {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut out = [0.0f32; 8];
        let sum = acc.iter().fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a));
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }

    /// 24 independent chains of 16-wide FMAs.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_loop_avx512(n: usize) -> f32 {
        let x = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 24];
        for _ in 0..n {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let sum = acc.iter().fold(_mm512_setzero_ps(), |s, a| _mm512_add_ps(s, *a));
        _mm512_reduce_add_ps(sum)
    }
}
