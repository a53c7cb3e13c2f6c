//! The `netc` command-line tool.
#![deny(unsafe_code)]

mod check;
mod data;
mod emit;
mod graph;
mod models;
mod plot;
mod source;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "netc", version, about = "The netc neural-network compiler")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check `.net` files and print each network's layer table.
    Check(check::Args),
    /// Print the Rust code generated for a `.net` file.
    Emit(emit::Args),
    /// Draw a network as Graphviz DOT (and SVG when Graphviz is installed).
    Graph(graph::Args),
    /// Train a zoo model (default: LeNet-5 on the embedded synthetic digits).
    Train(train::TrainArgs),
    /// Evaluate a saved checkpoint on a test set.
    Eval(train::EvalArgs),
    /// Classify a PGM or PNG image with a saved checkpoint.
    Predict(train::PredictArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Emit(args) => emit::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Train(args) => train::train(&args),
        Command::Eval(args) => train::eval(&args),
        Command::Predict(args) => train::predict(&args),
    }
}
