//! The direct convolution's AVX-512 kernels: the forward tile, the
//! scattering backward-data, and both weight-gradient kernels.

use super::MAX_SCATTER_KW;
use super::{avx512_block, lanes_block, Grid, Pass, Scatter, WeightGrad, LANES, WEIGHT_GRAD_TAPS};
use crate::act::{activate, per_activation};
use crate::gemm::Activation;
use crate::reduce::lane_sums8;
use std::arch::x86_64::*;

/// [`Pass::kernel`] in AVX-512: blocks of output channels × vectors of
/// positions ([`avx512_block`]).
///
/// # Safety
/// The CPU must support AVX-512F and FMA; `padded` must hold
/// `g.input_len(vectors)` floats, `z` `g.cout · vectors · 16`, and the
/// weights `cout · cin · kh · kw`; `vectors` is a whole number of blocks.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn forward(pass: &Pass, padded: &[f32], z: &mut [f32], vectors: usize) {
    // SAFETY: passed on from the caller; each arm's block is the one
    // `Pass::vectors` rounded `vectors` up to.
    unsafe {
        match avx512_block(pass.g.cout) {
            (8, 3) => blocks::<8, 3>(pass, padded, z, vectors),
            (6, 4) => blocks::<6, 4>(pass, padded, z, vectors),
            (4, 6) => blocks::<4, 6>(pass, padded, z, vectors),
            (2, 8) => blocks::<2, 8>(pass, padded, z, vectors),
            _ => blocks::<1, 8>(pass, padded, z, vectors),
        }
    }
}

/// `OB` output channels at a time (the last block overlapping the one
/// before), `PB` vectors of positions at a time.
///
/// # Safety
/// As [`forward`], with `OB ≤ cout` and `vectors` a multiple of `PB`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn blocks<const OB: usize, const PB: usize>(
    pass: &Pass,
    padded: &[f32],
    z: &mut [f32],
    vectors: usize,
) {
    let g = &pass.g;
    let mut next = 0;
    while next < g.cout {
        let o0 = next.min(g.cout - OB);
        let mut bias = [0.0f32; OB];
        if let Some(b) = pass.bias {
            bias.copy_from_slice(&b[o0..o0 + OB]);
        }
        for v0 in (0..vectors).step_by(PB) {
            // SAFETY: passed on from the caller; v0 + PB ≤ vectors.
            unsafe { tile::<OB, PB>(pass, padded, z, vectors, (o0, v0), bias) };
        }
        next = o0 + OB;
    }
}

/// Output channels `o0..o0 + OB` at position vectors `v0..v0 + PB`: per
/// tap, `PB` loads of the padded input and `OB` broadcast weights.
///
/// # Safety
/// As [`blocks`], with `o0 + OB ≤ cout` and `v0 + PB ≤ vectors`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn tile<const OB: usize, const PB: usize>(
    pass: &Pass,
    padded: &[f32],
    z: &mut [f32],
    vectors: usize,
    (o0, v0): (usize, usize),
    bias: [f32; OB],
) {
    let (g, taps) = (&pass.g, &pass.taps);
    let mut acc = [[_mm512_setzero_ps(); PB]; OB];
    for (acc, &b) in acc.iter_mut().zip(&bias) {
        *acc = [_mm512_set1_ps(b); PB];
    }
    for ci in 0..g.cin {
        for i in 0..g.kh {
            // SAFETY: the furthest read, of the last tap of the last
            // vector, ends at ci·plane + i·grid + kw - 1 + (v0 + PB)·16
            // ≤ g.input_len(vectors) ≤ padded.len().
            let x = unsafe { padded.as_ptr().add(ci * g.plane() + i * g.grid + v0 * LANES) };
            let mut w = [pass.weight.as_ptr(); OB];
            for (b, w) in w.iter_mut().enumerate() {
                // SAFETY: `Taps` maps every (out, in, i, j) of the pass
                // one-to-one into the weights, whose length the caller
                // checked; j = 0 is such a tap.
                *w = unsafe { w.offset(taps.row(o0 + b, ci, i)) };
            }
            for j in 0..g.kw {
                let mut xs = [_mm512_setzero_ps(); PB];
                for (k, xv) in xs.iter_mut().enumerate() {
                    // SAFETY: inside the furthest read above.
                    *xv = unsafe { _mm512_loadu_ps(x.add(j + k * LANES)) };
                }
                for (acc, w) in acc.iter_mut().zip(&w) {
                    // SAFETY: tap (o0 + b, ci, i, j) of the pass.
                    let wv = _mm512_set1_ps(unsafe { *w.offset(j as isize * taps.d_col) });
                    for (acc, xv) in acc.iter_mut().zip(&xs) {
                        *acc = _mm512_fmadd_ps(wv, *xv, *acc);
                    }
                }
            }
        }
    }
    for (b, acc) in acc.iter().enumerate() {
        for (k, acc) in acc.iter().enumerate() {
            let at = ((o0 + b) * vectors + v0 + k) * LANES;
            // SAFETY: o0 + b < cout and v0 + k < vectors, so the 16
            // floats lie inside z's cout · vectors · 16.
            unsafe { _mm512_storeu_ps(z.as_mut_ptr().add(at), *acc) };
        }
    }
}

/// [`super::forward_channel_lanes`]'s kernel: for each block of 16 output
/// channels, blocks of `R` output rows × the whole `C`-wide row of
/// positions, one accumulator per position; per tap, one load of the 16
/// channels' weights and a broadcast input per position. Then the
/// activation, and each channel's values to its own plane of `y`.
///
/// # Safety
/// The CPU must support AVX-512F and FMA; `padded` holds the `cin` padded
/// planes, `lanes_w` the weights as [`super::with_channel_lanes_weights`] lays
/// them out, `bias` (if any) and `y` `cout` values and planes; `cout` is a
/// multiple of 16 and [`lanes_block`] takes `out_w`, with as many rows as
/// `out_h` has.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn forward_lanes(
    g: &Grid,
    padded: &[f32],
    lanes_w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    // SAFETY: passed on from the caller, the block being `lanes_block`'s.
    unsafe {
        match lanes_block(g.out_w) {
            Some((6, 4)) => lanes_rows::<6, 4>(g, padded, lanes_w, bias, act, y),
            Some((4, 5)) => lanes_rows::<4, 5>(g, padded, lanes_w, bias, act, y),
            Some((4, 6)) => lanes_rows::<4, 6>(g, padded, lanes_w, bias, act, y),
            Some((3, 7)) => lanes_rows::<3, 7>(g, padded, lanes_w, bias, act, y),
            Some((3, 8)) => lanes_rows::<3, 8>(g, padded, lanes_w, bias, act, y),
            Some((2, 9)) => lanes_rows::<2, 9>(g, padded, lanes_w, bias, act, y),
            Some((2, 10)) => lanes_rows::<2, 10>(g, padded, lanes_w, bias, act, y),
            Some((2, 11)) => lanes_rows::<2, 11>(g, padded, lanes_w, bias, act, y),
            Some((2, 12)) => lanes_rows::<2, 12>(g, padded, lanes_w, bias, act, y),
            other => unreachable!("no channels-in-lanes block for {other:?}"),
        }
    }
}

/// [`forward_lanes`] by blocks of `R` rows of `C = out_w` positions (the
/// last block overlapping the one before rather than running short).
///
/// # Safety
/// As [`forward_lanes`], with `C == out_w` and `R <= out_h`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn lanes_rows<const R: usize, const C: usize>(
    g: &Grid,
    padded: &[f32],
    lanes_w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    assert!(C == g.out_w && R <= g.out_h && g.cout.is_multiple_of(LANES));
    let taps = g.cin * g.kh * g.kw;
    let out_plane = g.out_h * g.out_w;
    assert!(padded.len() >= g.cin * g.plane() && lanes_w.len() == g.cout * taps);
    assert!(y.len() == g.cout * out_plane && bias.is_none_or(|b| b.len() == g.cout));
    let mut tile = [[[0.0f32; LANES]; C]; R];
    for ob in 0..g.cout / LANES {
        let b = match bias {
            // SAFETY: bias holds cout ≥ (ob + 1)·16 values.
            Some(b) => unsafe { _mm512_loadu_ps(b.as_ptr().add(ob * LANES)) },
            None => _mm512_setzero_ps(),
        };
        let w = &lanes_w[ob * taps * LANES..][..taps * LANES];
        let mut next = 0;
        while next < g.out_h {
            let oy0 = next.min(g.out_h - R);
            let mut acc = [[b; C]; R];
            for ci in 0..g.cin {
                for i in 0..g.kh {
                    // The furthest read, of position (R - 1, C - 1) at tap
                    // (i, kw - 1), is row oy0 + R - 1 + i ≤ out_h - 1 + kh
                    // - 1 < rows and column C - 1 + kw - 1 < grid of plane
                    // ci: inside `padded`.
                    let x = &padded[ci * g.plane() + (oy0 + i) * g.grid..];
                    let wr = &w[(ci * g.kh + i) * g.kw * LANES..][..g.kw * LANES];
                    for j in 0..g.kw {
                        // SAFETY: tap (ci, i, j)'s 16 weights, inside wr.
                        let wv = unsafe { _mm512_loadu_ps(wr.as_ptr().add(j * LANES)) };
                        for (r, acc) in acc.iter_mut().enumerate() {
                            for (c, acc) in acc.iter_mut().enumerate() {
                                // SAFETY: inside the furthest read above,
                                // which lies inside x.
                                let v = unsafe { *x.get_unchecked(r * g.grid + c + j) };
                                *acc = _mm512_fmadd_ps(_mm512_set1_ps(v), wv, *acc);
                            }
                        }
                    }
                }
            }
            for (tile, acc) in tile.iter_mut().zip(&acc) {
                for (t, acc) in tile.iter_mut().zip(acc) {
                    // SAFETY: 16 floats into an array of 16.
                    unsafe { _mm512_storeu_ps(t.as_mut_ptr(), *acc) };
                }
            }
            // Rows oy0..oy0 + R of each of the block's 16 planes.
            per_activation!(act, activate, |f| {
                for o in 0..LANES {
                    let plane = &mut y[(ob * LANES + o) * out_plane + oy0 * C..][..R * C];
                    for (row, tile) in plane.chunks_exact_mut(C).zip(&tile) {
                        for (v, t) in row.iter_mut().zip(tile) {
                            *v = f(t[o]);
                        }
                    }
                }
            });
            next = oy0 + R;
        }
    }
}

/// [`super::backward_data_scatter`]'s sums: for each tap, blocks of 8,
/// 6, 4, 2 or 1 input channels × up to 4 vectors of `dy` in registers, a
/// multiply-add per output channel, then added into the part planes
/// ([`Scatter`]), each channel's into its own. The parts must start
/// zeroed.
///
/// # Safety
/// The CPU must support AVX-512F and FMA; `weight` holds `cout` rows of
/// `cin·kh·kw`, `dy` `cout` planes of `out_h·out_w`, and `parts`
/// `sc.parts_len()` floats.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn scatter(sc: &Scatter, weight: &[f32], dy: &[f32], parts: &mut [f32]) {
    assert!(weight.len() == sc.cout * sc.cin * sc.kh * sc.kw);
    assert!(dy.len() == sc.cout * sc.out_plane() && parts.len() == sc.parts_len());
    let vectors = sc.vectors();
    for t in 0..sc.kh * sc.kw {
        let mut c0 = 0;
        while c0 < sc.cin {
            let rows = match sc.cin - c0 {
                8.. => 8,
                6..=7 => 6,
                4..=5 => 4,
                2..=3 => 2,
                _ => 1,
            };
            // 24 accumulators at most: 8 × 3, 6 × 4.
            let widest = if rows == 8 { 3 } else { 4 };
            let mut v0 = 0;
            while v0 < vectors {
                let pb = widest.min(vectors - v0);
                let at = (t, c0, v0);
                // SAFETY: passed on from the caller; c0 + rows ≤ cin and
                // v0 + pb ≤ vectors.
                unsafe {
                    match rows {
                        8 => scatter_block::<8>(sc, weight, dy, parts, at, pb),
                        6 => scatter_block::<6>(sc, weight, dy, parts, at, pb),
                        4 => scatter_block::<4>(sc, weight, dy, parts, at, pb),
                        2 => scatter_block::<2>(sc, weight, dy, parts, at, pb),
                        _ => scatter_block::<1>(sc, weight, dy, parts, at, pb),
                    }
                }
                v0 += pb;
            }
            c0 += rows;
        }
    }
}

/// [`scatter_tile`] for `pb` (1 to 4) vectors.
///
/// # Safety
/// As [`scatter_tile`], with `v0 + pb ≤ vectors`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn scatter_block<const R: usize>(
    sc: &Scatter,
    weight: &[f32],
    dy: &[f32],
    parts: &mut [f32],
    at: (usize, usize, usize),
    pb: usize,
) {
    // SAFETY: passed on from the caller.
    unsafe {
        match pb {
            4 => scatter_tile::<R, 4>(sc, weight, dy, parts, at),
            3 => scatter_tile::<R, 3>(sc, weight, dy, parts, at),
            2 => scatter_tile::<R, 2>(sc, weight, dy, parts, at),
            _ => scatter_tile::<R, 1>(sc, weight, dy, parts, at),
        }
    }
}

/// Tap `t` of input channels `c0..c0 + R` at vectors `v0..v0 + PB` of
/// `dy`, added into part planes `(t % kw, c0..c0 + R)` at row `t / kw`.
/// The last vector of a plane loads its live lanes only.
///
/// # Safety
/// As [`scatter`], with `t < kh·kw`, `c0 + R ≤ cin` and `v0 + PB ≤
/// vectors`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn scatter_tile<const R: usize, const PB: usize>(
    sc: &Scatter,
    weight: &[f32],
    dy: &[f32],
    parts: &mut [f32],
    (t, c0, v0): (usize, usize, usize),
) {
    let (window, plane) = (sc.kh * sc.kw, sc.out_plane());
    let patch = sc.cin * window;
    // Each vector's live lanes: all 16 but in the last, partial one.
    let masks: [__mmask16; PB] = std::array::from_fn(|k| {
        let live = (plane - (v0 + k) * LANES).min(LANES);
        (((1u32 << live) - 1) & 0xffff) as __mmask16
    });
    let mut acc = [[_mm512_setzero_ps(); PB]; R];
    for o in 0..sc.cout {
        // SAFETY: vectors v0..v0 + PB of dy's plane o; the masks keep the
        // loads inside the plane.
        let d = unsafe { dy.as_ptr().add(o * plane + v0 * LANES) };
        let mut dv = [_mm512_setzero_ps(); PB];
        for (k, dv) in dv.iter_mut().enumerate() {
            // SAFETY: as above.
            *dv = unsafe { _mm512_maskz_loadu_ps(masks[k], d.add(k * LANES)) };
        }
        // SAFETY: tap t of channels c0..c0 + R in output channel o's row.
        let w = unsafe { weight.as_ptr().add(o * patch + c0 * window + t) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as above, r < R.
            let wv = _mm512_set1_ps(unsafe { *w.add(r * window) });
            for (acc, dv) in acc.iter_mut().zip(&dv) {
                *acc = _mm512_fmadd_ps(wv, *dv, *acc);
            }
        }
    }
    let (i, j) = (t / sc.kw, t % sc.kw);
    let stride = sc.part_stride();
    for (r, acc) in acc.iter().enumerate() {
        let at = (j * sc.cin + c0 + r) * stride + i * sc.out_w + v0 * LANES;
        // The furthest write ends at (kh - 1)·out_w + vectors·16 ≤ the
        // part stride (`Scatter::part_stride`).
        let dst = &mut parts[at..at + PB * LANES];
        for (k, acc) in acc.iter().enumerate() {
            // SAFETY: `dst` holds the PB·16 floats.
            unsafe {
                let p = dst.as_mut_ptr().add(k * LANES);
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *acc));
            }
        }
    }
}

/// `dx` from the part planes of [`scatter`]: each row of input channel
/// `c` is row `y + ph` of its `kw` parts, part `j` shifted right by `j`,
/// cropped to the columns `pw..pw + w` of the padded row; 16 columns at a
/// time, with masked loads where a part's row does not reach.
///
/// # Safety
/// The CPU must support AVX-512F; `parts` holds `sc.parts_len()` floats
/// and `dx` `cin·h·w`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gather_parts(sc: &Scatter, parts: &[f32], dx: &mut [f32]) {
    assert!(parts.len() == sc.parts_len() && dx.len() == sc.cin * sc.h * sc.w);
    let stride = sc.part_stride();
    // Lanes lo..hi of 16, as a mask (empty where hi ≤ lo).
    let lanes = |lo: isize, hi: isize| -> __mmask16 {
        let (lo, hi) = (lo.clamp(0, 16) as u32, hi.clamp(0, 16) as u32);
        if hi <= lo {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        }
    };
    assert!(sc.kw <= MAX_SCATTER_KW);
    for x0 in (0..sc.w).step_by(LANES) {
        // Lane l is column x0 + l of dx, column x0 + l + pw - j of part
        // j's row, which holds columns 0..out_w: where to load and which
        // lanes, for each part (the same in every row).
        let mut loads = [(0isize, 0 as __mmask16); MAX_SCATTER_KW];
        for (j, load) in loads.iter_mut().enumerate().take(sc.kw) {
            let shift = x0 as isize + sc.pw as isize - j as isize;
            *load = (
                (j * sc.cin) as isize * stride as isize + shift,
                lanes(-shift, sc.out_w as isize - shift),
            );
        }
        let (x_len, loads) = ((sc.w - x0).min(LANES), &loads[..sc.kw]);
        let store = lanes(0, x_len as isize);
        for c in 0..sc.cin {
            for y in 0..sc.h {
                let row = c * stride + (y + sc.ph) * sc.out_w;
                let mut sum = _mm512_setzero_ps();
                for &(at, keep) in loads {
                    let p = parts.as_ptr().wrapping_add(row).wrapping_offset(at);
                    // SAFETY: the mask keeps the lanes inside the part's
                    // row, which `parts` holds.
                    sum = _mm512_add_ps(sum, unsafe { _mm512_maskz_loadu_ps(keep, p) });
                }
                let out = &mut dx[(c * sc.h + y) * sc.w + x0..][..x_len];
                // SAFETY: the mask covers `out`'s floats.
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), store, sum) };
            }
        }
    }
}

/// [`WeightGrad::add`] with 16 output channels in the lanes of each
/// accumulator, one per tap of a `K x K` window of one input channel
/// (25 registers for 5x5): per kept position, one load of the 16
/// channels' `dy` and a broadcast of the input under each tap. No grid
/// positions are dropped and no lanes summed.
///
/// # Safety
/// The CPU must support AVX-512F and FMA; the lengths are as
/// `WeightGrad::add` asserts, and `wg.channel_lanes` holds.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn weight_grad_lanes(
    wg: &WeightGrad,
    xs: &[f32],
    dys: &[f32],
    dweight: &mut [f32],
) {
    // SAFETY: passed on; `channel_lanes` admits only these windows.
    unsafe {
        match wg.g.kw {
            3 => lanes_k::<3>(wg, xs, dys, dweight),
            _ => lanes_k::<5>(wg, xs, dys, dweight),
        }
    }
}

/// [`weight_grad_lanes`] for `K x K` windows.
///
/// # Safety
/// As [`weight_grad_lanes`], with `kh = kw = K`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn lanes_k<const K: usize>(wg: &WeightGrad, xs: &[f32], dys: &[f32], dweight: &mut [f32]) {
    let g = &wg.g;
    assert!(g.kh == K && g.kw == K);
    let positions = g.out_h * g.out_w;
    for b in 0..g.cout.div_ceil(LANES) {
        for c in 0..g.cin {
            let mut acc = [[_mm512_setzero_ps(); K]; K];
            for (x, dy) in xs.chunks_exact(wg.x_len).zip(dys.chunks_exact(wg.dy_len)) {
                // Input row oy + i of plane c holds the taps of row i:
                // the furthest read, (out_h - 1 + K - 1)·grid + out_w -
                // 1 + K - 1, is inside the plane, whose rows and grid
                // are out_h + K - 1 and out_w + K - 1.
                let plane = x[c * g.plane()..][..g.plane()].as_ptr();
                let dy = dy[b * positions * LANES..][..positions * LANES].as_ptr();
                for oy in 0..g.out_h {
                    for ox in 0..g.out_w {
                        // SAFETY: position (oy, ox) of the block's
                        // `[positions][16]`.
                        let d = unsafe { _mm512_loadu_ps(dy.add((oy * g.out_w + ox) * LANES)) };
                        for (i, acc) in acc.iter_mut().enumerate() {
                            for (j, acc) in acc.iter_mut().enumerate() {
                                // SAFETY: inside the plane, as above.
                                let x = unsafe { *plane.add((oy + i) * g.grid + ox + j) };
                                *acc = _mm512_fmadd_ps(d, _mm512_set1_ps(x), *acc);
                            }
                        }
                    }
                }
            }
            let lanes = (g.cout - b * LANES).min(LANES);
            for (i, acc) in acc.iter().enumerate() {
                for (j, acc) in acc.iter().enumerate() {
                    let mut sums = [0.0f32; LANES];
                    // SAFETY: `sums` holds the 16 floats stored.
                    unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), *acc) };
                    for (l, sum) in sums.iter().take(lanes).enumerate() {
                        dweight[wg.index(b * LANES + l, c, i, j)] += sum;
                    }
                }
            }
        }
    }
}

/// [`WeightGrad::add`] in AVX-512, in its tap-column layout: blocks of 4,
/// 2 or 1 output channels × up to [`WEIGHT_GRAD_TAPS`] taps of a kernel
/// column.
///
/// # Safety
/// The CPU must support AVX-512F and FMA; the lengths are as
/// `WeightGrad::add` asserts, and `wg.channel_lanes` does not hold.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn weight_grad(wg: &WeightGrad, xs: &[f32], dys: &[f32], dweight: &mut [f32]) {
    assert!(!wg.channel_lanes);
    let g = &wg.g;
    let mut o0 = 0;
    while o0 < g.cout {
        let ob = match g.cout - o0 {
            4.. => 4,
            2..=3 => 2,
            _ => 1,
        };
        for c in 0..g.cin {
            for j in 0..g.kw {
                for i0 in (0..g.kh).step_by(WEIGHT_GRAD_TAPS) {
                    let at = (o0, c, i0, j);
                    // SAFETY: passed on from the caller; the block's
                    // channels and taps exist.
                    unsafe {
                        match ob {
                            4 => taps_of::<4>(wg, xs, dys, at, dweight),
                            2 => taps_of::<2>(wg, xs, dys, at, dweight),
                            _ => taps_of::<1>(wg, xs, dys, at, dweight),
                        }
                    }
                }
            }
        }
        o0 += ob;
    }
}

/// [`weight_grad_block`] for the taps left in the column from `i0`.
///
/// # Safety
/// As [`weight_grad_block`].
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn taps_of<const OB: usize>(
    wg: &WeightGrad,
    xs: &[f32],
    dys: &[f32],
    at: (usize, usize, usize, usize),
    dweight: &mut [f32],
) {
    // SAFETY: passed on from the caller; IB ≤ kh - i0.
    unsafe {
        match wg.g.kh - at.2 {
            1 => weight_grad_block::<OB, 1>(wg, xs, dys, at, dweight),
            2 => weight_grad_block::<OB, 2>(wg, xs, dys, at, dweight),
            3 => weight_grad_block::<OB, 3>(wg, xs, dys, at, dweight),
            4 => weight_grad_block::<OB, 4>(wg, xs, dys, at, dweight),
            _ => weight_grad_block::<OB, WEIGHT_GRAD_TAPS>(wg, xs, dys, at, dweight),
        }
    }
}

/// Adds the weights `(o0..o0 + OB, c, i0..i0 + IB, j)`, summed over the
/// samples and their packed positions, into `dweight`: per vector, `IB`
/// loads of tap column `j`'s input (`out_w` floats apart), `OB` of `dy`,
/// `OB·IB` multiply-adds, the partial last vector masked in both; then the
/// lanes of the accumulators, eight at a time.
///
/// # Safety
/// As [`weight_grad`], with `o0 + OB ≤ cout` and `i0 + IB ≤ kh`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn weight_grad_block<const OB: usize, const IB: usize>(
    wg: &WeightGrad,
    xs: &[f32],
    dys: &[f32],
    (o0, c, i0, j): (usize, usize, usize, usize),
    dweight: &mut [f32],
) {
    let g = &wg.g;
    let plane = g.out_h * g.out_w;
    let live = plane - (wg.vectors - 1) * LANES;
    let tail = (((1u32 << live) - 1) & 0xffff) as __mmask16;
    let mut acc = [[_mm512_setzero_ps(); IB]; OB];
    for (x, dy) in xs.chunks_exact(wg.x_len).zip(dys.chunks_exact(wg.dy_len)) {
        // SAFETY: the furthest read, of the last vector at the last tap,
        // ends at (j·cin + c)·column_stride + (kh - 1)·out_w + vectors·16
        // ≤ (j·cin + c + 1)·column_stride ≤ x_len.
        let x = unsafe { x.as_ptr().add((j * g.cin + c) * wg.column_stride + i0 * g.out_w) };
        // SAFETY: o0 + OB ≤ cout planes of `plane` floats: dy_len; the
        // last vector's loads are masked to the plane.
        let dy = unsafe { dy.as_ptr().add(o0 * plane) };
        for v in 0..wg.vectors {
            let keep = if v + 1 == wg.vectors { tail } else { 0xffff };
            let mut xv = [_mm512_setzero_ps(); IB];
            for (i, xv) in xv.iter_mut().enumerate() {
                // SAFETY: inside the furthest read above.
                *xv = unsafe { _mm512_maskz_loadu_ps(keep, x.add(v * LANES + i * g.out_w)) };
            }
            for (b, acc) in acc.iter_mut().enumerate() {
                // SAFETY: vector v of dy's plane o0 + b, masked to it.
                let d = unsafe { _mm512_maskz_loadu_ps(keep, dy.add(b * plane + v * LANES)) };
                for (acc, xv) in acc.iter_mut().zip(&xv) {
                    *acc = _mm512_fmadd_ps(d, *xv, *acc);
                }
            }
        }
    }
    // The OB·IB ≤ 20 accumulators' lane sums, eight at a time.
    let mut all = [_mm512_setzero_ps(); 24];
    for (k, v) in acc.iter().flatten().enumerate() {
        all[k] = *v;
    }
    let mut sums = [0.0f32; 24];
    for (sums, eight) in
        sums.chunks_exact_mut(8).zip(all.chunks_exact(8)).take((OB * IB).div_ceil(8))
    {
        let eight: [__m512; 8] = eight.try_into().expect("eight vectors");
        sums.copy_from_slice(&lane_sums8(eight));
    }
    for b in 0..OB {
        for i in 0..IB {
            dweight[wg.index(o0 + b, c, i0 + i, j)] += sums[b * IB + i];
        }
    }
}
