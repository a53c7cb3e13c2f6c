//! Contiguous f32 reductions shared by the pooling and normalisation kernels.
//!
//! Each keeps eight independent partial sums: the compiler turns them into one
//! vector register, and splitting a long sum eight ways also keeps its
//! rounding error far below that of one running f32 total.

const LANES: usize = 8;

/// Folds the lanes pairwise, then adds the tail.
#[inline(always)]
fn fold(acc: [f32; LANES], tail: f32) -> f32 {
    let a = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (a[0] + a[2]) + (a[1] + a[3]) + tail
}

/// `Σ x`.
#[inline]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    fold(acc, tail)
}

/// `Σ (x - mean)²`: the two-pass variance, which unlike `Σx² - m·mean²`
/// cannot cancel to a negative number.
#[inline]
pub(crate) fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            let d = v - mean;
            *a += d * d;
        }
    }
    fold(acc, tail)
}

/// `Σ dy·(x - mean)`, over the shorter of the two slices.
#[inline]
pub(crate) fn dot_dev(dy: &[f32], x: &[f32], mean: f32) -> f32 {
    let len = dy.len().min(x.len());
    let (dy, x) = (&dy[..len], &x[..len]);
    let mut acc = [0.0f32; LANES];
    let dyc = dy.chunks_exact(LANES);
    let xc = x.chunks_exact(LANES);
    let tail: f32 = dyc.remainder().iter().zip(xc.remainder()).map(|(&g, &v)| g * (v - mean)).sum();
    for (g, v) in dyc.zip(xc) {
        for ((a, &g), &v) in acc.iter_mut().zip(g).zip(v) {
            *a += g * (v - mean);
        }
    }
    fold(acc, tail)
}
