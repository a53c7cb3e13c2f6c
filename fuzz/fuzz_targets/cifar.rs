//! Any bytes given as a CIFAR-10 batch file (raw or gzip) load as whole
//! records with class labels or give an error, never a panic.
//! Run: `cargo +nightly fuzz run cifar corpus/cifar seeds/cifar -- -max_len=8192 -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_cli::readers;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let path = Path::new(if gz { "test_batch.bin.gz" } else { "test_batch.bin" });
    let Ok(bytes) = readers::decode_maybe_gz(path, data.to_vec()) else { return };
    if let Ok(d) = readers::cifar(path, &bytes) {
        assert_eq!(d.shape, [3, 32, 32]);
        assert_eq!(d.images.len(), d.len() * 3 * 32 * 32);
        assert!(d.labels.iter().all(|&l| l < 10));
    }
});
