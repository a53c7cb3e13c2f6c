//! `netc graph FILE`: writes the network as Graphviz DOT, and as SVG when
//! Graphviz's `dot` is on the PATH.

use crate::source::read_checked;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.net` file.
    file: PathBuf,
    /// Output path without extension; defaults to the file's stem.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let Some(source) = read_checked(&args.file) else {
        return ExitCode::FAILURE;
    };
    let base = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(args.file.file_stem().unwrap_or_default()));
    for g in &source.checked.graphs {
        let dot_path = base.with_extension("dot");
        if let Err(e) = std::fs::write(&dot_path, g.to_dot()) {
            eprintln!("error: cannot write `{}`: {e}", dot_path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", dot_path.display());
        let svg_path = base.with_extension("svg");
        let rendered = Command::new("dot")
            .args(["-Tsvg", "-o"])
            .arg(&svg_path)
            .arg(&dot_path)
            .stderr(Stdio::null())
            .status();
        match rendered {
            Ok(status) if status.success() => println!("wrote {}", svg_path.display()),
            _ => println!(
                "(Graphviz `dot` not found: no SVG; render with `dot -Tsvg {}`)",
                dot_path.display()
            ),
        }
    }
    ExitCode::SUCCESS
}
