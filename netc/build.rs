//! With the `example-generated` feature (docs.rs enables it), compiles the
//! LeNet-5 of `src/example_generated/` with `netc_dsl::Builder`, the call a
//! user's `build.rs` makes, for the `example_generated` module: the
//! documentation of a generated model is then always what the current code
//! generator emits, never a copy of it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "example-generated")]
    if let Err(e) = netc_dsl::Builder::new().compile(&["src/example_generated/lenet5.net"]) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
