//! Which network a command runs: the one compiled into this binary, a
//! `.net` file to build, or a zoo model by name.

use crate::{zoo, Network};
use std::path::{Path, PathBuf};

/// Which network a command runs.
pub enum Chosen {
    /// Compiled into this binary: a zoo model, or the network this binary
    /// was built for.
    Built(Network),
    /// A `.net` file to build and run.
    File(PathBuf),
}

/// The network of a command: the one compiled in, else the file, else the
/// zoo model by name.
pub fn choose(built: Option<Network>, file: Option<&Path>, model: &str) -> Result<Chosen, String> {
    if let Some(network) = built {
        return Ok(Chosen::Built(network));
    }
    if let Some(file) = file {
        return Ok(Chosen::File(file.to_path_buf()));
    }
    zoo::find(model).map(Chosen::Built).ok_or_else(|| {
        format!("unknown model `{model}`: choose one of {}, or give a .net file", zoo::names())
    })
}
