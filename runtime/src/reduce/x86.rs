//! The reductions in AVX-512: four accumulator registers per sum (64 floats
//! a step), then 16-float steps, then one masked load for the tail.

use std::arch::x86_64::*;

/// Loads `x[i..i + 16]`, or the `n - i < 16` floats left, zero-filled.
///
/// # Safety
/// `i < x.len()`, and the CPU must support AVX-512F.
#[inline(always)]
unsafe fn tail(x: &[f32], i: usize) -> __m512 {
    let left = x.len() - i;
    let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
    // SAFETY: the mask covers only the floats inside the slice; masked-off
    // lanes are not read.
    unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(i)) }
}

/// `Σ x`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum(x: &[f32]) -> f32 {
    let (n, p) = (x.len(), x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (loop bodies): each load reads 16 floats below n.
    while i + 64 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(p.add(i + 16 * k)) });
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = _mm512_add_ps(acc[0], unsafe { _mm512_loadu_ps(p.add(i)) });
        i += 16;
    }
    if i < n {
        // SAFETY: i < n.
        acc[1] = _mm512_add_ps(acc[1], unsafe { tail(x, i) });
    }
    let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(total)
}

/// `Σ (x - mean)²`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let (n, p) = (x.len(), x.as_ptr());
    let m = _mm512_set1_ps(mean);
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    let step = |acc: __m512, v: __m512| {
        let d = _mm512_sub_ps(v, m);
        _mm512_fmadd_ps(d, d, acc)
    };
    // SAFETY (loop bodies): each load reads 16 floats below n.
    while i + 64 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = step(*a, unsafe { _mm512_loadu_ps(p.add(i + 16 * k)) });
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = step(acc[0], unsafe { _mm512_loadu_ps(p.add(i)) });
        i += 16;
    }
    if i < n {
        // The zero-filled lanes are masked out of the sum.
        let left = n - i;
        let mask: __mmask16 = (1u16 << left) - 1;
        // SAFETY: i < n.
        let v = unsafe { tail(x, i) };
        let d = _mm512_maskz_sub_ps(mask, v, m);
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
    }
    let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(total)
}

/// `(Σ dy, Σ dy·(x - mean))`.
///
/// # Safety
/// `dy` and `x` must have the same length, and the CPU must support
/// AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_and_dot_dev(dy: &[f32], x: &[f32], mean: f32) -> (f32, f32) {
    let (n, pg, px) = (dy.len(), dy.as_ptr(), x.as_ptr());
    let m = _mm512_set1_ps(mean);
    let mut sums = [_mm512_setzero_ps(); 4];
    let mut dots = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (loop bodies): each load reads 16 floats below n of both
    // slices, which the caller made the same length.
    while i + 64 <= n {
        for k in 0..4 {
            let g = unsafe { _mm512_loadu_ps(pg.add(i + 16 * k)) };
            let v = unsafe { _mm512_loadu_ps(px.add(i + 16 * k)) };
            sums[k] = _mm512_add_ps(sums[k], g);
            dots[k] = _mm512_fmadd_ps(g, _mm512_sub_ps(v, m), dots[k]);
        }
        i += 64;
    }
    while i + 16 <= n {
        let g = unsafe { _mm512_loadu_ps(pg.add(i)) };
        let v = unsafe { _mm512_loadu_ps(px.add(i)) };
        sums[0] = _mm512_add_ps(sums[0], g);
        dots[0] = _mm512_fmadd_ps(g, _mm512_sub_ps(v, m), dots[0]);
        i += 16;
    }
    if i < n {
        // Zero-filled lanes of dy add nothing to either sum.
        // SAFETY: i < n for both slices.
        let (g, v) = unsafe { (tail(dy, i), tail(x, i)) };
        sums[1] = _mm512_add_ps(sums[1], g);
        dots[1] = _mm512_fmadd_ps(g, _mm512_sub_ps(v, m), dots[1]);
    }
    let s = _mm512_add_ps(_mm512_add_ps(sums[0], sums[1]), _mm512_add_ps(sums[2], sums[3]));
    let d = _mm512_add_ps(_mm512_add_ps(dots[0], dots[1]), _mm512_add_ps(dots[2], dots[3]));
    (_mm512_reduce_add_ps(s), _mm512_reduce_add_ps(d))
}
