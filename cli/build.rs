//! Compiles the zoo models that `netc train --model NAME` offers, at build
//! time, with the same Builder users call from their build.rs, and writes
//! `zoo_index.rs`: the list of those models and their constructors, so the
//! list has one source, the files below.

use std::fmt::Write as _;

/// The zoo's trainable models: `models/<name>.net`.
const MODELS: &[&str] = &["lenet5", "mlp", "linear", "resnet20", "alexnet", "vgg11", "resnet18"];

fn main() {
    let files: Vec<String> = MODELS.iter().map(|m| format!("models/{m}.net")).collect();
    if let Err(e) = netc_dsl::Builder::new().runtime_path("::netc_runtime").compile(&files) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let mut index = String::new();
    let mut entries = String::new();
    for (stem, file) in MODELS.iter().zip(&files) {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        let checked = match netc_dsl::check_source(file, &source) {
            Ok(c) => c,
            Err(d) => {
                eprintln!("{d}");
                std::process::exit(1);
            }
        };
        let ty = &checked.graphs[0].name;
        let precision = checked.graphs[0].precision;
        let _ = writeln!(
            index,
            "pub mod {stem} {{\n    #![allow(clippy::all)]\n    include!(concat!(env!(\"OUT_DIR\"), \"/{stem}.rs\"));\n}}"
        );
        let _ = writeln!(
            entries,
            "    crate::Network {{ name: \"{stem}\", factory: |seed, capacity| Box::new({stem}::{ty}::with_capacity(seed, capacity)), source: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{file}\")), precision: crate::Precision::{precision:?} }},"
        );
    }
    let _ = writeln!(index, "/// The zoo's trainable models, by file stem.\npub const MODELS: &[crate::Network] = &[\n{entries}];");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("zoo_index.rs"), index).expect("write zoo_index.rs");
}
