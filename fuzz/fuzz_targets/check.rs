//! Any input to the parser and checker gives graphs or diagnostics, never a
//! panic, a hang or an abort; rendering those diagnostics must not panic
//! either. Run: `cargo +nightly fuzz run check -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    match netc_dsl::check_source("fuzz.net", source) {
        Ok(checked) => {
            for g in &checked.graphs {
                let _ = g.table();
            }
        }
        Err(diags) => {
            let _ = diags.to_string();
        }
    }
});
