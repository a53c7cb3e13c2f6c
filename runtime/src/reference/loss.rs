//! Reference losses: the formulas, sample by sample, in f64.

/// `mean_n −log softmax(logits_n)[label_n]` and its gradient
/// `(softmax − onehot)/N`, for valid labels.
pub fn softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[usize],
) -> (f64, Vec<f32>) {
    let mut loss = 0.0;
    let mut grad = vec![0.0; batch * classes];
    for n in 0..batch {
        let row: Vec<f64> =
            logits[n * classes..(n + 1) * classes].iter().map(|&x| f64::from(x)).collect();
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|&x| (x - max).exp()).sum();
        loss -= (row[labels[n]] - max) - sum.ln();
        for (k, &x) in row.iter().enumerate() {
            let p = (x - max).exp() / sum;
            let onehot = if k == labels[n] { 1.0 } else { 0.0 };
            grad[n * classes + k] = ((p - onehot) / batch as f64) as f32;
        }
    }
    (loss / batch as f64, grad)
}

/// `1/(2N) Σ (t − y)²` and its gradient `(y − t)/N`.
pub fn mse(batch: usize, y: &[f32], t: &[f32]) -> (f64, Vec<f32>) {
    let n = batch as f64;
    let loss = y.iter().zip(t).map(|(&y, &t)| (f64::from(t) - f64::from(y)).powi(2)).sum::<f64>()
        / (2.0 * n);
    let grad = y.iter().zip(t).map(|(&y, &t)| ((f64::from(y) - f64::from(t)) / n) as f32).collect();
    (loss, grad)
}
