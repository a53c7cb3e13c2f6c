//! `--augment`: the standard CIFAR augmentation, a random crop of the
//! image padded by 4 pixels (with black) followed by a horizontal flip
//! with probability one half, as torchvision's `RandomCrop(size,
//! padding=4)` and `RandomHorizontalFlip()`. The draw depends only on
//! (seed, epoch, sample), so a run, and a resumed one, sees the same images.

use super::rng::Rng;
use super::Dataset;

/// Keeps augmentation's random stream apart from the others drawn from
/// the same seed.
const STREAM: u64 = 0x4155_475f_4d45_4e54;

/// The padding of the random crop, in pixels.
pub const PAD: usize = 4;

/// One sample's draw: the crop's offset into the padded image and whether
/// to flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

impl Draw {
    pub fn new(seed: u64, epoch: u64, sample: u64) -> Self {
        let mut rng = Rng::new(seed ^ STREAM, epoch, sample);
        let dy = rng.below(2 * PAD + 1);
        let dx = rng.below(2 * PAD + 1);
        Draw { dy, dx, flip: rng.next() & 1 == 1 }
    }
}

/// Whether samples of `shape` are images that can be cropped and flipped.
pub fn check(shape: [usize; 3], what: &str) -> Result<(), String> {
    let [c, h, w] = shape;
    if h > 1 && w > 1 {
        Ok(())
    } else {
        Err(format!(
            "--augment crops and flips images; {what} hold samples of shape [{c}, {h}, {w}]"
        ))
    }
}

/// Writes sample `index` of `data`, augmented by `draw`, into `out`.
pub fn apply(data: &Dataset, index: usize, draw: Draw, out: &mut [f32]) {
    let [channels, h, w] = data.shape;
    let src = data.image(index);
    for c in 0..channels {
        let black = data.black(c);
        let plane = &src[c * h * w..(c + 1) * h * w];
        let out = &mut out[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            // Row y of the crop is row y + dy - PAD of the image.
            let sy = (y + draw.dy).checked_sub(PAD).filter(|&sy| sy < h);
            for x in 0..w {
                let cx = if draw.flip { w - 1 - x } else { x };
                let sx = (cx + draw.dx).checked_sub(PAD).filter(|&sx| sx < w);
                out[y * w + x] = match (sy, sx) {
                    (Some(sy), Some(sx)) => plane[sy * w + sx],
                    _ => black,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Normalization;

    /// One 2-channel 3x3 image whose values are 1..=18.
    fn data() -> Dataset {
        Dataset::new((1..=18).map(|v| v as f32).collect(), vec![0], [2, 3, 3])
    }

    #[test]
    fn the_identity_draw_copies_and_a_flip_mirrors() {
        let d = data();
        let mut out = vec![0.0; 18];
        apply(&d, 0, Draw { dy: PAD, dx: PAD, flip: false }, &mut out);
        assert_eq!(out, d.images);
        apply(&d, 0, Draw { dy: PAD, dx: PAD, flip: true }, &mut out);
        let want: Vec<f32> = [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10, 15, 14, 13, 18, 17, 16]
            .map(|v| v as f32)
            .to_vec();
        assert_eq!(out, want);
    }

    #[test]
    fn a_shifted_crop_pads_with_black() {
        // One row down and two columns right of center: the crop's first
        // row is the image's second, and its last two columns are padding.
        let mut d = data();
        d.normalization = Some(Normalization { mean: vec![0.5, 0.25], std: vec![0.5, 0.5] });
        let mut out = vec![0.0; 18];
        apply(&d, 0, Draw { dy: PAD + 1, dx: PAD + 2, flip: false }, &mut out);
        let (b0, b1) = (-1.0, -0.5);
        let want = [6.0, b0, b0, 9.0, b0, b0, b0, b0, b0, 15.0, b1, b1, 18.0, b1, b1, b1, b1, b1];
        assert_eq!(out, want);
        // Flipped, the padding is on the left.
        apply(&d, 0, Draw { dy: PAD, dx: PAD + 2, flip: true }, &mut out);
        assert_eq!(&out[..3], [b0, b0, 3.0]);
    }

    #[test]
    fn draws_are_deterministic_and_varied() {
        let draws: Vec<Draw> = (0..200).map(|i| Draw::new(7, 3, i)).collect();
        assert_eq!(draws, (0..200).map(|i| Draw::new(7, 3, i)).collect::<Vec<_>>());
        assert_ne!(draws, (0..200).map(|i| Draw::new(8, 3, i)).collect::<Vec<_>>());
        assert_ne!(draws, (0..200).map(|i| Draw::new(7, 4, i)).collect::<Vec<_>>());
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!((70..130).contains(&flips), "{flips} flips in 200");
        for offset in 0..=2 * PAD {
            assert!(draws.iter().any(|d| d.dx == offset) && draws.iter().any(|d| d.dy == offset));
        }
        assert!(draws.iter().all(|d| d.dx <= 2 * PAD && d.dy <= 2 * PAD));
    }

    #[test]
    fn only_images_are_augmented() {
        assert!(check([3, 32, 32], "x").is_ok());
        let e = check([1, 1, 4], "the CSV file").unwrap_err();
        assert!(e.contains("[1, 1, 4]") && e.contains("--augment"), "{e}");
    }
}
