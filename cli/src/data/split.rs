//! `--val FRACTION`: a held-out evaluation split for sources without a test
//! set, stratified by class so that both parts keep the class balance, and
//! drawn from the seed alone so that every run (and `--resume`) holds out
//! the same samples.

use super::rng::Rng;
use super::Dataset;

/// Keeps the held-out split's random stream apart from the others drawn
/// from the same seed.
const STREAM: u64 = 0x5641_4c5f_5350_4c54;

/// Splits `data` into (kept, held out): in each class, `fraction` of its
/// samples (rounded, and never all of a class) chosen by `seed`. Both
/// parts keep the samples' original order; the kept part reuses `data`'s
/// memory, so only the held-out part is copied.
pub fn hold_out(mut data: Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset), String> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(format!("--val {fraction} is not a fraction between 0 and 1"));
    }
    let mut by_class = vec![Vec::new(); data.classes()];
    for (i, &label) in data.labels.iter().enumerate() {
        by_class[usize::from(label)].push(i);
    }
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for (class, mut members) in by_class.into_iter().enumerate() {
        Rng::new(seed ^ STREAM, class as u64, 0).shuffle(&mut members);
        let take = ((fraction * members.len() as f64).round() as usize)
            .min(members.len().saturating_sub(1));
        held.extend_from_slice(&members[..take]);
        kept.extend_from_slice(&members[take..]);
    }
    if held.is_empty() {
        return Err(format!(
            "--val {fraction} of {} samples holds out none: give a larger fraction",
            data.len()
        ));
    }
    kept.sort_unstable();
    held.sort_unstable();
    let held = data.select(&held);
    // In ascending order each kept sample moves down, never over one
    // still to move.
    let per = data.sample_len();
    for (to, &from) in kept.iter().enumerate() {
        data.images.copy_within(from * per..(from + 1) * per, to * per);
        data.labels[to] = data.labels[from];
    }
    data.truncate(kept.len());
    data.images.shrink_to_fit();
    Ok((data, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 samples of class 0, 50 of class 1, 10 of class 2; each image
    /// holds its own index so the split can be traced.
    fn data() -> Dataset {
        let labels: Vec<u8> = (0..160)
            .map(|i| {
                if i < 100 {
                    0
                } else if i < 150 {
                    1
                } else {
                    2
                }
            })
            .collect();
        Dataset::new((0..160).map(|i| i as f32).collect(), labels, [1, 1, 1])
    }

    #[test]
    fn holds_out_the_fraction_of_every_class() {
        let d = data();
        let (kept, held) = hold_out(d.clone(), 0.2, 5).expect("split");
        assert_eq!((kept.len(), held.len()), (128, 32));
        let count = |s: &Dataset, c: u8| s.labels.iter().filter(|&&l| l == c).count();
        assert_eq!([count(&held, 0), count(&held, 1), count(&held, 2)], [20, 10, 2]);
        // The two parts are disjoint, cover the data, and each image kept
        // its label and order.
        let mut all: Vec<f32> = kept.images.iter().chain(&held.images).copied().collect();
        assert!(kept.images.windows(2).all(|w| w[0] < w[1]));
        assert!(held.images.windows(2).all(|w| w[0] < w[1]));
        all.sort_by(f32::total_cmp);
        assert_eq!(all, d.images);
        for part in [&kept, &held] {
            for (v, &l) in part.images.iter().zip(&part.labels) {
                assert_eq!(l, d.labels[*v as usize]);
            }
        }
    }

    #[test]
    fn depends_only_on_the_seed() {
        let d = data();
        let a = hold_out(d.clone(), 0.3, 9).expect("split").1.images;
        assert_eq!(a, hold_out(d.clone(), 0.3, 9).expect("split").1.images);
        assert_ne!(a, hold_out(d.clone(), 0.3, 10).expect("split").1.images);
    }

    #[test]
    fn bad_fractions_and_tiny_sets_are_errors() {
        let d = data();
        for f in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
            assert!(hold_out(d.clone(), f, 1).unwrap_err().contains("between 0 and 1"), "{f}");
        }
        let e = hold_out(d.clone(), 0.001, 1).unwrap_err();
        assert!(e.contains("holds out none"), "{e}");
        // A class of one sample stays in the training part.
        let one = Dataset::new(vec![0.0, 1.0, 2.0], vec![0, 0, 1], [1, 1, 1]);
        let (kept, held) = hold_out(one, 0.9, 1).expect("split");
        assert_eq!((kept.labels.as_slice(), held.labels.as_slice()), (&[0, 1][..], &[0][..]));
    }
}
