//! GEMM with bf16 operands and f32 accumulation: `C = A·B` or `C += A·B`,
//! A and B rounded to bf16 as they are packed, C kept in f32. It is the
//! mixed-precision path's matrix product: half the operand traffic of
//! SGEMM, and `VDPBF16PS` does two multiply-adds a lane where FMA does one.
//!
//! Operands are packed as bf16 pairs along k, which is what `VDPBF16PS`
//! takes: lane `j` of a B vector holds rows `2p` and `2p+1` of column `j`,
//! and one A pair is broadcast to every lane. The portable kernel runs the
//! same blocking with [`crate::bf16::dot_pair`], the instruction's own
//! arithmetic, so both give the same bits and either checks the other.
//!
//! On CPUs with AMX, [`Bf16Kernel::Amx`] runs the same product on tiles
//! (`amx.rs`), with its own blocking and packing.

#[cfg(target_arch = "x86_64")]
mod amx;

use super::{MatRef, Par};
use crate::bf16::{dot_pair, round};
use rayon::prelude::*;

/// Rows and columns of C a microkernel computes.
pub const MR: usize = 8;
pub const NR: usize = 48;
/// The k of one packed block (even: whole pairs), the rows of A packed at
/// once, and the columns of B: an MR x KC panel of A and a KC x NR panel of
/// B (24 KB) stay in L1, a MC x KC block of A (96 KB) in L2.
const KC: usize = 256;
const MC: usize = 192;
const NC: usize = 1536;

/// The microkernels of this GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// The instruction's arithmetic in portable Rust.
    Portable,
    /// `VDPBF16PS` on 512-bit vectors.
    Avx512Bf16,
    /// `TDPBF16PS` on AMX tiles.
    Amx,
}

impl Bf16Kernel {
    /// Every kernel this CPU runs, the portable one first. Detected once.
    pub fn supported() -> &'static [Bf16Kernel] {
        static SUPPORTED: std::sync::OnceLock<Vec<Bf16Kernel>> = std::sync::OnceLock::new();
        SUPPORTED.get_or_init(|| {
            let mut kernels = vec![Bf16Kernel::Portable];
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
                kernels.push(Bf16Kernel::Avx512Bf16);
            }
            #[cfg(target_arch = "x86_64")]
            if amx::available() {
                kernels.push(Bf16Kernel::Amx);
            }
            kernels
        })
    }

    /// The fastest this CPU runs.
    pub fn best() -> Bf16Kernel {
        *Bf16Kernel::supported().last().unwrap_or(&Bf16Kernel::Portable)
    }

    /// Its name, as `NETC_BF16_KERNEL` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Kernel::Portable => "portable",
            Bf16Kernel::Avx512Bf16 => "avx512bf16",
            Bf16Kernel::Amx => "amx",
        }
    }

    /// The kernel the networks' bf16 layers use: `NETC_BF16_KERNEL` if set
    /// and supported, else [`Self::best`]. Chosen once.
    pub fn selected() -> Bf16Kernel {
        static SELECTED: std::sync::OnceLock<Bf16Kernel> = std::sync::OnceLock::new();
        *SELECTED.get_or_init(|| {
            let Ok(forced) = std::env::var("NETC_BF16_KERNEL") else {
                return Bf16Kernel::best();
            };
            match Bf16Kernel::supported().iter().find(|k| k.name() == forced) {
                Some(&k) => k,
                None => {
                    eprintln!(
                        "netc: NETC_BF16_KERNEL={forced} is not a kernel this CPU runs; ignored"
                    );
                    Bf16Kernel::best()
                }
            }
        })
    }

    /// One MR x NR tile: `c = acc` or `c += acc` over `pairs` k-pairs of
    /// packed panels, into an `MR x NR` row-major tile.
    fn tile(self, pairs: usize, a: &[u16], b: &[u16], c: &mut [f32; MR * NR], accumulate: bool) {
        assert!(a.len() >= pairs * MR * 2 && b.len() >= pairs * NR * 2);
        match self {
            Bf16Kernel::Portable => portable_tile(pairs, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Avx512Bf16 => {
                // SAFETY: the panels hold `pairs` k-pairs (asserted above),
                // the tile is MR x NR floats, and `gemm_bf16` checked that
                // the CPU has the features before any tile.
                unsafe { x86::tile(pairs, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), accumulate) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Bf16Kernel::Avx512Bf16 => unreachable!("never supported off x86-64"),
            Bf16Kernel::Amx => unreachable!("AMX runs its own blocks, not these tiles"),
        }
    }
}

fn portable_tile(pairs: usize, a: &[u16], b: &[u16], c: &mut [f32; MR * NR], accumulate: bool) {
    for i in 0..MR {
        for j in 0..NR {
            let mut acc = 0.0f32;
            for p in 0..pairs {
                let ap = [a[(p * MR + i) * 2], a[(p * MR + i) * 2 + 1]];
                let bp = [b[(p * NR + j) * 2], b[(p * NR + j) * 2 + 1]];
                acc = dot_pair(acc, ap, bp);
            }
            let out = &mut c[i * NR + j];
            *out = if accumulate { *out + acc } else { acc };
        }
    }
}

/// `C = A·B` (or `C += A·B` when `accumulate`) for an `m x k` A and a
/// `k x n` B, C row-major with row stride `rsc`, with `kernel`, on the
/// threads `par` allows (rows split between them). A's and B's values are
/// rounded to bf16; sums are f32.
///
/// # Panics
/// If `c` or the views are too short for the shapes.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16(
    kernel: Bf16Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(rsc >= n && c.len() >= (m - 1) * rsc + n, "C is too short");
    assert!(Bf16Kernel::supported().contains(&kernel), "the CPU lacks {kernel:?}");
    let threads = match par {
        Par::Seq => 1,
        Par::Rayon => rayon::current_num_threads().max(1),
    };
    // Whole blocks of rows a thread, so that no block is split.
    let block = match kernel {
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Amx => amx::MR,
        _ => MR,
    };
    let rows = m.div_ceil(threads).div_ceil(block) * block;
    let chunk = rows * rsc;
    c.par_chunks_mut(chunk).enumerate().for_each(|(t, part)| {
        let first = t * rows;
        let share = Share { first, m: rows.min(m - first), n, k, a, b, rsc, accumulate };
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Amx => amx::serial(share, part),
            _ => serial(kernel, share, part),
        }
    });
}

/// One thread's share of a product: rows `first..first + m` of A and of C,
/// whose rows are `rsc` apart, and whether it adds to C.
#[derive(Clone, Copy)]
struct Share<'a> {
    first: usize,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'a>,
    b: MatRef<'a>,
    rsc: usize,
    accumulate: bool,
}

/// The five loops over a thread's `share` (`c` starts at its first row).
fn serial(kernel: Bf16Kernel, share: Share, c: &mut [f32]) {
    let Share { first, m, n, k, a, b, rsc, accumulate } = share;
    let mut packed_b = vec![0u16; KC * NC.min(n.div_ceil(NR) * NR)];
    let mut packed_a = vec![0u16; KC * MC.min(m.div_ceil(MR) * MR)];
    let mut tile = [0.0f32; MR * NR];
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for (block, p0) in (0..k.max(1)).step_by(KC).enumerate() {
            let kc = KC.min(k - p0.min(k));
            let pairs = kc.div_ceil(2);
            pack_b(b, p0, kc, j0, nc, &mut packed_b);
            // The first k block writes C unless the caller accumulates.
            let add = accumulate || block > 0;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_a(a, first + i0, mc, p0, kc, &mut packed_a);
                for (jp, jt) in (0..nc).step_by(NR).enumerate() {
                    let b_panel = &packed_b[jp * pairs * NR * 2..];
                    for (ip, it) in (0..mc).step_by(MR).enumerate() {
                        let a_panel = &packed_a[ip * pairs * MR * 2..];
                        let (rows, cols) = (MR.min(mc - it), NR.min(nc - jt));
                        let origin = (i0 + it) * rsc + j0 + jt;
                        for r in 0..rows {
                            let from = &c[origin + r * rsc..origin + r * rsc + cols];
                            tile[r * NR..r * NR + cols].copy_from_slice(from);
                        }
                        kernel.tile(pairs, a_panel, b_panel, &mut tile, add);
                        for r in 0..rows {
                            let to = &mut c[origin + r * rsc..origin + r * rsc + cols];
                            to.copy_from_slice(&tile[r * NR..r * NR + cols]);
                        }
                    }
                }
            }
        }
    }
}

/// Packs `kc` rows from `p0` of B's columns `j0..j0+nc` as NR-column
/// panels of k-pairs, rounded to bf16, zero past the edges.
fn pack_b(b: MatRef, p0: usize, kc: usize, j0: usize, nc: usize, out: &mut [u16]) {
    let pairs = kc.div_ceil(2);
    for (jp, jt) in (0..nc).step_by(NR).enumerate() {
        let panel = &mut out[jp * pairs * NR * 2..(jp + 1) * pairs * NR * 2];
        let cols = NR.min(nc - jt);
        for (p, pair) in panel.chunks_exact_mut(NR * 2).enumerate() {
            pair.fill(0);
            for h in 0..2.min(kc - 2 * p) {
                let start = (p0 + 2 * p + h) * b.rs + (j0 + jt) * b.cs;
                let row = b.data[start..].iter().step_by(b.cs.max(1)).take(cols);
                for (j, &v) in row.enumerate() {
                    pair[j * 2 + h] = round(v);
                }
            }
        }
    }
}

/// Packs A's rows `i0..i0+mc`, columns `p0..p0+kc`, as MR-row panels of
/// k-pairs, rounded to bf16, zero past the edges.
fn pack_a(a: MatRef, i0: usize, mc: usize, p0: usize, kc: usize, out: &mut [u16]) {
    let pairs = kc.div_ceil(2);
    for (ip, it) in (0..mc).step_by(MR).enumerate() {
        let panel = &mut out[ip * pairs * MR * 2..(ip + 1) * pairs * MR * 2];
        panel.fill(0);
        for i in 0..MR.min(mc - it) {
            let start = (i0 + it + i) * a.rs + p0 * a.cs;
            let row = a.data[start..].iter().step_by(a.cs.max(1)).take(kc);
            for (col, &v) in row.enumerate() {
                panel[((col / 2) * MR + i) * 2 + col % 2] = round(v);
            }
        }
    }
}

/// `dst[i]` = `src[i]` rounded to bf16 by `kernel`: the hardware's
/// conversion, or [`round`]. AMX has no conversion of its own: it takes
/// AVX512_BF16's where the CPU has it.
pub fn convert(kernel: Bf16Kernel, src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "convert: lengths");
    let vector = Bf16Kernel::supported().contains(&Bf16Kernel::Avx512Bf16);
    match kernel {
        Bf16Kernel::Amx if vector => convert(Bf16Kernel::Avx512Bf16, src, dst),
        Bf16Kernel::Portable | Bf16Kernel::Amx => {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = round(s))
        }
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Avx512Bf16 => {
            assert!(Bf16Kernel::supported().contains(&kernel), "the CPU lacks AVX512_BF16");
            // SAFETY: equal lengths (asserted); the CPU has the features.
            unsafe { x86::convert(src, dst) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Bf16Kernel::Avx512Bf16 => unreachable!("never supported off x86-64"),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// # Safety
    /// `a` holds `pairs·MR` and `b` `pairs·NR` bf16 pairs, `c` `MR·NR`
    /// floats, and the CPU has AVX-512F and AVX512_BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile(pairs: usize, a: *const u16, b: *const u16, c: *mut f32, accumulate: bool) {
        const NV: usize = NR / 16;
        // SAFETY: (whole body) every load is inside the panels and every
        // store inside the tile, as the caller guarantees.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; MR];
            for p in 0..pairs {
                let bp = b.add(p * NR * 2);
                let mut bv = [_mm512_setzero_si512(); NV];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = _mm512_loadu_si512(bp.add(v * 32) as *const _);
                }
                let ap = a.add(p * MR * 2) as *const i32;
                for (i, row) in acc.iter_mut().enumerate() {
                    let pair = _mm512_set1_epi32(ap.add(i).read_unaligned());
                    for (v, slot) in row.iter_mut().enumerate() {
                        *slot = _mm512_dpbf16_ps(
                            *slot,
                            std::mem::transmute::<__m512i, __m512bh>(pair),
                            std::mem::transmute::<__m512i, __m512bh>(bv[v]),
                        );
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &value) in row.iter().enumerate() {
                    let dst = c.add(i * NR + v * 16);
                    let out =
                        if accumulate { _mm512_add_ps(_mm512_loadu_ps(dst), value) } else { value };
                    _mm512_storeu_ps(dst, out);
                }
            }
        }
    }

    /// # Safety
    /// `src` and `dst` have the same length; the CPU has AVX-512F and
    /// AVX512_BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn convert(src: &[f32], dst: &mut [u16]) {
        let mut chunks = src.chunks_exact(16);
        let mut out = dst.chunks_exact_mut(16);
        for (s, d) in (&mut chunks).zip(&mut out) {
            // SAFETY: 16 floats are read and 16 bf16 written.
            unsafe {
                let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s.as_ptr()));
                _mm256_storeu_si256(
                    d.as_mut_ptr() as *mut __m256i,
                    std::mem::transmute::<__m256bh, __m256i>(v),
                );
            }
        }
        let (s, d) = (chunks.remainder(), out.into_remainder());
        let mut tail = [0.0f32; 16];
        tail[..s.len()].copy_from_slice(s);
        // SAFETY: a whole vector of the zero-padded tail is read, and 16
        // bf16 are 32 bytes, as an array of 16 u16.
        let bits: [u16; 16] = unsafe {
            let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(tail.as_ptr()));
            std::mem::transmute::<__m256bh, [u16; 16]>(v)
        };
        d.copy_from_slice(&bits[..d.len()]);
    }
}
