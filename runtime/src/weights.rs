//! Weights files in the safetensors format, with the tensor names and
//! layouts of a PyTorch `state_dict`, so that weights move between netc and
//! PyTorch unchanged.
//!
//! Saving writes a temporary file beside the target, flushes it to disk and
//! renames it over the target: a crash leaves either the old file or the new
//! one, never half of either. Loading checks every tensor's presence, dtype
//! and shape, and reports tensors in the file that the model does not have.

use crate::error::Error;
use safetensors::tensor::{Dtype, Metadata, TensorInfo, TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

/// The header entry that holds netc's metadata, one `key=value` per line.
const METADATA: &str = "netc";

/// Writes `tensors` (name, shape, values) to `path` atomically.
pub fn save(path: &Path, tensors: &[(String, Vec<usize>, &[f32])]) -> Result<(), Error> {
    save_with_metadata(path, tensors, &[])
}

/// A model's weights as PyTorch's `state_dict` has them: `tensors`, plus a
/// `num_batches_tracked` counter (int64, `steps`) beside every batch norm's
/// `running_mean`, so that `load_state_dict(strict=True)` takes the file;
/// the header names the network and netc's version.
pub fn save_model(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    steps: u64,
    network: &str,
) -> Result<(), Error> {
    let bytes = float_bytes(tensors);
    let mut views = float_views(tensors, &bytes)?;
    let count = i64::try_from(steps).unwrap_or(i64::MAX).to_le_bytes();
    for (name, _, _) in tensors {
        if let Some(layer) = name.strip_suffix(".running_mean") {
            let counter = format!("{layer}.num_batches_tracked");
            let view = TensorView::new(Dtype::I64, vec![], &count)
                .map_err(|e| Error::Weights(format!("tensor `{counter}`: {e}")))?;
            views.push((counter, view));
        }
    }
    let metadata = [
        ("netc.network".to_string(), network.to_string()),
        ("netc.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    write_views(path, views, &metadata)
}

/// [`save`] with `metadata` (key, value) in the file's header, so that one
/// file can hold a whole training checkpoint: weights, optimizer state and
/// progress, written together or not at all.
pub fn save_with_metadata(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &[(String, String)],
) -> Result<(), Error> {
    let bytes = float_bytes(tensors);
    write_views(path, float_views(tensors, &bytes)?, metadata)
}

/// The f32 tensors' bytes, little-endian, for their views to borrow.
fn float_bytes(tensors: &[(String, Vec<usize>, &[f32])]) -> Vec<Vec<u8>> {
    tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect()
}

fn float_views<'a>(
    tensors: &[(String, Vec<usize>, &[f32])],
    bytes: &'a [Vec<u8>],
) -> Result<Vec<(String, TensorView<'a>)>, Error> {
    tensors
        .iter()
        .zip(bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))
        })
        .collect()
}

/// Serialises `views` and writes them to `path` through a temporary file
/// that is flushed and renamed over the target.
fn write_views(
    path: &Path,
    views: Vec<(String, TensorView<'_>)>,
    metadata: &[(String, String)],
) -> Result<(), Error> {
    // One header entry holding every pair in the given order: safetensors
    // keeps metadata in a hash map, whose order changes from process to
    // process, and equal weights must give equal files.
    if let Some((k, v)) = metadata.iter().find(|(k, v)| k.contains(['=', '\n']) || v.contains('\n'))
    {
        return Err(Error::Weights(format!(
            "metadata `{k}` = `{v}` holds `=` in its key or a newline"
        )));
    }
    let packed: String = metadata.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let metadata =
        (!metadata.is_empty()).then(|| [(METADATA.to_string(), packed)].into_iter().collect());
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

/// An IEEE half-precision value, exactly, as f32 (every f16 is one).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Values read from disk at a time.
const CHUNK_VALUES: usize = 16 * 1024;

/// Widens little-endian `dtype` values (F32, F16 or BF16) into `out`.
fn convert(dtype: Dtype, data: &[u8], out: &mut [f32]) {
    match dtype {
        Dtype::F16 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        // bfloat16 is the top half of a float32.
        Dtype::BF16 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        _ => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
}

/// A weights file, handing out its tensors by name: on disk, read one
/// tensor at a time so that loading never holds the file and the model at
/// once, or bytes the program holds, such as weights embedded with
/// `include_bytes!`.
#[derive(Debug)]
pub struct WeightsFile<'a> {
    source: Source<'a>,
    header: Metadata,
    /// Where the tensors' data starts: after the header.
    data_start: u64,
    path: String,
    taken: BTreeSet<String>,
}

#[derive(Debug)]
enum Source<'a> {
    File(std::fs::File),
    Bytes(Cow<'a, [u8]>),
}

impl WeightsFile<'static> {
    /// Opens the file and reads and validates its header.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let cannot = |e: std::io::Error| Error::Weights(format!("cannot read `{shown}`: {e}"));
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let total = file.metadata().map_err(cannot)?.len();
        let mut length = [0u8; 8];
        file.read_exact(&mut length).map_err(|e| invalid(&shown, e))?;
        let n = u64::from_le_bytes(length);
        if n > total.saturating_sub(8) || n > MAX_HEADER {
            return Err(invalid(&shown, format!("a header of {n} bytes in a file of {total}")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(|e| invalid(&shown, e))?;
        let header = parse_header(&header, total - 8 - n).map_err(|e| invalid(&shown, e))?;
        Ok(WeightsFile {
            source: Source::File(file),
            header,
            data_start: 8 + n,
            path: shown,
            taken: BTreeSet::new(),
        })
    }
}

/// The most header bytes a file may claim, as the safetensors crate allows.
const MAX_HEADER: u64 = 100_000_000;

fn invalid(path: &str, why: impl std::fmt::Display) -> Error {
    Error::Weights(format!("`{path}` is not a valid safetensors file: {why}"))
}

/// The header's tensors, checked to tile the `data` bytes after it
/// exactly, in order, each as long as its shape and dtype make it.
fn parse_header(header: &[u8], data: u64) -> Result<Metadata, String> {
    let text = std::str::from_utf8(header).map_err(|e| format!("header: {e}"))?;
    let metadata: Metadata = serde_json::from_str(text).map_err(|e| format!("header: {e}"))?;
    let mut tensors: Vec<(String, &TensorInfo)> = metadata.tensors().into_iter().collect();
    tensors.sort_by_key(|(_, info)| info.data_offsets);
    let mut end = 0;
    for (name, info) in tensors {
        let (start, stop) = info.data_offsets;
        let elements = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let bytes = elements.and_then(|e| e.checked_mul(info.dtype.size()));
        if start != end || stop < start || bytes != Some(stop - start) {
            return Err(format!("tensor `{name}` at bytes {start}..{stop} does not fit its shape and dtype or follow the one before"));
        }
        end = stop;
    }
    if end as u64 != data {
        return Err(format!("the tensors take {end} bytes, the file holds {data}"));
    }
    Ok(metadata)
}

impl<'a> WeightsFile<'a> {
    /// Validates the header of safetensors `bytes`, which errors call
    /// `name`.
    pub fn from_bytes(bytes: Cow<'a, [u8]>, name: &str) -> Result<Self, Error> {
        let length: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid(name, "shorter than its header's length"))?;
        let n = u64::from_le_bytes(length);
        let total = bytes.len() as u64;
        if n > total - 8 || n > MAX_HEADER {
            return Err(invalid(name, format!("a header of {n} bytes in {total}")));
        }
        let header =
            parse_header(&bytes[8..8 + n as usize], total - 8 - n).map_err(|e| invalid(name, e))?;
        Ok(WeightsFile {
            source: Source::Bytes(bytes),
            header,
            data_start: 8 + n,
            path: name.to_string(),
            taken: BTreeSet::new(),
        })
    }

    /// The header's metadata value of `key`, if it has one.
    pub fn metadata(&self, key: &str) -> Option<String> {
        let packed = self.header.metadata().as_ref()?.get(METADATA)?;
        packed.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::to_string)
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.header.info(name).map(|info| info.shape.clone())
    }

    /// Every tensor's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.header.tensors().into_keys().collect();
        names.sort();
        names
    }

    /// Copies tensor `name` into `out`, checking its dtype and `shape`.
    pub fn read_into(&mut self, name: &str, shape: &[usize], out: &mut [f32]) -> Result<(), Error> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| Error::Weights(format!("`{}` has no tensor `{name}`", self.path)))?;
        let width = match info.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => {
                return Err(Error::Weights(format!(
                    "tensor `{name}` in `{}` is {other:?}; netc reads F32, F16 and BF16",
                    self.path
                )))
            }
        };
        if info.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has shape {:?}, expected {shape:?}",
                self.path, info.shape
            )));
        }
        let (start, stop) = info.data_offsets;
        if stop - start != out.len() * width {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has {} bytes for {} values",
                self.path,
                stop - start,
                out.len()
            )));
        }
        let (dtype, at) = (info.dtype, self.data_start + start as u64);
        match &mut self.source {
            Source::Bytes(bytes) => convert(dtype, &bytes[at as usize..][..stop - start], out),
            Source::File(file) => {
                let cannot = |e: std::io::Error| {
                    Error::Weights(format!("cannot read tensor `{name}` of `{}`: {e}", self.path))
                };
                file.seek(std::io::SeekFrom::Start(at)).map_err(cannot)?;
                // A chunk at a time, so that no copy of the tensor is held.
                let mut chunk = vec![0u8; CHUNK_VALUES * width];
                for values in out.chunks_mut(CHUNK_VALUES) {
                    let bytes = &mut chunk[..values.len() * width];
                    file.read_exact(bytes).map_err(cannot)?;
                    convert(dtype, bytes, values);
                }
            }
        }
        self.taken.insert(name.to_string());
        Ok(())
    }

    /// Fails if the file holds tensors that were never read: a file for a
    /// different architecture must not load silently. PyTorch's
    /// `num_batches_tracked` counters are accepted and ignored.
    pub fn finish(self) -> Result<(), Error> {
        let mut unknown: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| !self.taken.contains(n.as_str()) && !is_batch_counter(n))
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

    /// Loads the file's tensors into a model's `tensors` (each its
    /// `state_dict` name, shape and values) as `options` say, and reports
    /// what matched. On an error, `tensors` may be partly written: the
    /// generated models load into a copy of their parameters.
    pub fn load(
        &mut self,
        tensors: &mut [(&str, &[usize], &mut [f32])],
        options: &LoadOptions<'_>,
    ) -> Result<LoadReport, Error> {
        let mut report = LoadReport::default();
        // The model's name of each file tensor, after the remapping.
        let mut sources: BTreeMap<String, String> = BTreeMap::new();
        for file_name in self.names().into_iter().filter(|n| !is_batch_counter(n)) {
            let Some(model_name) =
                options.remap.as_ref().map_or(Some(file_name.clone()), |f| f(&file_name))
            else {
                report.dropped.push(file_name);
                continue;
            };
            if let Some(other) = sources.insert(model_name.clone(), file_name.clone()) {
                return Err(Error::Weights(format!(
                    "`{other}` and `{file_name}` in `{}` both map to `{model_name}`",
                    self.path
                )));
            }
        }
        for (name, shape, values) in tensors.iter_mut() {
            let Some(file_name) = sources.remove(*name) else {
                report.missing.push(name.to_string());
                continue;
            };
            let found = self.shape(&file_name).unwrap_or_default();
            if found != *shape && options.skip_mismatched {
                report.mismatched.push(Mismatch {
                    name: name.to_string(),
                    file: found,
                    model: shape.to_vec(),
                });
                continue;
            }
            self.read_into(&file_name, shape, values)?;
            report.loaded.push(name.to_string());
        }
        report.unexpected = sources.into_values().collect();
        let refused = [
            (!options.missing_ok, "lacks", &report.missing),
            (!options.unexpected_ok, "has, and the model does not,", &report.unexpected),
        ];
        let problems: Vec<String> = refused
            .into_iter()
            .filter(|(refuse, _, names)| *refuse && !names.is_empty())
            .map(|(_, what, names)| {
                let shown: Vec<String> = names.iter().take(5).map(|n| format!("`{n}`")).collect();
                let more = if names.len() > 5 { ", …" } else { "" };
                format!("the file {what} {} tensor(s): {}{more}", names.len(), shown.join(", "))
            })
            .collect();
        if !problems.is_empty() {
            return Err(Error::Weights(format!("`{}`: {}", self.path, problems.join("; "))));
        }
        Ok(report)
    }
}

/// PyTorch's batch-norm step counters, which netc writes and need not read.
pub fn is_batch_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// How [`WeightsFile::load`] matches a file's tensors to a model's.
///
/// The default, [`LoadOptions::strict`], is PyTorch's
/// `load_state_dict(strict=True)`: every tensor of the model must be in the
/// file, and every tensor of the file in the model, with the same shape.
pub struct LoadOptions<'f> {
    /// Model tensors the file lacks keep their values (reported as
    /// missing) instead of failing the load.
    pub missing_ok: bool,
    /// File tensors the model does not have are ignored (reported as
    /// unexpected) instead of failing the load.
    pub unexpected_ok: bool,
    /// A tensor whose shape differs keeps the model's values (reported as
    /// mismatched) instead of failing the load: how a new head is
    /// fine-tuned onto saved weights.
    pub skip_mismatched: bool,
    /// The model's name for each file tensor's name, or `None` to leave
    /// that tensor out (reported as dropped).
    pub remap: Option<Box<RemapFn<'f>>>,
}

/// A key-remapping function of [`LoadOptions`].
pub type RemapFn<'f> = dyn Fn(&str) -> Option<String> + 'f;

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self::strict()
    }
}

impl std::fmt::Debug for LoadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("missing_ok", &self.missing_ok)
            .field("unexpected_ok", &self.unexpected_ok)
            .field("skip_mismatched", &self.skip_mismatched)
            .field("remap", &self.remap.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl<'f> LoadOptions<'f> {
    /// Every tensor on both sides, with the same shapes.
    pub fn strict() -> Self {
        LoadOptions { missing_ok: false, unexpected_ok: false, skip_mismatched: false, remap: None }
    }

    /// PyTorch's `strict=False`: missing and unexpected tensors are
    /// reported, not refused. Shapes must still match.
    pub fn non_strict() -> Self {
        LoadOptions { missing_ok: true, unexpected_ok: true, ..Self::strict() }
    }

    /// With [`LoadOptions::skip_mismatched`] set.
    pub fn skip_mismatched(mut self) -> Self {
        self.skip_mismatched = true;
        self
    }

    /// With a key-remapping function: `f(file name)` is the model's name
    /// for that tensor, or `None` to leave it out.
    pub fn remap(mut self, f: impl Fn(&str) -> Option<String> + 'f) -> Self {
        self.remap = Some(Box::new(f));
        self
    }
}

/// What a [`WeightsFile::load`] did, by the model's tensor names (the
/// file's for `dropped` and `unexpected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Model tensors the file lacks; they keep their values.
    pub missing: Vec<String>,
    /// File tensors (by their remapped name) the model does not have.
    pub unexpected: Vec<String>,
    /// Tensors whose shapes differ; they keep the model's values.
    pub mismatched: Vec<Mismatch>,
    /// File tensors the remapping left out.
    pub dropped: Vec<String>,
}

/// A tensor whose shape in the file is not the model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub name: String,
    pub file: Vec<usize>,
    pub model: Vec<usize>,
}

impl LoadReport {
    /// Whether every tensor of the model was loaded, and nothing else
    /// was in the file.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tensor(s) loaded", self.loaded.len())?;
        let lists = [
            ("missing", &self.missing),
            ("unexpected", &self.unexpected),
            ("dropped", &self.dropped),
        ];
        for (what, names) in lists {
            if !names.is_empty() {
                write!(f, "; {what}: {}", names.join(", "))?;
            }
        }
        for m in &self.mismatched {
            write!(f, "; `{}` kept: {:?} in the file, {:?} in the model", m.name, m.file, m.model)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary folder")
    }

    #[test]
    fn round_trip_and_checks() {
        let folder = dir();
        let path = folder.path().join("w.safetensors");
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
    fn half_precision_tensors_are_upcast_exactly() {
        let cases: [(u16, f32); 7] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x7c00, f32::INFINITY),
            (0x0000, 0.0),
        ];
        for (bits, want) in cases {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        let folder = dir();
        let path = folder.path().join("half.safetensors");
        let f16: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|h| h.to_le_bytes()).collect();
        let bf16: Vec<u8> = [0x3f80u16, 0xc040].iter().flat_map(|h| h.to_le_bytes()).collect();
        let views = vec![
            ("h".to_string(), TensorView::new(Dtype::F16, vec![2], &f16).expect("view")),
            ("b".to_string(), TensorView::new(Dtype::BF16, vec![2], &bf16).expect("view")),
        ];
        write_views(&path, views, &[]).expect("write");
        let mut f = WeightsFile::open(&path).expect("open");
        let mut out = [0.0f32; 2];
        f.read_into("h", &[2], &mut out).expect("f16");
        assert_eq!(out, [1.0, -2.0]);
        f.read_into("b", &[2], &mut out).expect("bf16");
        assert_eq!(out, [1.0, -3.0]);
    }

    #[test]
    fn models_write_batch_norm_counters_and_their_name() {
        let folder = dir();
        let path = folder.path().join("model.safetensors");
        let (mean, w) = ([0.5f32; 2], [1.0f32; 2]);
        let tensors = [
            ("bn1.weight".to_string(), vec![2], &w[..]),
            ("bn1.running_mean".to_string(), vec![2], &mean[..]),
        ];
        save_model(&path, &tensors, 7, "Net").expect("save");
        let file = WeightsFile::open(&path).expect("open");
        assert_eq!(file.metadata("netc.network").as_deref(), Some("Net"));
        assert_eq!(file.shape("bn1.num_batches_tracked"), Some(vec![]));
        let bytes = std::fs::read(&path).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
        let counter = st.tensor("bn1.num_batches_tracked").expect("counter");
        assert_eq!((counter.dtype(), counter.data()), (Dtype::I64, &7i64.to_le_bytes()[..]));
    }

    #[test]
    fn metadata_travels_with_the_tensors() {
        let folder = dir();
        let path = folder.path().join("meta.safetensors");
        let meta = [("netc.epoch".to_string(), "3".to_string())];
        save_with_metadata(&path, &[("w".into(), vec![1], &[2.0])], &meta).expect("save");
        let f = WeightsFile::open(&path).expect("open");
        assert_eq!(f.metadata("netc.epoch").as_deref(), Some("3"));
        assert_eq!(f.metadata("absent"), None);
        save(&path, &[("w".into(), vec![1], &[2.0])]).expect("save");
        assert_eq!(WeightsFile::open(&path).expect("open").metadata("netc.epoch"), None);
        // Many pairs give the same bytes every time.
        let many: Vec<(String, String)> =
            (0..20).map(|i| (format!("netc.key{i}"), i.to_string())).collect();
        save_with_metadata(&path, &[("w".into(), vec![1], &[2.0])], &many).expect("save");
        let first = std::fs::read(&path).expect("read");
        save_with_metadata(&path, &[("w".into(), vec![1], &[2.0])], &many).expect("save");
        assert_eq!(std::fs::read(&path).expect("read"), first);
        assert_eq!(
            WeightsFile::open(&path).expect("open").metadata("netc.key13").as_deref(),
            Some("13")
        );
        let bad = [("a".to_string(), "x\ny".to_string())];
        assert!(save_with_metadata(&path, &[("w".into(), vec![1], &[2.0])], &bad).is_err());
    }

    #[test]
    fn corrupt_file_is_an_error_and_save_keeps_the_old_file_on_failure() {
        let folder = dir();
        let d = folder.path();
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

    /// A file read from disk a chunk at a time gives the same values as
    /// its bytes in memory, for tensors longer than a chunk, in every
    /// dtype; a header whose offsets do not tile the data is an error.
    #[test]
    fn streamed_reads_equal_reads_from_bytes() {
        let folder = dir();
        let path = folder.path().join("streamed.safetensors");
        let long: Vec<f32> = (0..3 * CHUNK_VALUES + 17).map(|i| (i as f32).sin()).collect();
        let half: Vec<u8> =
            (0..CHUNK_VALUES + 5).flat_map(|i| (i as u16 % 0x7000).to_le_bytes()).collect();
        let long_bytes: Vec<u8> = long.iter().flat_map(|x| x.to_le_bytes()).collect();
        let views = vec![
            (
                "long".to_string(),
                TensorView::new(Dtype::F32, vec![long.len()], &long_bytes).expect("view"),
            ),
            (
                "half".to_string(),
                TensorView::new(Dtype::F16, vec![CHUNK_VALUES + 5], &half).expect("view"),
            ),
        ];
        write_views(&path, views, &[]).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let mut from_disk = WeightsFile::open(&path).expect("open");
        let mut from_bytes =
            WeightsFile::from_bytes(Cow::Borrowed(&bytes), "bytes").expect("bytes");
        for (name, len) in [("long", long.len()), ("half", CHUNK_VALUES + 5)] {
            let (mut a, mut b) = (vec![0.0; len], vec![1.0; len]);
            from_disk.read_into(name, &[len], &mut a).expect("disk");
            from_bytes.read_into(name, &[len], &mut b).expect("bytes");
            assert!(a == b, "{name}");
        }
        let mut read = vec![0.0; long.len()];
        from_disk.read_into("long", &[long.len()], &mut read).expect("again");
        assert_eq!(read, long);

        // A shape one value short: the offsets no longer fit it.
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).expect("utf-8");
        let shape = format!("\"shape\":[{}]", long.len());
        let moved = header.replacen(&shape, &format!("\"shape\":[{}]", long.len() - 1), 1);
        assert_ne!(moved, header, "the header names the shape as expected");
        let mut bad = bytes[..8].to_vec();
        bad.extend_from_slice(moved.as_bytes());
        bad.extend_from_slice(&bytes[8 + n..]);
        let err = WeightsFile::from_bytes(Cow::Owned(bad.clone()), "bad").unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let folder = dir();
        let bad_path = folder.path().join("bad-offsets.safetensors");
        std::fs::write(&bad_path, &bad).expect("write");
        assert!(WeightsFile::open(&bad_path).is_err());
        // Cut short: the data is shorter than the header says.
        std::fs::write(&bad_path, &bytes[..bytes.len() - 3]).expect("write");
        assert!(WeightsFile::open(&bad_path).unwrap_err().to_string().contains("file holds"));
    }
}
