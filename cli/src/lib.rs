//! The `netc` command as a library. The `netc` binary calls [`main`]; the
//! binary that `netc train FILE.net` builds for a network calls
//! [`main_for`] with that network, so both parse the same command line and
//! run the same training loop.
#![deny(unsafe_code)]

mod bench;
mod check;
mod checkpoint;
mod data;
mod distributed;
mod emit;
mod evaluate;
mod events;
mod export;
mod graph;
mod hyper;
mod image;
mod import;
mod metrics;
#[cfg(test)]
mod mutate;
mod netfile;
mod network;
mod plot;
mod predict;
mod run;
mod source;
mod train;
mod zoo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use netc_dsl::Precision;
pub use netc_runtime::model::Model;

/// The readers of the files the command takes, on bytes already read, for
/// the fuzz targets in `fuzz/`: each gives a value or an error naming the
/// file, never a panic.
#[doc(hidden)]
pub mod readers {
    pub use crate::checkpoint::{read_file as checkpoint, Progress};
    pub use crate::data::cifar::from_bytes as cifar;
    pub use crate::data::csv::{from_bytes as csv, Columns, Table};
    pub use crate::data::folder::decode_bytes_into as folder_image;
    pub use crate::data::idx::pair_from_bytes as idx;
    pub use crate::data::{decode_maybe_gz, DataError, Dataset};
    pub use crate::image::decode_image as image;
    pub use crate::metrics::Records;
    pub use crate::plot::render as plot;
}

/// Makes a network: `(seed, capacity)` to a model taking batches of up to
/// `capacity` samples, its weights drawn from `seed`.
pub type Factory = fn(u64, usize) -> Box<dyn Model>;

/// A network the command runs: its name (runs go to `<out>/<name>/`), its
/// factory, the `.net` text it was compiled from (`bench` takes each
/// layer's FLOPs from the checker), and the precision it was compiled in.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    pub name: &'static str,
    pub factory: Factory,
    pub source: &'static str,
    pub precision: Precision,
}

#[derive(Parser, Debug)]
#[command(name = "netc", version, about = "The netc neural-network compiler")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest command's flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Check `.net` files and print each network's layer table.
    Check(check::Args),
    /// Print the Rust code generated for a `.net` file.
    Emit(emit::Args),
    /// Draw a network as Graphviz DOT (and SVG when Graphviz is installed).
    Graph(graph::Args),
    /// Train a network: a `.net` file, or a zoo model by `--model`
    /// (default: LeNet-5 on the embedded synthetic digits).
    Train(train::TrainArgs),
    /// Evaluate a saved checkpoint on a test set.
    Eval(evaluate::EvalArgs),
    /// Classify a PGM or PNG image with a saved checkpoint.
    Predict(predict::PredictArgs),
    /// Run a network on a batch from a safetensors file (inference, or a
    /// few training steps) and write its outputs and losses to another.
    Run(run::RunArgs),
    /// Time each layer's forward and backward pass, the training step and
    /// inference, against the machine's measured FMA peak.
    Bench(bench::BenchArgs),
    /// Import an ONNX model, or a Caffe prototxt and caffemodel, as a
    /// `.net` file and a safetensors file of its weights.
    Import(import::Args),
    /// Export a network and its weights as an ONNX file (opset 17).
    Export(export::Args),
}

/// The `netc` command.
pub fn main() -> ExitCode {
    run(None)
}

/// The `netc` command with `network` compiled in: `train`, `eval`,
/// `predict` and `bench` use it whatever file or `--model` the command
/// line names.
pub fn main_for(network: Network) -> ExitCode {
    run(Some(network))
}

fn run(built: Option<Network>) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Emit(args) => emit::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Train(args) => train::train(&args, built),
        Command::Eval(args) => evaluate::eval(&args, built),
        Command::Predict(args) => predict::predict(&args, built),
        Command::Run(args) => run::run(&args, built),
        Command::Bench(args) => bench::bench(&args, built),
        Command::Import(args) => import::run(&args),
        Command::Export(args) => export::run(&args),
    }
}

pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

pub(crate) fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool, String> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        b = b.num_threads(t.max(1));
    }
    b.build().map_err(|e| format!("cannot start threads: {e}"))
}
