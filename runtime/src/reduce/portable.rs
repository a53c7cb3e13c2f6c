//! The reductions in plain Rust, for any CPU: eight independent partial
//! sums, which the compiler turns into vector registers of the baseline
//! instruction set. Also the oracle the SIMD versions are tested against.

const LANES: usize = 8;

/// Folds the lanes pairwise, then adds the tail.
#[inline(always)]
fn fold(acc: [f32; LANES], tail: f32) -> f32 {
    let a = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (a[0] + a[2]) + (a[1] + a[3]) + tail
}

/// `Σ (x - shift)`.
#[inline]
pub(super) fn sum_dev(x: &[f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| v - shift).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v - shift;
        }
    }
    fold(acc, tail)
}

/// `Σ (x - mean)²`: the two-pass variance, which unlike `Σx² - m·mean²`
/// cannot cancel to a negative number.
#[inline]
pub(super) fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
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

/// `(Σ dy, Σ dy·(x - mean))` in one pass over both slices (the shorter
/// one's length), so each is read from memory once.
#[inline]
pub(super) fn sum_and_dot_dev(dy: &[f32], x: &[f32], mean: f32) -> (f32, f32) {
    let len = dy.len().min(x.len());
    let (dy, x) = (&dy[..len], &x[..len]);
    let (mut sum, mut dot) = ([0.0f32; LANES], [0.0f32; LANES]);
    let dyc = dy.chunks_exact(LANES);
    let xc = x.chunks_exact(LANES);
    let (mut sum_tail, mut dot_tail) = (0.0f32, 0.0f32);
    for (&g, &v) in dyc.remainder().iter().zip(xc.remainder()) {
        sum_tail += g;
        dot_tail += g * (v - mean);
    }
    for (g, v) in dyc.zip(xc) {
        for l in 0..LANES {
            sum[l] += g[l];
            dot[l] += g[l] * (v[l] - mean);
        }
    }
    (fold(sum, sum_tail), fold(dot, dot_tail))
}
