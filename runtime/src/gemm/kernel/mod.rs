//! Microkernels: each computes one `mr x nr` tile of C from packed panels.
//! One generic body per instruction set is instantiated behind a
//! `#[target_feature]` entry point; the best kernel the CPU supports is
//! chosen once and cached. `NETC_GEMM_KERNEL=generic|avx2|avx512` forces one,
//! so every path can be tested and benchmarked.

mod generic;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::params::{Blocking, Caches};
use std::sync::OnceLock;

/// Computes `acc = Σ_p a[p·mr + i] · b[p·nr + j]` for one tile and writes it
/// to `c` (row stride `rsc`, unit column stride): `c = acc`, or `c += acc`
/// when `accumulate`.
///
/// # Safety
/// `a` must be readable for `kc·mr` floats, `b` for `kc·nr` floats, and `c`
/// writable for `mr` rows of `nr` contiguous floats, `rsc` apart. The CPU
/// must support the kernel's instruction set.
pub type MicroKernel =
    unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, rsc: usize, accumulate: bool);

/// The largest `mr · nr` of any kernel, for stack tiles.
pub const MAX_TILE: usize = 12 * 32;

/// A microkernel and the blocking derived for it.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub run: MicroKernel,
    pub blocking: Blocking,
    /// The time of one multiply-add relative to the family's fastest
    /// kernel, in percent, as measured in full GEMMs: the chooser weighs
    /// padding against it.
    pub cost_percent: usize,
    supported: fn() -> bool,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub fn is_supported(&self) -> bool {
        (self.supported)()
    }
}

fn always() -> bool {
    true
}

fn all() -> &'static [Kernel] {
    static KERNELS: OnceLock<Vec<Kernel>> = OnceLock::new();
    KERNELS.get_or_init(|| {
        let caches = Caches::detect();
        let make = |name, mr, nr, run, supported| Kernel {
            name,
            mr,
            nr,
            run,
            blocking: Blocking::from_env(mr, nr)
                .unwrap_or_else(|| Blocking::derive(caches, mr, nr)),
            cost_percent: 100,
            supported,
        };
        #[allow(unused_mut)]
        let mut kernels =
            vec![make("generic", generic::MR, generic::NR, generic::kernel as MicroKernel, always)];
        #[cfg(target_arch = "x86_64")]
        {
            kernels.push(make(
                "avx2",
                x86::AVX2_MR,
                x86::AVX2_NR,
                x86::avx2_kernel as MicroKernel,
                x86::has_avx2,
            ));
            kernels.push(make(
                "avx512",
                x86::AVX512_MR,
                x86::AVX512_NR,
                x86::avx512_kernel as MicroKernel,
                x86::has_avx512,
            ));
            // 12x32 loads 14 values for every 24 FMAs where 8x48 loads 11,
            // so it runs slower on shapes both tile exactly.
            kernels.push(Kernel {
                cost_percent: 106,
                ..make(
                    "avx512_12x32",
                    12,
                    32,
                    x86::avx512_12x32_kernel as MicroKernel,
                    x86::has_avx512,
                )
            });
            // 8x32 loads 10 values for 16 FMAs, slower than 8x48 alone, but
            // it tiles exactly the sides of 16, 32 and 64 that small model
            // GEMMs have, which 8x48 pads by up to half.
            kernels.push(Kernel {
                cost_percent: 105,
                ..make(
                    "avx512_8x32",
                    8,
                    32,
                    x86::avx512_8x32_kernel as MicroKernel,
                    x86::has_avx512,
                )
            });
        }
        kernels
    })
}

/// Every kernel compiled into this build, supported by this CPU or not.
pub fn compiled() -> &'static [Kernel] {
    all()
}

/// The kernel named `name`, if compiled in.
pub fn by_name(name: &str) -> Option<&'static Kernel> {
    all().iter().find(|k| k.name == name)
}

/// The kernels used by default: `NETC_GEMM_KERNEL` if set and supported,
/// else every kernel of the widest instruction set the CPU supports (their
/// names share a prefix). Chosen once.
pub fn selected_family() -> &'static [&'static Kernel] {
    static SELECTED: OnceLock<Vec<&'static Kernel>> = OnceLock::new();
    SELECTED.get_or_init(|| {
        if let Ok(forced) = std::env::var("NETC_GEMM_KERNEL") {
            match by_name(&forced) {
                Some(k) if k.is_supported() => return vec![k],
                Some(_) => eprintln!(
                    "netc: NETC_GEMM_KERNEL={forced} is not supported by this CPU; ignored"
                ),
                None => eprintln!("netc: NETC_GEMM_KERNEL={forced} is not a kernel; ignored"),
            }
        }
        let best = all()
            .iter()
            .filter(|k| k.is_supported())
            .map(|k| isa(k.name))
            .next_back()
            .unwrap_or("generic");
        all().iter().filter(|k| k.is_supported() && isa(k.name) == best).collect()
    })
}

/// `avx512_12x32` belongs to the `avx512` family.
fn isa(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

/// The default kernel for the widest instruction set.
pub fn selected() -> &'static Kernel {
    selected_family()[0]
}

/// The kernel of the default family, and the orientation (`C` or `Cᵀ`), that
/// waste the least time on padding for an `m x n` C. Model-shaped GEMMs often
/// have 16 or 64 rows or columns, which one tile shape covers exactly and
/// another does not, or a narrow side (10 classes) that fits a tile's short
/// side far better than its long one.
pub fn choose(m: usize, n: usize) -> (&'static Kernel, bool) {
    choose_by(m, n, padded)
}

/// The kernel of the default family, and the orientation, that make
/// `cost(kernel, rows, cols)` least. Transposing costs strided stores of C,
/// so it must save at least a quarter of the work.
pub fn choose_by(
    m: usize,
    n: usize,
    cost: impl Fn(&Kernel, usize, usize) -> usize,
) -> (&'static Kernel, bool) {
    let best = |m: usize, n: usize| {
        let family = selected_family().iter().copied();
        family.map(|k| (k, cost(k, m, n))).min_by_key(|&(_, c)| c).unwrap_or_else(|| {
            let k = selected();
            (k, cost(k, m, n))
        })
    };
    let ((straight, cost), (flipped, flipped_cost)) = (best(m, n), best(n, m));
    if 4 * flipped_cost < 3 * cost {
        (flipped, true)
    } else {
        (straight, false)
    }
}

/// The kernel of the default family that wastes the least time on padding
/// for an `m x n` C, in that orientation.
pub fn choose_straight(m: usize, n: usize) -> &'static Kernel {
    selected_family().iter().copied().min_by_key(|k| padded(k, m, n)).unwrap_or_else(selected)
}

/// The cost per k of an `m x n` C padded to whole tiles of `k`: its
/// multiply-adds, weighed by the kernel's speed.
fn padded(k: &Kernel, m: usize, n: usize) -> usize {
    m.div_ceil(k.mr) * k.mr * n.div_ceil(k.nr) * k.nr * k.cost_percent
}
