//! Reading and checking a `.net` file for the subcommands that take one, so
//! that all of them report a missing file and render diagnostics (warnings
//! included) the same way.

use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};
use netc_dsl::{diag, Checked};
use std::io::IsTerminal;
use std::path::Path;

/// A `.net` file that read and checked cleanly.
pub struct Source {
    /// The file name that diagnostics and generated code show.
    pub name: String,
    pub text: String,
    pub checked: Checked,
}

/// Reads and checks `path`, printing its warnings, or its errors and a
/// summary line; `None` when it cannot be read or has errors.
pub fn read_checked(path: &Path) -> Option<Source> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read `{name}`: {e}");
            return None;
        }
    };
    // termcolor's `Auto` looks only at TERM and NO_COLOR: colour a pipe or a
    // log file and it fills with escape codes.
    let color =
        if std::io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
    let mut stderr = StandardStream::stderr(color);
    match netc_dsl::check_source(&name, &text) {
        Ok(checked) => {
            diag::write_all(&mut stderr, &checked.warnings, &name, &text);
            Some(Source { name, text, checked })
        }
        Err(diags) => {
            diag::write_all(&mut stderr, &diags.items, &name, &text);
            let n = diags.error_count();
            eprintln!(
                "error: could not check `{name}` due to {n} error{}",
                if n == 1 { "" } else { "s" }
            );
            None
        }
    }
}
