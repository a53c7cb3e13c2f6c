//! Helpers shared by the training-kernel tests: deterministic fills,
//! tolerant comparison and central differences in f64.
#![allow(dead_code)]

pub mod conv;

/// A deterministic pseudo-random fill in [lo, hi).
pub fn fill(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// `|got − want| ≤ abs + rel·|want|` everywhere, written so a NaN fails.
pub fn check_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    abs: f32,
    rel: f32,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= abs + rel * w.abs();
        if !ok {
            return Err(format!("{what}[{i}] = {g}, expected {w}"));
        }
    }
    Ok(())
}

/// Like [`check_close`], panicking.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    check_close(what, got, want, abs, rel).unwrap_or_else(|e| panic!("{e}"));
}

/// The gradient of the f64 scalar function `f` at `x` by central
/// differences with step `h`.
pub fn central_diff(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + h;
            let up = f(&x);
            x[i] = orig - h;
            let down = f(&x);
            x[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `∂(Σ dy·f(x))/∂x` by central differences with step `h`: the gradient a
/// backward kernel computes from the output gradient `dy`.
pub fn central_diff_vjp(x: &[f64], dy: &[f64], h: f64, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    central_diff(|x| f(x).iter().zip(dy).map(|(y, g)| y * g).sum(), x, h)
}

/// Compares a kernel's f32 gradient with a finite-difference f64 one.
pub fn assert_grad(what: &str, got: &[f32], want: &[f64], abs: f64, rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (f64::from(g) - w).abs() <= abs + rel * w.abs();
        assert!(ok, "{what}[{i}] = {g}, finite differences give {w}");
    }
}

pub fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&x| f64::from(x)).collect()
}
