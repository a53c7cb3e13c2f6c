//! x86_64 microkernels: AVX2+FMA (6x16, 12 ymm accumulators) and AVX-512F
//! (8x48 and 12x32 with 24 zmm accumulators, 8x32 with 16). All broadcast
//! one element of A and multiply it with whole rows of the packed B panel,
//! so C rows are stored with contiguous vector stores.

use std::arch::x86_64::*;

pub const AVX2_MR: usize = 6;
pub const AVX2_NR: usize = 16;
pub const AVX512_MR: usize = 8;
pub const AVX512_NR: usize = 48;

pub fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// One generic body: `$mr` rows of `$nv` vectors of `$lanes` floats.
macro_rules! microkernel {
    ($body:ident, $step:ident, $vec:ty, $lanes:expr, $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $add:ident) => {
        /// One rank-1 update: column `p` of the A panel times row `p` of the B panel.
        ///
        /// # Safety
        /// As the body below, for this one `p`.
        #[inline(always)]
        unsafe fn $step<const MR: usize, const NV: usize>(
            acc: &mut [[$vec; NV]; MR],
            a: *const f32,
            b: *const f32,
            p: usize,
        ) {
            // SAFETY: p < kc, so the loads stay inside the panels.
            unsafe {
                let bp = b.add(p * NV * $lanes);
                let mut bv = [$zero(); NV];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = $load(bp.add(v * $lanes));
                }
                let ap = a.add(p * MR);
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai: $vec = $set1(*ap.add(i));
                    for (v, slot) in row.iter_mut().enumerate() {
                        *slot = $fma(ai, bv[v], *slot);
                    }
                }
            }
        }

        #[inline(always)]
        unsafe fn $body<const MR: usize, const NV: usize>(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            rsc: usize,
            accumulate: bool,
        ) {
            // SAFETY: (whole body) the caller guarantees `a` holds kc·MR and
            // `b` kc·NV·lanes floats, `c` MR rows of NV·lanes floats rsc
            // apart, and that the CPU has the instruction set.
            unsafe {
                // C was last touched a whole kc block ago: start fetching its
                // tile now so the loads at the end do not stall.
                for i in 0..MR {
                    let row = c.add(i * rsc) as *const i8;
                    for line in (0..NV * $lanes * 4).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(row.add(line));
                    }
                }
                let mut acc = [[$zero(); NV]; MR];
                // Unrolled by four, so loop control costs less per FMA.
                let mut p = 0;
                while p + 4 <= kc {
                    $step(&mut acc, a, b, p);
                    $step(&mut acc, a, b, p + 1);
                    $step(&mut acc, a, b, p + 2);
                    $step(&mut acc, a, b, p + 3);
                    p += 4;
                }
                while p < kc {
                    $step(&mut acc, a, b, p);
                    p += 1;
                }
                for (i, row) in acc.iter().enumerate() {
                    let cr = c.add(i * rsc);
                    for (v, &value) in row.iter().enumerate() {
                        let dst = cr.add(v * $lanes);
                        let out = if accumulate { $add($load(dst), value) } else { value };
                        $store(dst, out);
                    }
                }
            }
        }
    };
}

microkernel!(
    body_avx2,
    step_avx2,
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);
microkernel!(
    body_avx512,
    step_avx512,
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);

/// A [`super::MicroKernel`]: `$body` on `$mr` rows of `$nv` vectors,
/// compiled for `$features`.
macro_rules! kernel_entry {
    ($name:ident, $features:literal, $body:ident, $mr:expr, $nv:expr) => {
        /// # Safety
        /// As [`super::MicroKernel`], on a CPU with the target features.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(
            kc: usize,
            a: *const f32,
            b: *const f32,
            c: *mut f32,
            rsc: usize,
            accumulate: bool,
        ) {
            // SAFETY: forwarded from the caller; the target features are
            // enabled here.
            unsafe { $body::<{ $mr }, { $nv }>(kc, a, b, c, rsc, accumulate) }
        }
    };
}

kernel_entry!(avx2_kernel, "avx2,fma", body_avx2, AVX2_MR, AVX2_NR / 8);
kernel_entry!(avx512_kernel, "avx512f", body_avx512, AVX512_MR, AVX512_NR / 16);
kernel_entry!(avx512_12x32_kernel, "avx512f", body_avx512, 12, 2);
kernel_entry!(avx512_8x32_kernel, "avx512f", body_avx512, 8, 2);
