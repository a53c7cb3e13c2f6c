//! The reductions in AVX-512: four accumulator registers per sum (64 floats
//! a step), then 16-float steps, then one masked load for the tail.

use std::arch::x86_64::*;

/// The 16 floats of `x` from `i`, or the `x.len() - i < 16` left there
/// with zeros after them.
///
/// # Safety
/// `i < x.len()`, and the CPU must support AVX-512F.
#[inline(always)]
unsafe fn load(x: &[f32], i: usize) -> __m512 {
    let left = x.len() - i;
    let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
    // SAFETY: the mask covers only floats inside the slice; masked-off
    // lanes are not read.
    unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(i)) }
}

/// The sum of the four accumulators' lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn total(acc: [__m512; 4]) -> f32 {
    let pairs = (_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(_mm512_add_ps(pairs.0, pairs.1))
}

/// `Σ (x - shift)`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_dev(x: &[f32], shift: f32) -> f32 {
    let n = x.len();
    let s = _mm512_set1_ps(shift);
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16k < n; the caller vouches for the CPU.
            *a = _mm512_add_ps(*a, _mm512_sub_ps(unsafe { load(x, i + 16 * k) }, s));
        }
        i += 64;
    }
    while i < n {
        let lanes = (n - i).min(16);
        let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
        // SAFETY: i < n; the caller vouches for the CPU.
        let d = _mm512_maskz_sub_ps(mask, unsafe { load(x, i) }, s);
        acc[0] = _mm512_add_ps(acc[0], d);
        i += 16;
    }
    total(acc)
}

/// `Σ (x - mean)²`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let n = x.len();
    let m = _mm512_set1_ps(mean);
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16k < n; the caller vouches for the CPU.
            let d = _mm512_sub_ps(unsafe { load(x, i + 16 * k) }, m);
            *a = _mm512_fmadd_ps(d, d, *a);
        }
        i += 64;
    }
    while i < n {
        // Lanes past the end are zero in `load`, and masked out of `d`.
        let lanes = (n - i).min(16);
        let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
        // SAFETY: i < n; the caller vouches for the CPU.
        let d = _mm512_maskz_sub_ps(mask, unsafe { load(x, i) }, m);
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    total(acc)
}

/// `(Σ dy, Σ dy·(x - mean))`.
///
/// # Safety
/// `dy` and `x` must have the same length, and the CPU must support
/// AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sum_and_dot_dev(dy: &[f32], x: &[f32], mean: f32) -> (f32, f32) {
    let n = dy.len();
    let m = _mm512_set1_ps(mean);
    let (mut sums, mut dots) = ([_mm512_setzero_ps(); 4], [_mm512_setzero_ps(); 4]);
    let mut i = 0;
    while i + 64 <= n {
        for k in 0..4 {
            // SAFETY: i + 16k < n, the length of both slices; the caller
            // vouches for the CPU.
            let (g, v) = unsafe { (load(dy, i + 16 * k), load(x, i + 16 * k)) };
            sums[k] = _mm512_add_ps(sums[k], g);
            dots[k] = _mm512_fmadd_ps(g, _mm512_sub_ps(v, m), dots[k]);
        }
        i += 64;
    }
    while i < n {
        // Zero lanes of dy past the end add nothing to either sum.
        // SAFETY: as above.
        let (g, v) = unsafe { (load(dy, i), load(x, i)) };
        sums[0] = _mm512_add_ps(sums[0], g);
        dots[0] = _mm512_fmadd_ps(g, _mm512_sub_ps(v, m), dots[0]);
        i += 16;
    }
    (total(sums), total(dots))
}

/// The lane sums of eight vectors, `[Σv0, …, Σv7]`: pairs interleaved
/// and added, then quads, then the four 128-bit quarters; 16 shuffles and
/// 8 adds, where eight separate reductions would take 32 and 32.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn lane_sums8(v: [__m512; 8]) -> [f32; 8] {
    let (ab, cd, ef, gh) = (pair(v[0], v[1]), pair(v[2], v[3]), pair(v[4], v[5]), pair(v[6], v[7]));
    let (abcd, efgh) = (quad(ab, cd), quad(ef, gh));
    // Quarters [abcd 0+2, abcd 1+3, efgh 0+2, efgh 1+3].
    let halves = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(abcd, efgh),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(abcd, efgh),
    );
    // Quarters [abcd, abcd, efgh, efgh], then the first and third.
    let total = _mm512_add_ps(halves, _mm512_shuffle_f32x4::<0b10_11_00_01>(halves, halves));
    let low = _mm512_castps512_ps256(_mm512_shuffle_f32x4::<0b00_00_10_00>(total, total));
    let mut out = [0.0f32; 8];
    // SAFETY: `out` holds the 8 floats stored.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), low) };
    out
}

/// Per 128-bit quarter: `[a0+a2, b0+b2, a1+a3, b1+b3]` of its lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn pair(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
}

/// Per 128-bit quarter: `[Σa, Σb, Σc, Σd]` of its lanes, from two
/// [`pair`]s.
#[target_feature(enable = "avx512f")]
#[inline]
fn quad(p: __m512, q: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(p, q),
        _mm512_shuffle_ps::<0b11_10_11_10>(p, q),
    )
}
