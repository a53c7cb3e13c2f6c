//! Any prototxt text and caffemodel bytes given to the Caffe importer give
//! an import or an error, never a panic. An input is the prototxt, a NUL,
//! then the caffemodel; an input that starts with the NUL fuzzes the
//! caffemodel of a fixed net that uses every mapped layer.
//! Run: `cargo +nightly fuzz run caffe -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_dsl::import::caffe::{import, Options};

const EVERY_LAYER: &str = include_str!("../../tests/caffe/every_layer.prototxt");

fuzz_target!(|data: &[u8]| {
    let (text, model) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let text = if text.is_empty() { EVERY_LAYER.into() } else { String::from_utf8_lossy(text) };
    let options = Options { input_shape: Some(vec![1, 8, 8]) };
    let _ = import(&text, model, "Fuzzed", &options);
});
