//! netc: a neural-network compiler for Rust.
//!
//! Networks are written in the `.net` language, checked at build time, and
//! (as the code generator lands) compiled to statically shaped Rust. This
//! facade re-exports the [`network!`] macro and the runtime.
#![deny(unsafe_code)]

pub use netc_macros::network;
pub use netc_runtime as runtime;
