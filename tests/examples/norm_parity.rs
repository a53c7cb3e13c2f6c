//! Checks netc's layer-norm and group-norm kernels against PyTorch: reads
//! the cases that `bench/peers/norm_parity.py` wrote, runs the forward and
//! the backward on the same input, parameters and output gradient, and
//! prints for each result the largest error relative to the largest
//! magnitude, against PyTorch's float32 and float64 results. Fails if any
//! is over 1e-5 against float64.
//!
//! `cargo run --release -p netc-tests --example norm_parity -- DIR`

use netc::runtime::nn;
use netc::runtime::pass::{batch, group_norm, layer_norm};
use netc::runtime::weights::WeightsFile;
use std::path::Path;

/// A case of `norm_parity.py`: name, layer (or group) norm, input shape,
/// normalised dims (or groups), affine, eps.
type Case = (&'static str, bool, &'static [usize], &'static [usize], bool, f32);

const CASES: &[Case] = &[
    ("ln_whole", true, &[3, 6, 5, 7], &[6, 5, 7], true, 1e-5),
    ("ln_last", true, &[3, 6, 5, 7], &[7], true, 1e-5),
    ("ln_rows", true, &[4, 33], &[33], false, 1e-3),
    ("gn_image", false, &[3, 12, 5, 7], &[4], true, 1e-5),
    ("gn_features", false, &[5, 12], &[3], true, 1e-5),
    ("gn_instance", false, &[2, 8, 3, 3], &[8], false, 1e-5),
];

const TOLERANCE: f64 = 1e-5;

fn read(file: &mut WeightsFile, name: &str) -> Vec<f32> {
    let shape = file.shape(name).unwrap_or_else(|| panic!("no `{name}` in the file"));
    let mut v = vec![0.0; shape.iter().product()];
    file.read_into(name, &shape, &mut v).unwrap_or_else(|e| panic!("{e}"));
    v
}

/// `max |a − b| / max |b|`.
fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-12);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs()))) / scale
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: norm_parity DIR");
    let mut file =
        WeightsFile::open(&Path::new(&dir).join("norm_parity.safetensors")).expect("file");
    let mut worst = 0.0f64;
    for &(case, layer, shape, arg, affine, eps) in CASES {
        let x = read(&mut file, &format!("{case}.x"));
        let dy = read(&mut file, &format!("{case}.dy"));
        let (w, b) = if affine {
            (read(&mut file, &format!("{case}.weight")), read(&mut file, &format!("{case}.bias")))
        } else {
            (Vec::new(), Vec::new())
        };
        let (wo, bo) = (affine.then_some(&w[..]), affine.then_some(&b[..]));
        let n = shape[0];
        let sample: usize = shape[1..].iter().product();
        let mut y = vec![0.0f32; x.len()];
        let mut dx = vec![0.0f32; x.len()];
        let (mut dw, mut db) = (vec![0.0f32; w.len()], vec![0.0f32; b.len()]);
        let (dwo, dbo) = (affine.then_some(&mut dw[..]), affine.then_some(&mut db[..]));
        if layer {
            let len: usize = arg.iter().product();
            let s = batch(layer_norm(sample / len, len, eps), n);
            let mut saved = vec![0.0f32; 2 * n * (sample / len)];
            nn::layer_norm_forward(&s, &x, wo, bo, Some(&mut saved), &mut y).expect("forward");
            nn::layer_norm_backward(&s, &x, wo, &saved, &dy, Some(&mut dx), dwo, dbo)
                .expect("backward");
        } else {
            let (c, groups) = (shape[1], arg[0]);
            let s = batch(group_norm(c, sample / c, groups, eps), n);
            let mut saved = vec![0.0f32; 2 * n * groups];
            nn::group_norm_forward(&s, &x, wo, bo, Some(&mut saved), &mut y).expect("forward");
            nn::group_norm_backward(&s, &x, wo, &saved, &dy, Some(&mut dx), dwo, dbo)
                .expect("backward");
        }
        let mut results = vec![("y", y), ("dx", dx)];
        if affine {
            results.extend([("dweight", dw), ("dbias", db)]);
        }
        for (key, netc) in results {
            let torch32 = read(&mut file, &format!("{case}.{key}"));
            let torch64 = read(&mut file, &format!("{case}.exact.{key}"));
            let (e32, e64) = (rel_error(&netc, &torch32), rel_error(&netc, &torch64));
            let torch_own = rel_error(&torch32, &torch64);
            println!(
                "{case:12} {key:8} vs float32 {e32:.2e}  vs float64 {e64:.2e}  (PyTorch float32 vs float64 {torch_own:.2e})"
            );
            worst = worst.max(e64);
        }
    }
    file.finish().expect("every tensor compared");
    assert!(worst <= TOLERANCE, "largest error against float64 {worst:.2e} over {TOLERANCE:e}");
    println!("all within {TOLERANCE:e} of float64");
}
