//! What the step sequences of a generated model work with: the buffers of
//! one pass ([`Pass`]), parameters that one caller may change and shards
//! only share ([`ParamsRef`]), and the SGD step that a weight gradient may
//! take as it is computed ([`FusedSgd`]). Each sequence is emitted once, as
//! a function over these, and called by the whole-batch and the sharded
//! training step alike.

use crate::optim::Sgd;

/// The buffers of one pass over `n` samples, laid out for `cap`.
#[derive(Debug)]
pub struct Pass<'a> {
    pub n: usize,
    pub cap: usize,
    pub arena: &'a mut [f32],
    pub argmax: &'a mut [u32],
    pub stats: &'a mut [f32],
    /// The training step and the model's seed, which key dropout masks.
    pub step: u64,
    pub seed: u64,
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
