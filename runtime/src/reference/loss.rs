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

/// `F.cross_entropy(logits, labels, weight, label_smoothing=eps)` and its
/// gradient, from the definition: log-softmax, the weighted negative
/// log-likelihood of the labels and the weighted mean over classes of
/// `−log p`, both divided by the labels' total weight.
pub fn softmax_cross_entropy_with(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[usize],
    eps: f64,
    weight: Option<&[f32]>,
) -> (f64, Vec<f32>) {
    let w = |c: usize| weight.map_or(1.0, |w| f64::from(w[c]));
    let total_weight: f64 = labels.iter().map(|&l| w(l)).sum();
    let c = classes as f64;
    let (mut nll, mut smooth) = (0.0, 0.0);
    let mut grad = vec![0.0; batch * classes];
    for n in 0..batch {
        let row: Vec<f64> =
            logits[n * classes..(n + 1) * classes].iter().map(|&x| f64::from(x)).collect();
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
        let log_p: Vec<f64> = row.iter().map(|&x| x - lse).collect();
        let y = labels[n];
        nll -= w(y) * log_p[y];
        smooth -= (0..classes).map(|k| w(k) * log_p[k]).sum::<f64>();
        // d(−log p_k)/dx_j = p_j − [j = k].
        for j in 0..classes {
            let p = log_p[j].exp();
            let d_nll = w(y) * (p - if j == y { 1.0 } else { 0.0 });
            let d_smooth: f64 =
                (0..classes).map(|k| w(k) * (p - if j == k { 1.0 } else { 0.0 })).sum();
            grad[n * classes + j] =
                (((1.0 - eps) * d_nll + eps / c * d_smooth) / total_weight) as f32;
        }
    }
    ((1.0 - eps) * nll / total_weight + eps / c * smooth / total_weight, grad)
}

/// `F.binary_cross_entropy_with_logits(x, t, pos_weight=pw)` (mean) and its
/// gradient, from `−[pw·t·log σ(x) + (1 − t)·log(1 − σ(x))]`, with
/// `pos_weight[j % len]` for element `j` of a sample of `features`.
pub fn bce_with_logits(
    features: usize,
    x: &[f32],
    t: &[f32],
    pos_weight: Option<&[f32]>,
) -> (f64, Vec<f32>) {
    let len = x.len() as f64;
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(x.len());
    for (i, (&x, &t)) in x.iter().zip(t).enumerate() {
        let (x, t) = (f64::from(x), f64::from(t));
        let pw = pos_weight.map_or(1.0, |pw| f64::from(pw[(i % features) % pw.len()]));
        let s = 1.0 / (1.0 + (-x).exp());
        loss -= pw * t * s.ln() + (1.0 - t) * (1.0 - s).ln();
        grad.push(((pw * t * (s - 1.0) + (1.0 - t) * s) / len) as f32);
    }
    (loss / len, grad)
}

/// `F.smooth_l1_loss(y, t, beta=beta)` (mean) and its gradient; `beta = 0`
/// is the L1 loss.
pub fn smooth_l1(y: &[f32], t: &[f32], beta: f64) -> (f64, Vec<f32>) {
    let len = y.len() as f64;
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(y.len());
    for (&y, &t) in y.iter().zip(t) {
        let d = f64::from(y) - f64::from(t);
        if d.abs() < beta {
            loss += 0.5 * d * d / beta;
            grad.push((d / beta / len) as f32);
        } else {
            loss += d.abs() - 0.5 * beta;
            let sign = if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            };
            grad.push((sign / len) as f32);
        }
    }
    (loss / len, grad)
}

/// `F.huber_loss(y, t, delta=delta)` (mean) and its gradient.
pub fn huber(y: &[f32], t: &[f32], delta: f64) -> (f64, Vec<f32>) {
    let len = y.len() as f64;
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(y.len());
    for (&y, &t) in y.iter().zip(t) {
        let d = f64::from(y) - f64::from(t);
        if d.abs() < delta {
            loss += 0.5 * d * d;
            grad.push((d / len) as f32);
        } else {
            loss += delta * (d.abs() - 0.5 * delta);
            grad.push((delta * d.signum() / len) as f32);
        }
    }
    (loss / len, grad)
}
