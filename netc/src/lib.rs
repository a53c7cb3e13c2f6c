//! netc: a neural-network compiler for Rust.
//!
//! Networks are written in the `.net` language, checked at build time, and
//! (as the code generator lands) compiled to statically shaped Rust. This
//! facade re-exports the [`network!`] macro and the runtime.
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
