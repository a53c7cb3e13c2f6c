//! CIFAR-10 in its binary format: records of one label byte and 3·32·32
//! pixel bytes (red, green and blue planes), five training files and one
//! test file.

use super::{read_maybe_gz, DataError, Dataset};
use std::path::Path;

const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses one batch file.
pub fn load_file(path: &Path) -> Result<Dataset, DataError> {
    from_bytes(path, &read_maybe_gz(path)?)
}

/// Parses the (decompressed) bytes of a batch file read from `path`.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Dataset, DataError> {
    let err = |problem: String| DataError { path: path.to_path_buf(), problem };
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(err(format!(
            "{} bytes is not a whole number of {RECORD}-byte records (truncated?)",
            bytes.len()
        )));
    }
    let mut d = Dataset::new(Vec::with_capacity(bytes.len()), Vec::new(), [3, 32, 32]);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(err(format!("record {i} has label {}, not a CIFAR-10 class", rec[0])));
        }
        d.labels.push(rec[0]);
        d.images.extend(rec[1..].iter().map(|&p| f32::from(p) / 255.0));
    }
    Ok(d)
}

/// `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin` in `dir`.
pub fn load_dir(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let mut train = Dataset::new(Vec::new(), Vec::new(), [3, 32, 32]);
    for b in 1..=5 {
        let part = load_file(&dir.join(format!("data_batch_{b}.bin")))?;
        train.images.extend(part.images);
        train.labels.extend(part.labels);
    }
    Ok((train, load_file(&dir.join("test_batch.bin"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_rejects_bad_files() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let d = tmp.path();
        let mut bytes = vec![0u8; 2 * RECORD];
        bytes[0] = 3;
        bytes[1] = 255;
        bytes[RECORD] = 9;
        let good = d.join("test_batch.bin");
        std::fs::write(&good, &bytes).expect("write");
        let data = load_file(&good).expect("valid");
        assert_eq!(data.labels, [3, 9]);
        assert_eq!(data.image(0)[0], 1.0);
        std::fs::write(&good, &bytes[..RECORD + 5]).expect("write");
        assert!(load_file(&good).unwrap_err().to_string().contains("truncated"));
        bytes[RECORD] = 10;
        std::fs::write(&good, &bytes).expect("write");
        assert!(load_file(&good).unwrap_err().to_string().contains("label 10"));
        assert!(load_dir(d).unwrap_err().to_string().contains("data_batch_1.bin"));
    }

    /// Corrupt batch files are errors or whole records, never a panic.
    #[test]
    fn corrupt_files_are_errors() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let d = tmp.path();
        let mut bytes: Vec<u8> = (0..2 * RECORD).map(|i| (i % 251) as u8).collect();
        (bytes[0], bytes[RECORD]) = (3, 9);
        let path = d.join("test_batch.bin");
        for bad in crate::mutate::variants(&bytes, 300, 4) {
            std::fs::write(&path, &bad).expect("write");
            if let Ok(data) = load_file(&path) {
                assert_eq!(data.images.len(), data.labels.len() * RECORD - data.labels.len());
            }
        }
    }
}
