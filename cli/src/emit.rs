//! `netc emit FILE`: prints the Rust that netc generates for a `.net` file,
//! or with `--program` the lowered program's steps.

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
    let name = args.file.display().to_string();
    let source = match std::fs::read_to_string(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read `{name}`: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.program {
        return match netc_dsl::check_source(&name, &source) {
            Ok(checked) => {
                for g in &checked.graphs {
                    print!("{}", netc_dsl::program::lower(g).listing());
                }
                ExitCode::SUCCESS
            }
            Err(d) => {
                eprintln!("{d}");
                ExitCode::FAILURE
            }
        };
    }
    match Builder::new().runtime_path(args.runtime_path.clone()).generate(&name, &source) {
        Ok(code) => {
            print!("{code}");
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            ExitCode::FAILURE
        }
    }
}
