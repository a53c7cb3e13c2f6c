//! The depthwise convolution: one input channel per group (`groups == c`,
//! the 3x3 and 5x5 layers of MobileNet and EfficientNet), with `o / c`
//! output channels per input channel. Through im2col each group would be a
//! GEMM with one row of weights per output channel, all copies and no
//! reuse; here each plane is convolved directly, vectorised along its rows.
//!
//! Every pass reads a plane laid out in a scratch buffer ([`Layout`]) in
//! which each tap of the window reads whole vectors of consecutive floats:
//! - The forward pass and the weight gradient lay the input out padded,
//!   its columns split into `sw` phases, column `C` of the padded plane
//!   going to phase `C mod sw` at `C / sw`: at any stride, tap `(i, j)` of
//!   consecutive outputs of a row reads consecutive floats of one phase.
//! - Backward-data is the forward pass at stride 1 of `dy` spread out by
//!   the strides (zeros between its values) and padded by the window,
//!   through the window turned round, summed over the channel's `o / c`
//!   output planes; the ReLU mask applies as each plane is stored.
//!
//! Tiles of rows × one vector of columns sit in registers; the bias and the
//! activation are applied as the forward pass stores them. The weight
//! gradient keeps one vector of partial sums per tap and adds their lanes
//! at the end of each plane. Each pass is one generic body compiled for
//! AVX-512, AVX2 with FMA and the portable baseline, chosen at run time.

use super::tuning::{DEPTHWISE_BACKWARD_DATA_MAX_MULTIPLIER, DEPTHWISE_MAX_MULTIPLIER};
use super::{with_columns, Conv2d, ConvAlgo, ConvAlgorithm, Pass, Scratch};
use crate::act::{activate, per_activation};
use crate::error::ConvError;
use crate::gemm::{Activation, Par};
use crate::isa::Isa;
use rayon::prelude::*;

/// [`ConvAlgo::Depthwise`].
#[derive(Debug)]
pub(super) struct Depthwise;

/// Whether the depthwise kernels compute `s`: one input channel per group,
/// any window, stride, padding, dilation and channel multiplier.
pub(super) fn applies(s: &Conv2d) -> bool {
    s.groups == s.c
}

impl ConvAlgorithm for Depthwise {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Depthwise
    }

    fn name(&self) -> &'static str {
        "depthwise"
    }

    fn applies(&self, s: &Conv2d, _pass: Pass) -> bool {
        applies(s)
    }

    fn picks(&self, s: &Conv2d, pass: Pass) -> bool {
        let multiplier = s.o / s.c;
        // One channel in all is an ordinary conv, which the direct path
        // takes with its output channels blocked.
        applies(s)
            && s.c > 1
            && match pass {
                Pass::Forward | Pass::BackwardWeights => multiplier <= DEPTHWISE_MAX_MULTIPLIER,
                Pass::BackwardData => multiplier <= DEPTHWISE_BACKWARD_DATA_MAX_MULTIPLIER,
            }
    }

    fn scratch(&self, s: &Conv2d, pass: Pass) -> Scratch {
        let columns = match pass {
            Pass::Forward | Pass::BackwardWeights => {
                Layout::forward(s, lanes(path(Isa::best(), s.out_w()))).len()
            }
            Pass::BackwardData => Layout::backward_data(s, lanes(path(Isa::best(), s.w))).len(),
        };
        Scratch { columns, ..Scratch::default() }
    }

    fn forward(
        &self,
        s: &Conv2d,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        activation: Activation,
        y: &mut [f32],
        par: Par,
    ) {
        forward(s, Isa::best(), x, weight, bias, activation, y, par);
    }

    fn backward_data(
        &self,
        s: &Conv2d,
        dy: &[f32],
        weight: &[f32],
        relu_mask: Option<&[f32]>,
        dx: &mut [f32],
        par: Par,
    ) {
        backward_data(s, Isa::best(), dy, weight, relu_mask, dx, par);
    }

    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        weight_grad(s, Isa::best(), x, dy, dweight, par);
    }
}

/// The depthwise forward pass on the kernels of `isa` (the portable ones
/// if the CPU lacks it), exposed so that tests can run every instruction
/// set's path.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_depthwise(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_forward (depthwise)";
    s.check_forward(OP, x, weight, bias, y)?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Depthwise, s));
    }
    forward(s, isa, x, weight, bias, activation, y, par);
    Ok(())
}

/// The depthwise backward-data pass, `dx` (overwritten) from `dy`, on the
/// kernels of `isa`; exposed so that tests can run every instruction set's
/// path.
pub fn conv2d_backward_data_depthwise(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_data (depthwise)";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Depthwise, s));
    }
    backward_data(s, isa, dy, weight, None, dx, par);
    Ok(())
}

/// The depthwise weight gradient, `dweight = Σ_samples dy ⋆ x`
/// (overwritten), on the kernels of `isa`; exposed so that tests can run
/// every instruction set's path. The bias gradient is not computed here.
pub fn conv2d_backward_weights_depthwise(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_weights (depthwise)";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Depthwise, s));
    }
    weight_grad(s, isa, x, dy, dweight, par);
    Ok(())
}

/// Floats per vector on `isa`'s path.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 | Isa::Portable => 8,
    }
}

/// The path of `isa` (the portable one if the CPU lacks it) for planes
/// whose rows are `width` floats: rows no wider than an AVX2 vector take
/// AVX2, so that half of each 16-float vector is not padding.
fn path(isa: Isa, width: usize) -> Isa {
    match isa.if_supported() {
        Isa::Avx512 if width <= 8 => Isa::Avx2,
        isa => isa,
    }
}

/// Output rows that one tile keeps in registers.
const TILE_ROWS: usize = 4;

/// Where the values of a source plane go in scratch, and how a pass reads
/// them: source `(a, b)` goes to row `a·row_spread + row_shift` and column
/// `b·col_spread + col_shift` of a zero plane of `rows × cols`, whose
/// column `C` is stored in phase `C mod phases`, at `C / phases` of a row
/// of `phase_w` floats. Either `col_spread` or `phases` is 1.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Source planes side by side (backward-data's `o / c`).
    planes: usize,
    rows: usize,
    cols: usize,
    phases: usize,
    phase_w: usize,
    row_spread: usize,
    row_shift: isize,
    col_spread: usize,
    col_shift: isize,
    /// Floats between the first reads of consecutive output rows.
    row_step: usize,
    out_h: usize,
    out_w: usize,
    /// The window, its dilation, and whether taps read it turned round.
    kh: usize,
    kw: usize,
    dh: usize,
    dw: usize,
    flipped: bool,
    /// The first [`NEAR_TAPS`] taps' offsets ([`Self::tap`]), worked out
    /// once: every plane of a call reads through them.
    near: [usize; NEAR_TAPS],
}

/// Taps whose offsets a [`Layout`] keeps: a 5x5 window's.
const NEAR_TAPS: usize = 25;

impl Layout {
    /// The forward pass's and the weight gradient's: the input padded, in
    /// `sw` phases.
    fn forward(s: &Conv2d, lanes: usize) -> Layout {
        let (rows, cols) = (s.h + 2 * s.ph, s.w + 2 * s.pw);
        let reach = (s.kw - 1) * s.dw / s.sw;
        let phase_w = cols.div_ceil(s.sw).max(s.out_w().next_multiple_of(lanes) + reach);
        Layout {
            planes: 1,
            rows,
            cols,
            phases: s.sw,
            phase_w,
            row_spread: 1,
            row_shift: s.ph as isize,
            col_spread: 1,
            col_shift: s.pw as isize,
            row_step: s.sh * phase_w,
            out_h: s.out_h(),
            out_w: s.out_w(),
            kh: s.kh,
            kw: s.kw,
            dh: s.dh,
            dw: s.dw,
            flipped: false,
            near: [0; NEAR_TAPS],
        }
        .with_near_taps()
    }

    /// Backward-data's: each of `dy`'s planes spread out by the strides and
    /// padded so that every input position sees a whole window.
    fn backward_data(s: &Conv2d, lanes: usize) -> Layout {
        let (reach_h, reach_w) = ((s.kh - 1) * s.dh, (s.kw - 1) * s.dw);
        let phase_w = s.w.next_multiple_of(lanes) + reach_w;
        Layout {
            planes: s.o / s.c,
            rows: s.h + reach_h,
            cols: phase_w,
            phases: 1,
            phase_w,
            row_spread: s.sh,
            row_shift: reach_h as isize - s.ph as isize,
            col_spread: s.sw,
            col_shift: reach_w as isize - s.pw as isize,
            row_step: phase_w,
            out_h: s.h,
            out_w: s.w,
            kh: s.kh,
            kw: s.kw,
            dh: s.dh,
            dw: s.dw,
            flipped: true,
            near: [0; NEAR_TAPS],
        }
        .with_near_taps()
    }

    fn with_near_taps(mut self) -> Layout {
        for t in 0..self.taps().min(NEAR_TAPS) {
            self.near[t] = self.far_tap(t);
        }
        self
    }

    fn plane_len(&self) -> usize {
        self.phases * self.rows * self.phase_w
    }

    /// Floats of scratch, every source plane.
    fn len(&self) -> usize {
        self.planes * self.plane_len()
    }

    /// Where row `r`, column `col` of the (padded) plane is stored.
    fn at(&self, r: usize, col: usize) -> usize {
        ((col % self.phases) * self.rows + r) * self.phase_w + col / self.phases
    }

    /// Taps in the order of the weights (`planes × kh × kw`): where each
    /// reads, relative to its output's first read.
    fn tap(&self, t: usize) -> usize {
        match self.near.get(t) {
            Some(&offset) => offset,
            None => self.far_tap(t),
        }
    }

    /// [`Self::tap`] worked out.
    fn far_tap(&self, t: usize) -> usize {
        let (p, i, j) = (t / (self.kh * self.kw), t / self.kw % self.kh, t % self.kw);
        let (i, j) = if self.flipped { (self.kh - 1 - i, self.kw - 1 - j) } else { (i, j) };
        p * self.plane_len() + self.at(i * self.dh, j * self.dw)
    }

    fn taps(&self) -> usize {
        self.planes * self.kh * self.kw
    }

    /// Writes the source planes `src` (`planes` of `h × w`) into their
    /// places in `dst`. Every call writes the same places, so the zeros
    /// around them, written once, stay.
    fn place(&self, src: &[f32], (h, w): (usize, usize), dst: &mut [f32]) {
        debug_assert!(self.col_spread == 1 || self.phases == 1);
        let plane_len = self.plane_len();
        for (src, dst) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(plane_len)) {
            for (a, src) in src.chunks_exact(w).enumerate() {
                let r = (a * self.row_spread) as isize + self.row_shift;
                if r < 0 || r >= self.rows as isize {
                    continue;
                }
                self.place_row(src, r as usize, dst);
            }
        }
    }

    /// One source row into row `r`: phase by phase when the columns are
    /// split, spread out by `col_spread` when not.
    fn place_row(&self, src: &[f32], r: usize, dst: &mut [f32]) {
        let (spread, shift) = (self.col_spread as isize, self.col_shift);
        // The source columns whose place is inside the plane.
        let first = if shift < 0 { (-shift + spread - 1) / spread } else { 0 };
        let end = ((self.cols as isize - shift + spread - 1) / spread).clamp(0, src.len() as isize);
        if first >= end {
            return;
        }
        let (first, end) = (first as usize, end as usize);
        if self.phases == 1 {
            let start = r * self.phase_w;
            let row = &mut dst[start..start + self.phase_w];
            let col0 = (first as isize * spread + shift) as usize;
            if self.col_spread == 1 {
                // The forward pass at stride 1: a plain copy, which the
                // strided loop below does not become.
                row[col0..col0 + end - first].copy_from_slice(&src[first..end]);
                return;
            }
            for (k, &v) in src[first..end].iter().enumerate() {
                row[col0 + k * self.col_spread] = v;
            }
            return;
        }
        if self.phases == 2 {
            return self.place_row_in_two(&src[first..end], r, first as isize + shift, dst);
        }
        for q in 0..self.phases {
            // The first source column in phase q.
            let b0 = (q as isize - shift).rem_euclid(self.phases as isize) as usize;
            let b0 = b0 + (first.saturating_sub(b0)).div_ceil(self.phases) * self.phases;
            if b0 >= end {
                continue;
            }
            let start = self.at(r, (b0 as isize + shift) as usize);
            gather(&src[b0..end], self.phases, &mut dst[start..]);
        }
    }

    /// [`Self::place_row`] at stride 2: `src` from plane column `col`,
    /// split between the two phases in one pass over its pairs (a pass a
    /// phase read every value twice).
    fn place_row_in_two(&self, mut src: &[f32], r: usize, col: isize, dst: &mut [f32]) {
        let mut col = col as usize;
        let (even, odd) = dst.split_at_mut((self.rows + r) * self.phase_w);
        let even = &mut even[r * self.phase_w..];
        if col % 2 == 1 {
            if let Some((&v, rest)) = src.split_first() {
                odd[col / 2] = v;
                src = rest;
                col += 1;
            }
        }
        let (pairs, last) = src.as_chunks::<2>();
        let half = col / 2;
        let destinations = even[half..].iter_mut().zip(&mut odd[half..]);
        for (pair, (e, o)) in pairs.iter().zip(destinations) {
            *e = pair[0];
            *o = pair[1];
        }
        if let [v] = last {
            even[half + pairs.len()] = *v;
        }
    }
}

/// `dst[k] = src[k·step]` for every `k·step` in `src`: the columns of one
/// phase. Stride 2 reads pairs, a form the compiler vectorises.
fn gather(src: &[f32], step: usize, dst: &mut [f32]) {
    if step == 2 {
        let pairs = src.chunks_exact(2);
        let last = pairs.remainder().first();
        let mut dst = dst.iter_mut();
        // Pairs first: `zip` takes from its first side before it finds
        // the second exhausted.
        for (pair, d) in pairs.zip(dst.by_ref()) {
            *d = pair[0];
        }
        if let (Some(d), Some(&v)) = (dst.next(), last) {
            *d = v;
        }
        return;
    }
    for (d, &v) in dst.iter_mut().zip(src.iter().step_by(step)) {
        *d = v;
    }
}

/// `a·b + c`, fused where the path has FMA.
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Planes per parallel task: a few tasks per thread, so that uneven ones
/// even out, each zeroing its scratch once.
fn planes_per_task(planes: usize, par: Par) -> usize {
    let threads = par.threads();
    if threads <= 1 {
        planes.max(1)
    } else {
        planes.div_ceil(4 * threads).max(1)
    }
}

/// Runs `task` on matching chunks of `out` and `src` of `per_task` planes
/// (`out_len` and `src_len` floats each), with the index of their first
/// plane, in parallel when `par` allows.
fn plane_tasks(
    (out, out_len): (&mut [f32], usize),
    (src, src_len): (&[f32], usize),
    per_task: usize,
    par: Par,
    task: impl Fn(usize, &mut [f32], &[f32]) + Sync,
) {
    if par.threads() > 1 {
        let chunks = out.par_chunks_mut(per_task * out_len).zip(src.par_chunks(per_task * src_len));
        chunks.enumerate().for_each(|(t, (out, src))| task(t * per_task, out, src));
    } else {
        task(0, out, src);
    }
}

/// `y = act(conv(x, weight) + bias)`, on checked arguments.
#[allow(clippy::too_many_arguments)]
fn forward(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let isa = path(isa, s.out_w());
    let layout = Layout::forward(s, lanes(isa));
    let (multiplier, taps) = (s.o / s.c, s.kh * s.kw);
    let (in_plane, out_plane) = (s.h * s.w, s.out_h() * s.out_w());
    let per_task = planes_per_task(s.n * s.c, par);
    plane_tasks((y, multiplier * out_plane), (x, in_plane), per_task, par, |first, y, x| {
        with_columns(layout.len(), |scratch| {
            scratch.fill(0.0);
            let planes = y.chunks_exact_mut(multiplier * out_plane).zip(x.chunks_exact(in_plane));
            for (k, (y, x)) in planes.enumerate() {
                layout.place(x, (s.h, s.w), scratch);
                let c = (first + k) % s.c;
                for (m, y) in y.chunks_exact_mut(out_plane).enumerate() {
                    let o = c * multiplier + m;
                    let w = &weight[o * taps..][..taps];
                    let b = bias.map_or(0.0, |b| b[o]);
                    convolve(&layout, isa, scratch, w, b, activation, y);
                }
            }
        })
    });
}

/// `dx = conv_transpose(dy, weight)`, zeroed where `relu_mask` is `≤ 0`,
/// on checked arguments.
fn backward_data(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) {
    let isa = path(isa, s.w);
    let layout = Layout::backward_data(s, lanes(isa));
    let taps = layout.taps();
    let (in_plane, out_plane) = (s.h * s.w, s.out_h() * s.out_w());
    let per_task = planes_per_task(s.n * s.c, par);
    let source = (dy, layout.planes * out_plane);
    plane_tasks((dx, in_plane), source, per_task, par, |first, dx, dy| {
        with_columns(layout.len(), |scratch| {
            scratch.fill(0.0);
            let planes =
                dx.chunks_exact_mut(in_plane).zip(dy.chunks_exact(layout.planes * out_plane));
            for (k, (dx, dy)) in planes.enumerate() {
                layout.place(dy, (s.out_h(), s.out_w()), scratch);
                let plane = first + k;
                let w = &weight[plane % s.c * taps..][..taps];
                convolve(&layout, isa, scratch, w, 0.0, Activation::Identity, dx);
                if let Some(mask) = relu_mask {
                    let mask = &mask[plane * in_plane..][..in_plane];
                    for (d, &m) in dx.iter_mut().zip(mask) {
                        if m <= 0.0 {
                            *d = 0.0;
                        }
                    }
                }
            }
        })
    });
}

/// One output plane `y = act(Σ_taps w · scratch + bias)` on `isa`'s path.
fn convolve(
    layout: &Layout,
    isa: Isa,
    scratch: &[f32],
    w: &[f32],
    bias: f32,
    activation: Activation,
    y: &mut [f32],
) {
    assert!(scratch.len() >= layout.len() && w.len() == layout.taps());
    assert_eq!(y.len(), layout.out_h * layout.out_w, "output plane");
    per_activation!(activation, activate, |f| {
        #[cfg(target_arch = "x86_64")]
        match isa {
            // SAFETY: the callers pass an `isa` from `path`, one the CPU
            // has; the lengths are asserted above.
            Isa::Avx512 => return unsafe { convolve_avx512(layout, scratch, w, bias, f, y) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { convolve_avx2(layout, scratch, w, bias, f, y) },
            Isa::Portable => {}
        }
        convolve_generic::<8, false>(layout, scratch, w, bias, f, y)
    })
}

/// [`convolve_generic`] in 16-float vectors of AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn convolve_avx512(
    layout: &Layout,
    scratch: &[f32],
    w: &[f32],
    bias: f32,
    f: impl Fn(f32) -> f32,
    y: &mut [f32],
) {
    convolve_generic::<16, true>(layout, scratch, w, bias, f, y);
}

/// [`convolve_generic`] in 8-float vectors of AVX2 with FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_avx2(
    layout: &Layout,
    scratch: &[f32],
    w: &[f32],
    bias: f32,
    f: impl Fn(f32) -> f32,
    y: &mut [f32],
) {
    convolve_generic::<8, true>(layout, scratch, w, bias, f, y);
}

/// The 3x3 and 5x5 windows with their taps in arrays, which the tile
/// loops unroll; any other through the general taps.
#[inline(always)]
fn convolve_generic<const V: usize, const FMA: bool>(
    layout: &Layout,
    scratch: &[f32],
    w: &[f32],
    bias: f32,
    f: impl Fn(f32) -> f32,
    y: &mut [f32],
) {
    match layout.taps() {
        9 => {
            let taps: [usize; 9] = std::array::from_fn(|t| layout.tap(t));
            let w: &[f32; 9] = w.try_into().expect("9 weights");
            rows::<V, FMA>(layout, scratch, taps.iter().copied().zip(w.iter().copied()), bias, f, y)
        }
        25 => {
            let taps: [usize; 25] = std::array::from_fn(|t| layout.tap(t));
            let w: &[f32; 25] = w.try_into().expect("25 weights");
            rows::<V, FMA>(layout, scratch, taps.iter().copied().zip(w.iter().copied()), bias, f, y)
        }
        taps => {
            let taps = (0..taps).map(|t| layout.tap(t)).zip(w.iter().copied());
            rows::<V, FMA>(layout, scratch, taps, bias, f, y)
        }
    }
}

/// Every output row, [`TILE_ROWS`] at a time and then one by one, each a
/// vector of columns at a time; the last vector of a row is computed whole
/// and stored in part.
#[inline(always)]
fn rows<const V: usize, const FMA: bool>(
    layout: &Layout,
    scratch: &[f32],
    taps: impl Iterator<Item = (usize, f32)> + Clone,
    bias: f32,
    f: impl Fn(f32) -> f32,
    y: &mut [f32],
) {
    let (out_h, out_w) = (layout.out_h, layout.out_w);
    let mut oy = 0;
    while oy + TILE_ROWS <= out_h {
        for ox in (0..out_w).step_by(V) {
            let acc = tile::<TILE_ROWS, V, FMA>(layout, scratch, taps.clone(), bias, (oy, ox));
            store(&acc, &f, y, out_w, (oy, ox));
        }
        oy += TILE_ROWS;
    }
    for oy in oy..out_h {
        for ox in (0..out_w).step_by(V) {
            let acc = tile::<1, V, FMA>(layout, scratch, taps.clone(), bias, (oy, ox));
            store(&acc, &f, y, out_w, (oy, ox));
        }
    }
}

/// Rows `oy..oy + R` at columns `ox..ox + V`: per tap, one vector load of
/// each row's inputs and one broadcast weight.
#[inline(always)]
fn tile<const R: usize, const V: usize, const FMA: bool>(
    layout: &Layout,
    scratch: &[f32],
    taps: impl Iterator<Item = (usize, f32)>,
    bias: f32,
    (oy, ox): (usize, usize),
) -> [[f32; V]; R] {
    let mut acc = [[bias; V]; R];
    for (offset, w) in taps {
        for (r, acc) in acc.iter_mut().enumerate() {
            let x: &[f32; V] = scratch[(oy + r) * layout.row_step + ox + offset..][..V]
                .try_into()
                .expect("a vector");
            for (a, &x) in acc.iter_mut().zip(x) {
                *a = mul_add::<FMA>(x, w, *a);
            }
        }
    }
    acc
}

/// `acc`'s rows into `y` through the activation, as much of each vector as
/// the row holds.
#[inline(always)]
fn store<const R: usize, const V: usize>(
    acc: &[[f32; V]; R],
    f: &impl Fn(f32) -> f32,
    y: &mut [f32],
    out_w: usize,
    (oy, ox): (usize, usize),
) {
    let n = V.min(out_w - ox);
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut y[(oy + r) * out_w + ox..][..n];
        for (y, &a) in row.iter_mut().zip(acc) {
            *y = f(a);
        }
    }
}

/// `dweight = Σ_samples dy ⋆ x`, overwritten, on checked arguments: the
/// channels shared out between the threads, each summing over the batch.
fn weight_grad(s: &Conv2d, isa: Isa, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
    let isa = path(isa, s.out_w());
    let layout = Layout::forward(s, lanes(isa));
    let (multiplier, taps) = (s.o / s.c, s.kh * s.kw);
    let (in_plane, out_plane) = (s.h * s.w, s.out_h() * s.out_w());
    let per_channel = multiplier * taps;
    let per_task = planes_per_task(s.c, par);
    let task = |first: usize, dweight: &mut [f32]| {
        dweight.fill(0.0);
        with_columns(layout.len(), |scratch| {
            scratch.fill(0.0);
            for (k, dweight) in dweight.chunks_exact_mut(per_channel).enumerate() {
                let c = first + k;
                for n in 0..s.n {
                    let x = &x[(n * s.c + c) * in_plane..][..in_plane];
                    layout.place(x, (s.h, s.w), scratch);
                    let dy =
                        &dy[(n * s.c + c) * multiplier * out_plane..][..multiplier * out_plane];
                    let planes = dy.chunks_exact(out_plane).zip(dweight.chunks_exact_mut(taps));
                    for (dy, dweight) in planes {
                        correlate(&layout, isa, scratch, dy, dweight);
                    }
                }
            }
        })
    };
    if par.threads() > 1 {
        let chunks = dweight.par_chunks_mut(per_task * per_channel).enumerate();
        chunks.for_each(|(t, dweight)| task(t * per_task, dweight));
    } else {
        task(0, dweight);
    }
}

/// One plane's `dweight[t] += Σ_positions dy · scratch[tap t]` on `isa`'s
/// path.
fn correlate(layout: &Layout, isa: Isa, scratch: &[f32], dy: &[f32], dweight: &mut [f32]) {
    assert!(scratch.len() >= layout.len() && dweight.len() == layout.taps());
    assert_eq!(dy.len(), layout.out_h * layout.out_w, "output gradient plane");
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the callers pass an `isa` from `path`, one the CPU has;
        // the lengths are asserted above.
        Isa::Avx512 => return unsafe { correlate_avx512(layout, scratch, dy, dweight) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { correlate_avx2(layout, scratch, dy, dweight) },
        Isa::Portable => {}
    }
    correlate_generic::<8, false>(layout, scratch, dy, dweight);
}

/// [`correlate_generic`] in 16-float vectors of AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn correlate_avx512(layout: &Layout, scratch: &[f32], dy: &[f32], dweight: &mut [f32]) {
    correlate_generic::<16, true>(layout, scratch, dy, dweight);
}

/// [`correlate_generic`] in 8-float vectors of AVX2 with FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_avx2(layout: &Layout, scratch: &[f32], dy: &[f32], dweight: &mut [f32]) {
    correlate_generic::<8, true>(layout, scratch, dy, dweight);
}

/// The sums of a 3x3 window in registers at once, of a 5x5 window too on
/// AVX-512 (32 registers) and a row of it at a time on the others; any
/// other window four taps at a time.
#[inline(always)]
fn correlate_generic<const V: usize, const FMA: bool>(
    layout: &Layout,
    scratch: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
) {
    fn taps<const T: usize>(layout: &Layout, first: usize) -> [usize; T] {
        std::array::from_fn(|t| layout.tap(first + t))
    }
    if let Ok(dweight) = <&mut [f32; 9]>::try_from(&mut *dweight) {
        return sums::<V, FMA, 9>(layout, scratch, &taps(layout, 0), dy, dweight);
    }
    if V == 16 {
        if let Ok(dweight) = <&mut [f32; 25]>::try_from(&mut *dweight) {
            return sums::<V, FMA, 25>(layout, scratch, &taps(layout, 0), dy, dweight);
        }
    }
    if dweight.len() == 25 {
        for (i, dweight) in dweight.chunks_exact_mut(5).enumerate() {
            let dweight = dweight.try_into().expect("a row of 5");
            sums::<V, FMA, 5>(layout, scratch, &taps(layout, 5 * i), dy, dweight);
        }
        return;
    }
    let first = dweight.len() / 4 * 4;
    let mut quads = dweight.chunks_exact_mut(4);
    for (q, dweight) in quads.by_ref().enumerate() {
        let dweight = dweight.try_into().expect("four taps");
        sums::<V, FMA, 4>(layout, scratch, &taps(layout, 4 * q), dy, dweight);
    }
    for (t, dweight) in quads.into_remainder().iter_mut().enumerate() {
        let dweight = std::slice::from_mut(dweight).try_into().expect("one tap");
        sums::<V, FMA, 1>(layout, scratch, &taps(layout, first + t), dy, dweight);
    }
}

/// `dweight[t] += Σ_positions dy · scratch[taps[t]]`, a vector of columns
/// at a time, the last one padded with zeros.
#[inline(always)]
fn sums<const V: usize, const FMA: bool, const T: usize>(
    layout: &Layout,
    scratch: &[f32],
    taps: &[usize; T],
    dy: &[f32],
    dweight: &mut [f32; T],
) {
    let out_w = layout.out_w;
    let mut acc = [[0.0f32; V]; T];
    for (oy, dy) in dy.chunks_exact(out_w).enumerate() {
        for ox in (0..out_w).step_by(V) {
            let g: [f32; V] = match dy.get(ox..ox + V) {
                Some(g) => g.try_into().expect("a vector"),
                None => std::array::from_fn(|l| dy.get(ox + l).copied().unwrap_or(0.0)),
            };
            let base = oy * layout.row_step + ox;
            for (acc, &offset) in acc.iter_mut().zip(taps) {
                let x: &[f32; V] = scratch[base + offset..][..V].try_into().expect("a vector");
                for ((a, &x), &g) in acc.iter_mut().zip(x).zip(&g) {
                    *a = mul_add::<FMA>(x, g, *a);
                }
            }
        }
    }
    for (d, acc) in dweight.iter_mut().zip(&acc) {
        *d += acc.iter().sum::<f32>();
    }
}
