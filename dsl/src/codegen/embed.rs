//! Weights embedded in the generated code (`Builder::embed_weights`): the
//! safetensors file's bytes as a constant, checked against the network's
//! tensors at build time, and a constructor that loads them.

use super::names::expand_comments;
use crate::program::Program;
use proc_macro2::{Ident, Span};
use quote::quote;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use std::path::Path;

/// The `impl` that embeds `weights` (an absolute path) in the network of
/// `p`, as formatted Rust source.
pub fn embedded_weights(p: &Program, weights: &Path, runtime_path: &str) -> String {
    let rt: syn::Path = match syn::parse_str(runtime_path) {
        Ok(path) => path,
        Err(e) => unreachable!("the runtime path was checked when the network was generated: {e}"),
    };
    let name = Ident::new(&p.name, Span::call_site());
    let path = weights.display().to_string();
    let doc = format!(" The weights embedded at build time from `{path}`.");
    let tokens = quote! {
        impl #name {
            #[doc = #doc]
            pub const EMBEDDED_WEIGHTS: &'static [u8] = include_bytes!(#path);

            /// A model of the weights embedded at build time, which the
            /// build checked against the network's tensors.
            pub fn embedded() -> Result<Self, #rt::Error> {
                Self::from_bytes(Self::EMBEDDED_WEIGHTS)
            }
        }
    };
    let file: syn::File = match syn::parse2(tokens) {
        Ok(f) => f,
        Err(e) => unreachable!("generated code does not parse: {e}"),
    };
    expand_comments(&prettyplease::unparse(&file))
}

/// Checks that the safetensors `bytes` hold exactly the tensors of `p`,
/// with their shapes, in a dtype netc reads (batch norm's
/// `num_batches_tracked` counters aside), as a strict load would.
pub fn check_weights(p: &Program, bytes: &[u8]) -> Result<(), String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut problems = Vec::new();
    for q in &p.params {
        match st.tensor(&q.name) {
            Err(_) => problems.push(format!("it lacks `{}` {:?}", q.name, q.shape)),
            Ok(view) if view.shape() != q.shape.as_slice() => problems.push(format!(
                "`{}` is {:?} there, {:?} in `{}`",
                q.name,
                view.shape(),
                q.shape,
                p.name
            )),
            Ok(view) if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) => problems
                .push(format!("`{}` is {:?}; netc reads F32, F16 and BF16", q.name, view.dtype())),
            Ok(_) => {}
        }
    }
    for name in st.names() {
        if !name.ends_with("num_batches_tracked") && !p.params.iter().any(|q| &q.name == name) {
            problems.push(format!("`{}` has no tensor `{name}`", p.name));
        }
    }
    problems.sort();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("; ")),
    }
}
