//! 2-D convolution over NCHW f32 tensors, forward and both backward passes,
//! with PyTorch's semantics (`nn.Conv2d`: weight `[O, C/groups, kh, kw]`,
//! cross-correlation, zero padding, floor output size, dilation, groups).
//!
//! Each pass has a few algorithms, each a `ConvAlgorithm` in a file of its
//! own. The shape alone picks one ([`Conv2d::forward_algo`] and the like),
//! by asking them in turn against the thresholds of `tuning`, so that the
//! code generator knows the choice:
//! - `Pointwise` (`pointwise.rs`): a 1x1, stride-1, unpadded conv is a plain
//!   GEMM per sample;
//! - `Winograd` ([`winograd`]): 3x3 stride-1 convs by F(4x4, 3x3), a quarter
//!   of the multiplies;
//! - `WinogradSplit` ([`winograd_split`]): 5x5 stride-1 convs by the same
//!   F(4x4, 3x3), the kernel split into four 3x3 pieces: 9 multiplies per
//!   output against 25;
//! - `Depthwise` (`depthwise.rs`): one input channel per group, each plane
//!   convolved directly along its rows rather than by a GEMM of one row;
//! - `Direct` (`direct.rs`): stride-1 convs with few channels, the window
//!   applied straight from the padded input, with no im2col matrix, whose
//!   copies cost such shapes more than their multiplies;
//! - `Im2col` (`im2col.rs`, `im2col_gemm.rs`): the general case, GEMMs over
//!   the unrolled windows with the bias and activation fused into the store.
//!
//! The bf16 entry points ([`conv2d_forward_bf16`] and the others), for the
//! convs of a `precision bf16` network, take `Im2colBf16`
//! (`im2col_bf16.rs`) where its products are large enough to pay: GEMMs
//! with bf16 operands and f32 sums.
//!
//! This file holds the trait, the selection, the scratch the passes share,
//! and the checked entry points, which dispatch once per call.

#[allow(unsafe_code)]
mod depthwise;
#[allow(unsafe_code)]
mod direct;
mod im2col;
mod im2col_bf16;
mod im2col_gemm;
mod pointwise;
mod prepared;
mod shape;
mod tuning;
#[allow(unsafe_code)]
pub mod winograd;
pub mod winograd_split;

pub use depthwise::{
    conv2d_backward_data_depthwise, conv2d_backward_weights_depthwise, conv2d_forward_depthwise,
};
pub use direct::{
    conv2d_backward_data_direct, conv2d_backward_weights_direct, conv2d_forward_direct,
};
pub use prepared::{
    conv2d_bn_forward_cached, conv2d_forward_cached, BatchNormParams, ForwardCache,
};
pub use shape::Conv2d;

use crate::error::{check_len, ConvError};
use crate::gemm::{Activation, Bias, Epilogue, Par};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// How a pass is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    Pointwise,
    Depthwise,
    Direct,
    Winograd,
    WinogradSplit,
    Im2col,
    Im2colBf16,
}

impl ConvAlgo {
    pub fn name(self) -> &'static str {
        self.algorithm().name()
    }

    /// The implementation of this algorithm.
    fn algorithm(self) -> &'static dyn ConvAlgorithm {
        match self {
            ConvAlgo::Pointwise => &pointwise::Pointwise,
            ConvAlgo::Depthwise => &depthwise::Depthwise,
            ConvAlgo::Direct => &direct::Direct,
            ConvAlgo::Winograd => &winograd::Winograd,
            ConvAlgo::WinogradSplit => &winograd_split::WinogradSplit,
            ConvAlgo::Im2col => &im2col::Im2col,
            ConvAlgo::Im2colBf16 => &im2col_bf16::Im2colBf16,
        }
    }
}

/// One of the three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    BackwardData,
    BackwardWeights,
}

/// Floats of memory, reused across calls, that one pass of one shape takes,
/// by where it is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scratch {
    /// Each thread's buffer ([`with_columns`]): im2col columns, padded
    /// inputs, Winograd chunks.
    pub columns: usize,
    /// Each thread's weights of the direct forward with output channels in
    /// the lanes.
    pub lanes_weights: usize,
    /// Winograd-transformed weights, on the calling thread.
    pub winograd_weights: usize,
    /// Stacked inputs and weights of the split 5x5 passes, on the calling
    /// thread.
    pub stacked: usize,
}

impl Scratch {
    /// Room for both.
    fn max(self, other: Scratch) -> Scratch {
        Scratch {
            columns: self.columns.max(other.columns),
            lanes_weights: self.lanes_weights.max(other.lanes_weights),
            winograd_weights: self.winograd_weights.max(other.winograd_weights),
            stacked: self.stacked.max(other.stacked),
        }
    }
}

/// One way to compute a convolution, in a file of its own: where it
/// applies, when the shape picks it, the scratch it takes, and its passes.
///
/// The entry points ([`conv2d_forward_using`] and the others) check the
/// lengths and [`Self::applies`] and skip empty batches before they call a
/// pass, once per call: the passes' own loops see no dynamic dispatch.
pub(crate) trait ConvAlgorithm: Sync {
    /// Which algorithm this is.
    fn algo(&self) -> ConvAlgo;

    /// Its name in benchmarks and errors.
    fn name(&self) -> &'static str;

    /// Whether it computes `pass` of the valid shape `s` at all.
    fn applies(&self, s: &Conv2d, pass: Pass) -> bool;

    /// Whether `s` picks it for `pass`; asked only when no algorithm before
    /// it in [`ALGORITHMS`] was picked.
    fn picks(&self, s: &Conv2d, pass: Pass) -> bool;

    /// Whether the forward pass with weights prepared once
    /// ([`ForwardCache`]) picks it, for a shape whose forward pass would go
    /// by im2col; asked in the same order.
    fn picks_prepared(&self, _s: &Conv2d) -> bool {
        false
    }

    /// The scratch `pass` of `s` takes by this algorithm.
    fn scratch(&self, s: &Conv2d, pass: Pass) -> Scratch;

    /// `y = act(conv(x, weight) + bias)`, on checked arguments.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        s: &Conv2d,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        activation: Activation,
        y: &mut [f32],
        par: Par,
    );

    /// `dx = conv_transpose(dy, weight)`, zeroed where `relu_mask` is `≤ 0`,
    /// on checked arguments.
    fn backward_data(
        &self,
        s: &Conv2d,
        dy: &[f32],
        weight: &[f32],
        relu_mask: Option<&[f32]>,
        dx: &mut [f32],
        par: Par,
    );

    /// `dweight = Σ_samples dy · im2col(x)ᵀ`, overwritten, on checked
    /// arguments.
    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par);
}

/// Every algorithm, in the order the selection asks them: each special case
/// before the general one, im2col, which computes every shape.
const ALGORITHMS: [&dyn ConvAlgorithm; 6] = [
    &pointwise::Pointwise,
    &depthwise::Depthwise,
    &winograd::Winograd,
    &winograd_split::WinogradSplit,
    &direct::Direct,
    &im2col::Im2col,
];

/// The first algorithm of [`ALGORITHMS`] that `s` picks for `pass`.
fn select(s: &Conv2d, pass: Pass) -> ConvAlgo {
    ALGORITHMS.iter().find(|a| a.picks(s, pass)).map_or(ConvAlgo::Im2col, |a| a.algo())
}

impl Conv2d {
    /// The algorithm of the forward pass for this shape.
    pub fn forward_algo(&self) -> ConvAlgo {
        select(self, Pass::Forward)
    }

    /// The forward algorithm when the weights are prepared once for many
    /// calls ([`conv2d_forward_cached`]): Winograd also where making its
    /// transformed weights on every call would not pay
    /// ([`winograd::pays_prepared`], [`winograd_split::pays_prepared`]).
    pub fn prepared_forward_algo(&self) -> ConvAlgo {
        let algo = self.forward_algo();
        if algo != ConvAlgo::Im2col {
            return algo;
        }
        ALGORITHMS.iter().find(|a| a.picks_prepared(self)).map_or(algo, |a| a.algo())
    }

    /// The algorithm of the backward-data pass for this shape.
    pub fn backward_data_algo(&self) -> ConvAlgo {
        select(self, Pass::BackwardData)
    }

    /// The algorithm of the backward-weights pass for this shape.
    pub fn backward_weights_algo(&self) -> ConvAlgo {
        select(self, Pass::BackwardWeights)
    }

    /// Whether a conv of a `precision bf16` network takes the bf16 GEMMs:
    /// where its products are large enough to pay (at least 64 outputs a
    /// group and 16M multiply-adds a sample, in `tuning.rs`); else it keeps
    /// the f32 algorithm the shape picks, a depthwise conv's among them.
    /// Keeping f32 only makes a layer's result more exact.
    pub fn bf16_pays(&self) -> bool {
        let og = self.o / self.groups;
        og >= tuning::BF16_MIN_GROUP_OUTPUTS
            && og * self.out_plane() * self.patch() >= tuning::BF16_MIN_SAMPLE_MACS
    }

    /// The algorithm of a pass of a `precision bf16` network's conv whose
    /// f32 algorithm is `f32_algo`: the bf16 GEMMs where they pay.
    pub fn bf16_or(&self, f32_algo: ConvAlgo) -> ConvAlgo {
        if self.bf16_pays() {
            ConvAlgo::Im2colBf16
        } else {
            f32_algo
        }
    }

    /// The scratch of the passes this conv picks, in training and in
    /// inference. Reserving for algorithms a pass does not pick would make
    /// that memory resident for nothing.
    fn scratch(&self) -> Scratch {
        let pass = |algo: ConvAlgo, pass| algo.algorithm().scratch(self, pass);
        let forward = pass(self.forward_algo(), Pass::Forward);
        // The prepared forward keeps its transformed weights in its
        // `ForwardCache`, not on the thread.
        let prepared =
            Scratch { winograd_weights: 0, ..pass(self.prepared_forward_algo(), Pass::Forward) };
        let backward_data = pass(self.backward_data_algo(), Pass::BackwardData);
        let backward_weights = pass(self.backward_weights_algo(), Pass::BackwardWeights);
        forward.max(prepared).max(backward_data).max(backward_weights)
    }

    /// Floats of per-thread scratch that the passes of this conv use, each
    /// with the algorithm it picks.
    pub fn scratch_len(&self) -> usize {
        self.scratch().columns
    }
}

/// Partial weight gradients of the parallel tasks of
/// [`conv2d_backward_weights`], reused across calls.
static PARTIALS: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Per-thread scratch of the convolutions, reused across calls: the
    /// im2col matrix of one sample and group, or of several samples side by
    /// side with their `[og, cols]` block ([`im2col_gemm`]), or the padded
    /// buffers of the direct and Winograd paths.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Grows every thread's scratch buffers (on the current rayon pool and the
/// calling thread) to what the largest of `convs` needs, so that later
/// convolutions of these shapes allocate nothing, whichever thread runs them.
pub fn reserve_scratch(convs: &[&Conv2d]) {
    let need = convs.iter().map(|s| s.scratch()).fold(Scratch::default(), Scratch::max);
    let reserve = || {
        with_columns(need.columns, |_| ());
        direct::reserve_lanes_weights(need.lanes_weights);
    };
    reserve();
    winograd::reserve_weights(need.winograd_weights);
    winograd_split::reserve(need.stacked);
    // Any thread of the pool may run a whole conv call: one shard of a
    // data-parallel step lays out its conv's weights itself.
    rayon::broadcast(|_| reserve());
}

/// Runs `f` with this thread's column buffer of `len` floats.
fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    crate::scratch::with(&COLUMNS, len, f)
}

/// Runs `f` on `len` floats of space for the partial sums of parallel
/// tasks, from a pool that persists across calls (no allocation once it has
/// grown). The contents are stale: tasks overwrite their share.
fn with_partials<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    // `try_lock`, not `lock`: while this thread waits in `rayon::join` it may
    // run another caller's convolution, which must not wait for a lock its
    // own thread holds. That rare caller allocates its partials instead.
    let mut fresh = Vec::new();
    let mut guard = match PARTIALS.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let pool = guard.as_deref_mut().unwrap_or(&mut fresh);
    if pool.len() < len {
        pool.resize(len, 0.0);
    }
    f(&mut pool[..len])
}

/// The GEMM epilogue that adds `bias` (one per row) and applies
/// `activation`.
fn epilogue(bias: Option<&[f32]>, activation: Activation) -> Epilogue<'_> {
    Epilogue { bias: bias.map_or(Bias::None, Bias::PerRow), activation, relu_mask: None, sgd: None }
}

/// Runs `one` on the samples of `x` and `y` in chunks of `chunk`, shared
/// out between the threads when there are several and the batch has more
/// than one chunk; a lone chunk gets `par` for its own GEMMs.
fn forward_chunks(
    s: &Conv2d,
    chunk: usize,
    x: &[f32],
    y: &mut [f32],
    par: Par,
    one: impl Fn(&[f32], &mut [f32], Par) + Sync,
) {
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    if par.threads() > 1 && s.n > chunk {
        let chunks = y.par_chunks_mut(chunk * out_len).zip(x.par_chunks(chunk * in_len));
        chunks.for_each(|(y, x)| one(x, y, Par::Seq));
    } else {
        for (y, x) in y.chunks_mut(chunk * out_len).zip(x.chunks(chunk * in_len)) {
            one(x, y, par);
        }
    }
}

/// [`forward_chunks`] for a backward-data pass, `one` writing a chunk's
/// `dx` from its `dy`; then `dx` is zeroed where `relu_mask` is `≤ 0`.
fn backward_data_chunks(
    s: &Conv2d,
    chunk: usize,
    dy: &[f32],
    dx: &mut [f32],
    relu_mask: Option<&[f32]>,
    par: Par,
    one: impl Fn(&[f32], &mut [f32], Par) + Sync,
) {
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    let masked = |i: usize, dy: &[f32], dx: &mut [f32], par: Par| {
        one(dy, dx, par);
        if let Some(mask) = relu_mask.map(|m| &m[i * chunk * in_len..][..dx.len()]) {
            for (d, &m) in dx.iter_mut().zip(mask) {
                if m <= 0.0 {
                    *d = 0.0;
                }
            }
        }
    };
    if par.threads() > 1 && s.n > chunk {
        let chunks = dx.par_chunks_mut(chunk * in_len).zip(dy.par_chunks(chunk * out_len));
        chunks.enumerate().for_each(|(i, (dx, dy))| masked(i, dy, dx, Par::Seq));
    } else {
        let chunks = dx.chunks_mut(chunk * in_len).zip(dy.chunks(chunk * out_len));
        for (i, (dx, dy)) in chunks.enumerate() {
            masked(i, dy, dx, par);
        }
    }
}

/// The weight gradient with the samples split among up to `par.threads()`
/// tasks, each running `samples` on its range: the first task overwrites
/// `dweight`, the others partial sums, added in at the end.
fn weight_grad_tasks(
    s: &Conv2d,
    dweight: &mut [f32],
    par: Par,
    samples: impl Fn(Range<usize>, &mut [f32], Par) + Sync,
) {
    let tasks = par.threads().min(s.n);
    if tasks <= 1 {
        return samples(0..s.n, dweight, par);
    }
    let wlen = s.weight_len();
    let range = |t: usize| t * s.n / tasks..(t + 1) * s.n / tasks;
    with_partials((tasks - 1) * wlen, |partials| {
        rayon::join(
            || samples(range(0), dweight, Par::Seq),
            || {
                partials.par_chunks_mut(wlen).enumerate().for_each(|(t, part)| {
                    samples(range(t + 1), part, Par::Seq);
                })
            },
        );
        for part in partials.chunks_exact(wlen) {
            for (d, &p) in dweight.iter_mut().zip(part) {
                *d += p;
            }
        }
    });
}

/// `y = act(conv(x, weight) + bias)`.
///
/// Samples run in parallel on the rayon pool when `par` is `Rayon` and the
/// batch has more than one sample; a single sample parallelises its GEMMs.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    conv2d_forward_using(s.forward_algo(), s, x, weight, bias, activation, y, par)
}

/// [`conv2d_forward`] by `algo` rather than the one the shape picks, to
/// compare them; an `algo` that cannot compute this shape is an error.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_using(
    algo: ConvAlgo,
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_forward";
    s.check_forward(OP, x, weight, bias, y)?;
    let algorithm = applicable(OP, algo, s, Pass::Forward)?;
    if s.n > 0 {
        algorithm.forward(s, x, weight, bias, activation, y, par);
    }
    Ok(())
}

/// [`conv2d_forward`] with bf16 operands and f32 sums where they pay
/// ([`Conv2d::bf16_pays`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_bf16(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    conv2d_forward_using(s.bf16_or(s.forward_algo()), s, x, weight, bias, activation, y, par)
}

/// `algo`'s implementation, if it computes `pass` of `s`.
fn applicable(
    op: &'static str,
    algo: ConvAlgo,
    s: &Conv2d,
    pass: Pass,
) -> Result<&'static dyn ConvAlgorithm, ConvError> {
    let algorithm = algo.algorithm();
    if algorithm.applies(s, pass) {
        Ok(algorithm)
    } else {
        Err(ConvError::unsupported(op, algo, s))
    }
}

/// `dx = conv_transpose(dy, weight)`: the gradient of the input. With
/// `relu_mask` (the forward output of a ReLU that fed this conv), `dx` is
/// zeroed where the mask is `≤ 0`, fusing that ReLU's backward.
pub fn conv2d_backward_data(
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    conv2d_backward_data_using(s.backward_data_algo(), s, dy, weight, relu_mask, dx, par)
}

/// [`conv2d_backward_data`] with bf16 operands and f32 sums where they pay
/// ([`Conv2d::bf16_pays`]).
pub fn conv2d_backward_data_bf16(
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    conv2d_backward_data_using(s.bf16_or(s.backward_data_algo()), s, dy, weight, relu_mask, dx, par)
}

/// [`conv2d_backward_data`] by `algo` rather than the one the shape picks;
/// an `algo` that cannot compute this shape is an error.
pub fn conv2d_backward_data_using(
    algo: ConvAlgo,
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_data";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len(OP, "relu_mask", m.len(), s.input_len())?;
    }
    let algorithm = applicable(OP, algo, s, Pass::BackwardData)?;
    if s.n > 0 {
        algorithm.backward_data(s, dy, weight, relu_mask, dx, par);
    }
    Ok(())
}

/// `dweight = Σ_samples dy · im2col(x)ᵀ`, and `dbias = Σ dy` over samples
/// and positions. Both are overwritten, not accumulated into.
pub fn conv2d_backward_weights(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), ConvError> {
    conv2d_backward_weights_using(s.backward_weights_algo(), s, x, dy, dweight, dbias, par)
}

/// [`conv2d_backward_weights`] with bf16 operands and f32 sums where they
/// pay ([`Conv2d::bf16_pays`]); the bias gradient is summed in f32.
pub fn conv2d_backward_weights_bf16(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), ConvError> {
    conv2d_backward_weights_using(
        s.bf16_or(s.backward_weights_algo()),
        s,
        x,
        dy,
        dweight,
        dbias,
        par,
    )
}

/// [`conv2d_backward_weights`] by `algo` rather than the one the shape
/// picks; an `algo` that cannot compute this shape is an error.
pub fn conv2d_backward_weights_using(
    algo: ConvAlgo,
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv2d_backward_weights";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    let algorithm = applicable(OP, algo, s, Pass::BackwardWeights)?;
    let plane = s.out_plane();
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), s.o)?;
        db.fill(0.0);
        for dy in dy.chunks(s.o * plane) {
            for (d, row) in db.iter_mut().zip(dy.chunks_exact(plane)) {
                *d += crate::reduce::sum(row);
            }
        }
    }
    if s.n == 0 {
        dweight.fill(0.0);
    } else {
        algorithm.backward_weights(s, x, dy, dweight, par);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_listed_under_their_own_names() {
        for algorithm in ALGORITHMS {
            assert_eq!(algorithm.algo().algorithm().name(), algorithm.name());
        }
    }
}
