//! `netc emit FILE`: prints the Rust that netc generates for a `.net` file,
//! or with `--program` the lowered program's steps.

use crate::source::read_checked;
use netc_dsl::Builder;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.net` file.
    file: PathBuf,
    /// Print the lowered program (steps of each pass) instead of Rust.
    #[arg(long)]
    program: bool,
    /// The runtime's path in generated code.
    #[arg(long, default_value = "::netc::runtime")]
    runtime_path: String,
}

pub fn run(args: &Args) -> ExitCode {
    let Some(source) = read_checked(&args.file) else {
        return ExitCode::FAILURE;
    };
    if args.program {
        for g in &source.checked.graphs {
            print!("{}", netc_dsl::program::lower(g).listing());
        }
    } else {
        let mut builder = Builder::new();
        builder.runtime_path(args.runtime_path.clone());
        print!("{}", builder.generate_checked(&source.checked, &source.name, &source.text));
    }
    ExitCode::SUCCESS
}
