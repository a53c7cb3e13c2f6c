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

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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

/// The most bytes a `.gz` file may decompress to. Deflate packs a run of
/// zeros a thousandfold, so a small corrupt or hostile file could otherwise
/// make the reader allocate without end; the largest files netc reads
/// (MNIST's training images, CIFAR-10's batches) are far smaller.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads a file, decompressing it when its name ends in `.gz`.
pub fn read_maybe_gz(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError {
        path: path.to_path_buf(),
        problem: format!("cannot read: {e}"),
    })?;
    decode_maybe_gz(path, raw)
}

/// The bytes of a file read from `path`, decompressed when its name ends
/// in `.gz`.
pub fn decode_maybe_gz(path: &std::path::Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&raw, MAX_DECOMPRESSED)
            .map_err(|problem| DataError { path: path.to_path_buf(), problem })
    } else {
        Ok(raw)
    }
}

/// Decompresses gzip `raw`, refusing output longer than `limit` bytes.
fn gunzip(raw: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not valid gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file that inflates past the limit is refused before its
    /// output grows further.
    #[test]
    fn gzip_output_is_capped() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).expect("gzip");
        let bomb = e.finish().expect("gzip");
        assert!(bomb.len() < 4096, "{} bytes", bomb.len());
        assert_eq!(gunzip(&bomb, 1 << 20).expect("within the limit").len(), 1 << 20);
        let e = gunzip(&bomb, (1 << 20) - 1).unwrap_err();
        assert!(e.contains("more than 1048575 bytes"), "{e}");
        let e = decode_maybe_gz(std::path::Path::new("x.gz"), b"plain".to_vec()).unwrap_err();
        assert!(e.to_string().contains("`x.gz`: not valid gzip"), "{e}");
        let plain = decode_maybe_gz(std::path::Path::new("x"), b"plain".to_vec());
        assert_eq!(plain.expect("raw"), b"plain");
    }
}
