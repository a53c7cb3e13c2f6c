//! Expansion of `network!`: the same code generator as `build.rs`, or
//! compile errors on the offending tokens.

use crate::input::SourceMap;
use netc_dsl::diag::Diagnostic;
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use std::path::PathBuf;

pub fn network(tokens: TokenStream) -> syn::Result<TokenStream> {
    if let Some((path, lit_span)) = file_argument(tokens.clone())? {
        return network_from_file(&path, lit_span);
    }
    let map = SourceMap::from_tokens(tokens);
    match netc_dsl::Builder::new().generate("network!", &map.text) {
        Ok(code) => parse_generated(&code),
        Err(diags) => {
            let errors = diags.items.iter().filter(|d| d.is_error()).map(|d| {
                let (first, last) = map.spans(d.primary.span.start, d.primary.span.end);
                spanned_error(first, last, &inline_message(d, &map.text))
            });
            Err(combine(errors))
        }
    }
}

/// The generated source as tokens (its `//` comments are dropped).
fn parse_generated(code: &str) -> syn::Result<TokenStream> {
    code.parse::<TokenStream>().map_err(|e| {
        syn::Error::new(Span::call_site(), format!("netc generated invalid code (a bug): {e}"))
    })
}

/// Recognises `file = "path"`.
fn file_argument(tokens: TokenStream) -> syn::Result<Option<(String, Span)>> {
    let mut iter = tokens.into_iter();
    let (Some(proc_macro2::TokenTree::Ident(key)), Some(proc_macro2::TokenTree::Punct(eq))) =
        (iter.next(), iter.next())
    else {
        return Ok(None);
    };
    if key != "file" || eq.as_char() != '=' {
        return Ok(None);
    }
    let rest: TokenStream = iter.collect();
    let lit: syn::LitStr = syn::parse2(rest)?;
    Ok(Some((lit.value(), lit.span())))
}

fn network_from_file(path: &str, span: Span) -> syn::Result<TokenStream> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    let full = root.join(path);
    let source = std::fs::read_to_string(&full)
        .map_err(|e| syn::Error::new(span, format!("cannot read `{}`: {e}", full.display())))?;
    let full_str = full.to_string_lossy().into_owned();
    match netc_dsl::Builder::new().generate(path, &source) {
        Ok(code) => {
            let generated = parse_generated(&code)?;
            // `include_str!` makes cargo rebuild when the file changes.
            Ok(quote!(const _: &str = include_str!(#full_str); #generated))
        }
        Err(diags) => Err(syn::Error::new(span, format!("invalid network file\n{diags}"))),
    }
}

/// One line per part of a diagnostic, as rustc prints notes and help.
fn inline_message(d: &Diagnostic, text: &str) -> String {
    let mut msg = d.message.clone();
    if !d.primary.message.is_empty() {
        msg.push_str(&format!("\n{}", d.primary.message));
    }
    for label in &d.secondary {
        let snippet = text.get(label.span.range()).unwrap_or("").trim();
        msg.push_str(&format!("\nnote: `{snippet}`: {}", label.message));
    }
    for note in &d.notes {
        msg.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        msg.push_str(&format!("\nhelp: {help}"));
    }
    msg
}

/// An error spanning `first..last`, which works on stable Rust, where spans
/// cannot be joined: syn spans an error over the tokens it is given.
fn spanned_error(first: Span, last: Span, message: &str) -> syn::Error {
    let a = Ident::new("a", first);
    let b = Ident::new("b", last);
    syn::Error::new_spanned(quote!(#a #b), message)
}

fn combine(errors: impl Iterator<Item = syn::Error>) -> syn::Error {
    let mut all: Option<syn::Error> = None;
    for e in errors {
        match &mut all {
            Some(a) => a.combine(e),
            None => all = Some(e),
        }
    }
    all.unwrap_or_else(|| syn::Error::new(Span::call_site(), "invalid network"))
}
