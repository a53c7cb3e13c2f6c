//! Reading single images for `netc predict`: PGM (P2 and P5) and PNG,
//! as grayscale values in `[0, 1]`, and resizing them to a network's input.

use std::path::Path;

/// The most pixels an image may have, and the most bytes its decoder may
/// allocate: a PNG or JPEG header states any size up to 2³² a side, and a
/// small file of a highly compressible image can claim a huge one, so the
/// size is checked before any pixel buffer is made.
pub const MAX_PIXELS: u64 = 1 << 26;
const MAX_DECODER_ALLOC: u64 = 512 << 20;

/// Decodes a PNG or JPEG (its format from its content) of at most
/// [`MAX_PIXELS`] pixels.
pub fn decode_limited(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let reader = || {
        let mut reader = image::io::Reader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        let mut limits = image::io::Limits::default();
        limits.max_alloc = Some(MAX_DECODER_ALLOC);
        reader.limits(limits);
        Ok::<_, String>(reader)
    };
    let (w, h) = reader()?.into_dimensions().map_err(|e| e.to_string())?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!("{w}x{h} pixels is more than netc reads ({MAX_PIXELS})"));
    }
    reader()?.decode().map_err(|e| e.to_string())
}

/// Decodes the bytes of a binary (P5) or text (P2) PGM read from `path`
/// into values in `[0, 1]`.
pub fn decode_pgm(path: &Path, bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let bad = |why: &str| format!("`{}` is not a PGM image: {why}", path.display());
    // Header tokens, skipping `#` comments.
    let mut pos = 0;
    let mut tokens = Vec::new();
    while tokens.len() < 4 && pos < bytes.len() {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if bytes.get(pos) == Some(&b'#') {
            while pos < bytes.len() && bytes[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        tokens.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
    }
    let [magic, w, h, max] = tokens.as_slice() else { return Err(bad("incomplete header")) };
    let (w, h, max): (usize, usize, usize) = match (w.parse(), h.parse(), max.parse()) {
        (Ok(w), Ok(h), Ok(m)) if w > 0 && h > 0 && (1..=255).contains(&m) => (w, h, m),
        _ => return Err(bad("bad width, height or maximum (8-bit only)")),
    };
    // A corrupt header's sizes can overflow their product.
    let count = w.checked_mul(h).ok_or_else(|| bad("width times height overflows"))?;
    let pixels: Vec<f32> = match magic.as_str() {
        "P5" => {
            let data = bytes
                .get(pos + 1..)
                .and_then(|rest| rest.get(..count))
                .ok_or_else(|| bad("truncated pixel data"))?;
            data.iter().map(|&p| f32::from(p) / max as f32).collect()
        }
        "P2" => {
            let text = String::from_utf8_lossy(&bytes[pos..]);
            let values: Result<Vec<f32>, _> =
                text.split_whitespace().take(count).map(|t| t.parse::<f32>()).collect();
            let values = values.map_err(|_| bad("non-numeric pixel"))?;
            if values.len() != count {
                return Err(bad("truncated pixel data"));
            }
            values.into_iter().map(|v| v / max as f32).collect()
        }
        _ => return Err(bad("magic is not P2 or P5")),
    };
    Ok((w, h, pixels))
}

/// Decodes the bytes of a PNG (any colour type) read from `path` as
/// grayscale values in `[0, 1]`.
pub fn decode_png(path: &Path, bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let img = decode_limited(bytes)
        .map_err(|e| format!("`{}` is not a readable PNG image: {e}", path.display()))?;
    let gray = img.to_luma8();
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    Ok((w, h, gray.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// Reads a PGM or PNG image, chosen by the file's first bytes.
pub fn read_image(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    decode_image(path, &read(path)?)
}

/// Decodes the bytes of a PGM or PNG image read from `path`.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    if bytes.starts_with(b"\x89PNG") {
        decode_png(path, bytes)
    } else {
        decode_pgm(path, bytes)
    }
}

/// Nearest-neighbour resize to `side`x`side`.
pub fn resize(w: usize, h: usize, pixels: &[f32], side: usize) -> Vec<f32> {
    (0..side * side).map(|i| pixels[(i / side) * h / side * w + (i % side) * w / side]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgm_and_rejects_bad_ones() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let p5 = dir.join("a.pgm");
        let mut bytes = b"P5\n# comment\n2 2\n255\n".to_vec();
        bytes.extend([0, 255, 128, 64]);
        std::fs::write(&p5, &bytes).expect("write");
        let (w, h, px) = read_image(&p5).expect("valid");
        assert_eq!((w, h, px[1]), (2, 2, 1.0));
        let p2 = dir.join("b.pgm");
        std::fs::write(&p2, "P2 2 1 15 0 15").expect("write");
        assert_eq!(read_image(&p2).expect("valid").2, [0.0, 1.0]);
        std::fs::write(&p2, "P5 2 2 255 ab").expect("write");
        assert!(read_image(&p2).unwrap_err().contains("truncated"));
        std::fs::write(&p2, "P6 2 2 255").expect("write");
        assert!(read_image(&p2).unwrap_err().contains("P2 or P5"));
    }

    #[test]
    fn reads_png_as_grayscale() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let path = tmp.path().join("a.png");
        let img = image::RgbImage::from_fn(3, 2, |x, _| {
            image::Rgb(if x == 0 { [255, 255, 255] } else { [0, 0, 0] })
        });
        img.save(&path).expect("save png");
        let (w, h, px) = read_image(&path).expect("png");
        assert_eq!((w, h), (3, 2));
        assert_eq!((px[0], px[1]), (1.0, 0.0));
        std::fs::write(&path, b"\x89PNG broken").expect("write");
        assert!(read_image(&path).unwrap_err().contains("PNG"));
    }

    /// Corrupt PGM (binary and text) and PNG files are errors, never a
    /// panic (a width times height that overflows was one).
    #[test]
    fn corrupt_images_are_errors() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let mut p5 = b"P5\n# comment\n3 2\n255\n".to_vec();
        p5.extend([0, 255, 128, 64, 7, 9]);
        let p2 = b"P2\n3 2\n15\n0 15 7\n1 2 3\n".to_vec();
        let png_path = dir.join("valid.png");
        image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y) as u8]))
            .save(&png_path)
            .expect("save png");
        let png = std::fs::read(&png_path).expect("png");
        let path = dir.join("corrupt");
        for (seed, valid) in [(5, &p5), (6, &p2), (7, &png)] {
            for bad in crate::mutate::variants(valid, 300, seed) {
                std::fs::write(&path, &bad).expect("write");
                if let Ok((w, h, pixels)) = read_image(&path) {
                    assert_eq!(pixels.len(), w * h);
                }
            }
        }
        std::fs::write(&path, "P5 4294967296 4294967296 255 ab").expect("write");
        assert!(read_image(&path).is_err());
        std::fs::write(&path, "P2 18446744073709551615 2 255 1 2").expect("write");
        assert!(read_image(&path).is_err());
    }

    /// A PNG whose header claims more pixels than netc reads is refused
    /// before a pixel buffer of that size is made, here and in an image
    /// folder.
    #[test]
    fn huge_images_are_refused_from_the_header() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let path = dir.join("small.png");
        image::GrayImage::from_fn(4, 4, |x, _| image::Luma([x as u8])).save(&path).expect("png");
        let mut png = std::fs::read(&path).expect("png");
        // IHDR: length, type, then width and height (big-endian), covered
        // by the chunk's CRC.
        assert_eq!(&png[12..16], b"IHDR");
        png[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let e = decode_image(&path, &png).unwrap_err();
        assert!(e.contains("30000x30000 pixels is more than netc reads"), "{e}");
        let mut out = [0.0; 16];
        let e = crate::data::folder::decode_bytes_into(&path, &png, [1, 4, 4], &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than netc reads"), "{e}");
    }
}
