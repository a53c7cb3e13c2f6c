//! Procedural macros of netc. The logic lives in `netc-dsl`; this crate only
//! turns tokens into source text and diagnostics into spanned compile errors.
#![deny(unsafe_code)]

mod expand;
mod input;

use proc_macro::TokenStream;

/// Compiles a network written in the `.net` language, inline or from a
/// file, at compile time, into the same model type that `build.rs` with
/// `netc_dsl::Builder` generates: parameters, forward and backward passes,
/// training step, weights I/O, and shape and cost constants. Errors point at
/// the offending tokens.
///
/// (This example runs as a doctest of the `netc` facade crate, which
/// re-exports the macro.)
///
/// ```text
/// netc::network! {
///     network Tiny {
///         input x: [4]
///         x -> dense(3) -> relu -> dense(2) as logits
///         loss cross_entropy(logits)
///     }
/// }
/// assert_eq!(Tiny::INPUT, [4]);
/// assert_eq!(Tiny::OUTPUT, [2]);
/// assert_eq!(Tiny::PARAMS, 4 * 3 + 3 + 3 * 2 + 2);
/// ```
///
/// `network!(file = "models/mlp.net")` reads the file relative to the
/// crate's `CARGO_MANIFEST_DIR` and rebuilds when it changes.
#[proc_macro]
pub fn network(tokens: TokenStream) -> TokenStream {
    expand::network(tokens.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
