//! `netc run`: a network's compiled code on tensors read from a
//! safetensors file, for inference or a few training steps, with the
//! results written to another. It is how netc's numbers are compared with
//! another framework's on the same weights and inputs, and how a batch is
//! run through a model without writing a program.

use crate::hyper::{self, OptimizerArgs};
use crate::network::{choose, Chosen};
use crate::{fail, netfile, pool, Network};
use netc_runtime::model::{TargetKind, Targets};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A `.net` file to run (built once, cached); it needs a loss, which
    /// `netc import --loss` adds to an imported model. Without it,
    /// `--model` names a zoo model.
    file: Option<PathBuf>,
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// Weights to start from (safetensors under PyTorch's names); every
    /// tensor must match. Without them, the network's own initialisation
    /// from `--seed`.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The safetensors file to run on: `input`, of shape `[batch, ...]` of
    /// the network's input; for `--train-steps`, also `labels` (class
    /// indices, of any integer dtype) or `targets` (floats of the output's
    /// shape), whichever the loss takes.
    #[arg(long)]
    inputs: PathBuf,
    /// Where to write the results: `output` (inference with the starting
    /// weights); with `--train-steps`, also `loss` (each step's) and
    /// `output_after` (inference after the last step).
    #[arg(short, long)]
    output: PathBuf,
    /// Training steps to take on the batch, each forward, backward and
    /// update, as `netc train` takes them.
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    #[command(flatten)]
    step: OptimizerArgs,
    /// Write the weights (and batch norm's running statistics) after the
    /// training steps to this safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Seed of the initialisation (without `--weights`) and of dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads; default: one per core.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: &RunArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.file.as_deref(), &args.model, None) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file, precision)) => return netfile::run(&file, precision),
        Err(e) => return fail(e),
    };
    let result = pool(args.threads).and_then(|pool| pool.install(|| run_on(args, network)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run_on(args: &RunArgs, network: Network) -> Result<(), String> {
    let bytes = std::fs::read(&args.inputs)
        .map_err(|e| format!("cannot read `{}`: {e}", args.inputs.display()))?;
    let tensors = Tensors::parse(&bytes, &args.inputs)?;
    let (input_shape, input) = tensors.read("input", "the batch to run on")?;
    let batch = input_shape.first().copied().unwrap_or(0).max(1);
    let mut model = (network.factory)(args.seed, batch);
    let x = tensors.input(&input_shape, input, model.input_shape())?;
    if let Some(path) = &args.weights {
        model.load(path).map_err(|e| e.to_string())?;
    }
    let mut output = vec![0.0f32; batch * model.output_len()];
    model.predict(&x, &mut output).map_err(|e| e.to_string())?;
    let out_shape: Vec<usize> = [batch].iter().chain(model.output_shape()).copied().collect();
    let mut results = vec![("output".to_string(), out_shape.clone(), output)];
    if args.train_steps > 0 {
        let opt = hyper::optimizer(&args.step, model.as_ref())?;
        let targets = tensors.targets(model.target_kind(), batch, &out_shape)?;
        let targets = match &targets {
            Owned::Labels(l) => Targets::Labels(l),
            Owned::Values(v) => Targets::Values(v),
        };
        let mut losses = Vec::with_capacity(args.train_steps);
        for _ in 0..args.train_steps {
            let (loss, _) = model.train_step(&x, targets, &opt).map_err(|e| e.to_string())?;
            losses.push(loss);
        }
        let mut after = vec![0.0f32; batch * model.output_len()];
        model.predict(&x, &mut after).map_err(|e| e.to_string())?;
        results.push(("loss".to_string(), vec![losses.len()], losses));
        results.push(("output_after".to_string(), out_shape, after));
    }
    let named: Vec<(String, Vec<usize>, &[f32])> =
        results.iter().map(|(n, s, v)| (n.clone(), s.clone(), v.as_slice())).collect();
    netc_runtime::weights::save(&args.output, &named).map_err(|e| e.to_string())?;
    if let Some(path) = &args.save {
        model.save(path).map_err(|e| e.to_string())?;
    }
    println!(
        "{}: ran {batch} samples{}; wrote {}",
        network.name,
        match args.train_steps {
            0 => String::new(),
            n => format!(" and {n} training steps"),
        },
        args.output.display()
    );
    Ok(())
}

/// Targets read from the file, owned until the steps borrow them.
enum Owned {
    Labels(Vec<u32>),
    Values(Vec<f32>),
}

/// The tensors of the `--inputs` file.
struct Tensors<'a> {
    file: SafeTensors<'a>,
    path: &'a Path,
}

impl<'a> Tensors<'a> {
    fn parse(bytes: &'a [u8], path: &'a Path) -> Result<Self, String> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| format!("`{}` is not a valid safetensors file: {e}", path.display()))?;
        Ok(Tensors { file, path })
    }

    /// The tensor `name`, its shape and its values as f64, whatever its
    /// numeric dtype.
    fn read(&self, name: &str, what: &str) -> Result<(Vec<usize>, Vec<f64>), String> {
        let view = self
            .file
            .tensor(name)
            .map_err(|_| format!("`{}` has no tensor `{name}` ({what})", self.path.display()))?;
        let data = view.data();
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => {
                data.as_chunks().0.iter().map(|&b| f32::from_le_bytes(b).into()).collect()
            }
            Dtype::F64 => data.as_chunks().0.iter().map(|&b| f64::from_le_bytes(b)).collect(),
            // Labels: exact as f64 up to 2^53, far beyond any class count.
            Dtype::I64 => {
                data.as_chunks().0.iter().map(|&b| i64::from_le_bytes(b) as f64).collect()
            }
            Dtype::I32 => {
                data.as_chunks().0.iter().map(|&b| i32::from_le_bytes(b).into()).collect()
            }
            Dtype::U32 => {
                data.as_chunks().0.iter().map(|&b| u32::from_le_bytes(b).into()).collect()
            }
            Dtype::U8 => data.iter().map(|&b| b.into()).collect(),
            other => {
                return Err(format!(
                "tensor `{name}` of `{}` is {other:?}; netc reads F32, F64, I64, I32, U32 and U8",
                self.path.display()
            ))
            }
        };
        Ok((view.shape().to_vec(), values))
    }

    /// The values of `input`, of `shape`, as f32 samples of the
    /// network's `sample` shape.
    fn input(
        &self,
        shape: &[usize],
        values: Vec<f64>,
        sample: &[usize],
    ) -> Result<Vec<f32>, String> {
        match shape.split_first() {
            Some((&batch, rest)) if rest == sample && batch > 0 => {
                Ok(values.into_iter().map(|v| v as f32).collect())
            }
            _ => Err(format!(
                "tensor `input` of `{}` has shape {shape:?}; the network takes [batch, {}] with a \
                 batch of at least 1",
                self.path.display(),
                sample.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The targets of `batch` samples that the loss of `kind` takes.
    fn targets(
        &self,
        kind: TargetKind,
        batch: usize,
        out_shape: &[usize],
    ) -> Result<Owned, String> {
        match kind {
            TargetKind::Labels { classes } => {
                let (shape, values) = self.read("labels", "class indices, for --train-steps")?;
                if shape != [batch] {
                    return Err(format!(
                        "tensor `labels` of `{}` has shape {shape:?}; the batch needs [{batch}]",
                        self.path.display()
                    ));
                }
                let labels = values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if v.fract() == 0.0 && v >= 0.0 && v < classes as f64 {
                            Ok(v as u32)
                        } else {
                            Err(format!("label {v} of sample {i} is not a class of 0..{classes}"))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Owned::Labels(labels))
            }
            TargetKind::Values { len } => {
                let (shape, values) = self.read("targets", "float targets, for --train-steps")?;
                if shape.first() != Some(&batch) || shape[1..].iter().product::<usize>() != len {
                    return Err(format!(
                        "tensor `targets` of `{}` has shape {shape:?}; the loss needs {batch} \
                         samples of {len} values, such as {out_shape:?}",
                        self.path.display()
                    ));
                }
                Ok(Owned::Values(values.into_iter().map(|v| v as f32).collect()))
            }
        }
    }
}
