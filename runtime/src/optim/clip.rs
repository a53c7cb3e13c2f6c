//! Gradient clipping by the global norm, as `torch.nn.utils.clip_grad_norm_`:
//! the L2 norm of every learnable tensor's gradient taken together, and the
//! gradients scaled by `max_norm / (norm + 1e-6)` when that is below 1.
//!
//! Both passes are memory-bound: the sum of squares keeps eight running
//! sums (a reduction the compiler vectorises, which one sum is not), added
//! up in f64 per block; the scaling is a plain loop; tensors large enough
//! are split across the pool.

/// PyTorch's guard against dividing by a zero norm.
const EPS: f64 = 1e-6;

/// The global L2 norm of `grads`; if it exceeds `max_norm`, scales every
/// gradient by `max_norm / (norm + 1e-6)`. Returns the norm before
/// clipping, as PyTorch does. A non-finite norm scales by NaN, as
/// PyTorch's `clamp(max_norm / (norm + 1e-6), max=1)` does.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: f64) -> f64 {
    let norm = global_norm(grads.iter().map(|g| &**g));
    let coef = max_norm / (norm + EPS);
    let clamped = if coef.is_nan() { coef } else { coef.min(1.0) };
    if clamped != 1.0 {
        let scale = clamped as f32;
        for g in grads.iter_mut() {
            crate::par::each(g, |block| {
                for v in block {
                    *v *= scale;
                }
            });
        }
    }
    norm
}

/// `√(Σ_t Σ_i g_t[i]²)` over the tensors.
pub fn global_norm<'a>(grads: impl IntoIterator<Item = &'a [f32]>) -> f64 {
    grads.into_iter().map(sum_of_squares).sum::<f64>().sqrt()
}

fn sum_of_squares(g: &[f32]) -> f64 {
    const LANES: usize = 8;
    const BLOCK: usize = 512 * LANES;
    let mut total = 0.0f64;
    for block in g.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let (whole, tail) = block.as_chunks::<LANES>();
        for lanes in whole {
            for (a, &v) in acc.iter_mut().zip(lanes) {
                *a += v * v;
            }
        }
        for (a, &v) in acc.iter_mut().zip(tail) {
            *a += v * v;
        }
        total += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
    }
    total
}
