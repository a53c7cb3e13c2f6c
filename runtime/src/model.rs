//! The interface every generated network of one input and a loss
//! implements, so that a program (the `netc` command among them) can
//! train, evaluate, save and load any network without knowing its type.
//!
//! The generated inherent methods stay the fast, statically shaped API;
//! this trait works on flat slices and is object-safe, so a model can live
//! in a `Box<dyn Model>` chosen at run time.

use std::path::Path;

use crate::nn::Optimizer;
use crate::pass::GradientsReady;
use crate::profile::{Profile, Slot, StepProfile};
use crate::schedule::Schedule;
use crate::weights::WeightsFile;
use crate::Error;

/// What the loss compares the network's output with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// One class index per sample, below `classes` (cross-entropy).
    Labels { classes: usize },
    /// `len` values per sample, of the scored tensor's shape (mse, BCE,
    /// smooth L1, Huber).
    Values { len: usize },
}

/// A batch's targets, of the model's [`TargetKind`].
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    Labels(&'a [u32]),
    Values(&'a [f32]),
}

/// A callback given each tensor's name, shape and values.
pub type TensorVisitor<'a> = dyn FnMut(&str, &[usize], &[f32]) + 'a;

/// A generated network of one input, with a loss.
pub trait Model: Send + Sync {
    /// The network's name in its `.net` file.
    fn name(&self) -> &'static str;
    /// The shape of one input sample, such as `[1, 28, 28]`.
    fn input_shape(&self) -> &'static [usize];
    /// The shape of one output sample.
    fn output_shape(&self) -> &'static [usize];
    /// What the loss is computed against.
    fn target_kind(&self) -> TargetKind;
    /// Learnable parameters.
    fn param_count(&self) -> usize;
    /// Multiply-accumulates of one sample's forward pass.
    fn macs_per_sample(&self) -> u64;
    /// The largest batch a call accepts.
    fn capacity(&self) -> usize;
    /// The optimizer of the `.net` file, if it names one.
    fn default_optimizer(&self) -> Option<Optimizer>;
    /// The learning-rate schedule of the `.net` file, if it names one.
    fn default_schedule(&self) -> Option<Schedule>;
    /// Inference on `n` samples (`x.len() / input length`), writing `n`
    /// output samples into `out`.
    fn predict(&self, x: &[f32], out: &mut [f32]) -> Result<(), Error>;
    /// The training forward and backward passes on a batch: writes the
    /// batch's outputs into `outputs` and returns the mean loss. The
    /// gradients wait for [`Model::apply_gradients`].
    fn forward_backward(
        &mut self,
        x: &[f32],
        targets: Targets<'_>,
        outputs: &mut [f32],
    ) -> Result<f32, Error>;
    /// [`Model::forward_backward`], handing each learned tensor's gradient
    /// to `ready` (by its index in [`Model::gradients_mut`]) as soon as
    /// the backward pass has finished it, last layers first, so that a
    /// data-parallel trainer can sum it across processes while the rest
    /// are computed. Every gradient is handed over once per call.
    fn forward_backward_streaming(
        &mut self,
        x: &[f32],
        targets: Targets<'_>,
        outputs: &mut [f32],
        ready: Option<&mut GradientsReady<'_>>,
    ) -> Result<f32, Error>;
    /// A whole training step (forward, backward and `opt`'s update) on the
    /// fastest path the network has (data-parallel shards, SGD fused into
    /// the backward pass); returns the mean loss and, for class labels,
    /// how many samples were predicted right before the update.
    fn train_step(
        &mut self,
        x: &[f32],
        targets: Targets<'_>,
        opt: &Optimizer,
    ) -> Result<(f32, u64), Error>;
    /// One optimizer step with the gradients of the last backward pass.
    fn apply_gradients(&mut self, opt: &Optimizer) -> Result<(), Error>;
    /// Writes the parameters (and batch-norm statistics) as safetensors.
    fn save(&self, path: &Path) -> Result<(), Error>;
    /// Reads parameters written by [`Model::save`] or by PyTorch under the
    /// same names; on an error the model is unchanged.
    fn load(&mut self, path: &Path) -> Result<(), Error>;
    /// Reads the parameters from an open file that may hold more tensors
    /// (a checkpoint's optimizer state), leaving those to the caller; on
    /// an error the model is unchanged.
    fn load_from(&mut self, file: &mut WeightsFile) -> Result<(), Error>;
    /// The optimizer's state (momentum or moments), its kind and the step
    /// count, for checkpoints.
    fn optimizer_state(&self) -> (&[f32], u8, u64);
    /// Restores what [`Model::optimizer_state`] gave.
    fn set_optimizer_state(&mut self, state: &[f32], kind: u8, step: u64) -> Result<(), Error>;
    /// Every parameter tensor: name, shape, values.
    fn visit_params(&self, f: &mut TensorVisitor<'_>);
    /// The gradients of the learned tensors that the last backward pass
    /// left for [`Model::apply_gradients`], in the order of
    /// [`Model::visit_params`]; empty before the first backward pass. A
    /// data-parallel trainer sums them across processes in between.
    fn gradients_mut(&mut self) -> Vec<&mut [f32]>;
    /// Numbers the samples of the coming training passes from `first` in
    /// the whole batch, which keys their dropout masks: a data-parallel
    /// rank training on samples `first..` of each batch draws their masks,
    /// whatever the number of ranks.
    fn set_first_sample(&mut self, first: u64);
    /// The tensors that are not learned (batch norm's running statistics),
    /// in the order of [`Model::visit_params`], for a data-parallel trainer
    /// to average across processes.
    fn buffers_mut(&mut self) -> Vec<&mut [f32]>;

    /// The batch norm that has one value per channel in a sample (over
    /// `[C]` or `[C, 1, 1]`), if there is one: the model refuses to train
    /// on a batch of one sample, which would give it no variance.
    fn single_value_batch_norm(&self) -> Option<&'static str> {
        None
    }

    /// Where the training passes record per-layer times, and the layers'
    /// names; `None` for a model whose passes do not mark their layers.
    fn profile_slot(&mut self) -> Option<Slot<'_>> {
        None
    }

    /// [`Model::forward_backward`] with each layer's steps timed: the same
    /// kernels on the same values, so the loss, outputs and gradients are
    /// those of the plain call. `None` if the model cannot be profiled.
    fn profile_forward_backward(
        &mut self,
        x: &[f32],
        targets: Targets<'_>,
        outputs: &mut [f32],
    ) -> Result<Option<StepProfile>, Error> {
        let Some(slot) = self.profile_slot() else { return Ok(None) };
        *slot.profile = Some(Profile::default());
        let loss = self.forward_backward(x, targets, outputs);
        let Some(Slot { layers, profile }) = self.profile_slot() else { return Ok(None) };
        // Detached before `?`, so that an error leaves later calls unprofiled.
        let profile = profile.take().unwrap_or_default();
        Ok(Some(StepProfile::new(loss?, layers, &profile)))
    }

    /// Values of one input sample.
    fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Values of one output sample.
    fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }
}

/// `x` as whole samples of `N` values, or the length error naming `tensor`.
pub fn samples<'a, const N: usize>(
    op: &'static str,
    tensor: &'static str,
    x: &'a [f32],
) -> Result<&'a [[f32; N]], Error> {
    let (chunks, rest) = x.as_chunks::<N>();
    if rest.is_empty() {
        Ok(chunks)
    } else {
        Err(Error::Len(crate::LenError { op, tensor, expected: chunks.len() * N, found: x.len() }))
    }
}
