//! MNIST and Fashion-MNIST in the IDX format (raw or gzip): a big-endian
//! header with a magic number (`0x0803` images, `0x0801` labels) and the
//! dimensions, then unsigned bytes.

use super::{read_maybe_gz, DataError, Dataset};
use std::path::{Path, PathBuf};

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Parses an IDX file with `rank` dimensions and the given magic; returns
/// the dimensions and the data bytes.
fn parse(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    rank: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let err = |problem: String| DataError { path: path.to_path_buf(), problem };
    let found = u32_at(bytes, 0).ok_or_else(|| err("too short for an IDX header".into()))?;
    if found != magic as usize {
        return Err(err(format!("wrong magic number 0x{found:08x}, expected 0x{magic:08x}")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32_at(bytes, 4 + 4 * i).ok_or_else(|| err("header ends before its dimensions".into()))
        })
        .collect::<Result<_, _>>()?;
    let header = 4 + 4 * rank;
    // A corrupt header's dimensions can overflow their product.
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| err(format!("header dimensions {dims:?} overflow")))?;
    let data = &bytes[header.min(bytes.len())..];
    if data.len() != expected {
        return Err(err(format!(
            "holds {} data bytes, but its header {dims:?} needs {expected} (truncated?)",
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

/// The path of `name` in `dir`, raw or `.gz`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(DataError { path: dir.join(name), problem: "not found (nor with .gz)".into() })
}

/// Reads an images file and a labels file into a dataset.
pub fn load_pair(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    pair_from_bytes(images, &read_maybe_gz(images)?, labels, &read_maybe_gz(labels)?)
}

/// The (decompressed) bytes of an images file and a labels file as a
/// dataset; the paths name the files in errors.
pub fn pair_from_bytes(
    images: &Path,
    image_bytes: &[u8],
    labels: &Path,
    label_bytes: &[u8],
) -> Result<Dataset, DataError> {
    let (dims, pixels) = parse(images, image_bytes, 0x0803, 3)?;
    let (ldims, labels_bytes) = parse(labels, label_bytes, 0x0801, 1)?;
    if ldims[0] != dims[0] {
        return Err(DataError {
            path: labels.to_path_buf(),
            problem: format!(
                "has {} labels for {} images in `{}`",
                ldims[0],
                dims[0],
                images.display()
            ),
        });
    }
    if let Some((i, l)) = labels_bytes.iter().enumerate().find(|(_, &l)| l > 9) {
        return Err(DataError {
            path: labels.to_path_buf(),
            problem: format!("label {l} of sample {i} is not a digit class"),
        });
    }
    Ok(Dataset::new(
        pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        labels_bytes,
        [1, dims[1], dims[2]],
    ))
}

/// MNIST's four files in `dir`: (train, test).
pub fn load_dir(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let train =
        load_pair(&find(dir, "train-images-idx3-ubyte")?, &find(dir, "train-labels-idx1-ubyte")?)?;
    let test =
        load_pair(&find(dir, "t10k-images-idx3-ubyte")?, &find(dir, "t10k-labels-idx1-ubyte")?)?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary folder")
    }

    #[test]
    fn reads_raw_and_gzip_files() {
        let folder = dir();
        let d = folder.path();
        let pixels: Vec<u8> = (0..2 * 4 * 4).map(|i| i as u8 * 8).collect();
        std::fs::write(d.join("train-images-idx3-ubyte"), idx(0x0803, &[2, 4, 4], &pixels))
            .expect("write");
        std::fs::write(d.join("train-labels-idx1-ubyte"), idx(0x0801, &[2], &[3, 9]))
            .expect("write");
        // The test split gzip-compressed.
        let gz = |bytes: Vec<u8>| {
            use std::io::Write as _;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).expect("gzip");
            e.finish().expect("gzip")
        };
        std::fs::write(
            d.join("t10k-images-idx3-ubyte.gz"),
            gz(idx(0x0803, &[1, 4, 4], &pixels[..16])),
        )
        .expect("write");
        std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), gz(idx(0x0801, &[1], &[7])))
            .expect("write");
        let (train, test) = load_dir(d).expect("valid files");
        assert_eq!((train.len(), train.shape), (2, [1, 4, 4]));
        assert_eq!(train.labels, [3, 9]);
        assert_eq!(train.image(0)[1], 8.0 / 255.0);
        assert_eq!((test.len(), test.labels[0]), (1, 7));
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let folder = dir();
        let d = folder.path();
        let images = d.join("imgs");
        let labels = d.join("labs");
        std::fs::write(&labels, idx(0x0801, &[2], &[1, 2])).expect("write");
        // Wrong magic.
        std::fs::write(&images, idx(0x0801, &[2, 2, 2], &[0; 8])).expect("write");
        let e = load_pair(&images, &labels).unwrap_err().to_string();
        assert!(e.contains("imgs") && e.contains("magic"), "{e}");
        // Truncated data.
        std::fs::write(&images, idx(0x0803, &[2, 2, 2], &[0; 7])).expect("write");
        let e = load_pair(&images, &labels).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // Header cut short.
        std::fs::write(&images, [0u8, 0, 8]).expect("write");
        assert!(load_pair(&images, &labels).unwrap_err().to_string().contains("too short"));
        // Label count mismatch.
        std::fs::write(&images, idx(0x0803, &[3, 2, 2], &[0; 12])).expect("write");
        assert!(load_pair(&images, &labels)
            .unwrap_err()
            .to_string()
            .contains("2 labels for 3 images"));
        // A label out of range.
        std::fs::write(&images, idx(0x0803, &[2, 2, 2], &[0; 8])).expect("write");
        std::fs::write(&labels, idx(0x0801, &[2], &[1, 12])).expect("write");
        assert!(load_pair(&images, &labels).unwrap_err().to_string().contains("label 12"));
        // Missing directory contents.
        assert!(load_dir(&d.join("nowhere")).unwrap_err().to_string().contains("not found"));
        // Not gzip despite the name.
        let fake = d.join("x.gz");
        std::fs::write(&fake, b"plain").expect("write");
        assert!(read_maybe_gz(&fake).unwrap_err().to_string().contains("gzip"));
    }

    /// Corrupt files, raw and gzip-compressed, are errors, never a panic
    /// (a header whose dimensions overflow was one).
    #[test]
    fn corrupt_files_are_errors() {
        let folder = dir();
        let d = folder.path();
        let pixels: Vec<u8> = (0..2 * 3 * 5).map(|i| i as u8).collect();
        let images = idx(0x0803, &[2, 3, 5], &pixels);
        let labels = idx(0x0801, &[2], &[1, 7]);
        let (ipath, lpath) = (d.join("images"), d.join("labels"));
        std::fs::write(&lpath, &labels).expect("write");
        for bad in crate::mutate::variants(&images, 500, 1) {
            std::fs::write(&ipath, &bad).expect("write");
            if let Ok(data) = load_pair(&ipath, &lpath) {
                assert_eq!(
                    data.images.len(),
                    data.labels.len() * data.shape.iter().product::<usize>()
                );
            }
        }
        std::fs::write(&ipath, &images).expect("write");
        for bad in crate::mutate::variants(&labels, 300, 2) {
            std::fs::write(&lpath, &bad).expect("write");
            let _ = load_pair(&ipath, &lpath);
        }
        // Dimensions whose product overflows.
        let huge = idx(0x0803, &[u32::MAX, u32::MAX, u32::MAX], &pixels);
        assert!(parse(&ipath, &huge, 0x0803, 3).is_err());
        let gz_path = d.join("images.gz");
        for bad in crate::mutate::variants(&images, 100, 3) {
            use std::io::Write as _;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bad).expect("gzip");
            let gz = e.finish().expect("gzip");
            for corrupt in crate::mutate::variants(&gz, 3, bad.len() as u64) {
                std::fs::write(&gz_path, &corrupt).expect("write");
                let _ = load_pair(&gz_path, &lpath);
            }
        }
    }
}
