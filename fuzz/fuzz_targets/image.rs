//! Any bytes given as an image load or give an error, never a panic or an
//! allocation sized by a header: as `netc predict` reads them (PGM or PNG,
//! to grayscale) and as an image folder's files are read (PNG or JPEG,
//! resized and cropped to a grey and an RGB input).
//! Run: `cargo +nightly fuzz run image corpus/image seeds/image -- -max_len=16384 -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc_cli::readers;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok((w, h, pixels)) = readers::image(Path::new("image"), data) {
        assert_eq!(pixels.len(), w * h);
    }
    for shape in [[1, 7, 5], [3, 4, 4]] {
        let mut out = vec![f32::NAN; shape.iter().product()];
        if readers::folder_image(Path::new("image.png"), data, shape, &mut out).is_ok() {
            assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{out:?}");
        }
    }
});
