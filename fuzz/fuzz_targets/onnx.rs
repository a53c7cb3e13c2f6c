//! Any bytes given as an ONNX model decode as protobuf or give an error,
//! and import to a `.net` source (which the importer checks) and weights
//! or give an error: never a panic, a hang or an allocation sized by the
//! model's dims or attributes.
//! Run: `cargo +nightly fuzz run onnx corpus/onnx ../tests/onnx -- -max_len=300000 -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_dsl::import::onnx;

fuzz_target!(|data: &[u8]| {
    let decoded = onnx::proto::decode_model(data);
    match onnx::import(data, "Fuzz") {
        Ok(imported) => {
            assert!(decoded.is_ok(), "imported a model that does not decode");
            for t in &imported.weights {
                assert_eq!(t.values.len(), t.shape.iter().product::<usize>(), "{}", t.name);
            }
            let _ = imported.safetensors();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
