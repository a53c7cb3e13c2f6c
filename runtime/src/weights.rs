//! Weights files in the safetensors format, with the tensor names and
//! layouts of a PyTorch `state_dict`, so that weights move between netc and
//! PyTorch unchanged.
//!
//! Saving writes a temporary file beside the target, flushes it to disk and
//! renames it over the target: a crash leaves either the old file or the new
//! one, never half of either. Loading checks every tensor's presence, dtype
//! and shape, and reports tensors in the file that the model does not have.

use crate::error::Error;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

/// Writes `tensors` (name, shape, values) to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Vec<usize>, &[f32])]) -> Result<(), Error> {
    save_with_metadata(path, tensors, &[])
}

/// [`save`] with `metadata` (key, value) in the file's header, so that one
/// file can hold a whole training checkpoint: weights, optimizer state and
/// progress, written together or not at all.
pub fn save_with_metadata(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &[(String, String)],
) -> Result<(), Error> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), data)
            .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let metadata = (!metadata.is_empty()).then(|| metadata.iter().cloned().collect());
    let encoded =
        safetensors::serialize(views, &metadata).map_err(|e| Error::Weights(e.to_string()))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encoded)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io(e)
    })
}

/// A weights file read into memory, handing out its tensors by name.
#[derive(Debug)]
pub struct WeightsFile {
    bytes: Vec<u8>,
    path: String,
    taken: BTreeSet<String>,
}

impl WeightsFile {
    /// Reads and validates the file's header.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Weights(format!("cannot read `{shown}`: {e}")))?;
        SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::Weights(format!("`{shown}` is not a valid safetensors file: {e}"))
        })?;
        Ok(WeightsFile { bytes, path: shown, taken: BTreeSet::new() })
    }

    /// The header's metadata value of `key`, if it has one.
    pub fn metadata(&self, key: &str) -> Option<String> {
        let (_, header) = SafeTensors::read_metadata(&self.bytes).ok()?;
        header.metadata().as_ref()?.get(key).cloned()
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let st = SafeTensors::deserialize(&self.bytes).ok()?;
        let view = st.tensor(name).ok()?;
        Some(view.shape().to_vec())
    }

    /// Copies tensor `name` into `out`, checking its dtype and `shape`.
    pub fn read_into(&mut self, name: &str, shape: &[usize], out: &mut [f32]) -> Result<(), Error> {
        let st =
            SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Weights(e.to_string()))?;
        let view = st
            .tensor(name)
            .map_err(|_| Error::Weights(format!("`{}` has no tensor `{name}`", self.path)))?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` is {:?}, expected F32",
                self.path,
                view.dtype()
            )));
        }
        if view.shape() != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has shape {:?}, expected {shape:?}",
                self.path,
                view.shape()
            )));
        }
        let data = view.data();
        if data.len() != out.len() * 4 {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has {} bytes",
                self.path,
                data.len()
            )));
        }
        for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.taken.insert(name.to_string());
        Ok(())
    }

    /// Fails if the file holds tensors that were never read: a file for a
    /// different architecture must not load silently. PyTorch's
    /// `num_batches_tracked` counters are accepted and ignored.
    pub fn finish(self) -> Result<(), Error> {
        let st =
            SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Weights(e.to_string()))?;
        let mut unknown: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| !self.taken.contains(n.as_str()) && !n.ends_with("num_batches_tracked"))
            .cloned()
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(first) => Err(Error::Weights(format!(
                "`{}` has {} tensor(s) the model does not have, such as `{first}`",
                self.path,
                unknown.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "netc-weights-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn round_trip_and_checks() {
        let path = dir().join("w.safetensors");
        let a = [1.0f32, -2.5, 3.25, 0.0];
        save(&path, &[("fc.weight".into(), vec![2, 2], &a), ("fc.bias".into(), vec![2], &a[..2])])
            .expect("save");
        let mut f = WeightsFile::open(&path).expect("open");
        let mut out = [0.0f32; 4];
        f.read_into("fc.weight", &[2, 2], &mut out).expect("read");
        assert_eq!(out, a);
        let err = f.read_into("fc.bias", &[3], &mut [0.0; 3]).unwrap_err().to_string();
        assert!(err.contains("fc.bias") && err.contains("shape"), "{err}");
        let err = f.read_into("conv.weight", &[1], &mut [0.0; 1]).unwrap_err().to_string();
        assert!(err.contains("conv.weight"), "{err}");
        let err = f.finish().unwrap_err().to_string();
        assert!(err.contains("fc.bias"), "unread tensors are reported: {err}");
    }

    #[test]
    fn metadata_travels_with_the_tensors() {
        let path = dir().join("meta.safetensors");
        let meta = [("netc.epoch".to_string(), "3".to_string())];
        save_with_metadata(&path, &[("w".into(), vec![1], &[2.0])], &meta).expect("save");
        let f = WeightsFile::open(&path).expect("open");
        assert_eq!(f.metadata("netc.epoch").as_deref(), Some("3"));
        assert_eq!(f.metadata("absent"), None);
        save(&path, &[("w".into(), vec![1], &[2.0])]).expect("save");
        assert_eq!(WeightsFile::open(&path).expect("open").metadata("netc.epoch"), None);
    }

    #[test]
    fn corrupt_file_is_an_error_and_save_keeps_the_old_file_on_failure() {
        let d = dir();
        let path = d.join("bad.safetensors");
        std::fs::write(&path, b"not a safetensors file").expect("write");
        let err = WeightsFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors"), "{err}");
        // Saving into a directory that does not exist fails without
        // touching anything else.
        let good = d.join("good.safetensors");
        save(&good, &[("w".into(), vec![1], &[1.0])]).expect("save");
        assert!(
            save(&d.join("missing/dir/x.safetensors"), &[("w".into(), vec![1], &[2.0])]).is_err()
        );
        let mut f = WeightsFile::open(&good).expect("old file intact");
        let mut v = [0.0];
        f.read_into("w", &[1], &mut v).expect("read");
        assert_eq!(v, [1.0]);
    }
}
