//! The x86 kernels of the Winograd convolution: the tuple-GEMM register
//! blocks for AVX-512 and AVX2, and the AVX-512 transforms, which gather
//! each lane's window and scatter each lane's output block.

use super::{Gemm, RowLoad, RowTable, Taps, Windows, LANES, POINTS, TABLE, TILE, WIN};
use std::arch::x86_64::*;

/// The lanes' offsets as a vector of indices.
///
/// # Safety
/// The CPU must support AVX-512F, and every offset fit in an `i32`.
#[target_feature(enable = "avx512f")]
unsafe fn indices(offsets: &[usize; LANES]) -> __m512i {
    let idx: [i32; LANES] = std::array::from_fn(|l| offsets[l] as i32);
    // SAFETY: `idx` holds 16 i32, the 64 bytes read.
    unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
}

/// [`super::weight_1d`] on zmm registers.
#[target_feature(enable = "avx512f")]
#[inline]
fn weight_1d(g0: __m512, g1: __m512, g2: __m512) -> [__m512; WIN] {
    let k = _mm512_set1_ps;
    let (s02, sixth) = (_mm512_add_ps(g0, g2), k(-1.0 / 6.0));
    let g0_24 = _mm512_fmadd_ps(g2, k(1.0 / 6.0), _mm512_mul_ps(g0, k(1.0 / 24.0)));
    let g1_12 = _mm512_mul_ps(g1, k(1.0 / 12.0));
    [
        _mm512_mul_ps(g0, k(0.25)),
        _mm512_mul_ps(_mm512_add_ps(s02, g1), sixth),
        _mm512_mul_ps(_mm512_sub_ps(s02, g1), sixth),
        _mm512_add_ps(g0_24, g1_12),
        _mm512_sub_ps(g0_24, g1_12),
        g2,
    ]
}

/// `U[ci][ξ][·] = (G g Gᵀ)[ξ]` for input channel `ci`, 16 output channels
/// at a time: each tap a masked gather across output channels.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weights_avx512(cout: usize, taps: Taps<'_>, ci: usize, u: &mut [f32]) {
    assert!(u.len() >= POINTS * cout && cout > 0);
    let last = (cout - 1) * taps.stride_out + ci * taps.stride_in + 8;
    assert!(last < taps.weight.len() && 15 * taps.stride_out <= i32::MAX as usize);
    let offsets: [i32; LANES] = std::array::from_fn(|l| (l * taps.stride_out) as i32);
    // SAFETY: `offsets` holds 16 i32, the 64 bytes read.
    let idx = unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) };
    let mut k0 = 0;
    while k0 < cout {
        let width = LANES.min(cout - k0);
        let mask: __mmask16 = if width == LANES { !0 } else { (1 << width) - 1 };
        let base = k0 * taps.stride_out + ci * taps.stride_in;
        let mut g = [_mm512_setzero_ps(); 9];
        for (q, x) in g.iter_mut().enumerate() {
            let tap = if taps.flip { 8 - q } else { q };
            // SAFETY: lane l < width reads weight[base + l·stride_out + tap]
            // ≤ weight[last]; masked-off lanes read nothing.
            *x = unsafe {
                _mm512_mask_i32gather_ps::<4>(
                    _mm512_setzero_ps(),
                    mask,
                    idx,
                    taps.weight.as_ptr().add(base + tap),
                )
            };
        }
        // Columns first: t[j] = G·(column j of g), then rows.
        let t: [[__m512; WIN]; 3] =
            [weight_1d(g[0], g[3], g[6]), weight_1d(g[1], g[4], g[7]), weight_1d(g[2], g[5], g[8])];
        #[allow(clippy::needless_range_loop)]
        for i in 0..WIN {
            for (j, &x) in weight_1d(t[0][i], t[1][i], t[2][i]).iter().enumerate() {
                let at = (i * WIN + j) * cout + k0;
                // SAFETY: lanes < width write u[at..at + width], and
                // at + width ≤ 36·cout ≤ u.len().
                unsafe { _mm512_mask_storeu_ps(u.as_mut_ptr().add(at), mask, x) };
            }
        }
        k0 += LANES;
    }
}

/// [`super::input_1d`] on zmm registers.
#[target_feature(enable = "avx512f")]
#[inline]
fn input_1d(d: [__m512; WIN]) -> [__m512; WIN] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let k = _mm512_set1_ps;
    let (s12, d13, d42) = (_mm512_add_ps(d1, d2), _mm512_sub_ps(d1, d3), _mm512_sub_ps(d4, d2));
    [
        _mm512_fmadd_ps(d0, k(4.0), _mm512_fmadd_ps(d2, k(-5.0), d4)),
        _mm512_fmadd_ps(s12, k(-4.0), _mm512_add_ps(d3, d4)),
        _mm512_fmadd_ps(_mm512_sub_ps(d1, d2), k(4.0), _mm512_sub_ps(d4, d3)),
        _mm512_fmadd_ps(d13, k(-2.0), d42),
        _mm512_fmadd_ps(d13, k(2.0), d42),
        _mm512_fmadd_ps(d1, k(4.0), _mm512_fmadd_ps(d3, k(-5.0), d5)),
    ]
}

/// [`super::output_1d`] on zmm registers.
#[target_feature(enable = "avx512f")]
#[inline]
fn output_1d(m: [__m512; WIN]) -> [__m512; TILE] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let k = _mm512_set1_ps;
    let (s12, d12) = (_mm512_add_ps(m1, m2), _mm512_sub_ps(m1, m2));
    let (s34, d34) = (_mm512_add_ps(m3, m4), _mm512_sub_ps(m3, m4));
    [
        _mm512_add_ps(_mm512_add_ps(m0, s12), s34),
        _mm512_fmadd_ps(d34, k(2.0), d12),
        _mm512_fmadd_ps(s34, k(4.0), s12),
        _mm512_add_ps(_mm512_fmadd_ps(d34, k(8.0), d12), m5),
    ]
}

/// `V[at(ξ)..][..16] = (Bᵀ d B)[ξ]` for the 6x6 window `d` (`d[a][j]`: row
/// `a`, column `j`, one tile a lane): columns first, then rows. Both ways of
/// reading the windows end here, so they round alike.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_window(d: &[[__m512; WIN]; WIN], v: &mut [f32], at: impl Fn(usize) -> usize) {
    assert!(at(POINTS - 1) + LANES <= v.len());
    // t[j] = Bᵀ·(column j of the window).
    let t: [[__m512; WIN]; WIN] =
        std::array::from_fn(|j| input_1d(std::array::from_fn(|a| d[a][j])));
    // V[i][·] = Bᵀ·(row i of Bᵀ d), gathered across `t`.
    #[allow(clippy::needless_range_loop)]
    for i in 0..WIN {
        let r = input_1d(std::array::from_fn(|j| t[j][i]));
        for (j, &x) in r.iter().enumerate() {
            // SAFETY: at(ξ) + 16 ≤ at(35) + 16 ≤ v.len(), at increasing in ξ.
            unsafe { _mm512_storeu_ps(v.as_mut_ptr().add(at(i * WIN + j)), x) };
        }
    }
}

/// [`store_window`] for the 6x6 windows `win` of `plane` (rows of `row`
/// floats, unpadded): each window element gathered with the lanes whose
/// elements lie inside the plane, zero elsewhere.
///
/// # Safety
/// The CPU must support AVX-512F, and for every lane `l`, row `a` and
/// column `j` that `win` marks inside, `plane[win.offsets[l] + a·row + j]`
/// must exist.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn input_tiles_avx512(
    plane: &[f32],
    win: &Windows,
    row: usize,
    v: &mut [f32],
    at: impl Fn(usize) -> usize,
) {
    // SAFETY: `offsets` holds 16 i32, the 64 bytes read.
    let idx = unsafe { _mm512_loadu_si512(win.offsets.as_ptr().cast()) };
    let d: [[__m512; WIN]; WIN] = std::array::from_fn(|a| {
        std::array::from_fn(|j| {
            let lanes: __mmask16 = win.rows[a] & win.cols[j];
            let base = plane.as_ptr().wrapping_add(a * row + j);
            // SAFETY: the lanes in `lanes` read inside `plane` (the
            // caller's word); the others read nothing.
            unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, idx, base) }
        })
    });
    // SAFETY: the CPU has AVX-512F (the caller's word).
    unsafe { store_window(&d, v, at) };
}

/// [`store_window`] for windows read through a [`RowTable`]: for each
/// window row, the table's rows loaded whole into up to eight registers, then each
/// lane's six columns permuted out of them.
///
/// # Safety
/// The CPU must support AVX-512F, and for every load of `table`, `plane`
/// must hold the elements `offset + l` of the lanes `l` in its mask.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn input_tiles_by_rows(
    plane: &[f32],
    table: &RowTable,
    v: &mut [f32],
    at: impl Fn(usize) -> usize,
) {
    let pairs = table.regs / 2;
    // Plain loops, not `array::from_fn`: its closures were not inlined, and
    // their calls cost more than the loads.
    let mut d = [[_mm512_setzero_ps(); WIN]; WIN];
    for (drow, loads) in d.iter_mut().zip(&table.loads) {
        let mut tab = [_mm512_setzero_ps(); TABLE / LANES];
        for (reg, &[first, second]) in tab.iter_mut().zip(loads).take(table.regs) {
            let src = |load: RowLoad| plane.as_ptr().wrapping_offset(load.offset);
            // SAFETY: the lanes in each mask read inside `plane` (the
            // caller's word); the others read nothing.
            *reg = unsafe { _mm512_maskz_loadu_ps(first.mask, src(first)) };
            if second.mask != 0 {
                // SAFETY: as above.
                *reg = unsafe { _mm512_mask_loadu_ps(*reg, second.mask, src(second)) };
            }
        }
        for (j, x) in drow.iter_mut().enumerate() {
            // SAFETY: `idx[j]` holds 16 i32, the 64 bytes read.
            let idx = unsafe { _mm512_loadu_si512(table.idx[j].as_ptr().cast()) };
            let lanes = table.pairs[j];
            *x = _mm512_maskz_permutex2var_ps(lanes[0], tab[0], idx, tab[1]);
            for r in 1..pairs {
                if lanes[r] != 0 {
                    let part =
                        _mm512_maskz_permutex2var_ps(lanes[r], tab[2 * r], idx, tab[2 * r + 1]);
                    *x = _mm512_mask_mov_ps(*x, lanes[r], part);
                }
            }
        }
    }
    // SAFETY: the CPU has AVX-512F (the caller's word).
    unsafe { store_window(&d, v, at) };
}

/// The first half of the output transform: `t[j] = Aᵀ·(column j of M)`,
/// M's points read from `m[at(ξ)..][..16]`.
///
/// # Safety
/// The CPU must support AVX-512F, and `at(35) + 16 ≤ m.len()`, `at`
/// increasing.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn output_columns(m: &[f32], at: &impl Fn(usize) -> usize) -> [[__m512; TILE]; WIN] {
    let mut t = [[_mm512_setzero_ps(); TILE]; WIN];
    for (j, tj) in t.iter_mut().enumerate() {
        let mut col = [_mm512_setzero_ps(); WIN];
        for (i, x) in col.iter_mut().enumerate() {
            // SAFETY: at(ξ) + 16 ≤ m.len() (the caller's word).
            *x = unsafe { _mm512_loadu_ps(m.as_ptr().add(at(i * WIN + j))) };
        }
        *tj = output_1d(col);
    }
    t
}

/// The 4x4 output blocks `Aᵀ M A` of the lanes, read from `m[at(ξ)..]` and
/// scattered into `plane` (rows of `row` floats) at the offsets `out`.
///
/// # Safety
/// The CPU must support AVX-512F; offsets must fit in an `i32`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn output_tiles_avx512(
    m: &[f32],
    at: impl Fn(usize) -> usize,
    out: &[usize; LANES],
    row: usize,
    plane: &mut [f32],
) {
    let far = out.iter().max().copied().unwrap_or(0) + (TILE - 1) * (row + 1);
    assert!(far < plane.len() && at(POINTS - 1) + LANES <= m.len());
    // SAFETY: the CPU has AVX-512F, and `m` was checked for the last ξ.
    let t = unsafe { output_columns(m, &at) };
    // SAFETY: as for `indices` in `input_tiles_avx512`.
    let idx = unsafe { indices(out) };
    #[allow(clippy::needless_range_loop)]
    for a in 0..TILE {
        let r = output_1d([t[0][a], t[1][a], t[2][a], t[3][a], t[4][a], t[5][a]]);
        for (b, &x) in r.iter().enumerate() {
            // SAFETY: each lane writes plane[out[l] + a·row + b] ≤ plane[far].
            unsafe { _mm512_i32scatter_ps::<4>(plane.as_mut_ptr().add(a * row + b), idx, x) };
        }
    }
}

/// [`output_tiles_avx512`] for lanes that are two runs of 8 tiles side by
/// side, starting at `starts[0]` and `starts[1]` in `plane`: each output row
/// of a run is 32 contiguous floats, made from the lanes' 4-float rows by
/// a 4x4 transpose of floats and then of 128-bit lanes, and stored whole.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn output_runs_avx512(
    m: &[f32],
    at: impl Fn(usize) -> usize,
    starts: [usize; 2],
    row: usize,
    plane: &mut [f32],
) {
    let far = starts[0].max(starts[1]) + (TILE - 1) * row + 32;
    assert!(far <= plane.len() && at(POINTS - 1) + LANES <= m.len());
    // SAFETY: the CPU has AVX-512F, and `m` was checked for the last ξ.
    let t = unsafe { output_columns(m, &at) };
    #[allow(clippy::needless_range_loop)]
    for a in 0..TILE {
        // r[b], lane l: output (a, b) of tile l.
        let r = output_1d([t[0][a], t[1][a], t[2][a], t[3][a], t[4][a], t[5][a]]);
        // Within each 128-bit lane L: w[e] holds tile 4L + e's 4 outputs.
        let (u0, u1) = (_mm512_unpacklo_ps(r[0], r[1]), _mm512_unpackhi_ps(r[0], r[1]));
        let (u2, u3) = (_mm512_unpacklo_ps(r[2], r[3]), _mm512_unpackhi_ps(r[2], r[3]));
        let pd = _mm512_castps_pd;
        let w = [
            _mm512_castpd_ps(_mm512_unpacklo_pd(pd(u0), pd(u2))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(pd(u0), pd(u2))),
            _mm512_castpd_ps(_mm512_unpacklo_pd(pd(u1), pd(u3))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(pd(u1), pd(u3))),
        ];
        // Tiles 0-3 are lane 0 of w[0..4], tiles 4-7 lane 1, and so on.
        let lo01 = _mm512_shuffle_f32x4::<0x44>(w[0], w[1]);
        let lo23 = _mm512_shuffle_f32x4::<0x44>(w[2], w[3]);
        let hi01 = _mm512_shuffle_f32x4::<0xEE>(w[0], w[1]);
        let hi23 = _mm512_shuffle_f32x4::<0xEE>(w[2], w[3]);
        let rows = [
            [_mm512_shuffle_f32x4::<0x88>(lo01, lo23), _mm512_shuffle_f32x4::<0xDD>(lo01, lo23)],
            [_mm512_shuffle_f32x4::<0x88>(hi01, hi23), _mm512_shuffle_f32x4::<0xDD>(hi01, hi23)],
        ];
        for (run, halves) in rows.iter().enumerate() {
            let dst = &mut plane[starts[run] + a * row..][..32];
            // SAFETY: `dst` holds the 32 floats stored.
            unsafe {
                _mm512_storeu_ps(dst.as_mut_ptr(), halves[0]);
                _mm512_storeu_ps(dst.as_mut_ptr().add(16), halves[1]);
            }
        }
    }
}

/// Input channels ahead that [`block_avx512`] prefetches U.
const U_AHEAD: usize = 16;

/// Rows `k0..k0 + R` by columns `t0..t0 + 16·NV` of `M`: R·NV zmm
/// accumulators, one broadcast of U and NV loads of V per input channel.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn block_avx512<const R: usize, const NV: usize>(
    g: &Gemm<'_>,
    m: &mut [f32],
    k0: usize,
    t0: usize,
) {
    // Every access below is inside these bounds, checked once here.
    assert!(k0 + R <= g.cout && t0 + 16 * NV <= g.cols);
    assert!(g.u.len() >= (g.cin - 1) * g.u_row + g.cout && g.v.len() >= g.cin * g.cols);
    assert!(m.len() >= g.cout * g.cols);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let (u, v) = (g.u.as_ptr(), g.v.as_ptr());
    for ci in 0..g.cin {
        // U's rows lie `u_row` floats apart, too far for the hardware
        // prefetchers: fetch the row U_AHEAD channels on, or each channel's
        // first broadcast waits on L2 or memory.
        // A prefetch cannot fault, whatever the address.
        _mm_prefetch::<_MM_HINT_T0>(u.wrapping_add((ci + U_AHEAD) * g.u_row + k0).cast());
        let mut vr = [_mm512_setzero_ps(); NV];
        for (j, x) in vr.iter_mut().enumerate() {
            // SAFETY: ci·cols + t0 + 16j + 16 ≤ cin·cols ≤ v.len().
            *x = unsafe { _mm512_loadu_ps(v.add(ci * g.cols + t0 + 16 * j)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: ci·u_row + k0 + r < (cin − 1)·u_row + cout ≤ u.len().
            let a = _mm512_set1_ps(unsafe { *u.add(ci * g.u_row + k0 + r) });
            for (s, &x) in row.iter_mut().zip(&vr) {
                *s = _mm512_fmadd_ps(a, x, *s);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, &s) in row.iter().enumerate() {
            let at = (k0 + r) * g.cols + t0 + 16 * j;
            // SAFETY: at + 16 ≤ cout·cols ≤ m.len().
            unsafe { _mm512_storeu_ps(m.as_mut_ptr().add(at), s) };
        }
    }
}

/// Rows `k0..k0 + R` by columns `t0..t0 + 16` of `M`: 2R ymm
/// accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block_avx2<const R: usize>(g: &Gemm<'_>, m: &mut [f32], k0: usize, t0: usize) {
    assert!(k0 + R <= g.cout && t0 + 16 <= g.cols);
    assert!(g.u.len() >= (g.cin - 1) * g.u_row + g.cout && g.v.len() >= g.cin * g.cols);
    assert!(m.len() >= g.cout * g.cols);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (u, v) = (g.u.as_ptr(), g.v.as_ptr());
    for ci in 0..g.cin {
        // SAFETY: ci·cols + t0 + 16 ≤ cin·cols ≤ v.len().
        let vr = unsafe {
            let at = v.add(ci * g.cols + t0);
            [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: ci·u_row + k0 + r < (cin − 1)·u_row + cout ≤ u.len().
            let a = _mm256_set1_ps(unsafe { *u.add(ci * g.u_row + k0 + r) });
            row[0] = _mm256_fmadd_ps(a, vr[0], row[0]);
            row[1] = _mm256_fmadd_ps(a, vr[1], row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let at = (k0 + r) * g.cols + t0;
        // SAFETY: at + 16 ≤ cout·cols ≤ m.len().
        unsafe {
            _mm256_storeu_ps(m.as_mut_ptr().add(at), row[0]);
            _mm256_storeu_ps(m.as_mut_ptr().add(at + 8), row[1]);
        }
    }
}

/// [`super::weight_grad`]'s A·y (6 from 4) on zmm registers.
#[target_feature(enable = "avx512f")]
#[inline]
fn dy_1d(y: [__m512; TILE]) -> [__m512; WIN] {
    let [y0, y1, y2, y3] = y;
    let k = _mm512_set1_ps;
    let (s02, s13) = (_mm512_add_ps(y0, y2), _mm512_add_ps(y1, y3));
    let e = _mm512_fmadd_ps(y2, k(4.0), y0);
    let f = _mm512_fmadd_ps(y3, k(8.0), _mm512_add_ps(y1, y1));
    [
        y0,
        _mm512_add_ps(s02, s13),
        _mm512_sub_ps(s02, s13),
        _mm512_add_ps(e, f),
        _mm512_sub_ps(e, f),
        y3,
    ]
}

/// `DY[at(ξ)..][..16] = (A dy Aᵀ)[ξ]` for the 4x4 blocks of `plane` (rows
/// of `row` floats) at the lanes' offsets `out`.
///
/// # Safety
/// The CPU must support AVX-512F; offsets must fit in an `i32`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dy_tiles_avx512(
    plane: &[f32],
    out: &[usize; LANES],
    row: usize,
    dyt: &mut [f32],
    at: impl Fn(usize) -> usize,
) {
    let far = out.iter().max().copied().unwrap_or(0) + (TILE - 1) * (row + 1);
    assert!(far < plane.len() && at(POINTS - 1) + LANES <= dyt.len());
    // SAFETY: the CPU has AVX-512F and the offsets fit (the caller's word).
    let idx = unsafe { indices(out) };
    // Columns first: t[j] = A·(column j of the block).
    let mut t = [[_mm512_setzero_ps(); WIN]; TILE];
    for (j, tj) in t.iter_mut().enumerate() {
        let mut col = [_mm512_setzero_ps(); TILE];
        for (a, x) in col.iter_mut().enumerate() {
            // SAFETY: each lane reads plane[out[l] + a·row + j] ≤ plane[far].
            *x = unsafe { _mm512_i32gather_ps::<4>(idx, plane.as_ptr().add(a * row + j)) };
        }
        *tj = dy_1d(col);
    }
    #[allow(clippy::needless_range_loop)]
    for i in 0..WIN {
        for (j, &x) in dy_1d([t[0][i], t[1][i], t[2][i], t[3][i]]).iter().enumerate() {
            // SAFETY: at(ξ) + 16 ≤ at(35) + 16 ≤ dyt.len(), at increasing in ξ.
            unsafe { _mm512_storeu_ps(dyt.as_mut_ptr().add(at(i * WIN + j)), x) };
        }
    }
}

/// `out[k][c] += ⟨a[k], b[c]⟩` over rows of `cols` floats, for `cout` rows
/// of `a` and `cin` of `b`: blocks of 4x4 dot products in 16 zmm
/// accumulators, reduced across lanes once per block.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn dots_avx512(
    a: &[f32],
    b: &[f32],
    cols: usize,
    cout: usize,
    cin: usize,
    out: &mut [f32],
) {
    assert!(cols.is_multiple_of(LANES) && a.len() >= cout * cols && b.len() >= cin * cols);
    assert!(out.len() >= cout * cin);
    let d = Dots { a, b, cols, cin };
    let mut k0 = 0;
    while k0 < cout {
        let rows = if k0 + 4 <= cout { 4 } else { 1 };
        let mut c0 = 0;
        while c0 < cin {
            let four = c0 + 4 <= cin;
            // SAFETY: the CPU has AVX-512F (this function's contract); the
            // blocks stay within the rows checked above.
            unsafe {
                match (rows, four) {
                    (4, true) => dot_block::<4, 4>(&d, k0, c0, out),
                    (4, false) => dot_block::<4, 1>(&d, k0, c0, out),
                    (_, true) => dot_block::<1, 4>(&d, k0, c0, out),
                    (_, false) => dot_block::<1, 1>(&d, k0, c0, out),
                }
            }
            c0 += if four { 4 } else { 1 };
        }
        k0 += rows;
    }
}

struct Dots<'a> {
    a: &'a [f32],
    b: &'a [f32],
    cols: usize,
    cin: usize,
}

/// # Safety
/// The CPU must support AVX-512F; rows `k0..k0 + RK` of `a` and
/// `c0..c0 + RC` of `b` exist, and `out` holds `[k][cin]` for them.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_block<const RK: usize, const RC: usize>(
    d: &Dots<'_>,
    k0: usize,
    c0: usize,
    out: &mut [f32],
) {
    let mut acc = [[_mm512_setzero_ps(); RC]; RK];
    let (a, b) = (d.a.as_ptr(), d.b.as_ptr());
    for t in (0..d.cols).step_by(LANES) {
        let mut va = [_mm512_setzero_ps(); RK];
        let mut vb = [_mm512_setzero_ps(); RC];
        for (r, x) in va.iter_mut().enumerate() {
            // SAFETY: row k0 + r of `a` exists (the caller's word), t + 16 ≤ cols.
            *x = unsafe { _mm512_loadu_ps(a.add((k0 + r) * d.cols + t)) };
        }
        for (q, x) in vb.iter_mut().enumerate() {
            // SAFETY: row c0 + q of `b` exists, t + 16 ≤ cols.
            *x = unsafe { _mm512_loadu_ps(b.add((c0 + q) * d.cols + t)) };
        }
        for (row, &x) in acc.iter_mut().zip(&va) {
            for (s, &y) in row.iter_mut().zip(&vb) {
                *s = _mm512_fmadd_ps(x, y, *s);
            }
        }
    }
    if RK == 4 && RC == 4 {
        // The 16 sums at once: lane 4r + q of `sums` is row r, column q.
        let sums = sum16([
            acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1], acc[1][2], acc[1][3],
            acc[2][0], acc[2][1], acc[2][2], acc[2][3], acc[3][0], acc[3][1], acc[3][2], acc[3][3],
        ]);
        let mut lanes = [0.0f32; 16];
        // SAFETY: `lanes` holds the 16 floats stored.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sums) };
        for (r, four) in lanes.chunks_exact(4).enumerate() {
            let at = &mut out[(k0 + r) * d.cin + c0..][..4];
            for (o, &v) in at.iter_mut().zip(four) {
                *o += v;
            }
        }
        return;
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, &s) in row.iter().enumerate() {
            out[(k0 + r) * d.cin + c0 + q] += _mm512_reduce_add_ps(s);
        }
    }
}

/// Lane `j` of the result is the sum of the 16 lanes of `v[j]`: the lanes
/// are added pairwise while the vectors are transposed, 45 instructions
/// where 16 separate horizontal sums take about 130. Each horizontal sum
/// ended a block of 256 multiply-adds of the weight gradient, so they cost
/// about a third of its dot products.
#[target_feature(enable = "avx512f")]
#[inline]
fn sum16(v: [__m512; 16]) -> __m512 {
    // Within each 128-bit lane: pairs of vectors, then pairs of pairs.
    let mut p = [_mm512_setzero_ps(); 8];
    for (i, p) in p.iter_mut().enumerate() {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        // [a0+a2, b0+b2, a1+a3, b1+b3] in each 128-bit lane.
        *p = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    let mut q = [_mm512_setzero_ps(); 4];
    for (i, q) in q.iter_mut().enumerate() {
        let (a, b) = (p[2 * i], p[2 * i + 1]);
        // Each 128-bit lane: the partial sums of v[4i..4i + 4], in order.
        *q = _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b));
    }
    // Across the four 128-bit lanes.
    let y01 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(q[0], q[1]),
        _mm512_shuffle_f32x4::<0xEE>(q[0], q[1]),
    );
    let y23 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(q[2], q[3]),
        _mm512_shuffle_f32x4::<0xEE>(q[2], q[3]),
    );
    _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(y01, y23), _mm512_shuffle_f32x4::<0xDD>(y01, y23))
}
