//! The data flags every training and evaluation command shares, the
//! source they choose, and the check that a source fits the network.

use super::{cifar, idx, synth, DataError, Dataset};
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
    /// without it and `--cifar`, the embedded synthetic digits.
    #[arg(long, conflicts_with = "cifar")]
    data: Option<PathBuf>,
    /// A directory with the CIFAR-10 binary files.
    #[arg(long)]
    cifar: Option<PathBuf>,
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

/// The train and test splits the flags choose, with a description of
/// their source for messages.
pub fn load(args: &DataArgs) -> Result<(Dataset, Dataset, String), String> {
    let wrap = |e: DataError| e.to_string();
    let (mut train, mut test, what) = if let Some(dir) = &args.cifar {
        let (train, test) = cifar::load_dir(dir).map_err(wrap)?;
        (train, test, format!("the CIFAR-10 files in `{}`", dir.display()))
    } else if let Some(dir) = &args.data {
        let (train, test) = idx::load_dir(dir).map_err(wrap)?;
        (train, test, format!("the IDX files in `{}`", dir.display()))
    } else {
        let n_train = args.train_size.unwrap_or(synth::TRAIN_SIZE);
        let n_test = args.test_size.unwrap_or(synth::TEST_SIZE);
        let (train, test) =
            (synth::generate(args.seed, true, n_train), synth::generate(args.seed, false, n_test));
        (train, test, "the embedded synthetic digits".to_string())
    };
    if let Some(n) = args.train_size {
        train.truncate(n);
    }
    if let Some(n) = args.test_size {
        test.truncate(n);
    }
    Ok((train, test, what))
}

/// Checks that `data` fits `model`: the sample shape (a flat input takes
/// any sample of as many values) and the number of classes.
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
             images, neither for the synthetic digits)",
            data.shape
        ));
    }
    let classes = train.classes().max(test.classes());
    match model.target_kind() {
        TargetKind::Labels { classes: c } if c == classes => Ok(()),
        TargetKind::Labels { classes: c } => Err(format!(
            "`{name}` scores {c} classes; {what} have {classes}: give its last layer {classes} outputs"
        )),
        TargetKind::Values { len } => Err(format!(
            "`{name}`'s loss takes {len} target values per sample; `netc train` trains on class \
             labels (cross-entropy) only"
        )),
    }
}
