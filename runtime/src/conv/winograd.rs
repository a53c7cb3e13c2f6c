//! Winograd F(4x4, 3x3) for 3x3, stride-1, undilated, ungrouped
//! convolutions (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016).
//!
//! Each 4x4 block of outputs (a *tile*) comes from the 6x6 input window
//! around it as `Y = Aᵀ [Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B)] A`: 36 products per
//! tile and channel pair instead of 144. The sum over channels is 36
//! independent matrix products, one per point ξ of the 6x6 window:
//! `M[ξ] = U[ξ]ᵀ · V[ξ]`, with `U` the transformed weights (`[cin][ξ][cout]`,
//! so that input channels transform in parallel) and `V` the transformed
//! input tiles (`[ξ][cin][tile]`).
//!
//! Work runs in chunks of whole samples, big enough to give the products at
//! least `CHUNK_TILES` columns; chunks run in parallel, each in its
//! thread's scratch buffer. The transforms are vectorised across 16 tiles
//! (one AVX-512 register per point of the window), the products across 16
//! or 32 tiles.
//!
//! The weight gradient reuses the input transform and reduces over tiles
//! instead (`weight_grad`).
//!
//! The backward-data pass of a stride-1 3x3 conv is itself such a conv: of
//! `dy`, padded by `2 − pad`, with the weights rotated by 180° and their
//! channel axes swapped. It reuses everything here, the ReLU mask fused into
//! the output transform.
//!
//! Rounding: the transforms scale values by up to 8 (A) and 1/24 (G), so
//! results carry a few more ulps of error than a direct sum; the tests bound
//! it against the f64 reference.

use super::tuning::{
    WINOGRAD_BACKWARD_DATA_MIN_CHANNELS, WINOGRAD_CACHED_U_BYTES, WINOGRAD_LARGE_U_MIN_TILES,
    WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_TILES, WINOGRAD_WEIGHT_GRAD_MAX_U_BYTES,
};
use super::{with_columns, Conv2d, ConvAlgo, ConvAlgorithm, Pass, Scratch};
use crate::arena::ALIGN_FLOATS;
use crate::error::{check_len, ConvError};
use crate::gemm::{Activation, Par};
use rayon::prelude::*;
use std::cell::RefCell;

/// Tiles transformed together: one 512-bit register of f32.
const LANES: usize = 16;
/// Outputs per tile side.
const TILE: usize = 4;
/// Input window side: TILE + 3 − 1.
const WIN: usize = 6;
/// Points of the transformed window.
const POINTS: usize = WIN * WIN;
/// The fewest tiles a chunk gives the tuple GEMMs when the batch allows.
const CHUNK_TILES: usize = 64;
/// The same for the weight gradient, whose products reduce over tiles: each
/// chunk ends in a reduction across lanes, which more tiles amortise.
const GRAD_CHUNK_TILES: usize = 256;

type Lanes = [f32; LANES];

/// Kernel kinds, as const parameters of [`chunk`].
const PORTABLE: u8 = 0;
const AVX2: u8 = 1;
const AVX512: u8 = 2;

pub use crate::isa::Isa;

/// [`ConvAlgo::Winograd`].
#[derive(Debug)]
pub(super) struct Winograd;

impl ConvAlgorithm for Winograd {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Winograd
    }

    fn name(&self) -> &'static str {
        "winograd-f4x4"
    }

    fn applies(&self, s: &Conv2d, pass: Pass) -> bool {
        match pass {
            Pass::Forward | Pass::BackwardWeights => applies(s),
            Pass::BackwardData => applies_backward_data(s),
        }
    }

    fn picks(&self, s: &Conv2d, pass: Pass) -> bool {
        enabled()
            && match pass {
                Pass::Forward => s.c >= WINOGRAD_MIN_CHANNELS && pays(s),
                Pass::BackwardData => {
                    s.c >= WINOGRAD_BACKWARD_DATA_MIN_CHANNELS && pays_backward_data(s)
                }
                Pass::BackwardWeights => pays_weight_grad(s),
            }
    }

    fn picks_prepared(&self, s: &Conv2d) -> bool {
        enabled() && s.c >= WINOGRAD_MIN_CHANNELS && pays_prepared(s)
    }

    fn scratch(&self, s: &Conv2d, pass: Pass) -> Scratch {
        let (columns, winograd_weights) = match pass {
            Pass::Forward => (forward_scratch_len(s), weights_len(s)),
            Pass::BackwardData => (backward_data_scratch_len(s), weights_len(s)),
            Pass::BackwardWeights => (weight_grad_scratch_len(s), 0),
        };
        Scratch { columns, winograd_weights, ..Scratch::default() }
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
        forward_unchecked(s, Isa::best(), x, weight, bias, activation, y, par);
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
        backward_data_unchecked(s, Isa::best(), dy, weight, relu_mask, dx, par);
    }

    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        weight_grad(s, Isa::best(), x, dy, dweight, par);
    }
}

/// Whether the convolutions pick Winograd where it applies: yes, unless the
/// environment sets `NETC_WINOGRAD=off`, to compare against im2col in one
/// build. Read once.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("NETC_WINOGRAD").map_or(true, |v| v != "off"))
}

/// Whether the forward pass of `s` can run here.
pub fn applies(s: &Conv2d) -> bool {
    s.is_valid() && (s.kh, s.kw, s.sh, s.sw, s.dh, s.dw, s.groups) == (3, 3, 1, 1, 1, 1, 1)
}

/// Whether Winograd beats im2col on `s`, where it applies. Each call
/// transforms the weights into `U`, 4x their size, and streams `U` through
/// the tuple GEMMs: nearly free while `U` fits in L2, but a larger `U` pays
/// only over many tiles (`WINOGRAD_LARGE_U_MIN_TILES`); and below
/// `WINOGRAD_MIN_TILES` a call, even a small `U` costs more to make than
/// the tiles save, since both grow with `c·o` but the saving also with the
/// tiles.
pub fn pays(s: &Conv2d) -> bool {
    applies(s) && problem_pays(&Problem::forward(s))
}

/// Whether Winograd beats im2col on `s` when `U` is made once for many
/// forward calls ([`super::conv2d_forward_cached`]): from
/// `WINOGRAD_MIN_TILES` a call, whatever the size of `U`, which then
/// costs only its reading.
pub fn pays_prepared(s: &Conv2d) -> bool {
    applies(s) && s.n * Problem::forward(s).tiles_per_sample() >= WINOGRAD_MIN_TILES
}

/// [`pays`] for the backward-data pass of `s`, the same algorithm on the
/// problem from `o` channels to `c`.
pub fn pays_backward_data(s: &Conv2d) -> bool {
    applies_backward_data(s) && problem_pays(&Problem::backward_data(s))
}

fn problem_pays(p: &Problem) -> bool {
    let u_bytes = POINTS * p.cin * p.cout * 4;
    let tiles = p.n * p.tiles_per_sample();
    tiles >= WINOGRAD_MIN_TILES
        && (u_bytes <= WINOGRAD_CACHED_U_BYTES || tiles >= WINOGRAD_LARGE_U_MIN_TILES)
}

/// Whether Winograd beats im2col on the weight gradient of `s`, where it
/// applies: only while `U` is small (`WINOGRAD_WEIGHT_GRAD_MAX_U_BYTES`),
/// since every task sums into its own `W'` of that size, and, as for
/// [`pays`], only from `WINOGRAD_MIN_TILES` a call.
pub fn pays_weight_grad(s: &Conv2d) -> bool {
    applies(s)
        && POINTS * s.c * s.o * 4 <= WINOGRAD_WEIGHT_GRAD_MAX_U_BYTES
        && s.n * Problem::forward(s).tiles_per_sample() >= WINOGRAD_MIN_TILES
}

/// Whether the backward-data pass of `s` can run here: its padding,
/// `2 − pad`, must not be negative.
pub fn applies_backward_data(s: &Conv2d) -> bool {
    applies(s) && s.ph <= 2 && s.pw <= 2
}

/// A stride-1 3x3 cross-correlation of `n` samples of `cin` planes of
/// `h x w`, zero-padded by `ph, pw`, into `cout` planes.
#[derive(Clone, Copy, Debug)]
struct Problem {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    ph: usize,
    pw: usize,
    /// Output channels in `U` (`[cin][ξ][u_cout]`): the whole conv's
    /// `cout`, also in the parts [`Problem::outputs`] makes of it.
    u_cout: usize,
}

impl Problem {
    fn forward(s: &Conv2d) -> Self {
        Problem::new(s.n, s.c, s.h, s.w, s.o, s.ph, s.pw)
    }

    fn backward_data(s: &Conv2d) -> Self {
        let (h, w) = (s.out_h(), s.out_w());
        Problem::new(s.n, s.o, h, w, s.c, 2 - s.ph, 2 - s.pw)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(n: usize, cin: usize, h: usize, w: usize, cout: usize, ph: usize, pw: usize) -> Self {
        Problem { n, cin, h, w, cout, ph, pw, u_cout: cout }
    }

    /// The part of one sample's problem that makes output channels
    /// `k0..k0 + count`, on `U` from its column `k0` on: its rows keep the
    /// whole conv's stride.
    fn outputs(&self, count: usize) -> Self {
        Problem { n: 1, cout: count, ..*self }
    }

    fn oh(&self) -> usize {
        self.h + 2 * self.ph - 2
    }

    fn ow(&self) -> usize {
        self.w + 2 * self.pw - 2
    }

    /// Floats from one input channel's row of `U` to the next. At a
    /// multiple of 4 KB (36·256 floats, say), every row's start fell in one
    /// L1 set, and the tuple GEMM's prefetches of the rows ahead evicted one
    /// another: such rows are [`spread`] to an odd number of cache lines.
    /// Spreading the 36·64 floats of ResNet-20's 64-channel convs too ran
    /// slower, so the others keep their length.
    fn u_row(&self) -> usize {
        let len = POINTS * self.u_cout;
        if len.is_multiple_of(1024) {
            spread(len)
        } else {
            len
        }
    }

    fn tiles_x(&self) -> usize {
        self.ow().div_ceil(TILE)
    }

    fn tiles_per_sample(&self) -> usize {
        self.oh().div_ceil(TILE) * self.tiles_x()
    }

    /// Samples per chunk of at least `tiles` tiles, ignoring the batch: the
    /// most any such chunk holds.
    fn max_chunk_samples(&self, tiles: usize) -> usize {
        tiles.div_ceil(self.tiles_per_sample()).max(1)
    }

    /// Samples per chunk for this batch: fewer when the batch is too small
    /// to give every thread a chunk otherwise.
    fn chunk_samples(&self, tiles: usize, threads: usize) -> usize {
        self.max_chunk_samples(tiles).min(self.n.div_ceil(threads.max(1))).max(1)
    }

    /// Tile columns of a chunk of `samples`, padded to whole lane groups.
    fn columns(&self, samples: usize) -> usize {
        (samples * self.tiles_per_sample()).div_ceil(LANES) * LANES
    }

    /// Floats of per-thread scratch for a chunk of `samples`.
    fn scratch_len(&self, samples: usize) -> usize {
        Layout::new(self, samples).lens(self).iter().sum()
    }

    /// Scratch of the largest chunk of at least `tiles` tiles any thread
    /// count gives: one thread's, which never holds more than the batch.
    fn largest_scratch_len(&self, tiles: usize) -> usize {
        self.scratch_len(self.chunk_samples(tiles, 1))
    }

    fn weights_len(&self) -> usize {
        self.cin * self.u_row()
    }
}

/// Where the 3x3 taps of (output channel, input channel) sit in a weight
/// tensor: nine contiguous floats, read backwards when `flip` (the 180°
/// rotation of backward-data).
#[derive(Clone, Copy)]
struct Taps<'a> {
    weight: &'a [f32],
    stride_out: usize,
    stride_in: usize,
    flip: bool,
}

impl Taps<'_> {
    #[inline(always)]
    fn get(&self, out: usize, inp: usize) -> [f32; 9] {
        let taps = &self.weight[out * self.stride_out + inp * self.stride_in..][..9];
        let mut g = [0.0; 9];
        for (i, v) in g.iter_mut().enumerate() {
            *v = if self.flip { taps[8 - i] } else { taps[i] };
        }
        g
    }
}

/// Per-thread scratch floats of the forward pass of `s` here.
pub(super) fn forward_scratch_len(s: &Conv2d) -> usize {
    Problem::forward(s).largest_scratch_len(CHUNK_TILES)
}

/// [`forward_scratch_len`] for the backward-data pass.
pub(super) fn backward_data_scratch_len(s: &Conv2d) -> usize {
    Problem::backward_data(s).largest_scratch_len(CHUNK_TILES)
}

/// [`forward_scratch_len`] for the weight gradient, whose chunks are larger.
pub(super) fn weight_grad_scratch_len(s: &Conv2d) -> usize {
    Problem::forward(s).largest_scratch_len(GRAD_CHUNK_TILES)
}

/// Floats of transformed weights, kept on the calling thread, of the
/// forward or backward-data pass of `s` here.
pub(super) fn weights_len(s: &Conv2d) -> usize {
    Problem::forward(s).weights_len()
}

thread_local! {
    /// Transformed weights, on the thread that called the convolution.
    static WEIGHTS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Grows this thread's transformed-weights buffer to `len` floats.
pub(super) fn reserve_weights(len: usize) {
    with_weights(len, |_| ());
}

fn with_weights<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    crate::scratch::with(&WEIGHTS, len, f)
}

/// `y = act(conv(x, weight) + bias)` by Winograd, on the kernels of `isa`
/// (which the CPU must support, or the portable ones run instead).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_forward (winograd)";
    s.check_forward(OP, x, weight, bias, y)?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Winograd, s));
    }
    forward_unchecked(s, isa, x, weight, bias, activation, y, par);
    Ok(())
}

/// [`forward`] on checked arguments.
#[allow(clippy::too_many_arguments)]
fn forward_unchecked(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    run(&Problem::forward(s), isa, forward_taps(s, weight), x, bias, activation, None, y, par);
}

fn forward_taps<'w>(s: &Conv2d, weight: &'w [f32]) -> Taps<'w> {
    Taps { weight, stride_out: s.c * 9, stride_in: 9, flip: false }
}

/// Writes into `u` (resized to [`weights_len`]) the transformed weights
/// that [`forward_transformed`] takes: made once, they serve every forward
/// call until the weights change. `s.n` does not matter.
pub(super) fn transform_forward_weights(s: &Conv2d, weight: &[f32], u: &mut Vec<f32>, par: Par) {
    let p = Problem::forward(s);
    u.resize(p.weights_len(), 0.0);
    transform_all_weights(&p, Isa::best(), forward_taps(s, weight), u, par);
}

/// [`forward`] on weights already transformed by
/// [`transform_forward_weights`]; the caller checked the other lengths.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_transformed(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let p = Problem::forward(s);
    debug_assert_eq!(u.len(), p.weights_len());
    if p.n > 0 {
        run_transformed(&p, isa, u, x, Epi { bias, activation }, None, y, par);
    }
}

/// `dx = conv_transpose(dy, weight)` by Winograd, zeroed where `relu_mask`
/// is `≤ 0`, on the kernels of `isa`.
pub fn backward_data(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_data (winograd)";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len(OP, "relu_mask", m.len(), s.input_len())?;
    }
    if !applies_backward_data(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Winograd, s));
    }
    backward_data_unchecked(s, isa, dy, weight, relu_mask, dx, par);
    Ok(())
}

/// [`backward_data`] on checked arguments.
fn backward_data_unchecked(
    s: &Conv2d,
    isa: Isa,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) {
    // Problem output channel c reads weight[k][c] for problem input k.
    let taps = Taps { weight, stride_out: 9, stride_in: s.c * 9, flip: true };
    run(&Problem::backward_data(s), isa, taps, dy, None, Activation::Identity, relu_mask, dx, par);
}

/// `dweight = Σ_samples dy · im2col(x)ᵀ` by Winograd (overwritten), on the
/// kernels of `isa`. The bias gradient is not Winograd's business: see
/// [`super::conv2d_backward_weights`].
pub fn backward_weights(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_weights (winograd)";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    if !applies(s) {
        return Err(ConvError::unsupported(OP, ConvAlgo::Winograd, s));
    }
    weight_grad(s, isa, x, dy, dweight, par);
    Ok(())
}

/// [`backward_weights`] on checked arguments.
fn weight_grad(s: &Conv2d, isa: Isa, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
    if s.n == 0 {
        dweight.fill(0.0);
        return;
    }
    weight_grad::run(s, isa, x, dy, dweight, par);
}

/// What one chunk computes, apart from its samples.
#[derive(Clone, Copy)]
struct Epi<'a> {
    bias: Option<&'a [f32]>,
    activation: Activation,
}

#[allow(clippy::too_many_arguments)]
fn run(
    p: &Problem,
    isa: Isa,
    taps: Taps<'_>,
    x: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    mask: Option<&[f32]>,
    y: &mut [f32],
    par: Par,
) {
    if p.n == 0 {
        return;
    }
    with_weights(p.weights_len(), |u| {
        transform_all_weights(p, isa, taps, u, par);
        run_transformed(p, isa, u, x, Epi { bias, activation }, mask, y, par);
    });
}

/// Fills `u` with `U`, all `p.weights_len()` floats of it.
fn transform_all_weights(p: &Problem, isa: Isa, taps: Taps<'_>, u: &mut [f32], par: Par) {
    let isa = usable(p, isa);
    let threads = par.threads();
    let per_channel = p.u_row();
    let weights = |(ci, u): (usize, &mut [f32])| dispatch_weights(isa, p, taps, ci, u);
    // Below about 64k transformed floats, splitting costs more than it saves.
    if threads > 1 && p.weights_len() >= 1 << 16 {
        u.par_chunks_mut(per_channel).enumerate().for_each(weights);
    } else {
        u.chunks_mut(per_channel).enumerate().for_each(weights);
    }
}

/// The products and transforms of every chunk of samples, on `U` made.
#[allow(clippy::too_many_arguments)]
fn run_transformed(
    p: &Problem,
    isa: Isa,
    u: &[f32],
    x: &[f32],
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    par: Par,
) {
    let isa = usable(p, isa);
    let threads = par.threads();
    if threads > 1 && p.n < threads {
        return run_output_parts(p, isa, u, x, epi, mask, y, threads);
    }
    let samples = p.chunk_samples(CHUNK_TILES, threads);
    let (in_len, out_len) = (p.cin * p.h * p.w, p.cout * p.oh() * p.ow());
    let job = |(i, (y, x)): (usize, (&mut [f32], &[f32]))| {
        let count = y.len() / out_len;
        let mask = mask.map(|m| &m[i * samples * out_len..][..count * out_len]);
        with_columns(p.scratch_len(count), |scratch| {
            dispatch_chunk(isa, p, u, x, count, epi, mask, y, scratch);
        });
    };
    if threads > 1 && p.n > samples {
        y.par_chunks_mut(samples * out_len)
            .zip(x.par_chunks(samples * in_len))
            .enumerate()
            .for_each(job);
    } else {
        y.chunks_mut(samples * out_len).zip(x.chunks(samples * in_len)).enumerate().for_each(job);
    }
}

/// [`run_transformed`] for fewer samples than threads, which one chunk per
/// sample would leave idle: each sample's output channels are cut into
/// parts, one per thread, that run in parallel as problems of their own on
/// their columns of `U`. Every part transforms the sample's whole input
/// again, a small cost beside its products where `cout` is large (AlexNet's
/// 13x13 convs at batch 1, the case this serves).
#[allow(clippy::too_many_arguments)]
fn run_output_parts(
    p: &Problem,
    isa: Isa,
    u: &[f32],
    x: &[f32],
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    threads: usize,
) {
    let (in_len, plane) = (p.cin * p.h * p.w, p.oh() * p.ow());
    let out_len = p.cout * plane;
    // Whole blocks of the tuple GEMM's 8 output channels.
    let part = p.cout.div_ceil(threads.div_ceil(p.n)).next_multiple_of(8);
    y.par_chunks_mut(out_len).zip(x.par_chunks(in_len)).enumerate().for_each(|(i, (y, x))| {
        y.par_chunks_mut(part * plane).enumerate().for_each(|(j, y)| {
            let (k0, count) = (j * part, y.len() / plane);
            let sub = p.outputs(count);
            let epi = Epi { bias: epi.bias.map(|b| &b[k0..][..count]), ..epi };
            let mask = mask.map(|m| &m[i * out_len + k0 * plane..][..count * plane]);
            with_columns(sub.scratch_len(1), |scratch| {
                dispatch_chunk(isa, &sub, &u[k0..], x, 1, epi, mask, y, scratch);
            });
        });
    });
}

/// The transformed weights of input channel `ci`, `u` = `U[ci]`.
/// `isa` if it can run `p` here: the CPU must support it, and the AVX-512
/// gathers index the scratch with 32-bit offsets.
fn usable(p: &Problem, isa: Isa) -> Isa {
    if !Isa::supported().contains(&isa) {
        Isa::Portable
    } else if isa == Isa::Avx512
        && p.scratch_len(p.max_chunk_samples(CHUNK_TILES.max(GRAD_CHUNK_TILES))) > i32::MAX as usize
    {
        Isa::Avx2
    } else {
        isa
    }
}

fn dispatch_weights(isa: Isa, p: &Problem, taps: Taps<'_>, ci: usize, u: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `run` keeps only ISAs the CPU supports.
        Isa::Avx512 => return unsafe { x86::weights_avx512(p.cout, taps, ci, u) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { weights_avx2(p, taps, ci, u) },
        Isa::Portable => {}
    }
    let _ = isa;
    transform_weights(p, taps, ci, u);
}

#[allow(clippy::too_many_arguments)]
fn dispatch_chunk(
    isa: Isa,
    p: &Problem,
    u: &[f32],
    x: &[f32],
    samples: usize,
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `run` keeps only ISAs the CPU supports.
        Isa::Avx512 => return unsafe { chunk_avx512(p, u, x, samples, epi, mask, y, scratch) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { chunk_avx2(p, u, x, samples, epi, mask, y, scratch) },
        Isa::Portable => {}
    }
    let _ = isa;
    chunk::<PORTABLE>(p, u, x, samples, epi, mask, y, scratch);
}

/// [`transform_weights`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weights_avx2(p: &Problem, taps: Taps<'_>, ci: usize, u: &mut [f32]) {
    transform_weights(p, taps, ci, u);
}

/// [`chunk`] compiled for AVX-512: 8 output channels by 32 tiles fill 16
/// of the 32 vector registers with accumulators.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx512(
    p: &Problem,
    u: &[f32],
    x: &[f32],
    samples: usize,
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    chunk::<AVX512>(p, u, x, samples, epi, mask, y, scratch);
}

/// [`chunk`] compiled for AVX2: 6 output channels by 16 tiles keep 12 of
/// the 16 vector registers for accumulators, as the 6x16 GEMM kernel does.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx2(
    p: &Problem,
    u: &[f32],
    x: &[f32],
    samples: usize,
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    chunk::<AVX2>(p, u, x, samples, epi, mask, y, scratch);
}

/// `U[ci][ξ][·] = (G g Gᵀ)[ξ]` for input channel `ci` and every output
/// channel, 16 at a time.
#[inline(always)]
fn transform_weights(p: &Problem, taps: Taps<'_>, ci: usize, u: &mut [f32]) {
    let mut k0 = 0;
    while k0 < p.cout {
        let width = LANES.min(p.cout - k0);
        let mut g = [[0.0f32; LANES]; 9];
        for l in 0..width {
            let t = taps.get(k0 + l, ci);
            for (gi, &v) in g.iter_mut().zip(&t) {
                gi[l] = v;
            }
        }
        // Columns first: t = G g (6x3), then rows: U = t Gᵀ (6x6).
        let mut t = [[[0.0f32; LANES]; 3]; WIN];
        for j in 0..3 {
            let col = weight_1d(&g[j], &g[3 + j], &g[6 + j]);
            for (i, v) in col.into_iter().enumerate() {
                t[i][j] = v;
            }
        }
        for (i, row) in t.iter().enumerate() {
            let out = weight_1d(&row[0], &row[1], &row[2]);
            for (j, v) in out.iter().enumerate() {
                let at = (i * WIN + j) * p.cout + k0;
                if width == LANES {
                    u[at..at + LANES].copy_from_slice(v);
                } else {
                    u[at..at + width].copy_from_slice(&v[..width]);
                }
            }
        }
        k0 += LANES;
    }
}

/// G·(g0, g1, g2) for G = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6;
/// 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1], lane-wise.
#[inline(always)]
fn weight_1d(g0: &Lanes, g1: &Lanes, g2: &Lanes) -> [Lanes; WIN] {
    let mut o = [[0.0; LANES]; WIN];
    for l in 0..LANES {
        let (a, b, c) = (g0[l], g1[l], g2[l]);
        o[0][l] = a * 0.25;
        o[1][l] = (a + b + c) * (-1.0 / 6.0);
        o[2][l] = (a - b + c) * (-1.0 / 6.0);
        o[3][l] = a * (1.0 / 24.0) + b * (1.0 / 12.0) + c * (1.0 / 6.0);
        o[4][l] = a * (1.0 / 24.0) - b * (1.0 / 12.0) + c * (1.0 / 6.0);
        o[5][l] = c;
    }
    o
}

/// Lane-wise arithmetic on [`Lanes`], in loops the compiler turns into
/// one vector instruction each (no closures: a closure would not inherit the
/// caller's target features).
#[inline(always)]
fn add(mut a: Lanes, b: Lanes) -> Lanes {
    for l in 0..LANES {
        a[l] += b[l];
    }
    a
}

#[inline(always)]
fn sub(mut a: Lanes, b: Lanes) -> Lanes {
    for l in 0..LANES {
        a[l] -= b[l];
    }
    a
}

/// `a · k + b`.
#[inline(always)]
fn mul_add(mut a: Lanes, k: f32, b: Lanes) -> Lanes {
    for l in 0..LANES {
        a[l] = a[l] * k + b[l];
    }
    a
}

/// Bᵀ·d for Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
/// 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1].
#[inline(always)]
fn input_1d(d: [Lanes; WIN]) -> [Lanes; WIN] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let (s12, d13, d42) = (add(d1, d2), sub(d1, d3), sub(d4, d2));
    [
        mul_add(d0, 4.0, mul_add(d2, -5.0, d4)),
        mul_add(s12, -4.0, add(d3, d4)),
        mul_add(sub(d1, d2), 4.0, sub(d4, d3)),
        mul_add(d13, -2.0, d42),
        mul_add(d13, 2.0, d42),
        mul_add(d1, 4.0, mul_add(d3, -5.0, d5)),
    ]
}

/// Aᵀ·m for Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0;
/// 0 1 −1 8 −8 1].
#[inline(always)]
fn output_1d(m: [Lanes; WIN]) -> [Lanes; TILE] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (s12, d12, s34, d34) = (add(m1, m2), sub(m1, m2), add(m3, m4), sub(m3, m4));
    [
        add(add(m0, s12), s34),
        mul_add(d34, 2.0, d12),
        mul_add(s34, 4.0, s12),
        add(mul_add(d34, 8.0, d12), m5),
    ]
}

/// `(Bᵀ d B)` of a 6x6 window: columns first, then rows.
#[inline(always)]
fn input_2d(d: &[[Lanes; WIN]; WIN]) -> [[Lanes; WIN]; WIN] {
    let mut t = [[[0.0; LANES]; WIN]; WIN];
    for j in 0..WIN {
        let col = input_1d([d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]]);
        for i in 0..WIN {
            t[i][j] = col[i];
        }
    }
    let mut v = [[[0.0; LANES]; WIN]; WIN];
    for i in 0..WIN {
        v[i] = input_1d(t[i]);
    }
    v
}

/// `(Aᵀ m A)` of a 6x6 product: columns first, then rows.
#[inline(always)]
fn output_2d(m: &[[Lanes; WIN]; WIN]) -> [[Lanes; TILE]; TILE] {
    let mut t = [[[0.0; LANES]; WIN]; TILE];
    for j in 0..WIN {
        let col = output_1d([m[0][j], m[1][j], m[2][j], m[3][j], m[4][j], m[5][j]]);
        for i in 0..TILE {
            t[i][j] = col[i];
        }
    }
    let mut y = [[[0.0; LANES]; TILE]; TILE];
    for i in 0..TILE {
        y[i] = output_1d(t[i]);
    }
    y
}

/// How a chunk's scratch is laid out, and where each tile's window and
/// output block sit in it.
///
/// The portable and AVX2 kernels first copy the input of the chunk into
/// `padded` (`[sample][cin]` planes of `(4·tiles_y + 2) x (4·tiles_x + 2)`
/// with zero borders), so every tile reads a full 6x6 window without bounds
/// checks; the AVX-512 kernels read the windows in place, through row
/// tables ([`RowTable`]) or masked gathers ([`Windows`]), and leave `padded`
/// untouched. `V` and `M` hold one `[cin or cout][cols]` matrix per point
/// ξ, [`Layout::v_point`] and [`Layout::m_point`] floats apart. The output tiles are
/// written whole into `staged` (`[sample][cout]` planes of
/// `4·tiles_y x 4·tiles_x`, plus one spare sample where lanes past the last
/// tile write), then clipped into the output with the epilogue.
#[derive(Clone, Copy, Debug)]
struct Layout {
    samples: usize,
    tiles: usize,
    cols: usize,
    /// Padded input plane: rows, row length.
    in_rows: usize,
    in_row: usize,
    /// Staged output plane: rows, row length.
    out_rows: usize,
    out_row: usize,
}

impl Layout {
    fn new(p: &Problem, samples: usize) -> Self {
        let (ty, tx) = (p.oh().div_ceil(TILE), p.tiles_x());
        Layout {
            samples,
            tiles: samples * p.tiles_per_sample(),
            cols: p.columns(samples),
            in_rows: ty * TILE + 2,
            in_row: tx * TILE + 2,
            out_rows: ty * TILE,
            out_row: tx * TILE,
        }
    }

    fn in_plane(&self) -> usize {
        self.in_rows * self.in_row
    }

    fn out_plane(&self) -> usize {
        self.out_rows * self.out_row
    }

    /// Floats from one point ξ of `V` to the next (see [`spread`]).
    fn v_point(&self, p: &Problem) -> usize {
        spread(p.cin * self.cols)
    }

    /// Floats from one point ξ of `M` (or of the weight gradient's
    /// transformed `dy`) to the next (see [`spread`]).
    fn m_point(&self, p: &Problem) -> usize {
        spread(p.cout * self.cols)
    }

    /// Floats of V, M, padded and staged.
    fn lens(&self, p: &Problem) -> [usize; 4] {
        [
            POINTS * self.v_point(p),
            POINTS * self.m_point(p),
            self.samples * p.cin * self.in_plane(),
            (self.samples + 1) * p.cout * self.out_plane(),
        ]
    }

    /// Whether the output blocks can be written (or, for the weight
    /// gradient, read) in place: the planes are whole tiles, so the staged
    /// layout is the tensor's own, and the lanes cover whole tiles, so no
    /// lane reaches the spare sample. Then staging is a copy for nothing
    /// (and a fill of the spare sample).
    fn in_place(&self, p: &Problem) -> bool {
        self.out_rows == p.oh() && self.out_row == p.ow() && self.tiles.is_multiple_of(LANES)
    }

    /// For lanes of tiles `t0..t0 + LANES`: the offset of each window in
    /// `padded` and of each output block in `staged`, relative to channel 0.
    /// Lanes past the last tile read sample 0 and write the spare sample.
    #[inline(always)]
    fn offsets(&self, p: &Problem, t0: usize) -> ([usize; LANES], [usize; LANES]) {
        let (per_sample, tx) = (p.tiles_per_sample(), p.tiles_x());
        let (mut win, mut out) = ([0; LANES], [0; LANES]);
        for l in 0..LANES {
            let t = t0 + l;
            let (sample, r) =
                if t < self.tiles { (t / per_sample, t % per_sample) } else { (self.samples, 0) };
            let (y, x) = (r / tx * TILE, r % tx * TILE);
            win[l] = (sample.min(self.samples - 1) * p.cin * self.in_rows + y) * self.in_row + x;
            out[l] = (sample * p.cout * self.out_rows + y) * self.out_row + x;
        }
        (win, out)
    }
}

/// Where the windows of 16 lanes of tiles sit in the unpadded input, for
/// the AVX-512 transform, which reads them in place: each lane's offset of
/// its window's first element (above or left of the plane where the
/// padding is, so possibly negative), and for each window row and column
/// the lanes for which it lies inside the plane. The rest of the window is
/// the zero padding, which is never read. Lanes past the last tile read
/// nothing.
#[derive(Clone, Copy, Debug)]
struct Windows {
    offsets: [i32; LANES],
    rows: [u16; WIN],
    cols: [u16; WIN],
}

impl Layout {
    /// The [`Windows`] of tiles `t0..t0 + LANES` in a chunk of `x` (the
    /// unpadded `[sample][cin]` planes), relative to channel 0. Panics
    /// unless every element they read, for every channel, lies in `x`.
    fn windows(&self, p: &Problem, t0: usize, x: &[f32]) -> Windows {
        let (per_sample, tx) = (p.tiles_per_sample(), p.tiles_x());
        let (h, w, plane) = (p.h as isize, p.w as isize, (p.h * p.w) as isize);
        let last_channel = (p.cin.saturating_sub(1) * p.h * p.w) as isize;
        let mut win = Windows { offsets: [0; LANES], rows: [0; WIN], cols: [0; WIN] };
        for l in 0..LANES.min(self.tiles.saturating_sub(t0)) {
            let (sample, r) = ((t0 + l) / per_sample, (t0 + l) % per_sample);
            let y0 = (r / tx * TILE) as isize - p.ph as isize;
            let x0 = (r % tx * TILE) as isize - p.pw as isize;
            let offset = sample as isize * p.cin as isize * plane + y0 * w + x0;
            // The window's rows and columns inside the plane, as ranges.
            let inside =
                |start: isize, len: isize| (-start).max(0)..(len - start).clamp(0, WIN as isize);
            let (rows, cols) = (inside(y0, h), inside(x0, w));
            for a in rows.clone() {
                win.rows[a as usize] |= 1 << l;
            }
            for j in cols.clone() {
                win.cols[j as usize] |= 1 << l;
            }
            if !rows.is_empty() && !cols.is_empty() {
                // The gathers read through 32-bit offsets and raw pointers:
                // the bound checks live here. The first and last elements
                // read bound the rest.
                let first = offset + rows.start * w + cols.start;
                let last = offset + (rows.end - 1) * w + cols.end - 1;
                assert!(first >= 0 && last_channel + last < x.len() as isize);
            }
            win.offsets[l] = i32::try_from(offset).expect("usable() bounds the chunk by i32");
        }
        win
    }
}

/// `len` rounded up to an odd number of cache lines. A transform stores (or
/// loads) the 36 points of one channel of 16 tiles together, one line each,
/// `len` floats apart: at a multiple of 4 KB, as with 16 channels of 64
/// tiles, all 36 lines fell in one set of the L1 cache, and each store
/// waited on a line the one before had evicted. An odd number of lines puts
/// them in 36 different sets.
fn spread(len: usize) -> usize {
    (len.div_ceil(ALIGN_FLOATS) | 1) * ALIGN_FLOATS
}

/// The other way the AVX-512 input transform reads the windows of 16 lanes
/// of tiles, without its 36 gathers per channel, which are slower. Where the lanes' windows lie in few
/// input rows of at most 32 floats (every plane of ResNet-20, AlexNet's
/// 13x13 and the 29x29 stacked planes of its split conv2), each window row
/// `a` loads those whole rows into a table of up to 128 floats, one *slot*
/// per tile row the lanes touch, and each window column is picked out of
/// the table by two-source permutes, one per pair of registers the table
/// fills. Padding is lanes masked to zero.
#[derive(Clone, Copy, Debug)]
struct RowTable {
    /// For window row `a` and table register `q`, the (at most two) masked
    /// loads that fill it.
    loads: [[[RowLoad; 2]; TABLE / LANES]; WIN],
    /// Registers the slots fill, a whole number of pairs.
    regs: usize,
    /// For window column `j`, the table position each lane reads, modulo 32.
    idx: [[i32; LANES]; WIN],
    /// For window column `j` and register pair `r`, the lanes reading the
    /// table's floats `32r..32r + 32`, each inside the plane.
    pairs: [[u16; TABLE / 32]; WIN],
}

/// One masked load of 16 floats into a table register: lane `l` in `mask`
/// gets `plane[offset + l]`, the others zero (or, for a register's second
/// load, what its first put there). A zero mask loads nothing.
#[derive(Clone, Copy, Debug, Default)]
struct RowLoad {
    offset: isize,
    mask: u16,
}

/// Slots of a [`RowTable`] at most: sixteen rows of up to 8 floats.
const MAX_SLOTS: usize = 16;
/// Floats in a [`RowTable`] at most: eight 512-bit registers.
const TABLE: usize = 128;

impl Layout {
    /// The [`RowTable`] of tiles `t0..t0 + LANES` in a chunk of `x`, or
    /// `None` where the plane is wider than 32 or the lanes touch more tile
    /// rows than a table holds. Panics unless every sample the lanes read
    /// lies whole in `x`.
    fn row_table(&self, p: &Problem, t0: usize, x: &[f32]) -> Option<RowTable> {
        let slot = [8, 16, 32].into_iter().find(|&s| p.w <= s)?;
        let (per_sample, tx) = (p.tiles_per_sample(), p.tiles_x());
        let plane = p.h * p.w;
        let mut t = RowTable {
            loads: [[[RowLoad::default(); 2]; TABLE / LANES]; WIN],
            regs: 0,
            idx: [[0; LANES]; WIN],
            pairs: [[0; TABLE / 32]; WIN],
        };
        // The tile row of each slot, to find a lane's slot.
        let (mut rows, mut slots) = ([(usize::MAX, usize::MAX); MAX_SLOTS], 0);
        for l in 0..LANES.min(self.tiles.saturating_sub(t0)) {
            let (sample, r) = ((t0 + l) / per_sample, (t0 + l) % per_sample);
            let (ty, tcol) = (r / tx, r % tx);
            let s = match rows[..slots].iter().position(|&k| k == (sample, ty)) {
                Some(s) => s,
                None if (slots + 1) * slot <= TABLE => {
                    assert!((sample + 1) * p.cin * plane <= x.len());
                    rows[slots] = (sample, ty);
                    let y0 = (ty * TILE) as isize - p.ph as isize;
                    // The slot's floats go to table positions slots·slot..,
                    // 16 at a time (8 where two 8-float slots share a
                    // register, the second one's load the register's second).
                    for (a, loads) in t.loads.iter_mut().enumerate() {
                        let y = y0 + a as isize;
                        if !(0..p.h as isize).contains(&y) {
                            continue;
                        }
                        let start = (sample * p.cin * plane) as isize + y * p.w as isize;
                        for e in (0..p.w).step_by(LANES) {
                            let pos = slots * slot + e;
                            let (reg, lane) = (pos / LANES, pos % LANES);
                            let count = (p.w - e).min(LANES - lane);
                            let mask = (((1u32 << count) - 1) << lane) as u16;
                            let offset = start + e as isize - lane as isize;
                            loads[reg][usize::from(lane > 0)] = RowLoad { offset, mask };
                        }
                    }
                    slots += 1;
                    slots - 1
                }
                None => return None,
            };
            let x0 = (tcol * TILE) as isize - p.pw as isize;
            for j in 0..WIN {
                let col = x0 + j as isize;
                if (0..p.w as isize).contains(&col) {
                    let at = s * slot + col as usize;
                    t.idx[j][l] = (at % 32) as i32;
                    t.pairs[j][at / 32] |= 1 << l;
                }
            }
        }
        t.regs = (slots * slot).div_ceil(2 * LANES) * 2;
        Some(t)
    }
}

/// One chunk of `samples`: transform the input tiles into `V`, multiply by
/// `U` into `M`, transform `M` back into the output with the epilogue.
/// `KIND` picks the kernels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk<const KIND: u8>(
    p: &Problem,
    u: &[f32],
    x: &[f32],
    samples: usize,
    epi: Epi<'_>,
    mask: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let lay = Layout::new(p, samples);
    let [v_len, m_len, pad_len, stage_len] = lay.lens(p);
    let (v, rest) = scratch.split_at_mut(v_len);
    let (m, rest) = rest.split_at_mut(m_len);
    let (padded, rest) = rest.split_at_mut(pad_len);
    let staged = &mut rest[..stage_len];

    transform_inputs::<KIND>(p, &lay, x, padded, v);

    for xi in 0..POINTS {
        let u = &u[xi * p.u_cout..];
        let v = &v[xi * lay.v_point(p)..][..p.cin * lay.cols];
        let m = &mut m[xi * lay.m_point(p)..][..p.cout * lay.cols];
        tuple_gemm::<KIND>(p, u, v, m, lay.cols);
    }

    let in_place = lay.in_place(p);
    let out_buf: &mut [f32] = if in_place { &mut *y } else { staged };
    // Lanes that are two runs of 8 neighbouring tiles along a tile row
    // write whole rows of 32 outputs, not scatters.
    let runs_of_8 = p.tiles_x().is_multiple_of(8);
    for t0 in (0..lay.tiles).step_by(LANES) {
        let (_, out) = lay.offsets(p, t0);
        let two_runs = runs_of_8 && t0 + LANES <= lay.tiles;
        for k in 0..p.cout {
            let plane = &mut out_buf[k * lay.out_plane()..];
            let at = |xi: usize| xi * lay.m_point(p) + k * lay.cols + t0;
            #[cfg(target_arch = "x86_64")]
            if KIND == AVX512 {
                if two_runs {
                    let starts = [out[0], out[8]];
                    // SAFETY: as above; lanes 0-7 and 8-15 are 8 tiles side
                    // by side each, in whole-tile rows of `out_row` floats.
                    unsafe { x86::output_runs_avx512(m, at, starts, lay.out_row, plane) };
                } else {
                    // SAFETY: as above.
                    unsafe { x86::output_tiles_avx512(m, at, &out, lay.out_row, plane) };
                }
                continue;
            }
            let mut pts = [[[0.0; LANES]; WIN]; WIN];
            for (i, prow) in pts.iter_mut().enumerate() {
                for (j, pt) in prow.iter_mut().enumerate() {
                    pt.copy_from_slice(&m[at(i * WIN + j)..][..LANES]);
                }
            }
            for (a, row) in output_2d(&pts).iter().enumerate() {
                for (b, lanes) in row.iter().enumerate() {
                    for (l, &val) in lanes.iter().enumerate() {
                        plane[out[l] + a * lay.out_row + b] = val;
                    }
                }
            }
        }
    }

    // Into place with the epilogue, one output row at a time while it is in
    // L1: bias and activation (forward), or the ReLU mask (backward-data).
    let (oh, ow) = (p.oh(), p.ow());
    let plain = epi.bias.is_none() && epi.activation == Activation::Identity && mask.is_none();
    if in_place && plain {
        return;
    }
    for (i, dst) in y.chunks_exact_mut(oh * ow).enumerate() {
        let b = epi.bias.map_or(0.0, |b| b[i % p.cout]);
        let mask = mask.map(|m| &m[i * oh * ow..][..oh * ow]);
        for (r, dst) in dst.chunks_exact_mut(ow).enumerate() {
            if !in_place {
                dst.copy_from_slice(&staged[i * lay.out_plane() + r * lay.out_row..][..ow]);
            }
            finish_row(dst, b, epi.activation);
            if let Some(mask) = mask {
                for (d, &mk) in dst.iter_mut().zip(&mask[r * ow..][..ow]) {
                    if mk <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
        }
    }
}

/// `V` of a chunk: its input copied into `padded`, then every lane group's
/// windows transformed, by the kernels of `KIND`.
#[inline(always)]
fn transform_inputs<const KIND: u8>(
    p: &Problem,
    lay: &Layout,
    x: &[f32],
    padded: &mut [f32],
    v: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if KIND == AVX512 {
        // The masked gathers read the windows from `x` itself, so the
        // padded copy (a memset and a copy of every plane) is not made.
        let _ = padded;
        for t0 in (0..lay.tiles).step_by(LANES) {
            if let Some(table) = lay.row_table(p, t0, x) {
                for ci in 0..p.cin {
                    let plane = &x[ci * p.h * p.w..];
                    let at = |xi: usize| xi * lay.v_point(p) + ci * lay.cols + t0;
                    // SAFETY: as below; `row_table` checked that the samples
                    // whose rows the table loads lie whole in `x`.
                    unsafe { x86::input_tiles_by_rows(plane, &table, v, at) };
                }
                continue;
            }
            let win = lay.windows(p, t0, x);
            for ci in 0..p.cin {
                let plane = &x[ci * p.h * p.w..];
                let at = |xi: usize| xi * lay.v_point(p) + ci * lay.cols + t0;
                // SAFETY: KIND is AVX512 only inside the `chunk_avx512`s,
                // whose callers checked that the CPU has AVX-512F; `windows`
                // checked the elements the lanes read, for every channel.
                unsafe { x86::input_tiles_avx512(plane, &win, p.w, v, at) };
            }
        }
        return;
    }
    // The zero borders of `padded` stay zero: only the interior is copied.
    padded.fill(0.0);
    for (plane, src) in padded.chunks_exact_mut(lay.in_plane()).zip(x.chunks_exact(p.h * p.w)) {
        for (iy, row) in src.chunks_exact(p.w).enumerate() {
            plane[(iy + p.ph) * lay.in_row + p.pw..][..p.w].copy_from_slice(row);
        }
    }
    for t0 in (0..lay.tiles).step_by(LANES) {
        let (win, _) = lay.offsets(p, t0);
        for ci in 0..p.cin {
            let plane = &padded[ci * lay.in_plane()..];
            let at = |xi: usize| xi * lay.v_point(p) + ci * lay.cols + t0;
            let mut d = [[[0.0; LANES]; WIN]; WIN];
            for (a, drow) in d.iter_mut().enumerate() {
                for (b, pt) in drow.iter_mut().enumerate() {
                    for (l, x) in pt.iter_mut().enumerate() {
                        *x = plane[win[l] + a * lay.in_row + b];
                    }
                }
            }
            for (i, row) in input_2d(&d).iter().enumerate() {
                for (j, lanes) in row.iter().enumerate() {
                    v[at(i * WIN + j)..][..LANES].copy_from_slice(lanes);
                }
            }
        }
    }
}

/// `row = act(row + b)`, with the common activations in loops the compiler
/// vectorises.
#[inline(always)]
fn finish_row(row: &mut [f32], b: f32, act: Activation) {
    match act {
        Activation::Identity if b == 0.0 => {}
        Activation::Identity => row.iter_mut().for_each(|v| *v += b),
        Activation::Relu => row.iter_mut().for_each(|v| *v = crate::act::relu_scalar(*v + b)),
        _ => row.iter_mut().for_each(|v| *v = act.apply(*v + b)),
    }
}

/// `M[ξ] = U[ξ]ᵀ · V[ξ]` for one point ξ: `[cout, cols]` from `[cin, cout]`
/// (rows `POINTS · cout` apart in `u`) and `[cin, cols]`. Blocks of output
/// channels by tiles accumulate in registers over all input channels, by
/// the kernel of `KIND`.
#[inline(always)]
fn tuple_gemm<const KIND: u8>(p: &Problem, u: &[f32], v: &[f32], m: &mut [f32], cols: usize) {
    let g = Gemm { cin: p.cin, cout: p.cout, u_row: p.u_row(), cols, u, v };
    let mut k0 = 0;
    match KIND {
        #[cfg(target_arch = "x86_64")]
        AVX512 => {
            while k0 < p.cout {
                let mut t0 = 0;
                if k0 + 8 <= p.cout {
                    while t0 + 32 <= cols {
                        // SAFETY: KIND is AVX512 only inside `chunk_avx512`,
                        // whose caller checked that the CPU has AVX-512F.
                        unsafe { x86::block_avx512::<8, 2>(&g, m, k0, t0) };
                        t0 += 32;
                    }
                    if t0 < cols {
                        // SAFETY: as above.
                        unsafe { x86::block_avx512::<8, 1>(&g, m, k0, t0) };
                    }
                    k0 += 8;
                } else {
                    while t0 + 32 <= cols {
                        // SAFETY: as above.
                        unsafe { x86::block_avx512::<1, 2>(&g, m, k0, t0) };
                        t0 += 32;
                    }
                    if t0 < cols {
                        // SAFETY: as above.
                        unsafe { x86::block_avx512::<1, 1>(&g, m, k0, t0) };
                    }
                    k0 += 1;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        AVX2 => {
            while k0 < p.cout {
                let rows = if k0 + 6 <= p.cout { 6 } else { 1 };
                for t0 in (0..cols).step_by(LANES) {
                    if rows == 6 {
                        // SAFETY: KIND is AVX2 only inside `chunk_avx2`,
                        // whose caller checked that the CPU has AVX2 and FMA.
                        unsafe { x86::block_avx2::<6>(&g, m, k0, t0) };
                    } else {
                        // SAFETY: as above.
                        unsafe { x86::block_avx2::<1>(&g, m, k0, t0) };
                    }
                }
                k0 += rows;
            }
        }
        _ => {
            while k0 < p.cout {
                let rows = if k0 + 2 <= p.cout { 2 } else { 1 };
                for t0 in (0..cols).step_by(LANES) {
                    if rows == 2 {
                        block_portable::<2>(&g, m, k0, t0);
                    } else {
                        block_portable::<1>(&g, m, k0, t0);
                    }
                }
                k0 += rows;
            }
        }
    }
}

/// The operands of one tuple GEMM.
struct Gemm<'a> {
    cin: usize,
    cout: usize,
    /// Floats from one input channel's row of `u` to the next.
    u_row: usize,
    cols: usize,
    u: &'a [f32],
    v: &'a [f32],
}

/// Rows `k0..k0 + R` by columns `t0..t0 + 16` of `M`, in portable code.
#[inline(always)]
fn block_portable<const R: usize>(g: &Gemm<'_>, m: &mut [f32], k0: usize, t0: usize) {
    let mut acc = [[0.0f32; LANES]; R];
    for ci in 0..g.cin {
        let vrow = &g.v[ci * g.cols + t0..][..LANES];
        let urow = &g.u[ci * g.u_row + k0..][..R];
        for (row, &a) in acc.iter_mut().zip(urow) {
            for (s, &b) in row.iter_mut().zip(vrow) {
                *s += a * b;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        m[(k0 + r) * g.cols + t0..][..LANES].copy_from_slice(row);
    }
}

/// The tuple-GEMM register blocks and the AVX-512 transforms, in
/// intrinsics: the autovectoriser turns the portable GEMM block into gathers
/// once it is unrolled to 8 rows, and has no gathers of its own for the
/// transforms.
#[cfg(target_arch = "x86_64")]
mod x86;

mod weight_grad;
