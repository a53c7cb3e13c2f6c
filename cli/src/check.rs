//! `netc check FILE...`: parse and check networks, then print a layer table
//! (or JSON) per network, or the diagnostics and a non-zero exit status.

use crate::source::read_checked;
use netc_dsl::ir::{layer_rows, LayerRow};
use netc_dsl::Graph;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.net` files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object per network, one per line, instead of tables.
    #[arg(long)]
    json: bool,
}

/// The JSON form of a checked network.
#[derive(Serialize)]
struct Report<'a> {
    file: String,
    network: &'a str,
    inputs: Vec<(String, Vec<usize>)>,
    output: Vec<usize>,
    total_params: usize,
    /// Forward multiply-accumulates per sample (conv and dense).
    total_macs: u64,
    total_flops: u64,
    activation_bytes: usize,
    layers: Vec<LayerRow>,
}

fn report<'a>(file: &str, g: &'a Graph) -> Report<'a> {
    Report {
        file: file.to_string(),
        network: &g.name,
        inputs: g
            .inputs
            .iter()
            .map(|&i| (g.node(i).name.clone(), g.node(i).shape.0.clone()))
            .collect(),
        output: g.node(g.output).shape.0.clone(),
        total_params: g.total_params(),
        total_macs: g.total_macs(),
        total_flops: g.total_flops(),
        activation_bytes: g.activation_bytes(),
        layers: layer_rows(g),
    }
}

pub fn run(args: &Args) -> ExitCode {
    let mut failed = false;
    for path in &args.files {
        let Some(source) = read_checked(path) else {
            failed = true;
            continue;
        };
        for g in &source.checked.graphs {
            if args.json {
                match serde_json::to_string(&report(&source.name, g)) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("error: cannot serialise `{}`: {e}", g.name);
                        failed = true;
                    }
                }
            } else {
                println!("{}: {}", source.name, g.table());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
