//! Blocking sizes (mc, kc, nc) derived from the cache sizes, after the
//! analytical model of Low et al., "Analytical Modeling Is Enough for
//! High-Performance BLIS" (TOMS 2016), with the roles of A and B exchanged
//! (see the loop nest in `gemm/mod.rs`): a kc x mr micro-panel of A lives in
//! L1 while micro-panels of B stream through it; a kc x nc block of B lives
//! in L2; an mc x kc block of A lives in L3.

use std::sync::OnceLock;

/// Data cache sizes in bytes, per core for L1 and L2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    pub l1: usize,
    pub l2: usize,
    pub l3: usize,
}

impl Caches {
    /// Sizes common to current x86 cores, used when the OS does not say.
    pub const FALLBACK: Caches = Caches { l1: 32 << 10, l2: 1 << 20, l3: 8 << 20 };

    /// Reads the caches of CPU 0 from Linux's sysfs, once.
    pub fn detect() -> Caches {
        static CACHES: OnceLock<Caches> = OnceLock::new();
        *CACHES.get_or_init(|| read_sysfs().unwrap_or(Caches::FALLBACK))
    }
}

fn read_sysfs() -> Option<Caches> {
    if cfg!(miri) {
        // Miri isolates the file system; the fallback sizes serve.
        return None;
    }
    let mut caches = Caches { l1: 0, l2: 0, l3: 0 };
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let Ok(kind) = std::fs::read_to_string(format!("{dir}/type")) else { break };
        if kind.trim() == "Instruction" {
            continue;
        }
        let level: usize =
            std::fs::read_to_string(format!("{dir}/level")).ok()?.trim().parse().ok()?;
        let size = parse_size(std::fs::read_to_string(format!("{dir}/size")).ok()?.trim())?;
        match level {
            1 => caches.l1 = size,
            2 => caches.l2 = size,
            3 => caches.l3 = size,
            _ => {}
        }
    }
    (caches.l1 > 0 && caches.l2 > 0).then(|| Caches { l3: caches.l3.max(caches.l2), ..caches })
}

/// Parses sysfs sizes such as `48K` or `2048K` or `1M`.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = digits.parse().ok()?;
    match unit {
        "" => Some(n),
        "K" => Some(n << 10),
        "M" => Some(n << 20),
        "G" => Some(n << 30),
        _ => None,
    }
}

/// The blocking of one microkernel on one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

impl Blocking {
    /// `NETC_GEMM_BLOCKING=mc,kc,nc` overrides the derived blocking, for
    /// tuning experiments; values are rounded to multiples of mr and nr.
    pub fn from_env(mr: usize, nr: usize) -> Option<Blocking> {
        let text = std::env::var("NETC_GEMM_BLOCKING").ok()?;
        let v: Vec<usize> = text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        match v[..] {
            [mc, kc, nc] if mc > 0 && kc > 0 && nc > 0 => {
                Some(Blocking { mc: mc.div_ceil(mr) * mr, kc, nc: nc.div_ceil(nr) * nr })
            }
            _ => None,
        }
    }

    /// Derives the blocking for an `mr x nr` microkernel from cache sizes.
    pub fn derive(caches: Caches, mr: usize, nr: usize) -> Blocking {
        const F32: usize = 4;
        // L1: the kc x mr micro-panel of A takes at most a third, leaving
        // the rest to the B micro-panels and C tiles passing through. kc is
        // capped at 384: a longer kc gains nothing, and a shorter one wastes
        // less on a k that is not a multiple of it.
        let kc = (caches.l1 / 3 / (mr * F32)).clamp(64, 384) / 8 * 8;
        // L2: the packed B block (kc x nc) takes about a third; a wider
        // block gains nothing.
        let nc = (caches.l2 / 3 / (kc * F32)).clamp(nr, 4096) / nr * nr;
        // L3 (shared by the cores): the packed A block (mc x kc) takes at
        // most a quarter, and at most 1024 rows. Every thread keeps a full
        // block reserved (`gemm::reserve_scratch`), so the cap bounds memory
        // at 1.5 MB a thread; more rows only help where B would otherwise
        // be packed twice.
        let mc = (caches.l3 / 4 / (kc * F32)).clamp(mr, 1024) / mr * mr;
        Blocking { mc, kc, nc }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn blocking_respects_multiples_and_caches() {
        let caches = Caches { l1: 48 << 10, l2: 2 << 20, l3: 32 << 20 };
        let b = Blocking::derive(caches, 8, 48);
        assert_eq!(b.mc % 8, 0);
        assert_eq!(b.nc % 48, 0);
        assert!(b.kc * 8 * 4 <= caches.l1 / 3);
        assert!(b.kc * b.nc * 4 <= caches.l2 / 3);
        assert!(b.mc * b.kc * 4 <= caches.l3 / 4);
        assert!(b.kc >= 64);
    }
}
