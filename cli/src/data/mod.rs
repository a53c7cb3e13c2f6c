//! Datasets for `netc train` and `netc eval`: the embedded synthetic digits,
//! MNIST-format IDX files, CIFAR-10 binary files, folders of images and CSV
//! tables, all validated so that a truncated or wrong file is an error
//! naming the file and the problem; the held-out split, augmentation and
//! the batch loader that feeds the training loop.

pub mod augment;
pub mod cifar;
pub mod csv;
pub mod folder;
pub mod idx;
pub mod loader;
mod rng;
mod sources;
pub mod split;
pub mod synth;

pub use sources::{check_fit, load, DataArgs};

use std::fmt;
use std::path::PathBuf;

/// Samples as f32 of `shape` each, with class labels: images in `[0, 1]`
/// unless `normalization` says how they were mapped from there.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub shape: [usize; 3],
    pub normalization: Option<Normalization>,
}

/// The per-channel map `(v - mean) / std` applied to values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Samples of `shape`, not normalised.
    pub fn new(images: Vec<f32>, labels: Vec<u8>, shape: [usize; 3]) -> Self {
        Dataset { images, labels, shape, normalization: None }
    }

    /// The value a black pixel has in channel `c`: what padding fills with.
    pub fn black(&self, c: usize) -> f32 {
        self.normalization.as_ref().map_or(0.0, |n| -n.mean[c] / n.std[c])
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.sample_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            normalization: self.normalization.clone(),
        }
    }

    /// Classes: one more than the largest label.
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&l| usize::from(l) + 1)
    }

    /// The first `count` samples.
    pub fn truncate(&mut self, count: usize) {
        let count = count.min(self.len());
        self.images.truncate(count * self.sample_len());
        self.labels.truncate(count);
    }
}

/// A dataset file that cannot be used, and why.
#[derive(Debug)]
pub struct DataError {
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for DataError {}

/// Reads a file, decompressing it when its name ends in `.gz`.
pub fn read_maybe_gz(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read as _;
    let err = |problem: String| DataError { path: path.to_path_buf(), problem };
    let raw = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| err(format!("not valid gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
