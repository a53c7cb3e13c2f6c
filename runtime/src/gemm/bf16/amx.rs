//! The bf16 GEMM on AMX tiles (`TDPBF16PS`): each step multiplies a 32 x 32
//! block of C, held in four 16 x 16 f32 tiles, by two 16-row tiles of A
//! and two of B, 32 values of k each (B in k-pairs, as `VDPBF16PS` takes
//! them). Every tile row is one 64-byte line of the packed buffers, so each
//! tile load reads 1 KB that lies contiguous and aligned.
//!
//! Rust has no stable intrinsics for the tile instructions, so they are
//! written with `asm!`. Linux gives a process the tile data state only when
//! it asks, with `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`;
//! where that is refused, the kernel is not offered.

use super::super::MatRef;
use super::Share;
use crate::bf16::round;
use std::arch::asm;
use std::sync::OnceLock;

/// Rows of a tile, and f32 columns of a C tile.
const TILE: usize = 16;
/// Values of k in one row of an A tile (32 bf16 in 64 bytes).
const K_STEP: usize = 32;
/// Rows and columns of the C block one call of [`block`] computes.
pub(super) const MR: usize = 32;
const NR: usize = 32;
/// The k of one packed block, the rows of A packed at once and the columns
/// of B: a 32 x KC panel of A and of B (32 KB each) fit L1 beside each
/// other's next lines, an MC x KC block of A (256 KB) fits L2.
const KC: usize = 512;
const MC: usize = 256;
const NC: usize = 1024;

/// One tile row: 32 bf16, aligned to its cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u16; K_STEP]);

const ZERO_LINE: Line = Line([0; K_STEP]);

/// The 32 x 32 f32 C block the tiles are stored to.
#[repr(C, align(64))]
struct Block([f32; MR * NR]);

/// Whether this CPU has AMX-TILE and AMX-BF16 and the OS granted this
/// process the tile state. Asked once.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let leaf = std::arch::x86_64::__cpuid_count(7, 0);
            let (bf16, tile) = ((leaf.edx >> 22) & 1 == 1, (leaf.edx >> 24) & 1 == 1);
            bf16 && tile && request_tile_state()
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: whether Linux
/// lets this process (all its threads) use the tile data registers.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl with this request only changes which extended
    // state the process may use; it reads and writes no memory of ours.
    // The syscall instruction clobbers rcx and r11, declared here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_state() -> bool {
    false
}

/// The tile configuration of this thread while it lives: eight tiles of 16
/// rows of 64 bytes. Dropping it releases the tile state.
struct Tiles;

impl Tiles {
    /// # Safety
    /// [`available`] must have returned true.
    unsafe fn configure() -> Tiles {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut config = Config([0; 64]);
        config.0[0] = 1; // palette 1
        for t in 0..8 {
            config.0[16 + 2 * t] = 64; // bytes a row (a little-endian u16)
            config.0[48 + t] = TILE as u8; // rows
        }
        // SAFETY: the caller vouches for AMX and the OS's permission; the
        // configuration is the 64 bytes `ldtilecfg` reads.
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
        Tiles
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: only a configured `Tiles` exists, so AMX is there.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// The 32 x 32 block of C at `c` (rows `stride` bytes apart) gets A·B
/// over `steps` k-steps of the panels whose 16-row tiles start at lines
/// `a0`, `a1` (A) and `b0`, `b1` (B): added to it when `add`, else in
/// place of it.
///
/// # Safety
/// The tiles are configured ([`Tiles`]); each of the four panels holds
/// `steps >= 1` tiles of 16 lines one after the other; `c` is valid for
/// reads and writes of 32 rows of 32 floats, `stride` bytes apart.
unsafe fn block(
    steps: usize,
    a: [*const Line; 2],
    b: [*const Line; 2],
    c: *mut f32,
    stride: usize,
    add: bool,
) {
    // SAFETY: the caller vouches for the configuration, the panels'
    // lengths and C's rows: the upper tiles are C's rows 0..16, the lower
    // ones its rows 16..32, the right-hand ones 16 floats (64 bytes) in.
    unsafe {
        let lower = c.byte_add(TILE * stride);
        asm!(
            "test {add}, {add}",
            "jz 3f",
            "tileloadd tmm0, [{c} + {stride}*1]",
            "tileloadd tmm1, [{c} + {stride}*1 + 64]",
            "tileloadd tmm2, [{lower} + {stride}*1]",
            "tileloadd tmm3, [{lower} + {stride}*1 + 64]",
            "jmp 2f",
            "3:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {line}*1]",
            "tileloadd tmm5, [{a1} + {line}*1]",
            "tileloadd tmm6, [{b0} + {line}*1]",
            "tileloadd tmm7, [{b1} + {line}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{c} + {stride}*1], tmm0",
            "tilestored [{c} + {stride}*1 + 64], tmm1",
            "tilestored [{lower} + {stride}*1], tmm2",
            "tilestored [{lower} + {stride}*1 + 64], tmm3",
            a0 = inout(reg) a[0] => _,
            a1 = inout(reg) a[1] => _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            steps = inout(reg) steps => _,
            add = in(reg) usize::from(add),
            line = in(reg) 64usize,
            stride = in(reg) stride,
            c = in(reg) c,
            lower = in(reg) lower,
            options(nostack)
        );
    }
}

/// Whether packing may convert with `VCVTNE2PS2BF16`, which rounds as
/// [`round`] does (the bf16 tests check it bit for bit).
fn convert_vectors() -> bool {
    static VECTORS: OnceLock<bool> = OnceLock::new();
    *VECTORS.get_or_init(|| {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    })
}

/// 32 floats rounded to bf16, in order.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_line(from: &[f32; K_STEP]) -> Line {
    use std::arch::x86_64::*;
    // SAFETY: 32 floats are read from the array, 64 bytes written to the
    // line; the caller vouches for the CPU.
    unsafe {
        let (lo, hi) = (_mm512_loadu_ps(from.as_ptr()), _mm512_loadu_ps(from.as_ptr().add(16)));
        std::mem::transmute::<__m512bh, Line>(_mm512_cvtne2ps_pbh(hi, lo))
    }
}

/// Two rows of 16 floats rounded to bf16 and interleaved: `[r0[0], r1[0],
/// r0[1], r1[1], …]`, a k-pair line of B.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_pair(r0: &[f32; TILE], r1: &[f32; TILE]) -> Line {
    use std::arch::x86_64::*;
    // SAFETY: 16 floats are read from each array, 64 bytes written to the
    // line; the caller vouches for the CPU.
    unsafe {
        let (x, y) = (_mm512_loadu_ps(r0.as_ptr()), _mm512_loadu_ps(r1.as_ptr()));
        let first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        let second = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        let (lo, hi) = (_mm512_permutex2var_ps(x, first, y), _mm512_permutex2var_ps(x, second, y));
        std::mem::transmute::<__m512bh, Line>(_mm512_cvtne2ps_pbh(hi, lo))
    }
}

/// Packs A's rows `i0..i0+mc` (padded with zero rows to whole blocks),
/// columns `p0..p0+kc` (padded with zeros to whole steps), rounded to
/// bf16: 16-row group `g`'s step `s` is lines `(g·steps + s)·16..`.
fn pack_a(a: MatRef, i0: usize, mc: usize, p0: usize, kc: usize, steps: usize, out: &mut [Line]) {
    let groups = mc.div_ceil(MR) * (MR / TILE);
    for (l, line) in out[..groups * steps * TILE].iter_mut().enumerate() {
        let (g, s, r) = (l / (steps * TILE), l / TILE % steps, l % TILE);
        let row = g * TILE + r;
        *line = ZERO_LINE;
        if row >= mc {
            continue;
        }
        let (k0, len) = (s * K_STEP, K_STEP.min(kc.saturating_sub(s * K_STEP)));
        let start = (i0 + row) * a.rs + (p0 + k0) * a.cs;
        if len == K_STEP && convert_vectors() {
            // A transposed view's row is strided: gathered first, so that
            // the rounding is still the vector instruction's.
            let mut gathered = [0.0f32; K_STEP];
            let from: &[f32; K_STEP] = if a.cs == 1 {
                a.data[start..start + K_STEP].try_into().expect("32 values")
            } else {
                let values = a.data[start..].iter().step_by(a.cs);
                gathered.iter_mut().zip(values).for_each(|(g, &v)| *g = v);
                &gathered
            };
            // SAFETY: the CPU has AVX-512F and AVX512_BF16 (checked).
            *line = unsafe { convert_line(from) };
            continue;
        }
        for (x, &v) in line.0[..len].iter_mut().zip(a.data[start..].iter().step_by(a.cs.max(1))) {
            *x = round(v);
        }
    }
}

/// Packs B's columns `j0..j0+nc` (padded with zero columns to whole
/// blocks), rows `p0..p0+kc` (zeros past them), rounded to bf16, as k-pairs:
/// line `(g·steps + s)·16 + p` holds rows `2p` and `2p+1` of step `s`
/// interleaved, for the 16 columns of group `g`.
fn pack_b(b: MatRef, p0: usize, kc: usize, j0: usize, nc: usize, steps: usize, out: &mut [Line]) {
    let groups = nc.div_ceil(NR) * (NR / TILE);
    let vectors = convert_vectors();
    // Row pair by row pair, across the columns: B is read along its rows.
    for s in 0..steps {
        for p in 0..TILE {
            let kk = s * K_STEP + 2 * p;
            for g in 0..groups {
                let line = &mut out[(g * steps + s) * TILE + p];
                let cols = TILE.min(nc.saturating_sub(g * TILE));
                let start = (p0 + kk) * b.rs + (j0 + g * TILE) * b.cs;
                if vectors && cols == TILE && kk + 1 < kc && b.cs == 1 {
                    let row = |at: usize| -> &[f32; TILE] {
                        b.data[at..at + TILE].try_into().expect("16")
                    };
                    // SAFETY: the CPU has AVX-512F and AVX512_BF16 (checked).
                    *line = unsafe { convert_pair(row(start), row(start + b.rs)) };
                    continue;
                }
                if vectors && cols == TILE && kk + 1 < kc {
                    // A transposed view: each column's pair of rows is
                    // gathered in line order, then rounded by the vector
                    // instruction.
                    let mut gathered = [0.0f32; K_STEP];
                    for (j, pair) in gathered.chunks_exact_mut(2).enumerate() {
                        let at = start + j * b.cs;
                        pair[0] = b.data[at];
                        pair[1] = b.data[at + b.rs];
                    }
                    // SAFETY: the CPU has AVX-512F and AVX512_BF16 (checked).
                    *line = unsafe { convert_line(&gathered) };
                    continue;
                }
                *line = ZERO_LINE;
                if cols == 0 {
                    continue;
                }
                for h in 0..2.min(kc.saturating_sub(kk)) {
                    let values = b.data[start + h * b.rs..].iter().step_by(b.cs.max(1));
                    for (j, &v) in values.take(cols).enumerate() {
                        line.0[2 * j + h] = round(v);
                    }
                }
            }
        }
    }
}

/// The five loops over a thread's `share` of the product (`c` starts at its
/// first row), as [`super::gemm_bf16`] describes it. Whole blocks of C
/// are loaded into the tiles and summed there; edge blocks' products are
/// summed from zero and then added to C.
///
/// # Panics
/// If [`available`] is false.
pub(super) fn serial(share: Share, c: &mut [f32]) {
    let Share { first, m, n, k, a, b, rsc, accumulate } = share;
    assert!(available(), "AMX is not available to this process");
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| c[i * rsc..i * rsc + n].fill(0.0));
        }
        return;
    }
    let max_steps = KC / K_STEP;
    let a_len = MC.min(m.div_ceil(MR) * MR) * max_steps;
    let b_len = NC.min(n.div_ceil(NR) * NR) * max_steps;
    with_panels(a_len, b_len, |packed_a, packed_b| {
        serial_packed(Share { first, m, n, k, a, b, rsc, accumulate }, c, packed_a, packed_b)
    })
}

thread_local! {
    /// Each thread's packed panels of A and B, reused across calls: every
    /// line a product reads is packed first, so stale lines do no harm.
    static PANELS: std::cell::RefCell<(Vec<Line>, Vec<Line>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's panels of at least `a_len` and `b_len`
/// lines (fresh ones if the thread's are in use).
fn with_panels<R>(a_len: usize, b_len: usize, f: impl FnOnce(&mut [Line], &mut [Line]) -> R) -> R {
    PANELS.with(|panels| {
        let mut fresh = (Vec::new(), Vec::new());
        let mut guard = panels.try_borrow_mut().ok();
        let (a, b) = guard.as_deref_mut().unwrap_or(&mut fresh);
        if a.len() < a_len {
            a.resize(a_len, ZERO_LINE);
        }
        if b.len() < b_len {
            b.resize(b_len, ZERO_LINE);
        }
        f(&mut a[..a_len], &mut b[..b_len])
    })
}

/// [`serial`] on packing buffers of the right size.
fn serial_packed(share: Share, c: &mut [f32], packed_a: &mut [Line], packed_b: &mut [Line]) {
    let Share { first, m, n, k, a, b, rsc, accumulate } = share;
    let mut out = Block([0.0; MR * NR]);
    // SAFETY: `serial`, the only caller, checked `available`.
    let _tiles = unsafe { Tiles::configure() };
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for (index, p0) in (0..k).step_by(KC).enumerate() {
            let kc = KC.min(k - p0);
            let steps = kc.div_ceil(K_STEP);
            pack_b(b, p0, kc, j0, nc, steps, packed_b);
            let add = accumulate || index > 0;
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_a(a, first + i0, mc, p0, kc, steps, packed_a);
                let group =
                    |packed: &[Line], g: usize| packed[g * steps * TILE..][..steps * TILE].as_ptr();
                for jt in (0..nc).step_by(NR) {
                    let bg = [group(packed_b, jt / TILE), group(packed_b, jt / TILE + 1)];
                    for it in (0..mc).step_by(MR) {
                        let ag = [group(packed_a, it / TILE), group(packed_a, it / TILE + 1)];
                        let (rows, cols) = (MR.min(mc - it), NR.min(nc - jt));
                        let at = (i0 + it) * rsc + j0 + jt;
                        if rows == MR && cols == NR {
                            let whole = &mut c[at..at + (MR - 1) * rsc + NR];
                            // SAFETY: the tiles are configured; each group
                            // pointer starts a slice of `steps` tiles of 16
                            // lines (the slicing above checks the bounds),
                            // `steps >= 1` as `kc >= 1`, and C's 32 rows of
                            // 32 lie in `whole`.
                            unsafe { block(steps, ag, bg, whole.as_mut_ptr(), 4 * rsc, add) };
                            continue;
                        }
                        // An edge block goes through `out`, whose rows and
                        // columns past C's are dropped.
                        // SAFETY: as above, with `out` for C.
                        unsafe { block(steps, ag, bg, out.0.as_mut_ptr(), 4 * NR, false) };
                        for r in 0..rows {
                            let from = &out.0[r * NR..r * NR + cols];
                            let to = &mut c[at + r * rsc..at + r * rsc + cols];
                            if add {
                                to.iter_mut().zip(from).for_each(|(t, f)| *t += f);
                            } else {
                                to.copy_from_slice(from);
                            }
                        }
                    }
                }
            }
        }
    }
}
