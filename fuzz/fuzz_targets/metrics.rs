//! Any bytes given as the per-epoch and per-step metrics a resumed run
//! reads back (`metrics.csv`, `steps.csv`) give records or an error, and
//! the records draw as the training plot: never a panic or a hang.
//! The input is the first file's length (2 bytes, little-endian), the
//! first file, then the second; the byte after the length is the
//! checkpoint's completed epochs.
//! Run: `cargo +nightly fuzz run metrics corpus/metrics seeds/metrics -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_cli::readers::{self, Records};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some(([a, b, completed], rest)) = data.split_first_chunk::<3>() else { return };
    let (epochs, steps) = rest.split_at(usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()));
    let (Ok(epochs), Ok(steps)) = (std::str::from_utf8(epochs), std::str::from_utf8(steps)) else {
        return;
    };
    let files = ((Path::new("metrics.csv"), epochs), (Path::new("steps.csv"), steps));
    if let Ok(records) = Records::parse(files.0, files.1, usize::from(*completed)) {
        assert!(records.epochs.iter().all(|e| e.epoch <= usize::from(*completed)));
        readers::plot(&records, "fuzz").expect("records draw");
    }
});
