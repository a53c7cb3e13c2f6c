//! A folder of images in torchvision's `ImageFolder` layout: one subfolder
//! per class (classes numbered in sorted order of their names), its PNG and
//! JPEG files at any depth. Each image is resized (bilinear with
//! antialiasing) so that it covers the network's input, center-cropped to
//! it, converted to grey or RGB, and scaled to `[0, 1]`, as torchvision's
//! `Resize`, `CenterCrop` and `ToTensor` do; then normalised per channel.
//! With `train/` and `val/` (or `test/`) subfolders, those are the splits.

use super::{DataError, Dataset, Normalization};
use image::imageops::FilterType;
use image::{ImageBuffer, Luma, Pixel, Rgb32FImage};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The extensions decoded (in any case); other files are skipped, as
/// torchvision skips what is not an image.
const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Class labels are bytes.
const MAX_CLASSES: usize = 256;

/// The splits a folder holds, decoded to `[0, 1]`, and what it is (with
/// its class names), for messages.
#[derive(Debug)]
pub struct Folder {
    pub train: Dataset,
    pub test: Option<Dataset>,
    pub description: String,
}

fn err(path: &Path, problem: impl Into<String>) -> DataError {
    DataError { path: path.to_path_buf(), problem: problem.into() }
}

/// Loads `dir` as `[channels, height, width]` images (1 or 3 channels).
pub fn load(dir: &Path, shape: [usize; 3]) -> Result<Folder, DataError> {
    let train_dir = dir.join("train");
    let test_dir =
        ["val", "test"].iter().map(|s| dir.join(s)).find(|d| train_dir.is_dir() && d.is_dir());
    let root = if train_dir.is_dir() { train_dir } else { dir.to_path_buf() };
    let classes = class_folders(&root)?;
    let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    let (train, skipped) = decode_tree(&classes, shape)?;
    let mut description =
        format!("the {} images of {} classes in `{}`", train.len(), names.len(), root.display());
    if skipped > 0 {
        description.push_str(&format!(" ({skipped} other files skipped)"));
    }
    let test = match &test_dir {
        Some(test_dir) => {
            let labelled = class_folders_named(test_dir)?
                .into_iter()
                .map(|(name, path)| match names.iter().position(|n| *n == name) {
                    Some(label) => Ok((label, path)),
                    None => {
                        Err(err(&path, format!("class `{name}` is not among the training classes")))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            if labelled.is_empty() {
                return Err(err(test_dir, "has no class folders"));
            }
            let (test, test_skipped) = decode_labelled(&labelled, shape)?;
            description.push_str(&format!(
                ", evaluating on the {} in `{}`",
                test.len(),
                test_dir.display()
            ));
            if test_skipped > 0 {
                description.push_str(&format!(" ({test_skipped} other files skipped)"));
            }
            Some(test)
        }
        None => None,
    };
    description.push_str(&format!("; classes {}", class_list(&names)));
    Ok(Folder { train, test, description })
}

/// `0 = first, 1 = second, ...`, eliding the middle of a long list.
fn class_list(names: &[String]) -> String {
    let item = |(i, n): (usize, &String)| format!("{i} = {n}");
    if names.len() <= 12 {
        names.iter().enumerate().map(item).collect::<Vec<_>>().join(", ")
    } else {
        let head: Vec<String> = names.iter().enumerate().take(8).map(item).collect();
        let last = names.len() - 1;
        format!("{}, ..., {}", head.join(", "), item((last, &names[last])))
    }
}

/// The subfolders of `dir`, sorted by name: the classes, at least two and
/// at most [`MAX_CLASSES`].
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let classes = class_folders_named(dir)?;
    match classes.len() {
        0 => Err(err(
            dir,
            "has no class folders (the layout is one subfolder of PNG or JPEG images per class)",
        )),
        1 => Err(err(
            dir,
            format!(
                "has one class folder, `{}`; a classifier needs at least two classes",
                classes[0].0
            ),
        )),
        n if n > MAX_CLASSES => Err(err(
            dir,
            format!("has {n} class folders; netc's labels are bytes, so at most {MAX_CLASSES}"),
        )),
        _ => Ok(classes),
    }
}

/// The subfolders of `dir` (following links), sorted by name.
fn class_folders_named(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read: {e}")))?;
    let mut classes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| err(dir, format!("cannot read: {e}")))?;
        let path = entry.path();
        if path.is_dir() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| err(&path, format!("the class name {n:?} is not UTF-8")))?;
            classes.push((name, path));
        }
    }
    classes.sort();
    Ok(classes)
}

/// The image files under `dir` at any depth, sorted, and how many other
/// files were skipped.
fn image_files(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut usize) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, format!("cannot read: {e}")))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(dir, format!("cannot read: {e}")))?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            image_files(&path, files, skipped)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        {
            files.push(path);
        } else {
            *skipped += 1;
        }
    }
    Ok(())
}

fn decode_tree(
    classes: &[(String, PathBuf)],
    shape: [usize; 3],
) -> Result<(Dataset, usize), DataError> {
    let labelled: Vec<(usize, PathBuf)> =
        classes.iter().enumerate().map(|(label, (_, path))| (label, path.clone())).collect();
    decode_labelled(&labelled, shape)
}

/// Decodes every image of the class folders `(label, folder)` in parallel;
/// a class folder without images is an error.
fn decode_labelled(
    classes: &[(usize, PathBuf)],
    shape: [usize; 3],
) -> Result<(Dataset, usize), DataError> {
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut skipped = 0;
    for (label, folder) in classes {
        let before = files.len();
        image_files(folder, &mut files, &mut skipped)?;
        if files.len() == before {
            return Err(err(folder, "holds no PNG or JPEG images (.png, .jpg, .jpeg)"));
        }
        labels.resize(files.len(), *label as u8);
    }
    let per: usize = shape.iter().product();
    let mut images = vec![0.0f32; files.len() * per];
    let results: Vec<Result<(), DataError>> = images
        .par_chunks_mut(per)
        .zip(files.par_iter())
        .map(|(out, path)| decode_into(path, shape, out))
        .collect();
    // The first failure in file order, so the message is the same each run.
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok((Dataset::new(images, labels, shape), skipped))
}

/// Decodes one image (its format from its content) into `out`, planar
/// `[channels, height, width]` in `[0, 1]`.
pub fn decode_into(path: &Path, shape: [usize; 3], out: &mut [f32]) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    decode_bytes_into(path, &bytes, shape, out)
}

/// `decode_into` on the bytes of a file read from `path`; `out` holds
/// one sample of `shape`.
pub fn decode_bytes_into(
    path: &Path,
    bytes: &[u8],
    shape: [usize; 3],
    out: &mut [f32],
) -> Result<(), DataError> {
    let image = crate::image::decode_limited(bytes)
        .map_err(|e| err(path, format!("is not a readable PNG or JPEG image: {e}")))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(err(path, "is an empty image (0 pixels)"));
    }
    let rgb = image.to_rgb32f();
    let [channels, height, width] = shape;
    match channels {
        1 => planar(&fit(&grey(&rgb), width, height), out),
        3 => planar(&fit(&rgb, width, height), out),
        _ => return Err(err(path, format!("cannot make {channels}-channel images (1 or 3)"))),
    }
    Ok(())
}

/// Luma by ITU-R 601-2, as PIL's `convert("L")` (torchvision's
/// `Grayscale`); a grey image's three equal channels give back its value.
fn grey(rgb: &Rgb32FImage) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        Luma([0.299 * r + 0.587 * g + 0.114 * b])
    })
}

/// The size a `width`x`height` image is resized to so that it covers
/// `to_width`x`to_height` keeping its aspect ratio: for a square target,
/// torchvision's `Resize(side)` (short side to `side`, the long side
/// rounded down).
pub fn cover_size(width: u32, height: u32, to_width: u32, to_height: u32) -> (u32, u32) {
    let (w, h, tw, th) =
        (u64::from(width), u64::from(height), u64::from(to_width), u64::from(to_height));
    if tw * h <= th * w {
        (((w * th) / h).max(tw) as u32, to_height)
    } else {
        (to_width, ((h * tw) / w).max(th) as u32)
    }
}

/// Where a centered crop of `small` starts in `big`: torchvision's
/// `CenterCrop`, `round((big - small) / 2)` with Python's round half to
/// even.
pub fn center_offset(big: u32, small: u32) -> u32 {
    let d = big - small;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Resizes `image` to cover `width`x`height` and crops its center.
pub fn fit<P>(
    image: &ImageBuffer<P, Vec<f32>>,
    width: usize,
    height: usize,
) -> ImageBuffer<P, Vec<f32>>
where
    P: Pixel<Subpixel = f32> + 'static,
{
    let (w, h) = (width as u32, height as u32);
    let (cw, ch) = cover_size(image.width(), image.height(), w, h);
    let cover = if (cw, ch) == image.dimensions() {
        image.clone()
    } else {
        image::imageops::resize(image, cw, ch, FilterType::Triangle)
    };
    image::imageops::crop_imm(&cover, center_offset(cw, w), center_offset(ch, h), w, h).to_image()
}

/// Writes an image as planar `[channels, height, width]` values.
fn planar<P>(image: &ImageBuffer<P, Vec<f32>>, out: &mut [f32])
where
    P: Pixel<Subpixel = f32>,
{
    let plane = (image.width() * image.height()) as usize;
    for (i, pixel) in image.pixels().enumerate() {
        for (c, &v) in pixel.channels().iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
}

/// The per-channel mean and (population) standard deviation of `data`.
pub fn statistics(data: &Dataset) -> Normalization {
    let [channels, h, w] = data.shape;
    let plane = h * w;
    let sums = data
        .images
        .par_chunks(plane)
        .enumerate()
        .fold(
            || vec![(0.0f64, 0.0f64); channels],
            |mut acc, (i, values)| {
                let (s, q) = values.iter().fold((0.0f64, 0.0f64), |(s, q), &v| {
                    (s + f64::from(v), q + f64::from(v) * f64::from(v))
                });
                acc[i % channels].0 += s;
                acc[i % channels].1 += q;
                acc
            },
        )
        .reduce(
            || vec![(0.0, 0.0); channels],
            |a, b| a.iter().zip(&b).map(|(x, y)| (x.0 + y.0, x.1 + y.1)).collect(),
        );
    let n = (data.len() * plane).max(1) as f64;
    let mean: Vec<f64> = sums.iter().map(|(s, _)| s / n).collect();
    let std = sums.iter().zip(&mean).map(|((_, q), m)| (q / n - m * m).max(0.0).sqrt() as f32);
    Normalization { mean: mean.iter().map(|&m| m as f32).collect(), std: std.collect() }
}

/// Maps `data`'s values from `[0, 1]` by `norm`.
pub fn normalize(data: &mut Dataset, norm: &Normalization) {
    let plane = data.shape[1] * data.shape[2];
    let channels = data.shape[0];
    data.images.par_chunks_mut(plane).enumerate().for_each(|(i, values)| {
        let (m, s) = (norm.mean[i % channels], norm.std[i % channels]);
        for v in values {
            *v = (*v - m) / s;
        }
    });
    data.normalization = Some(norm.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary folder")
    }

    /// A `size`x`size` RGB PNG of one colour.
    fn png(path: &Path, size: u32, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        image::RgbImage::from_pixel(size, size, image::Rgb(rgb)).save(path).expect("save png");
    }

    #[test]
    fn cover_and_center_follow_torchvision() {
        // Short side to the target, long side rounded down.
        assert_eq!(cover_size(500, 375, 224, 224), (298, 224));
        assert_eq!(cover_size(375, 500, 224, 224), (224, 298));
        assert_eq!(cover_size(28, 28, 28, 28), (28, 28));
        // A wide target on a tall image: the width binds.
        assert_eq!(cover_size(100, 200, 40, 20), (40, 80));
        // round(0.5) = 0, round(1.5) = 2, round(2.5) = 2, round(3.5) = 4.
        let offsets: Vec<u32> = (1..=7).map(|d| center_offset(10 + d, 10)).collect();
        assert_eq!(offsets, [0, 1, 2, 2, 2, 3, 4]);
    }

    /// A 6x4 grey ramp (value x/10) to 2x2: resized to 3x2 by the
    /// triangle filter stretched over two source pixels, then cropped to
    /// columns 0 and 1. By hand: output column 0 centres at source x 0.5
    /// and weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25; column 1 centres at
    /// 2.5 and weighs pixels 1..=4 by 0.25, 0.75, 0.75, 0.25.
    #[test]
    fn resize_and_crop_match_a_hand_computed_case() {
        let ramp = ImageBuffer::from_fn(6, 4, |x, _| Luma([x as f32 / 10.0]));
        let out = fit(&ramp, 2, 2);
        let want = [
            (0.75 * 0.1 + 0.25 * 0.2) / 1.75,
            (0.25 * 0.1 + 0.75 * 0.2 + 0.75 * 0.3 + 0.25 * 0.4) / 2.0,
        ];
        for y in 0..2 {
            for x in 0..2 {
                let got = out.get_pixel(x, y).0[0];
                assert!(
                    (got - want[x as usize]).abs() < 1e-6,
                    "({x}, {y}): {got} vs {}",
                    want[x as usize]
                );
            }
        }
        // A 2x5 column of rows valued y: no resize, rows 2 and 3 kept
        // (an offset of round(1.5) = 2, not 1).
        let rows = ImageBuffer::from_fn(2, 5, |_, y| Luma([y as f32]));
        let out = fit(&rows, 2, 2);
        assert_eq!(out.into_raw(), [2.0, 2.0, 3.0, 3.0]);
    }

    /// Against torchvision (`tests/data/torchvision/make.py`): a 23x17
    /// image shrunk and a 5x7 one enlarged to 8x8, grey and RGB. PIL
    /// resizes in bytes where netc resizes in f32, so they differ by up to
    /// a rounding step.
    #[test]
    fn decoding_matches_torchvision() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torchvision");
        let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
        let mut checked = 0;
        for line in expected.lines().filter(|l| !l.starts_with('#')) {
            let mut words = line.split(' ');
            let file = dir.join(words.next().expect("file"));
            let channels: usize = words.next().expect("channels").parse().expect("channels");
            let want: Vec<f32> = words.map(|w| w.parse().expect("value")).collect();
            let mut got = vec![0.0; channels * 64];
            decode_into(&file, [channels, 8, 8], &mut got).expect("decodes");
            assert_eq!(want.len(), got.len());
            let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max);
            assert!(worst <= 1.0 / 255.0 + 1e-6, "{line:.20}: off by {worst}");
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn loads_classes_in_sorted_order_as_grey_or_rgb() {
        let folder = dir();
        let d = folder.path();
        png(&d.join("b_red/one.png"), 8, [255, 0, 0]);
        png(&d.join("b_red/nested/two.PNG"), 12, [255, 0, 0]);
        png(&d.join("a_blue/x.png"), 8, [0, 0, 255]);
        image::RgbImage::from_pixel(10, 6, image::Rgb([0, 0, 255]))
            .save_with_format(d.join("a_blue/photo.jpg"), image::ImageFormat::Jpeg)
            .expect("save jpeg");
        std::fs::write(d.join("a_blue/notes.txt"), "not an image").expect("write");
        let f = load(d, [3, 4, 4]).expect("folder");
        assert!(f.description.contains("classes 0 = a_blue, 1 = b_red"), "{}", f.description);
        assert_eq!(f.train.labels, [0, 0, 1, 1]);
        assert!(f.test.is_none());
        assert!(f.description.contains("1 other files"), "{}", f.description);
        let red = f.train.image(2);
        assert!(red[..16].iter().all(|&v| v == 1.0) && red[16..].iter().all(|&v| v == 0.0));
        // The JPEG is lossy but blue.
        let jpeg = f.train.image(1);
        assert!(jpeg[32..].iter().all(|&v| v > 0.9) && jpeg[..16].iter().all(|&v| v < 0.1));
        let grey = load(d, [1, 4, 4]).expect("folder");
        let red_luma = grey.train.image(2)[0];
        assert!((red_luma - 0.299).abs() < 1e-6, "{red_luma}");
    }

    #[test]
    fn train_and_val_subfolders_are_the_splits() {
        let folder = dir();
        let d = folder.path();
        for (split, class) in [("train", "cat"), ("train", "dog"), ("val", "dog")] {
            png(&d.join(split).join(class).join("a.png"), 5, [9, 9, 9]);
        }
        let f = load(d, [1, 5, 5]).expect("folder");
        let test = f.test.expect("a test split");
        assert_eq!((f.train.labels.as_slice(), test.labels.as_slice()), (&[0, 1][..], &[1][..]));
        png(&d.join("val/zebra/a.png"), 5, [9, 9, 9]);
        let e = load(d, [1, 5, 5]).unwrap_err().to_string();
        assert!(e.contains("zebra") && e.contains("not among the training classes"), "{e}");
        // Without val/, test/ is the evaluation split; an empty one is an error.
        std::fs::remove_dir_all(d.join("val")).expect("remove");
        std::fs::create_dir_all(d.join("test")).expect("dir");
        let e = load(d, [1, 5, 5]).unwrap_err().to_string();
        assert!(e.contains("test`") && e.contains("no class folders"), "{e}");
        png(&d.join("test/cat/a.png"), 5, [9, 9, 9]);
        let f = load(d, [1, 5, 5]).expect("folder");
        assert_eq!(f.test.expect("a test split").labels, [0]);
        assert!(f.description.contains("evaluating on the 1 in"), "{}", f.description);
    }

    #[test]
    fn bad_folders_are_errors_naming_the_path() {
        let folder = dir();
        let d = folder.path();
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains(&d.display().to_string()) && e.contains("no class folders"), "{e}");
        png(&d.join("only/a.png"), 4, [0, 0, 0]);
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("one class folder, `only`"), "{e}");
        std::fs::create_dir_all(d.join("empty")).expect("dir");
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("empty`") && e.contains("holds no PNG or JPEG"), "{e}");
        png(&d.join("empty/a.png"), 4, [0, 0, 0]);
        std::fs::write(d.join("empty/broken.png"), b"\x89PNG\r\n\x1a\n truncated").expect("write");
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("broken.png") && e.contains("not a readable"), "{e}");
        std::fs::write(d.join("empty/broken.png"), b"").expect("write");
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("broken.png"), "{e}");
        std::fs::remove_file(d.join("empty/broken.png")).expect("remove");
        let e = load(d, [2, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("2-channel"), "{e}");
        for c in 0..=MAX_CLASSES {
            std::fs::create_dir_all(d.join(format!("c{c:03}"))).expect("dir");
        }
        let e = load(d, [1, 4, 4]).unwrap_err().to_string();
        assert!(e.contains("259 class folders") && e.contains("at most 256"), "{e}");
    }

    #[test]
    fn statistics_and_normalisation() {
        // Two 1x2 RGB images: channel 0 holds 0, 1, 0, 1; channel 1 holds
        // 0.5 throughout; channel 2 holds 0, 0, 0, 0.8.
        let images = vec![0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.8];
        let mut d = Dataset::new(images, vec![0, 1], [3, 1, 2]);
        let n = statistics(&d);
        let want_mean = [0.5, 0.5, 0.2];
        let want_std = [0.5, 0.0, (0.8f32 * 0.8 / 4.0 - 0.04).sqrt()];
        for c in 0..3 {
            assert!((n.mean[c] - want_mean[c]).abs() < 1e-6, "{n:?}");
            assert!((n.std[c] - want_std[c]).abs() < 1e-6, "{n:?}");
        }
        let norm = Normalization { mean: vec![0.5, 0.5, 0.2], std: vec![0.5, 1.0, 0.4] };
        normalize(&mut d, &norm);
        assert_eq!(d.image(0), [-1.0, 1.0, 0.0, 0.0, -0.5, -0.5]);
        assert_eq!(d.black(0), -1.0);
        assert_eq!(d.black(2), -0.5);
    }
}
