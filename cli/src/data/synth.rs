//! The embedded default dataset: handwritten-style digits drawn on the fly
//! from stroke templates, so that `netc train` needs no download.
//!
//! Each digit is a few polylines in a unit box. A sample jitters the
//! template's points, applies a random affine map (rotation, scale, shear,
//! translation), draws the strokes with a random width and anti-aliased
//! edges through a smooth random (elastic) displacement field, and adds
//! noise. Everything derives from `(seed, split, index)`, so a sample is the
//! same on every run and machine, and the train and test splits never share
//! a sample.

use super::rng::Rng;
use super::Dataset;
use rayon::prelude::*;

/// Images per split, as MNIST.
pub const TRAIN_SIZE: usize = 60_000;
pub const TEST_SIZE: usize = 10_000;
const SIDE: usize = 28;

type Stroke = &'static [(f32, f32)];

/// Stroke templates per digit, in a unit box (x right, y down).
fn template(digit: usize) -> Vec<Vec<(f32, f32)>> {
    let ellipse =
        |cx: f32, cy: f32, rx: f32, ry: f32, from: f32, to: f32, steps: usize| -> Vec<(f32, f32)> {
            (0..=steps)
                .map(|i| {
                    let t = from + (to - from) * i as f32 / steps as f32;
                    (cx + rx * t.cos(), cy + ry * t.sin())
                })
                .collect()
        };
    use std::f32::consts::PI;
    let line = |s: Stroke| s.to_vec();
    match digit {
        0 => vec![ellipse(0.5, 0.5, 0.27, 0.4, 0.0, 2.0 * PI, 20)],
        1 => vec![line(&[(0.36, 0.25), (0.52, 0.1), (0.52, 0.9)])],
        2 => {
            let mut top = ellipse(0.5, 0.32, 0.24, 0.2, PI * 1.05, PI * 2.25, 10);
            top.extend([(0.25, 0.88), (0.78, 0.88)]);
            vec![top]
        }
        3 => vec![
            ellipse(0.48, 0.3, 0.23, 0.19, PI * 1.15, PI * 2.45, 10),
            ellipse(0.48, 0.69, 0.26, 0.21, PI * 1.55, PI * 2.85, 12),
        ],
        4 => vec![line(&[(0.64, 0.9), (0.64, 0.1), (0.2, 0.64), (0.82, 0.64)])],
        5 => {
            let mut s = vec![(0.74, 0.12), (0.32, 0.12), (0.29, 0.46)];
            s.extend(ellipse(0.48, 0.66, 0.25, 0.22, PI * 1.3, PI * 2.75, 12));
            vec![s]
        }
        6 => {
            let mut s = vec![(0.68, 0.12), (0.45, 0.3)];
            s.extend(ellipse(0.5, 0.67, 0.23, 0.22, PI * 1.15, PI * 3.15, 16));
            vec![s]
        }
        7 => vec![line(&[(0.2, 0.12), (0.8, 0.12), (0.42, 0.9)])],
        8 => vec![
            ellipse(0.5, 0.3, 0.19, 0.18, 0.0, 2.0 * PI, 14),
            ellipse(0.5, 0.7, 0.23, 0.21, 0.0, 2.0 * PI, 16),
        ],
        _ => {
            let mut s = ellipse(0.49, 0.33, 0.21, 0.2, 0.0, 2.0 * PI, 16);
            s.extend([(0.7, 0.35), (0.62, 0.9)]);
            vec![s]
        }
    }
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (qx * qx + qy * qy).sqrt()
}

/// Draws sample `index` of `split` (0 train, 1 test) into `out` (28·28
/// values in `[0, 1]`); returns its label.
pub fn draw(seed: u64, split: u64, index: u64, out: &mut [f32]) -> u8 {
    let mut rng = Rng::new(seed, split, index);
    let digit = (rng.next() % 10) as usize;
    // A random affine map from the unit box to pixel coordinates.
    let angle = rng.range(-0.3, 0.3);
    let (sx, sy) = (rng.range(0.7, 1.05), rng.range(0.75, 1.05));
    let shear = rng.range(-0.35, 0.35);
    let (tx, ty) = (rng.range(-0.1, 0.1), rng.range(-0.08, 0.08));
    let (cos, sin) = (angle.cos(), angle.sin());
    let jitter = 0.035;
    let strokes: Vec<Vec<(f32, f32)>> = template(digit)
        .into_iter()
        .map(|s| {
            s.into_iter()
                .map(|(x, y)| {
                    let (x, y) = (
                        x + rng.range(-jitter, jitter) - 0.5,
                        y + rng.range(-jitter, jitter) - 0.5,
                    );
                    let (x, y) = (sx * (x + shear * y), sy * y);
                    let (x, y) = (cos * x - sin * y + tx, sin * x + cos * y + ty);
                    ((x + 0.5) * 20.0 + 4.0, (y + 0.5) * 20.0 + 4.0)
                })
                .collect()
        })
        .collect();
    let width = rng.range(1.0, 2.6);
    // Elastic distortion: a smooth displacement field of a few waves.
    let waves: Vec<(f32, f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.range(0.1, 0.35),
                rng.range(0.1, 0.35),
                rng.range(0.0, std::f32::consts::TAU),
                rng.range(-1.4, 1.4),
            )
        })
        .collect();
    let noise = rng.range(0.02, 0.12);
    let ink = rng.range(0.75, 1.0);
    for (i, px) in out.iter_mut().enumerate() {
        let (x, y) = ((i % SIDE) as f32 + 0.5, (i / SIDE) as f32 + 0.5);
        let (mut dx, mut dy) = (0.0, 0.0);
        for &(fx, fy, phase, amp) in &waves {
            dx += amp * (fx * y + phase).sin();
            dy += amp * (fy * x + phase * 1.3).cos();
        }
        let p = (x + dx, y + dy);
        let d = strokes
            .iter()
            .flat_map(|s| s.windows(2).map(move |w| segment_distance(p, w[0], w[1])))
            .fold(f32::INFINITY, f32::min);
        let v = ink * (1.0 - (d - width * 0.5)).clamp(0.0, 1.0);
        *px = (v + noise * rng.normal()).clamp(0.0, 1.0);
    }
    digit as u8
}

/// A split, drawn in parallel.
pub fn generate(seed: u64, train: bool, count: usize) -> Dataset {
    let split = u64::from(!train);
    let mut images = vec![0.0f32; count * SIDE * SIDE];
    let labels: Vec<u8> = images
        .par_chunks_mut(SIDE * SIDE)
        .enumerate()
        .map(|(i, img)| draw(seed, split, i as u64, img))
        .collect();
    Dataset::new(images, labels, [1, SIDE, SIDE])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct_per_split() {
        let (mut a, mut b, mut c) = (vec![0.0; 784], vec![0.0; 784], vec![0.0; 784]);
        let la = draw(1, 0, 5, &mut a);
        let lb = draw(1, 0, 5, &mut b);
        draw(1, 1, 5, &mut c);
        assert_eq!((la, &a), (lb, &b));
        assert_ne!(a, c, "train and test samples differ");
    }

    #[test]
    fn every_class_appears_and_images_have_ink() {
        let d = generate(7, true, 500);
        for class in 0..10 {
            assert!(d.labels.iter().filter(|&&l| l == class).count() > 20, "class {class}");
        }
        for img in d.images.chunks(784) {
            let ink = img.iter().filter(|&&v| v > 0.5).count();
            assert!((15..500).contains(&ink), "ink {ink}");
        }
    }
}
