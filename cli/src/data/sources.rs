//! The data flags every training and evaluation command shares, the
//! source they choose, and the check that a source fits the network.

use super::{cifar, csv, folder, idx, split, synth, DataError, Dataset, Normalization};
use netc_runtime::model::{Model, TargetKind};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// A `.net` file to train; netc builds it once (cached) and runs it.
    /// Without it, `--model` names a zoo model.
    pub file: Option<PathBuf>,
    /// A zoo model: lenet5, mlp, linear (digits), resnet20 (CIFAR-10),
    /// alexnet, vgg11, resnet18 (224x224 images).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// A directory with MNIST or Fashion-MNIST IDX files (raw or .gz);
    /// without it or another source, the embedded synthetic digits.
    #[arg(long, conflicts_with_all = ["cifar", "images", "csv"])]
    data: Option<PathBuf>,
    /// A directory with the CIFAR-10 binary files.
    #[arg(long, conflicts_with_all = ["images", "csv"])]
    cifar: Option<PathBuf>,
    /// A folder of PNG and JPEG images, one subfolder per class
    /// (torchvision's ImageFolder), resized and center-cropped to the
    /// network's input; its `train/` and `val/` (or `test/`) subfolders are
    /// the splits when it has them.
    #[arg(long, conflicts_with = "csv")]
    images: Option<PathBuf>,
    /// Per-channel mean that --images are normalised by, e.g.
    /// 0.485,0.456,0.406 (default: the training set's).
    #[arg(long, value_delimiter = ',', requires = "images", requires = "std_dev")]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, with --mean, e.g. 0.229,0.224,0.225.
    #[arg(long = "std", value_delimiter = ',', requires = "mean")]
    std_dev: Option<Vec<f32>>,
    /// A CSV file with a header line, one sample per row: numeric feature
    /// columns and a label column (class indices or names).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The CSV's label column (default: the last).
    #[arg(long, requires = "csv")]
    label_column: Option<String>,
    /// The CSV's feature columns, e.g. a,b,c (default: all but the label).
    #[arg(long, value_delimiter = ',', requires = "csv")]
    features: Option<Vec<String>>,
    /// Hold out this fraction of the training set (per class, chosen by
    /// --seed) as the test split: for --csv, and --images without `val/`.
    #[arg(long)]
    val: Option<f64>,
    /// Use only the first N training samples.
    #[arg(long)]
    train_size: Option<usize>,
    /// Use only the first N test samples.
    #[arg(long)]
    test_size: Option<usize>,
    /// Seed of the synthetic data, the initial weights and the shuffling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The train and test splits the flags choose for a network taking
/// samples of `input_shape`, with a description of their source for
/// messages (how images were normalised and CSV labels numbered among it).
pub fn load(args: &DataArgs, input_shape: &[usize]) -> Result<(Dataset, Dataset, String), String> {
    let wrap = |e: DataError| e.to_string();
    let (train, test, mut what) = if let Some(dir) = &args.cifar {
        let (train, test) = cifar::load_dir(dir).map_err(wrap)?;
        (train, Some(test), format!("the CIFAR-10 files in `{}`", dir.display()))
    } else if let Some(dir) = &args.data {
        let (train, test) = idx::load_dir(dir).map_err(wrap)?;
        (train, Some(test), format!("the IDX files in `{}`", dir.display()))
    } else if let Some(dir) = &args.images {
        let f = folder::load(dir, image_shape(input_shape)?).map_err(wrap)?;
        (f.train, f.test, f.description)
    } else if let Some(file) = &args.csv {
        let columns = csv::Columns {
            label: args.label_column.as_deref(),
            features: args.features.as_deref(),
        };
        let t = csv::load(file, columns).map_err(wrap)?;
        (t.data, None, t.description)
    } else {
        let n_train = args.train_size.unwrap_or(synth::TRAIN_SIZE);
        let n_test = args.test_size.unwrap_or(synth::TEST_SIZE);
        let (train, test) =
            (synth::generate(args.seed, true, n_train), synth::generate(args.seed, false, n_test));
        (train, Some(test), "the embedded synthetic digits".to_string())
    };
    let (mut train, mut test) = match (test, args.val) {
        (Some(test), None) => (train, test),
        (Some(_), Some(_)) => {
            return Err(format!(
                "--val holds out part of a training set that has no test split; {what} have \
                 their own test split, which keeps measuring the same samples across runs"
            ))
        }
        (None, Some(fraction)) => {
            let (kept, held) = split::hold_out(train, fraction, args.seed)?;
            what.push_str(&format!(
                ", {} held out for evaluation (--val {fraction}, seed {})",
                held.len(),
                args.seed
            ));
            (kept, held)
        }
        (None, None) => {
            return Err(format!(
                "{what} have no test split: give --val FRACTION (e.g. --val 0.2) to hold out \
                 part of them"
            ))
        }
    };
    if args.images.is_some() {
        let norm = normalization(args, &train)?;
        let source = if args.mean.is_some() { "--mean and --std" } else { "the training set's" };
        let list = |v: &[f32]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
        what.push_str(&format!(
            ", normalised by {source} mean [{}] and std [{}]",
            list(&norm.mean),
            list(&norm.std)
        ));
        folder::normalize(&mut train, &norm);
        folder::normalize(&mut test, &norm);
    } else if args.mean.is_some() {
        return Err("--mean and --std normalise --images; other sources are not normalised".into());
    }
    if let Some(n) = args.train_size {
        train.truncate(n);
    }
    if let Some(n) = args.test_size {
        test.truncate(n);
    }
    Ok((train, test, what))
}

/// The `[channels, height, width]` the image folder is decoded to.
fn image_shape(input_shape: &[usize]) -> Result<[usize; 3], String> {
    match *input_shape {
        [c @ (1 | 3), h, w] if h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(format!(
            "--images decodes grey or RGB images to the network's input, which must be \
             [1 or 3 channels, height, width]; this network takes {input_shape:?}"
        )),
    }
}

/// --mean and --std, one value or one per channel, else the training
/// set's statistics.
fn normalization(args: &DataArgs, train: &Dataset) -> Result<Normalization, String> {
    let channels = train.shape[0];
    let (Some(mean), Some(std)) = (&args.mean, &args.std_dev) else {
        let norm = folder::statistics(train);
        if let Some(c) = norm.std.iter().position(|&s| s == 0.0) {
            return Err(format!(
                "channel {c} of the training images is constant, so it has no standard \
                 deviation to normalise by: give --mean and --std"
            ));
        }
        return Ok(norm);
    };
    let per_channel = |values: &[f32], flag: &str| -> Result<Vec<f32>, String> {
        match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values.to_vec()),
            n => Err(format!("--{flag} has {n} values; the images have {channels} channels")),
        }
    };
    let norm = Normalization { mean: per_channel(mean, "mean")?, std: per_channel(std, "std")? };
    if let Some(s) = norm.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
        return Err(format!("--std {s} is not a positive standard deviation"));
    }
    Ok(norm)
}

/// Checks that `data` fits `model`: the sample shape (a flat input takes
/// any sample of as many values) and the number of classes (no more than
/// the network scores; fewer gives a warning).
pub fn check_fit(
    model: &dyn Model,
    name: &str,
    (train, test): (&Dataset, &Dataset),
    what: &str,
) -> Result<(), String> {
    let takes = model.input_shape();
    let data = train;
    let fits = takes == &data.shape[..] || (takes.len() == 1 && takes[0] == data.sample_len());
    if !fits {
        return Err(format!(
            "`{name}` takes samples of shape {takes:?}; {what} hold samples of shape {:?} \
             (sources: --data DIR for 28x28 IDX digits, --cifar DIR for 3x32x32 CIFAR-10 \
             images, --images DIR for a folder of images resized to the network's input, \
             --csv FILE for a table of features, none for the synthetic digits)",
            data.shape
        ));
    }
    let classes = train.classes().max(test.classes());
    match model.target_kind() {
        TargetKind::Labels { classes: c } if c == classes => Ok(()),
        // Fewer classes than outputs trains (the extra outputs are never a
        // target), as a pretrained head or a zoo model on a small folder.
        TargetKind::Labels { classes: c } if c > classes => {
            eprintln!(
                "warning: `{name}` scores {c} classes and the data has {classes}: outputs \
                 {classes} to {} are never a target (data: {what})",
                c - 1
            );
            Ok(())
        }
        TargetKind::Labels { classes: c } => Err(format!(
            "`{name}` scores {c} classes; {what} have {classes}: give its last layer {classes} outputs"
        )),
        TargetKind::Values { len } => Err(format!(
            "`{name}`'s loss takes {len} target values per sample; `netc train` trains on class \
             labels (cross-entropy) only"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        data: DataArgs,
    }

    fn load_with(args: &[&str], input: &[usize]) -> Result<(Dataset, Dataset, String), String> {
        let cli = Cli::try_parse_from([&["netc"][..], args].concat()).map_err(|e| e.to_string())?;
        load(&cli.data, input)
    }

    /// A CSV file of `rows` rows in a temporary folder, removed when the
    /// folder is dropped.
    fn csv_file(rows: usize) -> (tempfile::TempDir, String) {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("rows.csv");
        let text: String = (0..rows).map(|i| format!("{i},{}\n", ["b", "a"][i % 2])).collect();
        std::fs::write(&path, format!("x,y\n{text}")).expect("write");
        (folder, path.display().to_string())
    }

    #[test]
    fn val_splits_sources_without_a_test_set_only() {
        let (_folder, file) = csv_file(40);
        let (train, test, what) =
            load_with(&["--csv", &file, "--val", "0.25"], &[1]).expect("load");
        assert_eq!((train.len(), test.len(), train.shape), (30, 10, [1, 1, 1]));
        assert!(what.contains("10 held out") && what.contains("0 = a, 1 = b"), "{what}");
        let e = load_with(&["--csv", &file], &[1]).unwrap_err();
        assert!(e.contains("no test split") && e.contains("--val"), "{e}");
        let e = load_with(&["--val", "0.5", "--train-size", "10", "--test-size", "10"], &[1])
            .unwrap_err();
        assert!(e.contains("own test split"), "{e}");
        // --train-size and --test-size cut the parts after the split.
        let (train, test, _) = load_with(
            &["--csv", &file, "--val", "0.5", "--train-size", "7", "--test-size", "3"],
            &[1],
        )
        .expect("load");
        assert_eq!((train.len(), test.len()), (7, 3));
    }

    #[test]
    fn flags_that_do_not_apply_are_errors() {
        let (_folder, file) = csv_file(4);
        let e = load_with(&["--csv", &file, "--val", "0.5", "--mean", "0.5", "--std", "1"], &[1])
            .unwrap_err();
        assert!(e.contains("--images"), "{e}");
        let e = load_with(&["--images", "x", "--mean", "0.5"], &[1, 4, 4]).unwrap_err();
        assert!(e.contains("--std"), "{e}");
        let e = load_with(&["--label-column", "y"], &[1]).unwrap_err();
        assert!(e.contains("--csv"), "{e}");
        for input in [&[784][..], &[2, 4, 4], &[3, 4]] {
            let e = load_with(&["--images", "x", "--val", "0.5"], input).unwrap_err();
            assert!(e.contains("--images") && e.contains(&format!("{input:?}")), "{e}");
        }
    }
}
