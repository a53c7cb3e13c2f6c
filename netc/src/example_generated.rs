//! The API of a generated model, shown on LeNet-5.
//!
//! Nothing here is written by hand. With the `example-generated` feature
//! (docs.rs enables it), this crate's `build.rs` compiles the network below
//! with [`netc_dsl::Builder`], the same call a user's `build.rs` makes, and
//! this module includes the result with [`include_network!`], as a user's
//! crate does. The items below are therefore exactly what the current code
//! generator emits for this file; your networks get the same methods and
//! constants, with their own shapes.
//!
//! The network, `src/example_generated/lenet5.net` (the same file as the
//! zoo's `cli/models/lenet5.net`, which a test keeps identical):
//!
//! ```text
#![doc = include_str!("example_generated/lenet5.net")]
//! ```
//!
//! In a crate of your own, with `netc` as a dependency and `netc-dsl` as a
//! build dependency:
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     if let Err(e) = netc_dsl::Builder::new().compile(&["models/lenet5.net"]) {
//!         eprintln!("{e}");
//!         std::process::exit(1);
//!     }
//! }
//!
//! // src/main.rs (or any module)
//! netc::include_network!("lenet5");
//! ```
//!
//! [`netc_dsl::Builder`]: https://docs.rs/netc-dsl/latest/netc_dsl/builder/struct.Builder.html
//! [`include_network!`]: crate::include_network
// The generated documentation writes a tensor's shape as `shape [128]`,
// which rustdoc takes for a link; it renders as the plain text it is.
#![allow(rustdoc::broken_intra_doc_links)]

netc::include_network!("lenet5");
