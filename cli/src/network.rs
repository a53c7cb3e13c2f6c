//! Which network a command runs: the one compiled into this binary, a
//! `.net` file to build, or a zoo model by name; in the precision asked
//! for, when one is.

use crate::{zoo, Network};
use netc_dsl::Precision;
use std::path::{Path, PathBuf};

/// Which network a command runs.
pub enum Chosen {
    /// Compiled into this binary: a zoo model, or the network this binary
    /// was built for.
    Built(Network),
    /// A `.net` file to build and run, in this precision if given (else
    /// its own).
    File(PathBuf, Option<Precision>),
}

/// The network of a command: the one compiled in, else the file, else the
/// zoo model by name. A zoo model asked for in a precision other than the
/// one compiled in is built from its `.net` file, as a file is.
pub fn choose(
    built: Option<Network>,
    file: Option<&Path>,
    model: &str,
    precision: Option<Precision>,
) -> Result<Chosen, String> {
    let other = |network: &Network| precision.is_some_and(|p| p != network.precision);
    if let Some(network) = built {
        if other(&network) {
            return Err(format!(
                "this binary has `{}` compiled in {}; run `netc` itself for another precision",
                network.name,
                network.precision.name()
            ));
        }
        return Ok(Chosen::Built(network));
    }
    if let Some(file) = file {
        return Ok(Chosen::File(file.to_path_buf(), precision));
    }
    let network = zoo::find(model).ok_or_else(|| {
        format!("unknown model `{model}`: choose one of {}, or give a .net file", zoo::names())
    })?;
    if other(&network) {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(format!("{model}.net"));
        return Ok(Chosen::File(file, precision));
    }
    Ok(Chosen::Built(network))
}

/// A precision by its name in the language, as `--precision` takes it.
pub fn parse_precision(name: &str) -> Result<Precision, String> {
    Precision::named(name).ok_or_else(|| format!("`{name}` is not f32 or bf16"))
}
