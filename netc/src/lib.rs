//! netc: a neural-network compiler for Rust.
//!
//! Networks are written in the `.net` language, checked at build time
//! (every tensor shape inferred), differentiated, and compiled to statically
//! shaped Rust that calls netc's kernels. There are two ways in, which give
//! the same model type:
//!
//! - a `.net` file compiled by `netc_dsl::Builder` in `build.rs` and
//!   included with [`include_network!`];
//! - the [`network!`] macro, inline or with `file = "..."`.
//!
//! The `example_generated` module (with the `example-generated` feature,
//! which docs.rs enables) shows the API of a generated model on LeNet-5.
//!
//! ```
//! netc::network! {
//!     network Tiny {
//!         input x: [4]
//!         x -> dense(3) -> relu -> dense(2) as logits
//!         loss cross_entropy(logits)
//!     }
//! }
//! assert_eq!(Tiny::INPUT, [4]);
//! assert_eq!(Tiny::OUTPUT, [2]);
//! assert_eq!(Tiny::PARAMS, 4 * 3 + 3 + 3 * 2 + 2);
//! assert_eq!(Tiny::MACS_PER_SAMPLE, 4 * 3 + 3 * 2);
//! ```
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Generated code names the runtime `::netc::runtime`, as in a user's crate;
// this lets `example_generated` be compiled here exactly as it is there.
#[cfg(feature = "example-generated")]
extern crate self as netc;

pub use netc_macros::network;

/// Includes the Rust that `netc_dsl::Builder` generated from `<name>.net` in
/// `build.rs`: `netc::include_network!("lenet5");`.
#[macro_export]
macro_rules! include_network {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}
pub use netc_runtime as runtime;

#[cfg(feature = "example-generated")]
#[cfg_attr(docsrs, doc(cfg(feature = "example-generated")))]
pub mod example_generated;
