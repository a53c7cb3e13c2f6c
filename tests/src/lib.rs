//! Helpers shared by the integration tests of this folder.

use std::path::PathBuf;

/// The path of a zoo model, `models/<name>.net`, from the workspace root.
pub fn zoo_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{name}.net"))
}
