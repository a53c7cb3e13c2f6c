//! ndarray views in and out of generated models: a model's `forward_view`
//! and `train_step_view` take an `ArrayView` of shape `[n, INPUT...]` in
//! any memory layout, checked here, and return owned arrays.
//!
//! `ndarray` is re-exported so that generated code (and its users) name the
//! same version as the runtime.

pub use ndarray;

use crate::error::Error;
use ndarray::{ArrayD, ArrayView, CowArray, Dimension, IxDyn};

/// `x` in standard (row-major, contiguous) layout, borrowed when it already
/// is and copied when not, after checking that its shape is `[n, sample...]`.
pub fn samples<'a, D: Dimension>(
    x: &'a ArrayView<'_, f32, D>,
    sample: &[usize],
    tensor: &'static str,
) -> Result<CowArray<'a, f32, D>, Error> {
    if x.ndim() != sample.len() + 1 || x.shape()[1..] != *sample {
        return Err(Error::Shape { tensor, expected: sample.to_vec(), found: x.shape().to_vec() });
    }
    Ok(x.as_standard_layout())
}

/// The values of a standard-layout array, in order. (An array that is not
/// contiguous gives an empty slice, which the model reports as a length
/// error; [`samples`] never returns one.)
pub fn flat<'b, D: Dimension>(x: &'b CowArray<'_, f32, D>) -> &'b [f32] {
    x.as_slice().unwrap_or(&[])
}

/// A zeroed `[n, sample...]` output.
pub fn output(n: usize, sample: &[usize]) -> ArrayD<f32> {
    let mut shape = Vec::with_capacity(sample.len() + 1);
    shape.push(n);
    shape.extend_from_slice(sample);
    ArrayD::zeros(IxDyn(&shape))
}

/// The values of an owned standard-layout output, to write into.
pub fn flat_mut(out: &mut ArrayD<f32>) -> &mut [f32] {
    out.as_slice_mut().unwrap_or(&mut [])
}
