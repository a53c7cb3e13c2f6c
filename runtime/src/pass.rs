//! What the step sequences of a generated model work with: the buffers of
//! one pass ([`Pass`]), parameters that one caller may change and shards
//! only share ([`ParamsRef`]), and the SGD step that a weight gradient may
//! take as it is computed ([`FusedSgd`]). Each sequence is emitted once, as
//! a function over these, and called by the whole-batch and the sharded
//! training step alike.

use crate::arena::{split, ArenaError, Views};
use crate::dropout::MaskKey;
use crate::error::{Error, LenError};
use crate::optim::Sgd;
use crate::profile::{Profile, Profiler};

/// A generated model's per-sample buffers for up to `capacity` samples:
/// the activation arena, the max-pool argmax indices, and batch norm's
/// saved statistics; and the profile its passes time their layers into,
/// when one is attached.
///
/// Nothing is allocated until the first pass ([`Memory::pass`] or
/// [`Memory::allocate`]), so a model that only ever runs inference never
/// holds its training buffers.
#[derive(Debug)]
pub struct Memory {
    pub arena: crate::arena::Arena,
    pub argmax: Vec<u32>,
    pub stats: Vec<f32>,
    pub capacity: usize,
    pub profile: Option<Profile>,
    /// Floats and indices per sample, and statistics in all, that the
    /// buffers take once allocated.
    sizes: (usize, usize, usize),
}

impl Memory {
    /// Buffers of `arena` floats and `argmax` indices per sample, and
    /// `stats` statistics, allocated (zeroed) by the first pass.
    pub fn new(capacity: usize, arena: usize, argmax: usize, stats: usize) -> Self {
        Memory {
            arena: crate::arena::Arena::zeros(0),
            argmax: Vec::new(),
            stats: Vec::new(),
            capacity,
            profile: None,
            sizes: (arena, argmax, stats),
        }
    }

    /// Allocates the buffers for `capacity` samples, if they are not yet;
    /// returns whether it did.
    pub fn allocate(&mut self) -> bool {
        let (arena, argmax, stats) = self.sizes;
        let (arena, argmax) =
            (arena.saturating_mul(self.capacity), argmax.saturating_mul(self.capacity));
        if (self.arena.len(), self.argmax.len(), self.stats.len()) == (arena, argmax, stats) {
            return false;
        }
        if self.arena.len() != arena {
            self.arena = crate::arena::Arena::zeros(arena);
        }
        self.argmax.resize(argmax, 0);
        self.stats.resize(stats, 0.0);
        true
    }

    /// Grows the buffers to hold `n` samples, if they hold fewer.
    pub fn grow_to(&mut self, n: usize) {
        self.capacity = self.capacity.max(n);
        self.allocate();
    }

    /// Bytes the buffers hold now.
    pub fn allocated_bytes(&self) -> usize {
        4 * (self.arena.len() + self.argmax.len() + self.stats.len())
    }

    /// The profile the passes time their layers into, and the layers'
    /// names (a model's `LAYERS`).
    pub fn profile_slot(&mut self, layers: &'static str) -> crate::profile::Slot<'_> {
        crate::profile::Slot { layers, profile: &mut self.profile }
    }

    /// The buffers as a pass over `n` samples at training step `step` of a
    /// model seeded with `seed` sees them, allocated first if they are not.
    pub fn pass(&mut self, n: usize, masks: MaskKey) -> Pass<'_> {
        self.allocate();
        let mut pass = Pass::new(
            n,
            self.capacity,
            &mut self.arena[..],
            &mut self.argmax,
            &mut self.stats,
            masks,
        );
        pass.profiler = Profiler::new(self.profile.as_mut());
        pass
    }
}

/// Runs `f` on this thread's inference buffers of one model type (`slot`,
/// a `thread_local!` of the generated code), made or grown to hold `n`
/// samples of `sizes` (as [`Memory::new`] takes them).
///
/// This is how `forward(&self)` runs on a model shared between threads:
/// each thread has its own buffers, kept between calls, so the hot path
/// takes no lock and allocates nothing once the buffers are big enough. A
/// call made while another is running on the same thread (a pool thread
/// that picked up a second inference while waiting for its first) finds
/// the slot empty and makes buffers of its own; the larger are kept.
pub fn with_workspace<R>(
    slot: &'static std::thread::LocalKey<std::cell::Cell<Option<Memory>>>,
    n: usize,
    sizes: (usize, usize, usize),
    f: impl FnOnce(&mut Memory) -> R,
) -> R {
    let taken = slot.with(|s| s.take());
    let mut memory = taken.unwrap_or_else(|| Memory::new(n, sizes.0, sizes.1, sizes.2));
    memory.grow_to(n);
    let result = f(&mut memory);
    slot.with(|s| {
        let keep = match s.take() {
            Some(other) if other.capacity > memory.capacity => other,
            _ => memory,
        };
        s.set(Some(keep));
    });
    result
}

/// Frees this thread's inference buffers of one model type (see
/// [`with_workspace`]); the next inference on the thread makes them again.
pub fn release_workspace(slot: &'static std::thread::LocalKey<std::cell::Cell<Option<Memory>>>) {
    slot.with(|s| s.set(None));
}

/// What a generated model holds, in bytes, by purpose
/// (`memory_usage`). The inference buffers are per thread and not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Parameters and buffers (the `state_dict`).
    pub params: usize,
    /// Conv weights prepared for inference (packed or transformed).
    pub prepared: usize,
    /// Gradients, allocated by the first backward pass.
    pub grads: usize,
    /// The optimizer's state, allocated by the first update.
    pub optimizer: usize,
    /// The training activations and shards' gradients, allocated by the
    /// first training step.
    pub training: usize,
}

impl MemoryUsage {
    pub fn total(&self) -> usize {
        self.params + self.prepared + self.grads + self.optimizer + self.training
    }
}

/// An optimizer's state as a model keeps it between steps: its values
/// (per learnable parameter, as many as the optimizer needs) and the kind
/// of optimizer they belong to (`Optimizer::kind`, 0 for none yet).
#[derive(Debug, Default)]
pub struct OptimizerState {
    pub values: Vec<f32>,
    pub kind: u8,
}

impl OptimizerState {
    /// Zeroes the state if it belongs to another kind of optimizer (or
    /// none yet), for `learnable` parameters; returns its values per
    /// parameter.
    pub fn reset_for(&mut self, opt: &crate::nn::Optimizer, learnable: usize) -> usize {
        let k = opt.state_per_param();
        if self.kind != opt.kind() || self.values.len() != k * learnable {
            self.values = crate::nn::zeroed_state(k * learnable);
            self.kind = opt.kind();
        }
        k
    }

    /// Restores a state that [`Self::values`] and [`Self::kind`] held, for
    /// `learnable` parameters; one that cannot fit is an error.
    pub fn restore(&mut self, values: &[f32], kind: u8, learnable: usize) -> Result<(), Error> {
        if !crate::nn::Optimizer::state_fits(kind, values.len(), learnable) {
            return Err(Error::Weights(format!(
                "optimizer state of {} values and kind {kind} does not fit {learnable} parameters",
                values.len()
            )));
        }
        self.values.clear();
        self.values.extend_from_slice(values);
        self.kind = kind;
        Ok(())
    }
}

/// The buffers of one pass over `n` samples.
#[derive(Debug)]
pub struct Pass<'a> {
    pub n: usize,
    pub arena: Regions<'a>,
    pub argmax: Regions<'a, u32>,
    pub stats: &'a mut [f32],
    /// What keys the pass's dropout masks.
    pub masks: MaskKey,
    /// Samples whose largest logit is their label, counted by a
    /// classification loss as it runs, so a training step can report its
    /// accuracy without keeping the logits.
    pub correct: u64,
    /// Where the training passes mark the end of each layer's steps.
    pub profiler: Profiler<'a>,
    /// Who the backward pass hands each finished gradient to, if anyone.
    pub ready: Ready<'a>,
}

/// Takes learned tensors' gradients as the backward pass finishes them:
/// each as `(index, values)`, its index in the order of
/// [`crate::model::Model::gradients_mut`]. A data-parallel trainer starts
/// summing them across processes while the rest are computed.
pub type GradientsReady<'a> = dyn FnMut(&[(usize, &[f32])]) + Send + 'a;

/// A pass's taker of finished gradients: none unless a caller asks.
#[derive(Default)]
pub struct Ready<'a>(Option<&'a mut GradientsReady<'a>>);

impl<'a> Ready<'a> {
    pub fn new(ready: &'a mut GradientsReady<'a>) -> Self {
        Ready(Some(ready))
    }

    /// Hands the gradients the backward pass has just finished (and will
    /// not write again) to the taker, if there is one.
    #[inline]
    pub fn give(&mut self, finished: &[(usize, &[f32])]) {
        if let Some(ready) = self.0.as_mut() {
            ready(finished);
        }
    }
}

impl std::fmt::Debug for Ready<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Ready(taker)" } else { "Ready(none)" })
    }
}

impl<'a> Pass<'a> {
    /// A pass over `n` samples in a model's buffers, laid out for `cap`.
    pub fn new(
        n: usize,
        cap: usize,
        arena: &'a mut [f32],
        argmax: &'a mut [u32],
        stats: &'a mut [f32],
        masks: MaskKey,
    ) -> Self {
        Pass {
            n,
            arena: Regions::new(arena, n, cap),
            argmax: Regions::new(argmax, n, cap),
            stats,
            masks,
            correct: 0,
            profiler: Profiler::default(),
            ready: Ready::default(),
        }
    }
}

/// The activation arena of a model of capacity `cap`, as a pass over `n`
/// samples sees it: tensor regions are given per sample.
#[derive(Debug)]
pub struct Regions<'a, T = f32> {
    arena: &'a mut [T],
    n: usize,
    cap: usize,
}

impl<'a, T> Regions<'a, T> {
    pub fn new(arena: &'a mut [T], n: usize, cap: usize) -> Self {
        Regions { arena, n, cap }
    }

    /// A batch over the capacity would lay tensors over one another.
    fn check_batch(&self) -> Result<(), ArenaError> {
        if self.n > self.cap {
            return Err(ArenaError(format!("{} samples in buffers for {}", self.n, self.cap)));
        }
        Ok(())
    }

    fn range(&self, offset: usize, len: usize) -> Result<std::ops::Range<usize>, ArenaError> {
        self.check_batch()?;
        let start = offset.saturating_mul(self.cap);
        let end = start.saturating_add(len.saturating_mul(self.n));
        if end > self.arena.len() {
            return Err(ArenaError(format!(
                "region {start}..{end} outside a buffer of {}",
                self.arena.len()
            )));
        }
        Ok(start..end)
    }

    /// The region at per-sample `(offset, len)`, to read.
    pub fn get(&self, offset: usize, len: usize) -> Result<&[T], ArenaError> {
        let r = self.range(offset, len)?;
        Ok(&self.arena[r])
    }

    /// The region at per-sample `(offset, len)`, for as long as the buffer
    /// is borrowed: how a method returns a pass's outputs.
    pub fn take(self, offset: usize, len: usize) -> Result<&'a mut [T], ArenaError> {
        let r = self.range(offset, len)?;
        Ok(&mut self.arena[r])
    }

    /// The region at per-sample `(offset, len)`, to write.
    pub fn get_mut(&mut self, offset: usize, len: usize) -> Result<&mut [T], ArenaError> {
        let r = self.range(offset, len)?;
        Ok(&mut self.arena[r])
    }
}

impl Regions<'_, f32> {
    /// Views of the tensors at per-sample `(offset, length)`: tensor `t`
    /// of `len` values a sample lives at `[offset·cap, offset·cap + n·len)`.
    /// Reads are shared, writes exclusive ([`crate::arena::split`]).
    pub fn split<const R: usize, const W: usize>(
        &mut self,
        reads: [(usize, usize); R],
        writes: [(usize, usize); W],
    ) -> Result<Views<'_, R, W>, ArenaError> {
        let (n, cap) = (self.n, self.cap);
        let region =
            |(offset, len): (usize, usize)| (offset.saturating_mul(cap), len.saturating_mul(n));
        split(self.arena, reads.map(region), writes.map(region))
    }
}

/// Parameters as a backward pass sees them: its own, which a fused SGD
/// step may change, or shared with other shards, read only.
#[derive(Debug)]
pub enum ParamsRef<'a, P> {
    Exclusive(&'a mut P),
    Shared(&'a P),
}

impl<P> ParamsRef<'_, P> {
    /// The parameters to change, if they are this pass's own.
    pub fn exclusive(&mut self) -> Option<&mut P> {
        match self {
            ParamsRef::Exclusive(p) => Some(p),
            ParamsRef::Shared(_) => None,
        }
    }
}

impl<P> std::ops::Deref for ParamsRef<'_, P> {
    type Target = P;

    fn deref(&self) -> &P {
        match self {
            ParamsRef::Exclusive(p) => p,
            ParamsRef::Shared(p) => p,
        }
    }
}

/// An SGD step taken inside the GEMMs of the weight gradients, and the
/// optimizer state it updates (one momentum value per parameter, or none).
#[derive(Debug)]
pub struct FusedSgd<'a> {
    pub sgd: &'a Sgd,
    pub state: &'a mut [f32],
}

impl FusedSgd<'_> {
    /// The state of the learnable values `offset..offset + len`.
    pub fn state(&mut self, offset: usize, len: usize) -> &mut [f32] {
        // Out of range only if the state was sized for another model: an
        // empty slice, which the kernel then reports as a length error.
        let k = usize::from(self.sgd.momentum != 0.0);
        self.state.get_mut(offset * k..(offset + len) * k).unwrap_or_default()
    }
}

/// Where a weight gradient goes: stored in the gradients, or taken at once
/// as an SGD step of the weights (which then never store it).
#[derive(Debug)]
pub enum WeightGrad<'a> {
    Store(&'a mut [f32]),
    Step { weights: &'a mut [f32], state: &'a mut [f32], sgd: &'a Sgd },
}

impl<'a> WeightGrad<'a> {
    /// A step of `weights` where the pass owns them and has a fused SGD
    /// step to take (`learnable` locates their optimizer state); else the
    /// gradient is stored in `grad`.
    pub fn new(
        fused: Option<&'a mut FusedSgd<'_>>,
        weights: Option<&'a mut [f32]>,
        grad: &'a mut [f32],
        learnable: (usize, usize),
    ) -> Self {
        match (fused, weights) {
            (Some(fused), Some(weights)) => {
                let sgd = fused.sgd;
                WeightGrad::Step { weights, state: fused.state(learnable.0, learnable.1), sgd }
            }
            _ => WeightGrad::Store(grad),
        }
    }
}

/// The batch of the inputs `(length, name)`, each `per_sample[i]` values a
/// sample: every input holds the same number of whole samples, at most
/// `capacity`.
pub fn batch_of(
    inputs: &[(usize, &'static str)],
    per_sample: &[usize],
    capacity: usize,
) -> Result<usize, Error> {
    let mut batch = None;
    for (&(len, tensor), &per) in inputs.iter().zip(per_sample) {
        let n = len / per.max(1);
        let expected = match batch {
            Some(b) => b * per,
            None if len % per.max(1) != 0 => (n + 1) * per,
            None => len,
        };
        if expected != len {
            return Err(Error::Len(LenError { op: "input", tensor, expected, found: len }));
        }
        batch = Some(n);
    }
    let n = batch.unwrap_or(0);
    if n > capacity {
        return Err(Error::BatchOverCapacity { batch: n, capacity });
    }
    Ok(n)
}

/// A kernel's shape, which a generated model keeps as a constant for any
/// batch and sets the batch of at each call.
pub trait Batched: Copy {
    fn with_batch(self, n: usize) -> Self;
}

/// `shape` for a batch of `n`.
pub fn batch<S: Batched>(shape: S, n: usize) -> S {
    shape.with_batch(n)
}

macro_rules! batched {
    ($($ty:ty),*) => {$(
        impl Batched for $ty {
            fn with_batch(self, n: usize) -> Self {
                Self { n, ..self }
            }
        }
    )*};
}

batched!(
    crate::conv::Conv2d,
    crate::conv_transpose::ConvTranspose2d,
    crate::pool::Pool2d,
    crate::pool::AdaptivePool2d,
    crate::upsample::Upsample2d,
    crate::dense::Dense,
    crate::norm::Lrn,
    crate::norm::BatchNorm,
    crate::sample_norm::LayerNorm,
    crate::sample_norm::GroupNorm,
    crate::permute::Permute,
    crate::elementwise::ChannelScale
);

/// A conv's shape, batch 0, from `[c, h, w, o, kh, kw, sh, sw, ph, pw, dh,
/// dw, groups]`: the one-line form in which generated code keeps its
/// layers' shapes.
pub const fn conv2d(d: [usize; 13]) -> crate::conv::Conv2d {
    let [c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups] = d;
    crate::conv::Conv2d { n: 0, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups }
}

/// A transposed conv's shape, batch 0, from `[c, h, w, o, kh, kw, sh, sw,
/// ph, pw, oph, opw, dh, dw, groups]`.
pub const fn conv_transpose2d(d: [usize; 15]) -> crate::conv_transpose::ConvTranspose2d {
    let [c, h, w, o, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw, groups] = d;
    crate::conv_transpose::ConvTranspose2d {
        n: 0,
        c,
        h,
        w,
        o,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        oph,
        opw,
        dh,
        dw,
        groups,
    }
}

/// A pooling window's shape, batch 0, from `[c, h, w, kh, kw, sh, sw, ph, pw]`,
/// with PyTorch's defaults: floor mode, padding counted in an average.
pub const fn pool2d(d: [usize; 9]) -> crate::pool::Pool2d {
    pool2d_modes(d, false, true)
}

/// [`pool2d`] with PyTorch's `ceil_mode` and `count_include_pad`.
pub const fn pool2d_modes(
    d: [usize; 9],
    ceil_mode: bool,
    count_include_pad: bool,
) -> crate::pool::Pool2d {
    let [c, h, w, kh, kw, sh, sw, ph, pw] = d;
    crate::pool::Pool2d { n: 0, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad }
}

/// An adaptive pooling's shape, batch 0, from `[c, h, w, oh, ow]`.
pub const fn adaptive_pool2d(d: [usize; 5]) -> crate::pool::AdaptivePool2d {
    let [c, h, w, oh, ow] = d;
    crate::pool::AdaptivePool2d { n: 0, c, h, w, oh, ow }
}

/// An upsampling's shape, batch 0, from `[c, h, w, sh, sw]`.
pub const fn upsample2d(d: [usize; 5]) -> crate::upsample::Upsample2d {
    let [c, h, w, sh, sw] = d;
    crate::upsample::Upsample2d { n: 0, c, h, w, sh, sw }
}

/// A dense layer's shape, batch 0.
pub const fn dense(input: usize, output: usize) -> crate::dense::Dense {
    crate::dense::Dense { n: 0, input, output }
}

/// An LRN's shape, batch 0, over `c` channels of `inner` values each.
pub const fn lrn(
    c: usize,
    inner: usize,
    size: usize,
    alpha: f32,
    beta: f32,
    k: f32,
) -> crate::norm::Lrn {
    crate::norm::Lrn { n: 0, c, h: inner, w: 1, size, alpha, beta, k }
}

/// A batch norm's shape, batch 0, over `c` channels of `inner` values each.
pub const fn batch_norm(c: usize, inner: usize, eps: f32, momentum: f32) -> crate::norm::BatchNorm {
    crate::norm::BatchNorm { n: 0, c, h: inner, w: 1, eps, momentum }
}

/// A layer norm's shape, batch 0: `rows` rows of `len` values a sample.
pub const fn layer_norm(rows: usize, len: usize, eps: f32) -> crate::sample_norm::LayerNorm {
    crate::sample_norm::LayerNorm { n: 0, rows, len, eps }
}

/// A group norm's shape, batch 0, over `c` channels of `inner` values each.
pub const fn group_norm(
    c: usize,
    inner: usize,
    groups: usize,
    eps: f32,
) -> crate::sample_norm::GroupNorm {
    crate::sample_norm::GroupNorm { n: 0, c, inner, groups, eps }
}

/// A permutation's shape, batch 0: the sample's `dims` and the input axis
/// of each output axis, `rank` of each used (the rest are padding).
pub const fn permute(
    rank: usize,
    dims: [usize; crate::permute::MAX_RANK],
    perm: [usize; crate::permute::MAX_RANK],
) -> crate::permute::Permute {
    crate::permute::Permute { n: 0, rank, dims, perm }
}

/// A per-channel product's shape, batch 0, over `c` channels of `inner`.
pub const fn channel_scale(c: usize, inner: usize) -> crate::elementwise::ChannelScale {
    crate::elementwise::ChannelScale { n: 0, c, inner }
}
