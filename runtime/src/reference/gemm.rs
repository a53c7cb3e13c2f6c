//! The reference GEMM: the definition, accumulated in f64.

use crate::gemm::{Epilogue, MatRef};

/// `C = epilogue(alpha·A·B + beta·C)` by the definition, C row-major `m x n`.
/// `beta == 0` ignores C's old contents, even NaN. An epilogue's SGD step is
/// not part of this definition: tests check it against [`crate::optim::Sgd`].
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: &mut [f32],
    epilogue: &Epilogue<'_>,
) {
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| f64::from(a.at(i, p)) * f64::from(b.at(p, j))).sum();
            let old = if beta == 0.0 { 0.0 } else { f64::from(beta) * f64::from(c[i * n + j]) };
            c[i * n + j] = epilogue.value((f64::from(alpha) * dot + old) as f32, i, j);
        }
    }
}
