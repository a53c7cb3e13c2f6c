//! netc-dsl: the front end of the netc neural-network compiler.
//!
//! `.net` source is parsed by a pest grammar into an AST ([`ast`]), then
//! checked ([`check`]): names are resolved, blocks and repeats expanded and
//! every shape inferred, giving typed IR graphs ([`ir`]). Problems come back as
//! rustc-style diagnostics ([`diag`]).
//!
//! ```
//! let src = "network Mlp {
//!     input x: [784]
//!     x -> dense(512) -> relu -> dense(10) as logits
//!     loss cross_entropy(logits)
//! }";
//! let checked = netc_dsl::check_source("mlp.net", src).expect("a valid network");
//! let g = &checked.graphs[0];
//! assert_eq!(g.total_params(), 784 * 512 + 512 + 512 * 10 + 10);
//! assert_eq!(g.node(g.output).shape.dims(), &[10]);
//! ```
#![deny(unsafe_code)]

pub mod ast;
pub mod builder;
pub mod check;
pub mod codegen;
pub mod diag;
pub mod export;
pub mod import;
pub mod interp;
pub mod ir;
pub mod ops;
pub mod parser;
pub mod program;

pub use builder::{BuildError, Builder};
pub use diag::{Diagnostic, Diagnostics};
pub use ir::{Graph, Precision};

/// The networks of a file that checked cleanly, with any warnings.
#[derive(Debug)]
pub struct Checked {
    pub graphs: Vec<Graph>,
    pub warnings: Vec<Diagnostic>,
}

/// Parses and checks `source`. On error, every diagnostic of the phase that
/// failed (warnings included) comes back, ready to render.
pub fn check_source(file_name: &str, source: &str) -> Result<Checked, Diagnostics> {
    let fail =
        |items| Diagnostics { file_name: file_name.to_string(), source: source.to_string(), items };
    let file = parser::parse(source).map_err(fail)?;
    let (graphs, diags) = check::check(&file, source);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(fail(diags));
    }
    Ok(Checked { graphs, warnings: diags })
}
