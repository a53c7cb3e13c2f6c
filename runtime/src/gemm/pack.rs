//! Packing of A and B blocks into contiguous micro-panels, the layout the
//! microkernels stream through: A in panels of `mr` rows (for each p, `mr`
//! values), B in panels of `nr` columns (for each p, `nr` values). Edges are
//! padded with zeros so the microkernels always see full panels.

use super::MatRef;

/// The largest `mr` or `nr` of any microkernel.
const MAX_STREAMS: usize = 48;

/// Writes `srcs[s][p]·scale` to `dst[p·width + s]` for `p < len`: a transpose
/// of up to `width` contiguous streams into the packed panel layout. With
/// AVX-512, whole 16x16 blocks go through registers ([`x86`]); the rest
/// (and every block without it) through a small buffer, 16 values of each
/// stream at a time so the reads are vector loads.
pub(crate) fn interleave(dst: &mut [f32], srcs: &[&[f32]], len: usize, width: usize, scale: f32) {
    const W: usize = 16;
    // The register transpose goes with the AVX-512 kernels, so that forcing
    // another family (`NETC_GEMM_KERNEL`) also tests the buffered path.
    let fast = super::kernel::selected().name.starts_with("avx512");
    let mut p = 0;
    while p < len {
        let w = W.min(len - p);
        let mut s0 = 0;
        #[cfg(target_arch = "x86_64")]
        if fast && w == W {
            // Groups of up to 16 streams: A panels of 8 or 12 rows go through
            // the same transpose, with the missing rows left as zeros.
            if srcs.len() == 8 && width == 8 {
                // The 8-row A panels of the 8x48 kernel: a transpose of
                // their own, half the shuffles and whole-vector stores.
                // SAFETY: as below.
                unsafe { x86::transpose8(dst, srcs, p, scale) };
                s0 = 8;
            }
            while s0 < srcs.len() {
                let group = W.min(srcs.len() - s0);
                // SAFETY: the AVX-512 kernels are selected only on a CPU
                // that has AVX-512F.
                unsafe { x86::transpose16(dst, &srcs[s0..s0 + group], p, s0, width, scale) };
                s0 += group;
            }
        }
        let _ = fast;
        interleave_block(dst, &srcs[s0..], p, w, s0, width, scale);
        p += w;
    }
}

/// [`interleave`] for columns `p..p + w` (`w ≤ 16`) of the streams
/// `srcs`, which start at stream `s0`, through a buffer.
fn interleave_block(
    dst: &mut [f32],
    srcs: &[&[f32]],
    p: usize,
    w: usize,
    s0: usize,
    width: usize,
    scale: f32,
) {
    const W: usize = 16;
    if srcs.is_empty() {
        return;
    }
    let mut block = [[0.0f32; W]; MAX_STREAMS];
    for (row, src) in block.iter_mut().zip(srcs) {
        // A fixed-size copy compiles to vector moves; a variable-length
        // one to a call to memcpy.
        match <&[f32; W]>::try_from(&src[p..p + w]) {
            Ok(full) => *row = *full,
            Err(_) => row[..w].copy_from_slice(&src[p..p + w]),
        }
    }
    for (q, out) in dst[p * width..(p + w) * width].chunks_exact_mut(width).enumerate() {
        for (o, row) in out[s0..].iter_mut().zip(&block[..srcs.len()]) {
            *o = scale * row[q];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The first two steps of the register transposes: columns `p..p + 16`
    /// of up to `N` streams (`N` = 8 or 16; absent streams are zeros),
    /// scaled, then mixed so that `u[4i + j]`, lane `l`, holds column
    /// `4l + j` of streams `4i..4i + 4`: unpack pairs of rows, then shuffle
    /// pairs of pairs.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn quads<const N: usize>(srcs: &[&[f32]], p: usize, scale: f32) -> [__m512; N] {
        let k = _mm512_set1_ps(scale);
        let mut r = [_mm512_setzero_ps(); N];
        for (x, src) in r.iter_mut().zip(srcs) {
            let row = &src[p..p + 16];
            // SAFETY: `row` holds the 16 floats read.
            *x = _mm512_mul_ps(k, unsafe { _mm512_loadu_ps(row.as_ptr()) });
        }
        // Within each 128-bit lane: t[4i..4i+4] mix rows 4i..4i+4.
        let mut t = [_mm512_setzero_ps(); N];
        for i in 0..N / 2 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); N];
        for i in 0..N / 4 {
            u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        u
    }

    /// `dst[(p + q)·8 + s] = srcs[s][p + q]·scale` for a block of 16
    /// columns of exactly 8 streams: [`quads`] on the 8 rows, then each
    /// output vector takes two columns' 128-bit halves from the four
    /// vectors that hold them.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose8(dst: &mut [f32], srcs: &[&[f32]], p: usize, scale: f32) {
        assert!(srcs.len() == 8 && (p + 16) * 8 <= dst.len());
        // SAFETY: the CPU has AVX-512F (the caller's word).
        let u: [__m512; 8] = unsafe { quads(srcs, p, scale) };
        // Columns 4l + j and 4l + j + 1 (j = 0 or 2) fill one vector:
        // [u[j] lane l, u[4 + j] lane l, u[j + 1] lane l, u[5 + j] lane l].
        // The immediate repeats lane l, so the first two shuffles give
        // [a, a, b, b] of lane l; 0x88 then keeps lanes 0 and 2 of each.
        macro_rules! columns {
            ($l:literal, $imm:literal) => {
                for j in [0, 2] {
                    let lo = _mm512_shuffle_f32x4::<$imm>(u[j], u[4 + j]);
                    let hi = _mm512_shuffle_f32x4::<$imm>(u[j + 1], u[5 + j]);
                    let out = _mm512_shuffle_f32x4::<0x88>(lo, hi);
                    let at = &mut dst[(p + 4 * $l + j) * 8..][..16];
                    // SAFETY: `at` holds the 16 floats stored.
                    unsafe { _mm512_storeu_ps(at.as_mut_ptr(), out) };
                }
            };
        }
        columns!(0, 0x00);
        columns!(1, 0x55);
        columns!(2, 0xAA);
        columns!(3, 0xFF);
    }

    /// `dst[(p + q)·width + s0 + s] = srcs[s][p + q]·scale` for a block of
    /// 16 columns of up to 16 streams, by the in-register transpose: unpack
    /// pairs of rows, shuffle pairs of pairs, then exchange 128-bit lanes.
    /// With fewer than 16 streams, the absent rows are zeros and the stores
    /// are masked to the streams present.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose16(
        dst: &mut [f32],
        srcs: &[&[f32]],
        p: usize,
        s0: usize,
        width: usize,
        scale: f32,
    ) {
        let rows = srcs.len();
        assert!(rows <= 16 && s0 + rows <= width && (p + 16) * width <= dst.len());
        // SAFETY: the CPU has AVX-512F (the caller's word).
        let u: [__m512; 16] = unsafe { quads(srcs, p, scale) };
        // Gather lane l of u[j], u[4 + j], u[8 + j], u[12 + j]: column 4l + j.
        let mut out = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
            let v1 = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
            let w0 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
            let w1 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
            out[j] = _mm512_shuffle_f32x4::<0x88>(v0, w0);
            out[4 + j] = _mm512_shuffle_f32x4::<0xDD>(v0, w0);
            out[8 + j] = _mm512_shuffle_f32x4::<0x88>(v1, w1);
            out[12 + j] = _mm512_shuffle_f32x4::<0xDD>(v1, w1);
        }
        let mask: __mmask16 = if rows == 16 { 0xFFFF } else { (1 << rows) - 1 };
        for (q, &x) in out.iter().enumerate() {
            let at = &mut dst[(p + q) * width + s0..][..rows];
            // SAFETY: `at` holds the `rows` floats the mask lets through.
            unsafe { _mm512_mask_storeu_ps(at.as_mut_ptr(), mask, x) };
        }
    }
}

/// Packs rows `i0..i0+mc` and columns `p0..p0+kc` of A, scaled by `alpha`,
/// into `dst` as `ceil(mc / mr)` panels of `kc * mr` values.
#[allow(clippy::too_many_arguments)]
pub fn pack_a(
    dst: &mut [f32],
    a: &MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    alpha: f32,
) {
    for (panel, chunk) in dst.chunks_exact_mut(kc * mr).take(mc.div_ceil(mr)).enumerate() {
        pack_a_panel(chunk, a, i0 + panel * mr, mr.min(mc - panel * mr), p0, kc, mr, alpha);
    }
}

/// Packs one A panel of `rows` rows (padded to `mr`) starting at `row0`.
#[allow(clippy::too_many_arguments)]
pub fn pack_a_panel(
    chunk: &mut [f32],
    a: &MatRef<'_>,
    row0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    alpha: f32,
) {
    if rows < mr {
        chunk.fill(0.0);
    }
    if a.cs == 1 && mr <= MAX_STREAMS {
        // Rows of A are contiguous: transpose them into the panel.
        let mut srcs: [&[f32]; MAX_STREAMS] = [&[]; MAX_STREAMS];
        for (r, src) in srcs.iter_mut().enumerate().take(rows) {
            let start = (row0 + r) * a.rs + p0;
            *src = &a.data[start..start + kc];
        }
        interleave(chunk, &srcs[..rows], kc, mr, alpha);
    } else if a.rs == 1 {
        // Columns of A are contiguous: copy `rows` values per p.
        for p in 0..kc {
            let start = (p0 + p) * a.cs + row0;
            for (o, &v) in chunk[p * mr..p * mr + rows].iter_mut().zip(&a.data[start..start + rows])
            {
                *o = alpha * v;
            }
        }
    } else {
        for p in 0..kc {
            for r in 0..rows {
                chunk[p * mr + r] = alpha * a.at(row0 + r, p0 + p);
            }
        }
    }
}

/// Packs rows `p0..p0+kc` and columns `j0..j0+nc` of B into `dst` as
/// `ceil(nc / nr)` panels of `kc * nr` values.
pub fn pack_b(
    dst: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
) {
    let whole = nc / nr * nr;
    if b.cs == 1 && whole > 0 {
        // Rows of B are contiguous: read each row once, front to back, and
        // deal its nr-wide pieces out to the panels. Panel by panel, every
        // row would be a new page (B's rows are often 4 KB apart), which
        // the prefetchers do not follow.
        match nr {
            16 => deal_rows::<16>(dst, b, p0, kc, j0, whole),
            32 => deal_rows::<32>(dst, b, p0, kc, j0, whole),
            48 => deal_rows::<48>(dst, b, p0, kc, j0, whole),
            _ => {
                for p in 0..kc {
                    let row = &b.data[(p0 + p) * b.rs + j0..][..whole];
                    for (panel, piece) in row.chunks_exact(nr).enumerate() {
                        dst[panel * kc * nr + p * nr..][..nr].copy_from_slice(piece);
                    }
                }
            }
        }
        if whole < nc {
            let panel = whole / nr;
            let chunk = &mut dst[panel * kc * nr..(panel + 1) * kc * nr];
            pack_b_panel(chunk, b, p0, kc, j0 + whole, nc - whole, nr);
        }
        return;
    }
    for (panel, chunk) in dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
        pack_b_panel(chunk, b, p0, kc, j0 + panel * nr, nr.min(nc - panel * nr), nr);
    }
}

/// Packs the first `whole` columns (a multiple of `N`) of rows `p0..p0+kc`
/// of a row-contiguous B, row by row.
fn deal_rows<const N: usize>(
    dst: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    whole: usize,
) {
    for p in 0..kc {
        let row = &b.data[(p0 + p) * b.rs + j0..][..whole];
        if p + AHEAD < kc {
            // Each row starts a new page, where the hardware prefetchers
            // start cold: ask for a later row's lines while copying this one.
            prefetch_lines(&b.data[(p0 + p + AHEAD) * b.rs + j0..][..whole]);
        }
        for (panel, piece) in row.chunks_exact(N).enumerate() {
            let out = &mut dst[panel * kc * N + p * N..][..N];
            copy_moves(out, piece);
        }
    }
}

/// How many rows ahead [`deal_rows`] prefetches.
const AHEAD: usize = 4;

/// Asks for every cache line of `data` to be brought into L1.
#[inline(always)]
fn prefetch_lines(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: a prefetch never faults, and the address lies in `data`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Copies `N` floats in fixed moves of 16: LLVM turns a copy of a larger
/// array (48 floats, 192 bytes) into a call to memmove, which cost a quarter
/// of a GEMM whose B rows are this wide (LeNet-5's conv2 at batch 64).
#[inline(always)]
fn copy_moves(out: &mut [f32], src: &[f32]) {
    const MOVE: usize = 16;
    for (out, src) in out.chunks_exact_mut(MOVE).zip(src.chunks_exact(MOVE)) {
        if let (Ok(out), Ok(src)) =
            (<&mut [f32; MOVE]>::try_from(out), <&[f32; MOVE]>::try_from(src))
        {
            *out = *src;
        }
    }
}

/// Packs one B panel of `cols` columns (padded to `nr`) starting at `j`:
/// the last, partial panel of a row-contiguous B ([`pack_b`] deals the
/// whole ones row by row), or any panel of another layout.
fn pack_b_panel(
    chunk: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j: usize,
    cols: usize,
    nr: usize,
) {
    if cols < nr {
        chunk.fill(0.0);
    }
    if b.cs == 1 {
        for (p, out) in chunk.chunks_exact_mut(nr).take(kc).enumerate() {
            out[..cols].copy_from_slice(&b.data[(p0 + p) * b.rs + j..][..cols]);
        }
        return;
    }
    if b.rs == 1 && nr <= MAX_STREAMS {
        // Columns of B are contiguous (B is a transposed row-major matrix):
        // transpose them into the panel.
        let mut srcs: [&[f32]; MAX_STREAMS] = [&[]; MAX_STREAMS];
        for (c, src) in srcs.iter_mut().enumerate().take(cols) {
            let start = (j + c) * b.cs + p0;
            *src = &b.data[start..start + kc];
        }
        interleave(chunk, &srcs[..cols], kc, nr, 1.0);
        return;
    }
    for p in 0..kc {
        for c in 0..cols {
            chunk[p * nr + c] = b.at(p0 + p, j + c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panels_are_padded_with_zeros() {
        // A is 3x2 row-major: [[1,2],[3,4],[5,6]]; mr = 2 gives 2 panels.
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let a = MatRef { data: &data, rs: 2, cs: 1 };
        let mut dst = vec![f32::NAN; 2 * 2 * 2];
        pack_a(&mut dst, &a, 0, 3, 0, 2, 2, 1.0);
        assert_eq!(dst, [1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn b_panels_are_padded_with_zeros() {
        // B is 2x3 column-major.
        let data = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = MatRef { data: &data, rs: 1, cs: 2 };
        let mut dst = vec![f32::NAN; 2 * 2 * 2];
        pack_b(&mut dst, &b, 0, 2, 0, 3, 2);
        assert_eq!(dst, [1.0, 2.0, 4.0, 5.0, 3.0, 0.0, 6.0, 0.0]);
    }
}
