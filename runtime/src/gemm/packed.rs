//! A matrix packed once into the GEMM's A panels, for products that share
//! it: a conv's weights across inference calls, which otherwise repack
//! them (transposing) on every call.

use super::kernel::Kernel;
use super::{check_view, pack, GemmError, MatRef};

/// An `m x k` matrix in the A-panel layout of one kernel: for each kc block
/// of columns, every mr-row panel of it, `kc·mr` floats each (zero-padded
/// past row m). Any run of whole panels of one kc block is then the packed
/// A block the GEMM's loops want, whatever rows a thread takes.
#[derive(Clone, Debug, Default)]
pub struct PackedA {
    data: Vec<f32>,
    m: usize,
    k: usize,
    kernel: Option<&'static Kernel>,
}

impl PackedA {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs the `m x k` matrix `a` for `kernel`, reusing this one's memory.
    pub fn pack(
        &mut self,
        kernel: &'static Kernel,
        m: usize,
        k: usize,
        a: MatRef<'_>,
    ) -> Result<(), GemmError> {
        check_view("A", a.data.len(), m, k, a.rs, a.cs)?;
        let (mr, kc) = (kernel.mr, kernel.blocking.kc);
        let rows = m.div_ceil(mr) * mr;
        self.data.clear();
        self.data.resize(rows * k, 0.0);
        for pc in (0..k).step_by(kc) {
            let kcb = kc.min(k - pc);
            pack::pack_a(&mut self.data[pc * rows..][..rows * kcb], &a, 0, m, pc, kcb, mr, 1.0);
        }
        (self.m, self.k, self.kernel) = (m, k, Some(kernel));
        Ok(())
    }

    /// Bytes the packed panels take.
    pub fn bytes(&self) -> usize {
        4 * self.data.len()
    }

    /// Rows, columns and the kernel of the last [`Self::pack`], if any.
    pub fn packed_as(&self) -> Option<(usize, usize, &'static Kernel)> {
        self.kernel.map(|kernel| (self.m, self.k, kernel))
    }
}

/// Where the GEMM's packed A blocks come from: packed from a strided
/// matrix on each call, or already packed.
pub(super) trait PackA: Sync {
    /// Rows `i0..i0 + mc` (`i0` a multiple of `mr`) and columns
    /// `p0..p0 + kc` (`p0` a multiple of the kernel's kc), scaled by `alpha`,
    /// as `mc.div_ceil(mr)` panels of `kc·mr` floats: in `buf` (when this
    /// source must pack them there) or in the source itself.
    #[allow(clippy::too_many_arguments)]
    fn block<'s>(
        &'s self,
        buf: &'s mut [f32],
        i0: usize,
        mc: usize,
        p0: usize,
        kc: usize,
        mr: usize,
        alpha: f32,
    ) -> &'s [f32];

    /// The same source from row `i0` on (a multiple of `mr`): one thread's
    /// rows.
    fn rows_from(&self, i0: usize) -> Self
    where
        Self: Sized;
}

impl PackA for MatRef<'_> {
    fn block<'s>(
        &'s self,
        buf: &'s mut [f32],
        i0: usize,
        mc: usize,
        p0: usize,
        kc: usize,
        mr: usize,
        alpha: f32,
    ) -> &'s [f32] {
        let block = &mut buf[..mc.div_ceil(mr) * kc * mr];
        pack::pack_a(block, self, i0, mc, p0, kc, mr, alpha);
        block
    }

    fn rows_from(&self, i0: usize) -> Self {
        MatRef { data: &self.data[i0 * self.rs..], ..*self }
    }
}

/// A [`PackedA`] from row `first` on.
#[derive(Clone, Copy)]
pub(super) struct PackedRows<'a> {
    pub(super) packed: &'a PackedA,
    pub(super) first: usize,
}

impl PackA for PackedRows<'_> {
    fn block<'s>(
        &'s self,
        _buf: &'s mut [f32],
        i0: usize,
        mc: usize,
        p0: usize,
        kc: usize,
        mr: usize,
        alpha: f32,
    ) -> &'s [f32] {
        debug_assert!(alpha == 1.0 && (self.first + i0).is_multiple_of(mr));
        let rows = self.packed.m.div_ceil(mr) * mr;
        let panel = (self.first + i0) / mr;
        &self.packed.data[p0 * rows + panel * kc * mr..][..mc.div_ceil(mr) * kc * mr]
    }

    fn rows_from(&self, i0: usize) -> Self {
        PackedRows { first: self.first + i0, ..*self }
    }
}
