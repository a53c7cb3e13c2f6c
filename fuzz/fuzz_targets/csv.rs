//! Any bytes given as a CSV table (raw or gzip), with the label and
//! feature columns chosen or left to their defaults, load as a table of
//! whole rows or give an error, never a panic. The first byte chooses the
//! columns: bit 0 names `label` the label column, bit 1 names `a` and `b`
//! the features.
//! Run: `cargo +nightly fuzz run csv corpus/csv seeds/csv -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_cli::readers::{self, Columns};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, table)) = data.split_first() else { return };
    let features = ["a".to_string(), "b".to_string()];
    let columns = Columns {
        label: (choice & 1 != 0).then_some("label"),
        features: (choice & 2 != 0).then_some(&features[..]),
    };
    let gz = table.starts_with(&[0x1f, 0x8b]);
    let path = Path::new(if gz { "table.csv.gz" } else { "table.csv" });
    let Ok(bytes) = readers::decode_maybe_gz(path, table.to_vec()) else { return };
    if let Ok(t) = readers::csv(path, bytes, columns) {
        let d = &t.data;
        assert!(!d.is_empty() && d.sample_len() > 0);
        assert_eq!(d.images.len(), d.len() * d.sample_len());
        assert!(d.images.iter().all(|v| v.is_finite()));
    }
});
