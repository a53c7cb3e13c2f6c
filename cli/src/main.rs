//! The `netc` command-line tool.
#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    netc_cli::main()
}
