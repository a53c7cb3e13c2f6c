//! Compiles the zoo models that `netc train` can train, at build time, with
//! the same Builder users call from their build.rs.

fn main() {
    let models = [
        "../models/lenet5.net",
        "../models/mlp.net",
        "../models/linear.net",
        "../models/resnet20.net",
    ];
    if let Err(e) = netc_dsl::Builder::new().runtime_path("::netc_runtime").compile(&models) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
