//! The direct convolution, for stride-1, undilated, ungrouped convs with
//! few channels (LeNet-5's two): forward, backward-data and the weight
//! gradient, with no im2col matrix. Through im2col such shapes spend more
//! time moving data than multiplying: packing the GEMM's panels forward,
//! col2im backward.
//!
//! Two layouts let 16 consecutive positions read 16 consecutive floats, one
//! vector load, for every tap, whatever the width of a row:
//! - The grid: with the input planes padded to `rows × grid` floats, output
//!   `(oy, ox)` sits at position `p = oy·grid + ox`, and tap `(i, j)` of its
//!   window reads input `p + i·grid + j`. The `grid - out_w` positions at
//!   the end of each grid row are computed and dropped: 40 of LeNet-5's
//!   conv2's 140, where 16-wide blocks along its 10-wide rows would drop 60
//!   of 160.
//! - Tap columns: the output's rows packed, `p = oy·out_w + ox`, and the
//!   input as `kw` copies, copy `j` shifted left by `j` columns and packed
//!   to `out_w`: tap `(i, j)` reads copy `j` at `p + i·out_w`. No position
//!   is dropped, at the price of the copies (or, scattering, of `kw` part
//!   planes to add up).
//!
//! - Forward, on the grid: a block of output channels × vectors of
//!   positions sits in registers; per tap, a load of each vector of the
//!   input and one broadcast weight per channel.
//! - Backward-data is the forward pass of `dy`, zero-padded by `k - 1 - pad`
//!   on each side, through the weights flipped with their channel axes
//!   swapped, which the kernel reads in place through signed strides. On
//!   AVX-512, where the window shrinks the plane by 2 or more on each side
//!   or `dy` has 16 channels or more, it scatters `dy` by tap columns
//!   instead: no multiply meets the padding ([`Scatter`]).
//! - Weight gradient, by tap columns: `dw[o][c][i][j] = Σ_p dy[o][p]·x_j[c][p
//!   + i·out_w]`, `dy` read in place. Blocks of output channels × taps of a
//!   kernel column sum over a few samples kept in L1, then across their
//!   lanes ([`WeightGrad`]).
//! - The forward and the weight gradient with 16 output channels in the
//!   lanes, on AVX-512, read the grid but compute only the kept positions.
//!
//! AVX-512 kernels, and AVX2 and portable builds of one generic body.

use super::im2col::copy_run;
use super::tuning::{
    DIRECT_BACKWARD_DATA_CHANNELS, DIRECT_BACKWARD_DATA_NARROW_TAPS,
    DIRECT_BACKWARD_DATA_WIDE_MAX_OUTPUTS, DIRECT_MAX_OUTPUTS, DIRECT_ONE_SAMPLE_MAX_CHANNELS,
    DIRECT_WEIGHT_GRAD_MAX_CHANNELS,
};
use super::{with_columns, Conv2d, ConvAlgo, ConvAlgorithm, Scratch};
use crate::act::{activate, per_activation};
use crate::error::ConvError;
use crate::gemm::{Activation, Par};
use crate::isa::Isa;

/// [`ConvAlgo::Direct`].
#[derive(Debug)]
pub(super) struct Direct;

/// Whether the direct kernels compute `s`: stride 1, no dilation, one
/// group.
pub(super) fn applies(s: &Conv2d) -> bool {
    s.groups == 1 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1
}

impl ConvAlgorithm for Direct {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Direct
    }

    fn name(&self) -> &'static str {
        "direct"
    }

    fn applies(&self, s: &Conv2d, _pass: super::Pass) -> bool {
        applies(s)
    }

    fn picks(&self, s: &Conv2d, pass: super::Pass) -> bool {
        // A single sample runs on one thread here.
        let threads_busy = s.n > 1 || s.c * s.o <= DIRECT_ONE_SAMPLE_MAX_CHANNELS;
        applies(s)
            && match pass {
                super::Pass::Forward => s.o <= DIRECT_MAX_OUTPUTS && threads_busy,
                super::Pass::BackwardData => {
                    DIRECT_BACKWARD_DATA_CHANNELS.contains(&s.c)
                        && s.o <= DIRECT_MAX_OUTPUTS
                        && (s.o <= DIRECT_BACKWARD_DATA_WIDE_MAX_OUTPUTS
                            || s.kh * s.kw <= DIRECT_BACKWARD_DATA_NARROW_TAPS)
                        && threads_busy
                }
                super::Pass::BackwardWeights => s.c * s.o <= DIRECT_WEIGHT_GRAD_MAX_CHANNELS,
            }
    }

    fn scratch(&self, s: &Conv2d, pass: super::Pass) -> Scratch {
        match pass {
            super::Pass::Forward => Scratch {
                columns: forward_scratch_len(s),
                lanes_weights: lanes_weights_len(s),
                ..Scratch::default()
            },
            super::Pass::BackwardData => {
                Scratch { columns: backward_data_scratch_len(s), ..Scratch::default() }
            }
            super::Pass::BackwardWeights => {
                Scratch { columns: weight_grad_scratch_len(s), ..Scratch::default() }
            }
        }
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
        let isa = Isa::best();
        with_channel_lanes_weights(s, isa, weight, |lanes_w| {
            super::forward_chunks(s, 1, x, y, par, |x, y, _| {
                forward_direct(s, isa, x, weight, lanes_w, bias, activation, y)
            })
        });
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
        let isa = Isa::best();
        super::backward_data_chunks(s, 1, dy, dx, relu_mask, par, |dy, dx, _| {
            backward_data_direct(s, isa, dy, weight, dx)
        });
    }

    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        let isa = Isa::best();
        super::weight_grad_tasks(s, dweight, par, |samples, dweight, _| {
            weight_grad_direct(s, isa, x, dy, samples, dweight)
        });
    }
}

/// Positions per vector.
const LANES: usize = 16;

/// Floats of samples that one round of the weight gradient keeps: their
/// inputs in the kernel's layout (and for the channels-in-lanes kernel
/// their `dy`). 64 KB, past L1, but each round ends in lane sums of its
/// accumulators, and fewer rounds paid more.
const WEIGHT_GRAD_CHUNK: usize = 16384;

/// One pass's geometry: `cin` input planes, zero-padded to `rows × grid`
/// floats, and `cout` output planes of `out_h × out_w`, through a
/// `kh × kw` window at stride 1.
#[derive(Clone, Copy, Debug)]
struct Grid {
    cin: usize,
    cout: usize,
    rows: usize,
    grid: usize,
    kh: usize,
    kw: usize,
    out_h: usize,
    out_w: usize,
}

impl Grid {
    /// The forward pass, and the weight gradient: the input padded by the
    /// conv's padding.
    fn forward(s: &Conv2d) -> Grid {
        Grid {
            cin: s.c,
            cout: s.o,
            rows: s.h + 2 * s.ph,
            grid: s.w + 2 * s.pw,
            kh: s.kh,
            kw: s.kw,
            out_h: s.out_h(),
            out_w: s.out_w(),
        }
    }

    /// The backward-data pass: `dy` padded so that every input position
    /// sees a whole window, `(h + kh - 1) × (w + kw - 1)`.
    fn backward_data(s: &Conv2d) -> Grid {
        Grid {
            cin: s.o,
            cout: s.c,
            rows: s.h + s.kh - 1,
            grid: s.w + s.kw - 1,
            kh: s.kh,
            kw: s.kw,
            out_h: s.h,
            out_w: s.w,
        }
    }

    fn plane(&self) -> usize {
        self.rows * self.grid
    }

    /// Vectors of positions of one output plane, rounded up to whole
    /// blocks of `block`.
    fn vectors(&self, block: usize) -> usize {
        (self.out_h * self.grid).div_ceil(LANES).div_ceil(block) * block
    }

    /// Floats of one sample's padded input when `vectors` vectors of
    /// positions are computed: its planes, and past the last one room for
    /// the last vectors' reads.
    fn input_len(&self, vectors: usize) -> usize {
        let reach = (self.kh - 1) * self.grid + self.kw - 1 + vectors * LANES;
        ((self.cin - 1) * self.plane() + reach).max(self.cin * self.plane())
    }

    /// Where `planes` planes of `h × w` go in this grid's input: at row
    /// `top`, column `left` (negative where the pass drops the first rows or
    /// columns), `stride` floats from plane to plane.
    fn input_layout(&self, (h, w): (usize, usize), (top, left): (isize, isize)) -> Placement {
        Placement { h, w, top, left, rows: self.rows, grid: self.grid, stride: self.plane() }
    }
}

/// How planes of `h × w` floats are copied into zero-filled planes of
/// `rows × grid` floats, `stride` apart: at row `top`, column `left`, and
/// cropped to them.
#[derive(Clone, Copy)]
struct Placement {
    h: usize,
    w: usize,
    top: isize,
    left: isize,
    rows: usize,
    grid: usize,
    stride: usize,
}

impl Placement {
    /// Zeroes `dst` and copies the planes of `src` into it.
    fn place(&self, src: &[f32], dst: &mut [f32]) {
        dst.fill(0.0);
        let first = (-self.left).max(0) as usize;
        let last = (self.grid as isize - self.left).clamp(0, self.w as isize) as usize;
        if first >= last {
            return;
        }
        let planes = src.chunks_exact(self.h * self.w).zip(dst.chunks_mut(self.stride));
        for (src, dst) in planes {
            for (y, row) in src.chunks_exact(self.w).enumerate() {
                let r = self.top + y as isize;
                if (0..self.rows as isize).contains(&r) {
                    let at = r as usize * self.grid + (self.left + first as isize) as usize;
                    copy_run(&mut dst[at..at + last - first], &row[first..last]);
                }
            }
        }
    }
}

/// Where weight (output channel, input channel, i, j) of a pass lies in the
/// conv's weights `[o][c][kh][kw]`:
/// `base + out·d_out + inp·d_in + i·d_row + j·d_col`. Both passes' maps are
/// one-to-one onto the whole tensor.
#[derive(Clone, Copy)]
struct Taps {
    base: isize,
    d_out: isize,
    d_in: isize,
    d_row: isize,
    d_col: isize,
}

impl Taps {
    fn forward(s: &Conv2d) -> Taps {
        let (kw, window) = (s.kw as isize, (s.kh * s.kw) as isize);
        Taps { base: 0, d_out: s.c as isize * window, d_in: window, d_row: kw, d_col: 1 }
    }

    /// Backward-data's weight `(c, o, i, j)` is the forward's
    /// `(o, c, kh - 1 - i, kw - 1 - j)`.
    fn backward_data(s: &Conv2d) -> Taps {
        let (kw, window) = (s.kw as isize, (s.kh * s.kw) as isize);
        Taps { base: window - 1, d_out: window, d_in: s.c as isize * window, d_row: -kw, d_col: -1 }
    }

    /// The index of the first weight of row `i` of input channel `inp` of
    /// output channel `out`.
    fn row(&self, out: usize, inp: usize, i: usize) -> isize {
        self.base + out as isize * self.d_out + inp as isize * self.d_in + i as isize * self.d_row
    }
}

/// The direct forward convolution on the kernels of `isa` (the portable
/// ones if the CPU lacks it), one sample after another: what
/// [`super::conv2d_forward`] runs for the shapes that pick it, exposed so
/// that tests can run every instruction set's path.
pub fn conv2d_forward_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_forward (direct)";
    s.check_forward(OP, x, weight, bias, y)?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Direct, s));
    }
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    if in_len == 0 || out_len == 0 {
        return Ok(());
    }
    with_channel_lanes_weights(s, isa, weight, |lanes_w| {
        for (y, x) in y.chunks_exact_mut(out_len).zip(x.chunks_exact(in_len)) {
            forward_direct(s, isa, x, weight, lanes_w, bias, activation, y);
        }
    });
    Ok(())
}

/// The direct backward-data pass, `dx` (overwritten) from `dy`, one
/// sample after another, on the kernels of `isa` (the portable ones if the
/// CPU lacks it); exposed so that tests can run every instruction set's
/// path.
pub fn conv2d_backward_data_direct(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    dx: &mut [f32],
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_data (direct)";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Direct, s));
    }
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    if in_len == 0 || out_len == 0 {
        return Ok(());
    }
    for (dx, dy) in dx.chunks_exact_mut(in_len).zip(dy.chunks_exact(out_len)) {
        backward_data_direct(s, isa, dy, weight, dx);
    }
    Ok(())
}

/// The weight gradient by the direct path, `dweight = Σ_samples dy ⋆ x`
/// (overwritten), on the kernels of `isa` (the portable ones if the CPU
/// lacks it); exposed so that tests can run every instruction set's path.
/// The bias gradient is not computed here.
pub fn conv2d_backward_weights_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_weights (direct)";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Direct, s));
    }
    weight_grad_direct(s, isa, x, dy, 0..s.n, dweight);
    Ok(())
}

/// One sample's forward pass; `lanes_w`, the weights laid out by
/// [`with_channel_lanes_weights`] where the shape takes that kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    lanes_w: Option<&[f32]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) {
    let g = Grid::forward(s);
    let placement = g.input_layout((s.h, s.w), (s.ph as isize, s.pw as isize));
    #[cfg(target_arch = "x86_64")]
    // Checked again per sample (a few comparisons): the kernel is unsafe
    // on a CPU without AVX-512, whatever the caller passed.
    if let Some(lanes_w) = lanes_w.filter(|_| forward_in_channel_lanes(s, isa)) {
        return forward_channel_lanes(&g, &placement, x, lanes_w, bias, activation, y);
    }
    let _ = lanes_w;
    let pass = Pass { g, isa, taps: Taps::forward(s), weight, bias, activation };
    pass.run(|padded| placement.place(x, padded), y);
}

/// Output rows × positions per row of a block of the forward kernel with
/// the output channels in the lanes, for rows `out_w` wide (4 to 12): the
/// whole row, and as many rows as keep at most 24 accumulators.
pub(super) fn lanes_block(out_w: usize) -> Option<(usize, usize)> {
    (4..=12).contains(&out_w).then(|| (24 / out_w, out_w))
}

/// Whether the forward puts 16 output channels in the lanes (AVX-512, whole
/// blocks of 16 channels, rows of 4 to 12 outputs) rather than 16
/// positions: on a narrow grid the positions dropped at the end of each
/// row are a large share of the other kernel's vectors (LeNet-5's conv2:
/// 44 of 144), and this one computes only the kept ones.
pub(super) fn forward_in_channel_lanes(s: &Conv2d, isa: Isa) -> bool {
    cfg!(target_arch = "x86_64")
        && isa.if_supported() == Isa::Avx512
        && s.o.is_multiple_of(LANES)
        && lanes_block(s.out_w()).is_some_and(|(rows, _)| rows <= s.out_h())
}

thread_local! {
    /// The weights of the forward with the output channels in the lanes,
    /// laid out by the thread that runs the call.
    static LANES_WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Floats of [`with_channel_lanes_weights`]'s scratch for a conv whose
/// forward pass is direct (0 if the shape does not take that kernel).
pub(super) fn lanes_weights_len(s: &Conv2d) -> usize {
    if forward_in_channel_lanes(s, Isa::best()) {
        s.o * s.c * s.kh * s.kw
    } else {
        0
    }
}

/// Grows this thread's [`with_channel_lanes_weights`] scratch to `len`.
pub(super) fn reserve_lanes_weights(len: usize) {
    crate::scratch::with(&LANES_WEIGHTS, len, |_| ());
}

/// Runs `f` on the weights laid out for [`forward_in_channel_lanes`], or
/// on `None` if the shape does not take it: for each block of 16 output
/// channels, `[c·kh·kw][16]`, the block's weights of one tap side by side.
/// Laid out once per call, not per sample, in this thread's scratch.
pub(super) fn with_channel_lanes_weights<R>(
    s: &Conv2d,
    isa: Isa,
    weight: &[f32],
    f: impl FnOnce(Option<&[f32]>) -> R,
) -> R {
    if !forward_in_channel_lanes(s, isa) {
        return f(None);
    }
    let taps = s.c * s.kh * s.kw;
    crate::scratch::with(&LANES_WEIGHTS, s.o * taps, |lanes_w| {
        let blocks = weight.chunks_exact(taps * LANES);
        for (block, rows) in lanes_w.chunks_exact_mut(taps * LANES).zip(blocks) {
            let mut channels: [&[f32]; LANES] = [&[]; LANES];
            for (c, row) in channels.iter_mut().zip(rows.chunks_exact(taps)) {
                *c = row;
            }
            crate::gemm::interleave(block, &channels, taps, LANES, 1.0);
        }
        f(Some(lanes_w))
    })
}

/// One sample's forward pass with the output channels in the lanes
/// ([`forward_in_channel_lanes`]).
#[cfg(target_arch = "x86_64")]
fn forward_channel_lanes(
    g: &Grid,
    placement: &Placement,
    x: &[f32],
    lanes_w: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) {
    with_columns(g.cin * g.plane(), |padded| {
        placement.place(x, padded);
        // SAFETY: the caller checked the CPU and the shape
        // (`forward_in_channel_lanes`); the kernel asserts the lengths.
        unsafe { x86::forward_lanes(g, padded, lanes_w, bias, activation, y) }
    })
}

/// One sample's backward-data pass, `dx` overwritten.
pub(super) fn backward_data_direct(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    dx: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if scatters(s, isa) {
        return backward_data_scatter(s, dy, weight, dx);
    }
    let g = Grid::backward_data(s);
    // dy row oy feeds input rows oy - ph .. oy - ph + kh - 1, so it goes
    // kh - 1 - ph rows down the padded plane (up, cropped, if ph ≥ kh).
    let at = ((s.kh - 1) as isize - s.ph as isize, (s.kw - 1) as isize - s.pw as isize);
    let placement = g.input_layout((s.out_h(), s.out_w()), at);
    let taps = Taps::backward_data(s);
    let pass = Pass { g, isa, taps, weight, bias: None, activation: Activation::Identity };
    pass.run(|padded| placement.place(dy, padded), dx);
}

/// Floats of per-thread scratch of one sample's forward pass.
pub(super) fn forward_scratch_len(s: &Conv2d) -> usize {
    Pass::scratch_len(&Grid::forward(s))
}

/// Floats of per-thread scratch of one sample's backward-data pass.
pub(super) fn backward_data_scratch_len(s: &Conv2d) -> usize {
    #[cfg(target_arch = "x86_64")]
    if scatters(s, Isa::best()) {
        return Scatter::new(s).parts_len();
    }
    Pass::scratch_len(&Grid::backward_data(s))
}

/// Whether backward-data scatters (AVX-512) rather than correlating the
/// padded `dy`: where the window shrinks the plane enough, or `dy` has
/// enough channels ([`super::tuning::SCATTER_MIN_SHRINK`],
/// [`super::tuning::SCATTER_MIN_OUTPUTS`]); with
/// few channels and padding the correlation wins.
#[cfg(target_arch = "x86_64")]
fn scatters(s: &Conv2d, isa: Isa) -> bool {
    use super::tuning::{SCATTER_MIN_OUTPUTS, SCATTER_MIN_SHRINK};
    let window = |k: usize, pad: usize| k > 2 * (pad + SCATTER_MIN_SHRINK);
    let shrinks = window(s.kh, s.ph) && window(s.kw, s.pw);
    isa.if_supported() == Isa::Avx512
        && (shrinks || s.o >= SCATTER_MIN_OUTPUTS)
        && s.kw <= MAX_SCATTER_KW
}

/// The widest window that backward-data scatters: the kernel gathers its
/// part planes with a table of one load per tap column, on the stack.
#[cfg(target_arch = "x86_64")]
const MAX_SCATTER_KW: usize = 32;

/// The geometry of backward-data by scattering. `dy`'s planes are read in
/// place, as rows of `out_w` packed one after the other, 16 positions to a
/// vector. Tap `(i, j)` sends `dy[y][x]` to padded-input position
/// `(y + i, x + j)`, and with the rows packed, `(y + i)·out_w + x` is one
/// shift, `i·out_w`, for every position, where `j` is not. So the kernel
/// sums each tap column `j` apart, into a part plane of
/// `(out_h + kh - 1) × out_w` per input channel, each of its rows the row
/// of the input gradient shifted left by `j`; then adds the `kw` parts of
/// each row, shifted back, into `dx`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
struct Scatter {
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    out_h: usize,
    out_w: usize,
}

#[cfg(target_arch = "x86_64")]
impl Scatter {
    fn new(s: &Conv2d) -> Scatter {
        let (h, w, ph, pw) = (s.h, s.w, s.ph, s.pw);
        let (cin, cout, kh, kw) = (s.c, s.o, s.kh, s.kw);
        Scatter { cin, cout, kh, kw, h, w, ph, pw, out_h: s.out_h(), out_w: s.out_w() }
    }

    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Vectors of one plane of `dy`, the last one partial unless the plane
    /// is a multiple of 16.
    fn vectors(&self) -> usize {
        self.out_plane().div_ceil(LANES)
    }

    /// Floats from one part plane to the next: its rows, and room for the
    /// last vector of `dy` at the last tap row, which runs up to 15 floats
    /// past them.
    fn part_stride(&self) -> usize {
        shifted_plane_stride(self.kh, self.out_h, self.out_w)
    }

    /// Floats of the part planes, `kw` sets of `cin`.
    fn parts_len(&self) -> usize {
        self.kw * self.cin * self.part_stride()
    }
}

/// Floats from one plane of `out_h + kh - 1` packed rows of `out_w` to the
/// next, where each vector of a packed `out_h × out_w` plane is read (or
/// written) at every row shift `i·out_w`, `i < kh`: the rows, and room for
/// the last vector, which runs up to 15 floats past the plane it starts in.
fn shifted_plane_stride(kh: usize, out_h: usize, out_w: usize) -> usize {
    let reach = (kh - 1) * out_w + (out_h * out_w).div_ceil(LANES) * LANES;
    reach.max((out_h + kh - 1) * out_w).next_multiple_of(LANES)
}

/// One sample's backward-data pass by scattering, on AVX-512: for each tap
/// `(i, j)` and input channel `c`, the vectors of
/// `Σ_o w[o][c][i][j]·dy[o]` added into part plane `(j, c)` at row `i`
/// ([`Scatter`]), then the parts gathered into `dx`. Unlike the
/// correlation of the padded `dy`, no multiply meets the padding, and
/// only the last vector of each plane of `dy` has idle lanes: LeNet-5's
/// conv2 does 16.8k vector multiply-adds a sample, where the correlation
/// does 38.4k and the scatter on the forward grid (which computed the
/// grid's dropped columns too) did 21.6k.
#[cfg(target_arch = "x86_64")]
fn backward_data_scatter(s: &Conv2d, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    let sc = Scatter::new(s);
    with_columns(sc.parts_len(), |parts| {
        parts.fill(0.0);
        // SAFETY: the caller checked the CPU (`scatters`); the lengths are
        // the conv's, checked by the entry point, and the parts' are built
        // here.
        unsafe {
            x86::scatter(&sc, weight, dy, parts);
            x86::gather_parts(&sc, parts, dx);
        }
    })
}

/// Floats of per-thread scratch of the weight gradient.
pub(super) fn weight_grad_scratch_len(s: &Conv2d) -> usize {
    let per_sample = WeightGrad::new(Grid::forward(s), Isa::best()).sample_len();
    (WEIGHT_GRAD_CHUNK / per_sample).clamp(1, s.n.max(1)) * per_sample
}

/// A forward-shaped pass over one sample: [`Grid`], weights read through
/// [`Taps`], each output channel's bias (none: zero) and activation.
struct Pass<'a> {
    g: Grid,
    isa: Isa,
    taps: Taps,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    activation: Activation,
}

/// Output channels × vectors of positions in one block of the forward
/// kernel: 24 accumulators (of 32 registers) whatever the channel count.
#[cfg(target_arch = "x86_64")]
fn avx512_block(cout: usize) -> (usize, usize) {
    match cout {
        8.. => (8, 3),
        6.. => (6, 4),
        4.. => (4, 6),
        2.. => (2, 8),
        _ => (1, 8),
    }
}

impl Pass<'_> {
    /// Vectors of positions the kernel of the best ISA computes per plane:
    /// whole blocks.
    fn vectors(g: &Grid, isa: Isa) -> usize {
        #[cfg(target_arch = "x86_64")]
        if isa.if_supported() == Isa::Avx512 {
            return g.vectors(avx512_block(g.cout).1);
        }
        let _ = isa;
        g.vectors(1)
    }

    fn scratch_len(g: &Grid) -> usize {
        let vectors = Pass::vectors(g, Isa::best());
        g.input_len(vectors) + g.cout * vectors * LANES
    }

    /// Runs the pass: `fill` writes the padded input planes into scratch,
    /// the kernel computes every output position of the grid, and the
    /// activation takes the kept ones into `out`.
    fn run(&self, fill: impl FnOnce(&mut [f32]), out: &mut [f32]) {
        let g = &self.g;
        let vectors = Pass::vectors(g, self.isa);
        let (in_len, z_len) = (g.input_len(vectors), g.cout * vectors * LANES);
        assert_eq!(self.weight.len(), g.cout * g.cin * g.kh * g.kw, "weights of the pass");
        assert_eq!(out.len(), g.cout * g.out_h * g.out_w, "outputs of the pass");
        with_columns(in_len + z_len, |scratch| {
            let (padded, z) = scratch.split_at_mut(in_len);
            fill(padded);
            self.kernel(padded, z, vectors);
            let planes =
                out.chunks_exact_mut(g.out_h * g.out_w).zip(z.chunks_exact(vectors * LANES));
            // One loop per activation: matched per element, the activation
            // took most of LeNet-5's conv1 forward.
            per_activation!(self.activation, activate, |f| {
                for (out, z) in planes {
                    for (out, z) in out.chunks_exact_mut(g.out_w).zip(z.chunks_exact(g.grid)) {
                        for (o, &v) in out.iter_mut().zip(z) {
                            *o = f(v);
                        }
                    }
                }
            });
        });
    }

    /// Every position vector of every output channel into `z` (`cout`
    /// planes of `vectors` vectors), bias added.
    fn kernel(&self, padded: &[f32], z: &mut [f32], vectors: usize) {
        assert!(
            padded.len() >= self.g.input_len(vectors) && z.len() == self.g.cout * vectors * LANES
        );
        #[cfg(target_arch = "x86_64")]
        match self.isa.if_supported() {
            // SAFETY: `if_supported` keeps only ISAs the CPU has; the
            // lengths are asserted above.
            Isa::Avx512 => return unsafe { x86::forward(self, padded, z, vectors) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { self.kernel_avx2(padded, z, vectors) },
            Isa::Portable => {}
        }
        self.kernel_generic::<false>(padded, z, vectors);
    }

    /// [`Self::kernel_generic`] compiled for AVX2 with FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2(&self, padded: &[f32], z: &mut [f32], vectors: usize) {
        self.kernel_generic::<true>(padded, z, vectors);
    }

    /// The kernel in plain loops, 4 output channels (or 1) × one vector of
    /// positions at a time. `FMA` selects `mul_add`, one instruction where
    /// FMA is enabled and a slow library call where it is not.
    #[inline(always)]
    fn kernel_generic<const FMA: bool>(&self, padded: &[f32], z: &mut [f32], vectors: usize) {
        match self.g.cout {
            4.. => self.blocks_generic::<FMA, 4>(padded, z, vectors),
            _ => self.blocks_generic::<FMA, 1>(padded, z, vectors),
        }
    }

    /// Blocks of `OB` output channels (`OB ≤ cout`; the last block
    /// overlaps the one before rather than running short, recomputing a
    /// few channels to the same values).
    #[inline(always)]
    fn blocks_generic<const FMA: bool, const OB: usize>(
        &self,
        padded: &[f32],
        z: &mut [f32],
        vectors: usize,
    ) {
        let g = &self.g;
        let mut next = 0;
        while next < g.cout {
            let o0 = next.min(g.cout - OB);
            let bias: [f32; OB] =
                std::array::from_fn(|b| self.bias.map_or(0.0, |bias| bias[o0 + b]));
            for v in 0..vectors {
                let mut acc = bias.map(|b| [b; LANES]);
                for ci in 0..g.cin {
                    for i in 0..g.kh {
                        let row =
                            &padded[ci * g.plane() + i * g.grid + v * LANES..][..g.kw - 1 + LANES];
                        let rows: [isize; OB] =
                            std::array::from_fn(|b| self.taps.row(o0 + b, ci, i));
                        for j in 0..g.kw {
                            let Ok(seg) = <&[f32; LANES]>::try_from(&row[j..j + LANES]) else {
                                continue;
                            };
                            for (acc, &at) in acc.iter_mut().zip(&rows) {
                                let w = self.weight[(at + j as isize * self.taps.d_col) as usize];
                                for q in 0..LANES {
                                    acc[q] = if FMA {
                                        w.mul_add(seg[q], acc[q])
                                    } else {
                                        acc[q] + w * seg[q]
                                    };
                                }
                            }
                        }
                    }
                }
                for (b, acc) in acc.iter().enumerate() {
                    z[((o0 + b) * vectors + v) * LANES..][..LANES].copy_from_slice(acc);
                }
            }
            next = o0 + OB;
        }
    }
}

/// `dweight = Σ_{n in samples} dy_n ⋆ x_n`, overwriting `dweight`: a few
/// samples at a time, each padded input and `dy` laid on the grid in
/// scratch, then every weight summed over them.
pub(super) fn weight_grad_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    samples: std::ops::Range<usize>,
    dweight: &mut [f32],
) {
    dweight.fill(0.0);
    let g = Grid::forward(s);
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    if in_len == 0 || out_len == 0 || samples.is_empty() {
        return;
    }
    let wg = WeightGrad::new(g, isa);
    let per_sample = wg.sample_len();
    let chunk = (WEIGHT_GRAD_CHUNK / per_sample).clamp(1, samples.len());
    let inputs = g.input_layout((s.h, s.w), (s.ph as isize, s.pw as isize));
    with_columns(chunk * per_sample, |scratch| {
        let (xs, dys) = scratch.split_at_mut(chunk * wg.x_len);
        let mut first = samples.start;
        while first < samples.end {
            let cnt = chunk.min(samples.end - first);
            let x = &x[first * in_len..][..cnt * in_len];
            let dy = &dy[first * out_len..][..cnt * out_len];
            first += cnt;
            let xs = &mut xs[..cnt * wg.x_len];
            for (dst, x) in xs.chunks_exact_mut(wg.x_len).zip(x.chunks_exact(in_len)) {
                wg.lay_out_x(&inputs, x, dst);
            }
            if !wg.channel_lanes {
                wg.add(isa, xs, dy, dweight);
                continue;
            }
            let dys = &mut dys[..cnt * wg.dy_len];
            for (dst, dy) in dys.chunks_exact_mut(wg.dy_len).zip(dy.chunks_exact(out_len)) {
                wg.lay_out_dy(dy, dst);
            }
            wg.add(isa, xs, dys, dweight);
        }
    });
}

/// The weight gradient's sums over samples, `x_len` floats of scratch for
/// each sample's input and `dy_len` of its `dy`, in one of two layouts:
/// - By tap columns (the default): `dy` read in place, its rows packed
///   (`vectors` vectors a plane, the last one partial unless the plane is
///   a multiple of 16), and the input as `kw` sets of `cin` planes, plane
///   `(j, c)` holding the padded input's rows shifted left by `j`, packed
///   to `out_w` columns, `column_stride` floats apart. Weight `(o, c, i,
///   j)` is then `Σ_q dy[o][q]·x[j][c][q + i·out_w]` over the packed
///   positions `q`: every product pairs a position with its input, so no
///   position is computed to be dropped, and an infinite input reaches
///   only its own taps.
/// - For [`WeightGrad::channel_lanes`]: the padded input on the grid, and
///   `dy` in blocks of 16 channels each laid out position by position
///   (`[positions][16]`, zero past the last channel).
struct WeightGrad {
    g: Grid,
    vectors: usize,
    column_stride: usize,
    x_len: usize,
    dy_len: usize,
    channel_lanes: bool,
}

/// The most taps of a kernel column one block of the weight gradient sums.
const WEIGHT_GRAD_TAPS: usize = 5;

impl WeightGrad {
    fn new(g: Grid, isa: Isa) -> WeightGrad {
        let out_plane = g.out_h * g.out_w;
        let vectors = out_plane.div_ceil(LANES);
        let column_stride = shifted_plane_stride(g.kh, g.out_h, g.out_w);
        let channel_lanes = WeightGrad::channel_lanes(&g, isa);
        let (x_len, dy_len) = if channel_lanes {
            (g.input_len(g.vectors(1)), g.cout.div_ceil(LANES) * out_plane * LANES)
        } else {
            (g.kw * g.cin * column_stride, g.cout * out_plane)
        };
        WeightGrad { g, vectors, column_stride, x_len, dy_len, channel_lanes }
    }

    /// Whether the AVX-512 kernel with the output channels in the lanes
    /// takes this shape: square 3x3 and 5x5 windows, whose taps all stay in
    /// registers, and at least three quarters of its lanes in use. It sums
    /// over the kept positions only, with no lane sums to end each round;
    /// with fewer channels in use the other kernel wins.
    fn channel_lanes(g: &Grid, isa: Isa) -> bool {
        cfg!(target_arch = "x86_64")
            && isa.if_supported() == Isa::Avx512
            && matches!((g.kh, g.kw), (3, 3) | (5, 5))
            && 4 * g.cout >= 3 * g.cout.div_ceil(LANES) * LANES
    }

    /// Floats of scratch per sample: `dy` is read in place but for the
    /// channels-in-lanes kernel.
    fn sample_len(&self) -> usize {
        self.x_len + if self.channel_lanes { self.dy_len } else { 0 }
    }

    /// One sample's input into `dst` in this kernel's layout; `grid` is
    /// the input's place on the grid, for the channels-in-lanes kernel.
    fn lay_out_x(&self, grid: &Placement, x: &[f32], dst: &mut [f32]) {
        if self.channel_lanes {
            return grid.place(x, dst);
        }
        let g = &self.g;
        let (in_h, in_w) = (grid.h, grid.w);
        let (top, left) = (grid.top, grid.left);
        for (j, set) in dst.chunks_exact_mut(g.cin * self.column_stride).enumerate() {
            // Column x of the set's rows is input column x + j - left.
            let shift = j as isize - left;
            let first = (-shift).clamp(0, g.out_w as isize) as usize;
            let last = (in_w as isize - shift).clamp(first as isize, g.out_w as isize) as usize;
            for (plane, x) in
                set.chunks_exact_mut(self.column_stride).zip(x.chunks_exact(in_h * in_w))
            {
                let (rows, slack) = plane.split_at_mut(g.rows * g.out_w);
                slack.fill(0.0);
                for (r, row) in rows.chunks_exact_mut(g.out_w).enumerate() {
                    let y = r as isize - top;
                    if !(0..in_h as isize).contains(&y) || first == last {
                        row.fill(0.0);
                        continue;
                    }
                    let src = &x[y as usize * in_w..][..in_w];
                    row[..first].fill(0.0);
                    let from = (first as isize + shift) as usize;
                    copy_run(&mut row[first..last], &src[from..from + last - first]);
                    row[last..].fill(0.0);
                }
            }
        }
    }

    /// One sample's `dy` into `dst` for the channels-in-lanes kernel.
    fn lay_out_dy(&self, dy: &[f32], dst: &mut [f32]) {
        debug_assert!(self.channel_lanes);
        // The GEMM's packing transpose: 16 channels' rows into lanes, in
        // registers for whole blocks of 16 positions (element by element,
        // this was a visible share of LeNet-5's conv2 weight gradient).
        let positions = self.g.out_h * self.g.out_w;
        let mut rows: [&[f32]; LANES] = [&[]; LANES];
        for (b, block) in dst.chunks_exact_mut(positions * LANES).enumerate() {
            let first = b * LANES;
            let n = (self.g.cout - first).min(LANES);
            if n < LANES {
                block.fill(0.0);
            }
            for (l, row) in rows.iter_mut().take(n).enumerate() {
                *row = &dy[(first + l) * positions..][..positions];
            }
            crate::gemm::interleave(block, &rows[..n], positions, LANES, 1.0);
        }
    }

    /// The index in `dweight` of weight `(o, c, i, j)`.
    fn index(&self, o: usize, c: usize, i: usize, j: usize) -> usize {
        ((o * self.g.cin + c) * self.g.kh + i) * self.g.kw + j
    }

    /// Adds the samples' sums into `dweight`.
    fn add(&self, isa: Isa, xs: &[f32], dys: &[f32], dweight: &mut [f32]) {
        let g = &self.g;
        assert_eq!(xs.len() / self.x_len, dys.len() / self.dy_len, "samples of x and dy");
        assert!(xs.len().is_multiple_of(self.x_len) && dys.len().is_multiple_of(self.dy_len));
        assert_eq!(dweight.len(), g.cout * g.cin * g.kh * g.kw, "dweight");
        #[cfg(target_arch = "x86_64")]
        match isa.if_supported() {
            Isa::Avx512 if self.channel_lanes => {
                // SAFETY: `if_supported` keeps only ISAs the CPU has; the
                // lengths are asserted above; `channel_lanes` holds.
                return unsafe { x86::weight_grad_lanes(self, xs, dys, dweight) };
            }
            // SAFETY: `if_supported` keeps only ISAs the CPU has; the
            // lengths are asserted above.
            Isa::Avx512 => return unsafe { x86::weight_grad(self, xs, dys, dweight) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { self.add_avx2(xs, dys, dweight) },
            Isa::Portable => {}
        }
        self.add_generic::<false>(xs, dys, dweight);
    }

    /// [`Self::add_generic`] compiled for AVX2 with FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_avx2(&self, xs: &[f32], dys: &[f32], dweight: &mut [f32]) {
        self.add_generic::<true>(xs, dys, dweight);
    }

    /// Each output channel and kernel column in runs of up to
    /// [`WEIGHT_GRAD_TAPS`] taps (a constant, so that their accumulators
    /// stay in registers).
    #[inline(always)]
    fn add_generic<const FMA: bool>(&self, xs: &[f32], dys: &[f32], dweight: &mut [f32]) {
        let g = &self.g;
        for o in 0..g.cout {
            for c in 0..g.cin {
                for j in 0..g.kw {
                    let mut i0 = 0;
                    while i0 < g.kh {
                        let at = (o, c, i0, j);
                        match g.kh - i0 {
                            1 => self.taps_generic::<FMA, 1>(xs, dys, at, dweight),
                            2 => self.taps_generic::<FMA, 2>(xs, dys, at, dweight),
                            3 => self.taps_generic::<FMA, 3>(xs, dys, at, dweight),
                            4 => self.taps_generic::<FMA, 4>(xs, dys, at, dweight),
                            _ => self.taps_generic::<FMA, WEIGHT_GRAD_TAPS>(xs, dys, at, dweight),
                        }
                        i0 += WEIGHT_GRAD_TAPS;
                    }
                }
            }
        }
    }

    /// Adds the `IB` weights `(o, c, i0..i0 + IB, j)`: for each vector of
    /// packed positions, one load of `dy` feeds the `IB` taps, whose inputs
    /// lie `out_w` floats apart in tap column `j`; the partial last vector
    /// takes its live lanes only.
    #[inline(always)]
    fn taps_generic<const FMA: bool, const IB: usize>(
        &self,
        xs: &[f32],
        dys: &[f32],
        (o, c, i0, j): (usize, usize, usize, usize),
        dweight: &mut [f32],
    ) {
        let g = &self.g;
        let plane = g.out_h * g.out_w;
        let mut acc = [[0.0f32; LANES]; IB];
        let fma = |d: f32, x: f32, acc: f32| if FMA { d.mul_add(x, acc) } else { acc + d * x };
        for (x, dy) in xs.chunks_exact(self.x_len).zip(dys.chunks_exact(self.dy_len)) {
            let x = &x[(j * g.cin + c) * self.column_stride..][..self.column_stride];
            let (full, tail) = dy[o * plane..][..plane].as_chunks::<LANES>();
            for (ii, acc) in acc.iter_mut().enumerate() {
                let x = &x[(i0 + ii) * g.out_w..];
                for (v, d) in full.iter().enumerate() {
                    let seg: &[f32; LANES] = x[v * LANES..][..LANES].try_into().expect("16");
                    for q in 0..LANES {
                        acc[q] = fma(d[q], seg[q], acc[q]);
                    }
                }
                let seg = &x[full.len() * LANES..][..tail.len()];
                for (q, (&d, &x)) in tail.iter().zip(seg).enumerate() {
                    acc[q] = fma(d, x, acc[q]);
                }
            }
        }
        for (ii, acc) in acc.iter().enumerate() {
            dweight[self.index(o, c, i0 + ii, j)] += crate::reduce::sum(acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;
