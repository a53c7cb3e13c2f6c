//! `netc import model.onnx [-o model.net]`: an ONNX model to a `.net`
//! source and a safetensors file of its weights beside it. On any error
//! nothing is written. A Caffe `.prototxt` goes to `import/caffe.rs`.

mod caffe;

use crate::fail;
use netc_dsl::import::onnx;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.onnx` file, or Caffe `.prototxt`, to import.
    file: PathBuf,
    /// The `.net` file to write (default: the input's name with `.net`);
    /// the weights go beside it, with `.safetensors`.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The network's name (default: from the file name, in CamelCase).
    #[arg(long)]
    name: Option<String>,
    /// Caffe: the `.caffemodel` of the prototxt's trained weights (without
    /// it, only the `.net` file is written).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Caffe: the per-sample shape a `Data` layer reads, such as `1,28,28`.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// ONNX: end the network with this loss on its output, so that
    /// `netc train` and `netc run --train-steps` can train it as imported.
    /// (A Caffe prototxt brings its own: `SoftmaxWithLoss`.)
    #[arg(long, value_enum)]
    loss: Option<LossChoice>,
}

/// The losses an imported network can end with, by the language's names.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossChoice {
    /// Class logits against class indices.
    CrossEntropy,
    /// Mean squared error against float targets.
    Mse,
    /// Multi-label logits against float targets in [0, 1].
    BceWithLogits,
    /// Smooth L1 against float targets.
    SmoothL1,
    /// Huber against float targets.
    Huber,
}

impl LossChoice {
    fn name(self) -> &'static str {
        match self {
            LossChoice::CrossEntropy => "cross_entropy",
            LossChoice::Mse => "mse",
            LossChoice::BceWithLogits => "bce_with_logits",
            LossChoice::SmoothL1 => "smooth_l1",
            LossChoice::Huber => "huber",
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    let net_path = args.output.clone().unwrap_or_else(|| args.file.with_extension("net"));
    let name = args.name.clone().unwrap_or_else(|| network_name(&args.file));
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {}: {e}", args.file.display())),
    };
    if caffe::is_prototxt(&args.file, &bytes) {
        if args.loss.is_some() {
            return fail(
                "--loss is for ONNX models; a Caffe network takes its loss from the \
                 prototxt's SoftmaxWithLoss layer (import the train_val prototxt)",
            );
        }
        return caffe::run(args, &bytes, &net_path);
    }
    let imported = match onnx::import_with_loss(&bytes, &name, args.loss.map(LossChoice::name)) {
        Ok(i) => i,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    write(&imported, &name, &net_path, true)
}

/// Writes the imported `.net` to `net_path` and, `with_weights`, its
/// weights beside it, and says what it wrote.
fn write(imported: &onnx::Imported, name: &str, net_path: &Path, with_weights: bool) -> ExitCode {
    let weights_path = net_path.with_extension("safetensors");
    let mut files = vec![(net_path, imported.source.as_bytes().to_vec())];
    if with_weights {
        files.push((&weights_path, imported.safetensors()));
    }
    for (path, contents) in &files {
        if let Err(e) = std::fs::write(path, contents) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    if with_weights {
        let values: usize = imported.weights.iter().map(|w| w.values.len()).sum();
        println!(
            "wrote {} (network {name}) and {} ({} tensors, {values} values)",
            net_path.display(),
            weights_path.display(),
            imported.weights.len()
        );
    } else {
        println!(
            "wrote {} (network {name}); no --weights given, so no weights file: \
             the network starts from its own initialisation",
            net_path.display()
        );
    }
    ExitCode::SUCCESS
}

/// `small_cnn.onnx` gives `SmallCnn`; a name that would not start with a
/// letter gets `Net` in front.
pub(crate) fn network_name(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    onnx::network_name(&stem)
}

#[cfg(test)]
mod tests {
    use super::network_name;
    use std::path::Path;

    #[test]
    fn network_names_are_camel_case() {
        assert_eq!(network_name(Path::new("dir/small_cnn.onnx")), "SmallCnn");
        assert_eq!(network_name(Path::new("squeezenet1_1.onnx")), "Squeezenet11");
        assert_eq!(network_name(Path::new("3d-model.onnx")), "Net3dModel");
    }
}
