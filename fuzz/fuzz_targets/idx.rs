//! Any bytes given as an MNIST images file and labels file (IDX, raw or
//! gzip) load as a dataset of whole samples with digit labels or give an
//! error: never a panic, a hang or an allocation sized by a header.
//! The input is the images file's length (2 bytes, little-endian), the
//! images file, then the labels file; a file starting with gzip's magic is
//! named `.gz`, so it is decompressed as the command would.
//! Run: `cargo +nightly fuzz run idx corpus/idx seeds/idx -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_cli::readers;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let Some((length, rest)) = data.split_first_chunk::<2>() else { return };
    let (images, labels) = rest.split_at(usize::from(u16::from_le_bytes(*length)).min(rest.len()));
    let (Ok((ipath, images)), Ok((lpath, labels))) =
        (file("images", images), file("labels", labels))
    else {
        return;
    };
    if let Ok(d) = readers::idx(&ipath, &images, &lpath, &labels) {
        assert_eq!(d.images.len(), d.len() * d.sample_len());
        assert!(d.labels.iter().all(|&l| l < 10));
    }
});

/// The file's name and its bytes, decompressed when they are gzip.
fn file(name: &str, bytes: &[u8]) -> Result<(PathBuf, Vec<u8>), readers::DataError> {
    let path = PathBuf::from(if bytes.starts_with(&[0x1f, 0x8b]) {
        format!("{name}.gz")
    } else {
        name.to_string()
    });
    let bytes = readers::decode_maybe_gz(&path, bytes.to_vec())?;
    Ok((path, bytes))
}
