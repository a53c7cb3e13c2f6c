//! Single-precision GEMM, `C = act(alpha·op(A)·op(B) + beta·C + bias)`, in the
//! BLIS structure: five loops around a register-blocked microkernel, with A
//! and B packed into contiguous micro-panels. Transposes are strides: a
//! matrix is any `data[i·rs + j·cs]`.
//!
//! Threads split C into a grid of blocks, one per thread of the rayon pool,
//! each computed by the five loops with its own packing buffers: one
//! fork-join per call. A caller that is already parallel on the same pool
//! causes no oversubscription: the GEMM's tasks join that pool's queues
//! instead of starting threads.

pub mod bf16;
mod epilogue;
pub mod kernel;
mod pack;
// The modules below hold no `unsafe`, though the rest of `gemm` does.
#[deny(unsafe_code)]
mod packed;
#[deny(unsafe_code)]
pub mod params;
pub mod peak;

/// The gated activations, one variant of [`Activation`].
pub use crate::act::Gated;
pub use epilogue::{Activation, Bias, Epilogue, SgdUpdate};
pub use kernel::Kernel;
pub(crate) use pack::interleave;
pub use packed::PackedA;

use kernel::MAX_TILE;
use packed::{PackA, PackedRows};
use rayon::prelude::*;
use std::cell::RefCell;
use std::fmt;

/// A read-only strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` view of `data`.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, rs: cols, cs: 1 }
    }

    /// A column-major view with `rows` rows.
    pub fn col_major(data: &'a [f32], rows: usize) -> Self {
        MatRef { data, rs: 1, cs: rows }
    }

    /// The transpose, by swapping strides.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rs: self.cs, cs: self.rs }
    }

    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// A mutable strided matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], cols: usize) -> Self {
        MatMut { data, rs: cols, cs: 1 }
    }

    pub fn col_major(data: &'a mut [f32], rows: usize) -> Self {
        MatMut { data, rs: 1, cs: rows }
    }
}

/// Where the GEMM's B panels come from: a strided matrix ([`MatRef`]), or a
/// producer that writes them straight from its own layout, such as the
/// convolution's im2col, which then never materialises B.
pub trait PackB: Sync {
    /// Writes rows `p0..p0 + kc` and columns `j0..j0 + nc` of B into `dst`
    /// as `nc.div_ceil(nr)` panels of `kc·nr` values: for each row, `nr`
    /// consecutive columns, the columns past `j0 + nc` zero.
    fn pack_b(&self, dst: &mut [f32], p0: usize, kc: usize, j0: usize, nc: usize, nr: usize);
}

impl PackB for MatRef<'_> {
    fn pack_b(&self, dst: &mut [f32], p0: usize, kc: usize, j0: usize, nc: usize, nr: usize) {
        pack::pack_b(dst, self, p0, kc, j0, nc, nr);
    }
}

/// A [`PackB`] whose columns start `j0` columns into another's: one
/// thread's share of B.
struct ColumnsFrom<'b, B: PackB> {
    b: &'b B,
    j0: usize,
}

impl<B: PackB> PackB for ColumnsFrom<'_, B> {
    fn pack_b(&self, dst: &mut [f32], p0: usize, kc: usize, j0: usize, nc: usize, nr: usize) {
        self.b.pack_b(dst, p0, kc, self.j0 + j0, nc, nr);
    }
}

/// Whether to use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// The calling thread only.
    Seq,
    /// The current rayon pool (`ThreadPool::install` picks one), unless the
    /// problem is too small to be worth sharing.
    Rayon,
}

impl Par {
    /// How many threads a call made with this setting may use: the current
    /// pool's for `Rayon`, else one.
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::Rayon => crate::par::threads(),
        }
    }
}

/// An argument that does not describe a valid GEMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemmError {
    /// `A`, `B`, `C`, `bias`, `relu_mask`, `sgd weights` or `kernel`.
    pub operand: &'static str,
    pub reason: String,
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gemm operand `{}`: {}", self.operand, self.reason)
    }
}

impl std::error::Error for GemmError {}

fn check_view(
    operand: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<(), GemmError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .ok_or_else(|| GemmError { operand, reason: "strides overflow".into() })?;
    if last >= len {
        return Err(GemmError {
            operand,
            reason: format!(
                "a {rows}x{cols} view with strides ({rs}, {cs}) needs {} elements, found {len}",
                last + 1
            ),
        });
    }
    Ok(())
}

/// A written operand must not map two elements to one address: threads
/// write disjoint columns, and that is only disjoint memory for a
/// non-overlapping layout.
fn check_disjoint(
    operand: &'static str,
    m: usize,
    n: usize,
    rs: usize,
    cs: usize,
) -> Result<(), GemmError> {
    let row_major_like = cs >= 1 && rs > (n - 1) * cs;
    let col_major_like = rs >= 1 && cs > (m - 1) * rs;
    if m == 1 && cs >= 1 || n == 1 && rs >= 1 || row_major_like || col_major_like {
        Ok(())
    } else {
        Err(GemmError { operand, reason: format!("strides ({rs}, {cs}) make elements overlap") })
    }
}

/// `C = act(alpha·A·B + beta·C + bias)` masked, with A `m x k`, B `k x n` and
/// C `m x n`, using the kernel chosen for this CPU and shape. With `beta == 0`, C is
/// never read, so it may hold NaN or garbage.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
    par: Par,
) -> Result<(), GemmError> {
    let threads = if worth_sharing(m, n, k, alpha) { par.threads() } else { 1 };
    let (kernel, transpose) = choose(m, n, k, threads);
    if transpose {
        // Cᵀ = Bᵀ·Aᵀ: the same product with rows and columns swapped, which
        // pads far less when n is much narrower than a tile (n = 10 classes).
        let c = MatMut { data: c.data, rs: c.cs, cs: c.rs };
        return sgemm_with(kernel, n, m, k, alpha, b.t(), a.t(), beta, c, &epilogue.t(), par);
    }
    sgemm_with(kernel, m, n, k, alpha, a, b, beta, c, epilogue, par)
}

/// [`sgemm`] with an explicit microkernel, for tests and benchmarks.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    kernel: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
    par: Par,
) -> Result<(), GemmError> {
    check_view("A", a.data.len(), m, k, a.rs, a.cs)?;
    check_view("B", b.data.len(), k, n, b.rs, b.cs)?;
    sgemm_from(kernel, m, n, k, alpha, a, &b, beta, c, epilogue, par)
}

/// [`sgemm`] with B's panels from `b` (see [`PackB`]), which must describe a
/// `k x n` matrix. Not transposed: the kernel is the one that pads `m x n`
/// least in this orientation.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed_b(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_>,
    b: &impl PackB,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
    par: Par,
) -> Result<(), GemmError> {
    check_view("A", a.data.len(), m, k, a.rs, a.cs)?;
    sgemm_from(kernel::choose_straight(m, n), m, n, k, alpha, a, b, beta, c, epilogue, par)
}

/// [`sgemm_packed_b`] with A packed beforehand ([`PackedA`]) and alpha 1,
/// on the kernel it was packed for: for a matrix many products share, such
/// as a conv's weights across inference calls.
pub fn sgemm_prepacked(
    a: &PackedA,
    n: usize,
    b: &impl PackB,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
    par: Par,
) -> Result<(), GemmError> {
    let Some((m, k, kernel)) = a.packed_as() else {
        return Err(GemmError { operand: "A", reason: "not packed yet".into() });
    };
    let a = PackedRows { packed: a, first: 0 };
    sgemm_from(kernel, m, n, k, 1.0, a, b, beta, c, epilogue, par)
}

/// The shared body of [`sgemm_with`], [`sgemm_packed_b`] and
/// [`sgemm_prepacked`], A and B checked.
#[allow(clippy::too_many_arguments)]
fn sgemm_from<A: PackA, B: PackB>(
    kernel: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: A,
    b: &B,
    beta: f32,
    c: MatMut<'_>,
    epilogue: &Epilogue<'_>,
    par: Par,
) -> Result<(), GemmError> {
    if !kernel.is_supported() {
        return Err(GemmError {
            operand: "kernel",
            reason: format!("`{}` is not supported by this CPU", kernel.name),
        });
    }
    check_view("C", c.data.len(), m, n, c.rs, c.cs)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    check_disjoint("C", m, n, c.rs, c.cs)?;
    match epilogue.bias {
        Bias::PerRow(bias) if bias.len() < m => {
            return Err(GemmError {
                operand: "bias",
                reason: format!("needs {m} per-row values, found {}", bias.len()),
            })
        }
        Bias::PerCol(bias) if bias.len() < n => {
            return Err(GemmError {
                operand: "bias",
                reason: format!("needs {n} per-column values, found {}", bias.len()),
            })
        }
        _ => {}
    }
    if let Some(mask) = &epilogue.relu_mask {
        check_view("relu_mask", mask.data.len(), m, n, mask.rs, mask.cs)?;
    }
    if let Some(sgd) = &epilogue.sgd {
        // The weights are written: their elements must be distinct too.
        let (len, rs, cs) = sgd.view();
        check_view("sgd weights", len, m, n, rs, cs)?;
        check_disjoint("sgd weights", m, n, rs, cs)?;
    }
    let c = CView { ptr: c.data.as_mut_ptr(), rs: c.rs, cs: c.cs };
    let threads = if worth_sharing(m, n, k, alpha) { par.threads() } else { 1 };
    if threads <= 1 {
        // SAFETY: the views were checked against their slices above, C's
        // layout is non-overlapping, and `c` borrows its slice mutably for
        // this call.
        unsafe { drive(kernel, m, n, k, alpha, &a, b, beta, c, epilogue) };
        return Ok(());
    }
    // One fork-join per call: each thread computes its own block of C with
    // its own packing buffers, so no barrier or wake-up sits inside the loops.
    // Rayon never runs more threads than its pool has: a call made from
    // inside a parallel loop only adds tasks to the same pool.
    let grid = Grid::new(m, n, k, kernel.mr, kernel.nr, threads);
    (0..threads).into_par_iter().for_each(|t| {
        let (rows, cols) = grid.part(t);
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        // Sub-views start at the block's first row or column; the checks
        // above bound every index they can reach (k ≥ 1, m, n ≥ 1).
        let a = a.rows_from(rows.start);
        let b = ColumnsFrom { b, j0: cols.start };
        let epi = epilogue.offset(rows.start, cols.start);
        // SAFETY: (rows.start, cols.start) lies inside C.
        let c = unsafe { CView { ptr: c.at(rows.start, cols.start), ..c } };
        // SAFETY: the grid's blocks are disjoint, so each thread writes its
        // own elements of C, which lie inside the checked view.
        unsafe { drive(kernel, rows.len(), cols.len(), k, alpha, &a, &b, beta, c, &epi) };
    });
    Ok(())
}

/// Whether an `m x n x k` product is worth splitting between threads.
fn worth_sharing(m: usize, n: usize, k: usize, alpha: f32) -> bool {
    k > 0 && alpha != 0.0 && (m as f64) * (n as f64) * (k as f64) >= PARALLEL_MIN_MACS
}

/// The kernel and orientation for an `m x n x k` product on `threads`
/// threads: [`kernel::choose`]'s rule, weighed on the busiest thread's
/// block of C rather than on the whole. A kernel whose panels split
/// unevenly leaves the other thread waiting: the MLP's fc2 backward-data,
/// 128 x 512, falls into 11 panels of 48 columns, 6 of them on one thread,
/// where 32-column panels split 8 and 8.
fn choose(m: usize, n: usize, k: usize, threads: usize) -> (&'static Kernel, bool) {
    if threads <= 1 {
        return kernel::choose(m, n);
    }
    kernel::choose_by(m, n, |kernel, m, n| {
        let grid = Grid::new(m, n, k, kernel.mr, kernel.nr, threads);
        grid.busiest_tiles() * kernel.cost_percent
    })
}

/// How `threads` threads split C: a `tm x tn` grid of blocks, cut on panel
/// boundaries, shaped so the busiest thread has the fewest microtiles.
#[derive(Clone, Copy, Debug)]
struct Grid {
    m: usize,
    n: usize,
    mr: usize,
    nr: usize,
    tm: usize,
    tn: usize,
}

impl Grid {
    fn new(m: usize, n: usize, k: usize, mr: usize, nr: usize, threads: usize) -> Grid {
        let (mp, np) = (m.div_ceil(mr), n.div_ceil(nr));
        // The busiest thread's work: its tiles' multiply-adds, plus packing
        // its rows of A and its columns of B. B is packed once per mc rows
        // of A; with mc 1024 that is once for nearly every model shape,
        // which the model assumes. A packed element (above all a
        // transposing pack) costs dozens of multiply-adds at kernel speed;
        // weighed so, a dense layer's forward splits its outputs rather than
        // its samples, and in training each thread packs only the weights
        // its own core's SGD step just wrote.
        const PACK_COST: usize = 32;
        let cost = |tm: usize, tn: usize| {
            let (rows, cols) = (mp.div_ceil(tm) * mr, np.div_ceil(tn) * nr);
            rows * cols * k + PACK_COST * (rows + cols) * k
        };
        let (tm, tn) = (1..=threads)
            .filter(|tn| threads.is_multiple_of(*tn))
            .map(|tn| (threads / tn, tn))
            .min_by_key(|&(tm, tn)| cost(tm, tn))
            .unwrap_or((1, threads));
        Grid { m, n, mr, nr, tm, tn }
    }

    /// The elements of the largest block, padded to whole tiles.
    fn busiest_tiles(&self) -> usize {
        let tiles = |len: usize, step: usize| len.div_ceil(step) * step;
        (0..self.tm * self.tn)
            .map(|t| self.part(t))
            .map(|(rows, cols)| tiles(rows.len(), self.mr) * tiles(cols.len(), self.nr))
            .max()
            .unwrap_or(0)
    }

    /// The rows and columns of C that thread `t` computes.
    fn part(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let split = |len: usize, step: usize, parts: usize, i: usize| {
            let panels = len.div_ceil(step);
            let start = (i * panels / parts * step).min(len);
            let end = ((i + 1) * panels / parts * step).min(len);
            start..end
        };
        (split(self.m, self.mr, self.tm, t / self.tn), split(self.n, self.nr, self.tn, t % self.tn))
    }
}

/// For callers that checked every length themselves (the conv and dense
/// layers): a GEMM error is then a bug in the caller, not bad input.
pub(crate) fn expect_valid(r: Result<(), GemmError>) {
    if let Err(e) = r {
        unreachable!("a layer built an invalid GEMM: {e}");
    }
}

/// Below this many multiply-accumulates, threads cost more than they save.
/// Generated models keep the pool's other thread polling through a pass
/// (`nn::awake`), so a fork-join is cheap enough for ResNet-20's batch-1
/// forward to gain from sharing its 64-channel and stride-2 convs
/// (1.2-2.4M).
const PARALLEL_MIN_MACS: f64 = 1.0e6;

/// C as a raw pointer, so that threads can write disjoint tiles of it.
#[derive(Clone, Copy)]
struct CView {
    ptr: *mut f32,
    rs: usize,
    cs: usize,
}

// SAFETY: a CView is only shared between threads that write disjoint
// blocks of C (the parts of a `Grid`), for the duration of one call.
unsafe impl Send for CView {}
// SAFETY: as above.
unsafe impl Sync for CView {}

impl CView {
    /// # Safety
    /// `(i, j)` must be inside the checked `m x n` view.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *mut f32 {
        // SAFETY: forwarded from the caller.
        unsafe { self.ptr.add(i * self.rs + j * self.cs) }
    }
}

thread_local! {
    /// Packing buffers, reused across calls so a steady state allocates nothing.
    static PACK_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Grows every thread's packing buffers (on the current rayon pool and the
/// calling thread) to full blocks of the default kernels, so that later
/// GEMMs allocate nothing, whichever thread runs them.
pub fn reserve_scratch() {
    let reserve = || {
        for k in kernel::selected_family() {
            let params::Blocking { mc, kc, nc } = k.blocking;
            crate::scratch::with(&PACK_A, kc * mc, |_| ());
            crate::scratch::with(&PACK_B, kc * nc, |_| ());
        }
    };
    reserve();
    rayon::broadcast(|_| reserve());
}

/// The five loops.
///
/// # Safety
/// `c` must be valid for writes at every `(i, j)` with `i < m`, `j < n`,
/// with distinct elements at distinct addresses, and not otherwise accessed
/// during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn drive<A: PackA, B: PackB>(
    kernel: &Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &A,
    b: &B,
    beta: f32,
    c: CView,
    epi: &Epilogue<'_>,
) {
    if k == 0 || alpha == 0.0 {
        // Nothing to multiply: C = beta·C, then the epilogue.
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside the view.
                let p = unsafe { c.at(i, j) };
                // SAFETY: as above; beta == 0 never reads C.
                let v = if beta == 0.0 { 0.0 } else { beta * unsafe { *p } };
                // SAFETY: as above; (i, j) is this call's alone, and its
                // epilogue runs once.
                unsafe { *p = epi.apply(v, i, j) };
            }
        }
        return;
    }
    let (mr, nr) = (kernel.mr, kernel.nr);
    let params::Blocking { mc, kc, nc } = kernel.blocking;
    // The loops nest as BLIS's, with the roles of A and B exchanged. Our
    // kernels broadcast A and load whole vectors of B, and broadcasts are
    // many small loads that must hit L1, while vector loads stream well from
    // L2. So the A micro-panel is the one kept in L1 (reused across a sweep
    // of B micro-panels) and the packed B block is the one kept in L2.
    // The stack tile of the tiles that do not store straight into C, zeroed
    // once per call rather than per tile.
    let mut buf = [0.0f32; MAX_TILE];
    crate::scratch::with(&PACK_A, kc * mc.min(m.div_ceil(mr) * mr), |abuf| {
        crate::scratch::with(&PACK_B, kc * nc.min(n.div_ceil(nr) * nr), |bbuf| {
            // LOOP 5 (IC): split m into mc.
            for ic in (0..m).step_by(mc) {
                let mcb = mc.min(m - ic);
                let apanels = mcb.div_ceil(mr);
                // LOOP 4 (PC): split k into kc; pack an mc x kc block of A (L3).
                for pc in (0..k).step_by(kc) {
                    let kcb = kc.min(k - pc);
                    let (first, last) = (pc == 0, pc + kcb == k);
                    let ablock = a.block(abuf, ic, mcb, pc, kcb, mr, alpha);
                    let tile = Tile { kernel, kc: kcb, first, last, beta, epi, c };
                    // LOOP 3 (JC): split n into nc; pack a kc x nc block of B (L2).
                    for jc in (0..n).step_by(nc) {
                        let ncb = nc.min(n - jc);
                        let bpanels = ncb.div_ceil(nr);
                        let bblock = &mut bbuf[..bpanels * kcb * nr];
                        b.pack_b(bblock, pc, kcb, jc, ncb, nr);
                        let bblock = &*bblock;
                        // LOOP 2 (IR): mr-high panels of the A block (L1).
                        for ip in 0..apanels {
                            let ap = &ablock[ip * kcb * mr..(ip + 1) * kcb * mr];
                            let i0 = ic + ip * mr;
                            // LOOP 1 (JR): nr-wide panels of the B block.
                            for jp in 0..bpanels {
                                let bp = &bblock[jp * kcb * nr..(jp + 1) * kcb * nr];
                                let j0 = jc + jp * nr;
                                let size = (mr.min(m - i0), nr.min(n - j0));
                                // SAFETY: the tile lies inside C, which this
                                // call writes alone.
                                unsafe { tile.run(ap, bp, (i0, j0), size, &mut buf) };
                            }
                        }
                    }
                }
            }
        })
    })
}

/// What every microtile of one (IC, PC) block shares.
#[derive(Clone, Copy)]
struct Tile<'k, 'e> {
    kernel: &'k Kernel,
    kc: usize,
    /// The first kc block: C is scaled by beta (or overwritten when 0).
    first: bool,
    /// The last kc block: the epilogue is applied.
    last: bool,
    beta: f32,
    epi: &'e Epilogue<'e>,
    c: CView,
}

// SAFETY: a Tile only carries shared references and the CView, whose sharing
// is justified above.
unsafe impl Sync for Tile<'_, '_> {}

impl Tile<'_, '_> {
    /// Computes the `rows x cols` tile of C at `(i0, j0)` (rows ≤ mr, cols ≤ nr),
    /// through `buf` where it does not store straight into C.
    ///
    /// # Safety
    /// The tile must lie inside C, and no other thread may touch it.
    unsafe fn run(
        &self,
        ap: &[f32],
        bp: &[f32],
        (i0, j0): (usize, usize),
        (rows, cols): (usize, usize),
        buf: &mut [f32; MAX_TILE],
    ) {
        let Tile { kernel, kc, first, last, beta, epi, c } = *self;
        let (mr, nr) = (kernel.mr, kernel.nr);
        // One k block, and the epilogue is SGD with momentum (C): the tile
        // goes through the stack, and C is scaled by beta, the tile added
        // and the weights stepped in one pass.
        let fused_sgd = epi.sgd_alone().filter(|_| first && last && beta != 0.0 && c.cs == 1);
        if fused_sgd.is_none() && rows == mr && cols == nr && c.cs == 1 {
            // Full tile, unit column stride: the kernel stores straight into C.
            if first && beta != 0.0 && beta != 1.0 {
                for i in 0..rows {
                    for j in 0..cols {
                        // SAFETY: inside the tile.
                        unsafe { *c.at(i0 + i, j0 + j) *= beta };
                    }
                }
            }
            let accumulate = !(first && beta == 0.0);
            // SAFETY: the panels hold kc·mr and kc·nr floats; C has mr rows
            // of nr contiguous floats at (i0, j0), rs apart; the kernel was
            // checked to be supported.
            unsafe { (kernel.run)(kc, ap.as_ptr(), bp.as_ptr(), c.at(i0, j0), c.rs, accumulate) };
        } else {
            // Edge tile, strided C or the fused SGD step: compute into the
            // stack tile, then merge.
            // SAFETY: the panels are full (zero padded); `buf` holds mr rows of nr.
            unsafe { (kernel.run)(kc, ap.as_ptr(), bp.as_ptr(), buf.as_mut_ptr(), nr, false) };
            if let Some(sgd) = fused_sgd {
                for (i, g) in buf.chunks_exact(nr).take(rows).enumerate() {
                    // SAFETY: row i0 + i of the tile, cols contiguous floats
                    // inside C, written by this thread alone.
                    let b = unsafe { std::slice::from_raw_parts_mut(c.at(i0 + i, j0), cols) };
                    // SAFETY: as above, and this is the row's only epilogue;
                    // the kernel ran, so its family is supported.
                    unsafe { sgd.momentum_row_for(kernel, &g[..cols], b, beta, i0 + i, j0) };
                }
                return;
            }
            for (i, tile_row) in buf.chunks_exact(nr).take(rows).enumerate() {
                let tile_row = &tile_row[..cols];
                if c.cs == 1 {
                    // SAFETY: row i0 + i of the tile, cols contiguous floats
                    // inside C, written by this thread alone.
                    let out = unsafe { std::slice::from_raw_parts_mut(c.at(i0 + i, j0), cols) };
                    let pairs = out.iter_mut().zip(tile_row);
                    if !first {
                        pairs.for_each(|(o, &v)| *o += v);
                    } else if beta == 0.0 {
                        pairs.for_each(|(o, &v)| *o = v);
                    } else {
                        pairs.for_each(|(o, &v)| *o = beta * *o + v);
                    }
                } else {
                    for (j, &v) in tile_row.iter().enumerate() {
                        // SAFETY: inside the tile.
                        let p = unsafe { c.at(i0 + i, j0 + j) };
                        // beta == 0 on the first block never reads C.
                        let old = match (first, beta == 0.0) {
                            // SAFETY: as above.
                            (false, _) => unsafe { *p },
                            (true, true) => 0.0,
                            // SAFETY: as above.
                            (true, false) => beta * unsafe { *p },
                        };
                        // SAFETY: as above.
                        unsafe { *p = old + v };
                    }
                }
            }
        }
        if last && !epi.is_identity() {
            for i in 0..rows {
                if c.cs == 1 {
                    // SAFETY: as above, row i0 + i of the tile.
                    let out = unsafe { std::slice::from_raw_parts_mut(c.at(i0 + i, j0), cols) };
                    // SAFETY: the row is this thread's alone, and this is
                    // its last block, so its epilogue runs once.
                    unsafe { epi.apply_row(out, i0 + i, j0) };
                } else {
                    for j in 0..cols {
                        // SAFETY: inside the tile.
                        let p = unsafe { c.at(i0 + i, j0 + j) };
                        // SAFETY: as above, and the epilogue runs once.
                        unsafe { *p = epi.apply(*p, i0 + i, j0 + j) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{kernel, sgemm_with, Epilogue, Grid, MatMut, MatRef, Par, SgdUpdate};

    /// The SGD step with momentum fused into the weight gradient's tiles
    /// (one k block) is, bit for bit, the GEMM `C = beta·C + A·B` followed
    /// by the step: on every kernel this CPU runs (each family's compiled
    /// pass), on whole tiles and edge ones, with a momentum that goes
    /// subnormal and is flushed.
    #[test]
    fn momentum_step_fused_into_tiles_is_the_step_after_the_gemm() {
        let (m, n, k) = (17, 100, 20);
        let (beta, lr, wd) = (0.9f32, 0.1f32, 0.05f32);
        let value = |i: usize| ((i * 7919) % 201) as f32 / 100.0 - 1.0;
        let mut a: Vec<f32> = (0..m * k).map(value).collect();
        a[..k].fill(0.0); // row 0's gradient is zero ...
        let b: Vec<f32> = (0..k * n).map(|i| value(i + 5)).collect();
        let mut momentum: Vec<f32> = (0..m * n).map(|i| value(i + 9)).collect();
        let mut weights: Vec<f32> = (0..m * n).map(|i| value(i + 13)).collect();
        momentum[..n].fill(f32::MIN_POSITIVE); // ... and its momentum decays
        weights[..n].fill(0.0); // past the normal range: flushed.
        for kern in kernel::compiled().iter().filter(|k| k.is_supported()) {
            let (mut want_b, mut want_w) = (momentum.clone(), weights.clone());
            let (a_ref, b_ref) = (MatRef::row_major(&a, k), MatRef::row_major(&b, n));
            let c = MatMut::row_major(&mut want_b, n);
            sgemm_with(kern, m, n, k, 1.0, a_ref, b_ref, beta, c, &Epilogue::NONE, Par::Seq)
                .unwrap();
            for (b, w) in want_b.iter_mut().zip(want_w.iter_mut()) {
                super::epilogue::sgd_step_for_tests(b, w, lr, wd);
            }
            let (mut got_b, mut got_w) = (momentum.clone(), weights.clone());
            let step = SgdUpdate::new(&mut got_w, n, 1, lr, wd);
            let epi = Epilogue { sgd: Some(step), ..Epilogue::NONE };
            let c = MatMut::row_major(&mut got_b, n);
            sgemm_with(kern, m, n, k, 1.0, a_ref, b_ref, beta, c, &epi, Par::Seq).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got_b), bits(&want_b), "{}: momentum", kern.name);
            assert_eq!(bits(&got_w), bits(&want_w), "{}: weights", kern.name);
            assert!(got_b[..n].iter().all(|&b| b == 0.0), "{}: flushed", kern.name);
        }
    }

    /// The busiest block of a split, padded to whole tiles: 512 columns in
    /// 48-wide panels split 6 and 5 (the first block 288 wide), in 32-wide
    /// ones 8 and 8; rows in 12-high panels, 11 of them for 128 rows, split
    /// 6 and 5 (72 rows).
    #[test]
    fn busiest_block_counts_whole_tiles() {
        assert_eq!(Grid::new(128, 512, 256, 8, 48, 2).busiest_tiles(), 128 * 288);
        assert_eq!(Grid::new(128, 512, 256, 8, 32, 2).busiest_tiles(), 128 * 256);
        let rows = Grid { m: 128, n: 64, mr: 12, nr: 32, tm: 2, tn: 1 };
        assert_eq!(rows.busiest_tiles(), 72 * 64);
        assert_eq!(Grid::new(7, 5, 3, 8, 48, 1).busiest_tiles(), 8 * 48);
    }
}
