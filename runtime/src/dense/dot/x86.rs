//! The AVX-512 tile of the dot-product forward: 8 weight rows × 3 samples
//! of 16-lane partial sums in 24 zmm registers, their lanes added by a
//! transposing tree at the end.

use super::{sweep, Columns, Store, ROWS, SAMPLES};
use crate::dense::Dense;
use crate::reduce::lane_sums8;
use std::arch::x86_64::*;
use std::ops::Range;

/// [`super::outputs_of`] on AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and FMA, and no other thread may touch
/// the columns `outputs` of `y` during the call.
pub(super) unsafe fn outputs_of(
    s: &Dense,
    x: &[f32],
    weight: &[f32],
    store: &Store<'_>,
    y: &Columns<'_>,
    outputs: Range<usize>,
) {
    let tile = |w: &[f32], x: &[f32], ld, rows, samples, kb| {
        // SAFETY: the caller vouches for the CPU; `tile` checks the slices.
        unsafe { tile(w, x, ld, rows, samples, kb) }
    };
    // SAFETY: the columns are this call's, as the caller promises.
    unsafe { sweep(s, x, weight, store, y, outputs, tile) };
}

/// The tile of [`super::sweep`] on AVX-512: whole tiles of 8 rows in
/// registers, the rows of a partial one (the last few outputs) one at a
/// time.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile(
    w: &[f32],
    x: &[f32],
    ld: usize,
    rows: usize,
    samples: usize,
    kb: usize,
) -> [[f32; ROWS]; SAMPLES] {
    // Every row read below lies inside its slice: the loads stop at kb.
    assert!((1..=ROWS).contains(&rows) && (1..=SAMPLES).contains(&samples) && kb <= ld);
    assert!(w.len() >= (rows - 1) * ld + kb && x.len() >= (samples - 1) * ld + kb);
    let mut sums = [[0.0f32; ROWS]; SAMPLES];
    let (w, x) = (w.as_ptr(), x.as_ptr());
    if rows == ROWS {
        match samples {
            // SAFETY: ROWS rows of `w` and 3 of `x` hold kb floats each, as
            // asserted; the CPU is the caller's.
            3 => sums = unsafe { dots::<ROWS, 3>(w, x, ld, kb) },
            // SAFETY: as above, with 2 rows of `x`.
            2 => sums[..2].copy_from_slice(&unsafe { dots::<ROWS, 2>(w, x, ld, kb) }),
            // SAFETY: as above, with 1 row of `x`.
            _ => sums[..1].copy_from_slice(&unsafe { dots::<ROWS, 1>(w, x, ld, kb) }),
        }
        return sums;
    }
    // A partial tile, the last few outputs: one weight row at a time.
    for r in 0..rows {
        // SAFETY: row r is one of the `rows` asserted rows.
        let w = unsafe { w.add(r * ld) };
        let mut part = [[0.0f32; 1]; SAMPLES];
        match samples {
            // SAFETY: 1 row of `w` and 3 of `x` hold kb floats each, as
            // asserted; the CPU is the caller's.
            3 => part = unsafe { dots::<1, 3>(w, x, ld, kb) },
            // SAFETY: as above, with 2 rows of `x`.
            2 => part[..2].copy_from_slice(&unsafe { dots::<1, 2>(w, x, ld, kb) }),
            // SAFETY: as above, with 1 row of `x`.
            _ => part[..1].copy_from_slice(&unsafe { dots::<1, 1>(w, x, ld, kb) }),
        }
        for (sample, p) in sums.iter_mut().zip(part) {
            sample[r] = p[0];
        }
    }
    sums
}

/// `sums[s][r] = ⟨w[r], x[s]⟩` over `kb` floats, rows `ld` apart: per 16
/// inputs, R + S loads and R·S multiply-adds, one accumulator each.
///
/// A 64-byte load that straddles two cache lines costs two. So when every
/// weight row has the same offset (`ld` a multiple of 16 floats), a masked
/// first step brings them to a line boundary, and the whole steps after it
/// load whole lines of the weights. Every input still
/// adds into the lane it would from an aligned start, in the same order.
///
/// # Safety
/// `R` rows at `w` and `S` rows at `x`, `ld` apart, must hold `kb` floats
/// each; the CPU must support AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn dots<const R: usize, const S: usize>(
    w: *const f32,
    x: *const f32,
    ld: usize,
    kb: usize,
) -> [[f32; R]; S] {
    let mut acc = [[_mm512_setzero_ps(); S]; R];
    // Each row's own pointer, so that a load is one instruction off a base
    // register and the k offset. No intrinsics inside closures here: a
    // closure would not inherit this function's features.
    let mut ws = [w; R];
    for (r, p) in ws.iter_mut().enumerate() {
        // SAFETY: row r starts inside `w`'s rows.
        *p = unsafe { w.add(r * ld) };
    }
    let mut xs = [x; S];
    for (s, p) in xs.iter_mut().enumerate() {
        // SAFETY: as above, in `x`.
        *p = unsafe { x.add(s * ld) };
    }
    let misaligned = (w as usize % 64) / 4;
    let head = if ld.is_multiple_of(16) && misaligned != 0 { (16 - misaligned).min(kb) } else { 0 };
    if head > 0 {
        // Inputs 0..head go to the top `head` lanes, so that every input k
        // sits in lane (k - head) mod 16, as in the whole steps after; the
        // lanes are turned back below. The lanes below read nothing.
        let shift = 16 - head;
        let mut wh = ws;
        wh.iter_mut().for_each(|p| *p = p.wrapping_sub(shift));
        let mut xh = xs;
        xh.iter_mut().for_each(|p| *p = p.wrapping_sub(shift));
        let mask = (((1u32 << head) - 1) << shift) as __mmask16;
        // SAFETY: the masked lanes are inputs 0..head of each row.
        unsafe { step(&mut acc, &wh, &xh, 0, mask) };
    }
    let mut k = head;
    while k + 32 <= kb {
        // SAFETY: k + 32 ≤ kb.
        unsafe { step(&mut acc, &ws, &xs, k, 0xffff) };
        // SAFETY: as above.
        unsafe { step(&mut acc, &ws, &xs, k + 16, 0xffff) };
        k += 32;
    }
    while k < kb {
        let left = kb - k;
        let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
        // SAFETY: the mask's lanes stay below kb.
        unsafe { step(&mut acc, &ws, &xs, k, mask) };
        k += 16;
    }
    // Lane l turned back to holding the inputs k ≡ l (mod 16), after a
    // head: the sums then add in the same order wherever the weights lie,
    // so that equal models give equal outputs.
    let turn = if head > 0 {
        let idx: [i32; 16] = std::array::from_fn(|l| ((l + 16 - head) % 16) as i32);
        // SAFETY: `idx` holds 16 i32, the 64 bytes read.
        Some(unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) })
    } else {
        None
    };
    let mut sums = [[0.0f32; R]; S];
    for (s, out) in sums.iter_mut().enumerate() {
        let mut column = [_mm512_setzero_ps(); R];
        for (c, acc_r) in column.iter_mut().zip(&acc) {
            *c = match turn {
                Some(t) => _mm512_permutexvar_ps(t, acc_r[s]),
                None => acc_r[s],
            };
        }
        if R == ROWS {
            let mut eight = [_mm512_setzero_ps(); ROWS];
            eight.copy_from_slice(&column);
            out.copy_from_slice(&lane_sums8(eight));
        } else {
            for (o, c) in out.iter_mut().zip(column) {
                *o = _mm512_reduce_add_ps(c);
            }
        }
    }
    sums
}

/// One step of [`dots`]: the `mask`ed lanes of the 16 floats from `k` of
/// every row, multiplied and added into `acc`. Masked-off lanes read
/// nothing and add zero.
///
/// # Safety
/// Every row must hold the masked lanes from `k`; the CPU must support
/// AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn step<const R: usize, const S: usize>(
    acc: &mut [[__m512; S]; R],
    ws: &[*const f32; R],
    xs: &[*const f32; S],
    k: usize,
    mask: __mmask16,
) {
    let mut xv = [_mm512_setzero_ps(); S];
    for (v, p) in xv.iter_mut().zip(xs) {
        // SAFETY: the caller vouches for the lanes.
        *v = unsafe { _mm512_maskz_loadu_ps(mask, p.add(k)) };
    }
    for (acc_r, p) in acc.iter_mut().zip(ws) {
        // SAFETY: as above.
        let wv = unsafe { _mm512_maskz_loadu_ps(mask, p.add(k)) };
        for (a, v) in acc_r.iter_mut().zip(&xv) {
            *a = _mm512_fmadd_ps(wv, *v, *a);
        }
    }
}
