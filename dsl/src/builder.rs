//! The `build.rs` API, in the style of prost-build: configure a
//! [`Builder`], then [`Builder::compile`] `.net` files into Rust modules in
//! `OUT_DIR`, included with `netc::include_network!("name")`.
//!
//! ```no_run
//! // build.rs: diagnostics are printed rustc-style and fail the build.
//! if let Err(e) = netc_dsl::Builder::new().compile(&["models/lenet5.net"]) {
//!     eprintln!("{e}");
//!     std::process::exit(1);
//! }
//! ```

use crate::codegen::{self, Options};
use crate::diag::Diagnostics;
use crate::Checked;
use std::fmt;
use std::path::{Path, PathBuf};

/// Compiles `.net` files to Rust.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    options: Options,
}

/// Why a compilation failed.
#[derive(Debug)]
pub enum BuildError {
    /// The source has errors; the diagnostics render rustc-style.
    Diagnostics(Box<Diagnostics>),
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// No output directory: neither `out_dir` nor `OUT_DIR` is set.
    NoOutDir,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Diagnostics(d) => d.fmt(f),
            BuildError::Io { path, error } => {
                write!(f, "error: cannot access `{}`: {error}", path.display())
            }
            BuildError::NoOutDir => {
                f.write_str("error: no output directory: set `out_dir` or run from build.rs")
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    pub fn new() -> Self {
        Builder::default()
    }

    /// Where generated files go; defaults to `$OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The path of the runtime crate in generated code; defaults to
    /// `::netc::runtime` (use `::netc_runtime` when depending on it directly).
    pub fn runtime_path(&mut self, path: impl Into<String>) -> &mut Self {
        self.options.runtime_path = path.into();
        self
    }

    /// The generated Rust for `source` (pure: no file is touched).
    pub fn generate(&self, file_name: &str, source: &str) -> Result<String, Box<Diagnostics>> {
        let checked = crate::check_source(file_name, source).map_err(Box::new)?;
        Ok(self.generate_checked(&checked, file_name, source))
    }

    /// The generated Rust for networks already checked from `source`.
    pub fn generate_checked(&self, checked: &Checked, file_name: &str, source: &str) -> String {
        let mut out = String::new();
        for g in &checked.graphs {
            let program = crate::program::lower(g);
            out.push_str(&codegen::generate(g, &program, file_name, source, &self.options));
        }
        out
    }

    /// Compiles each file to `<out_dir>/<file stem>.rs`, writing only files
    /// whose contents change, and tells cargo to rerun when a file changes.
    /// Diagnostics are printed to stderr and returned as the error.
    pub fn compile(&self, files: &[impl AsRef<Path>]) -> Result<(), BuildError> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(BuildError::NoOutDir)?,
        };
        for file in files {
            let path = file.as_ref();
            println!("cargo:rerun-if-changed={}", path.display());
            let source = std::fs::read_to_string(path)
                .map_err(|error| BuildError::Io { path: path.to_path_buf(), error })?;
            let name = path.display().to_string();
            let code = self.generate(&name, &source).map_err(|d| {
                eprintln!("{d}");
                BuildError::Diagnostics(d)
            })?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "network".into());
            let target = out_dir.join(format!("{stem}.rs"));
            write_if_changed(&target, &code)
                .map_err(|error| BuildError::Io { path: target.clone(), error })?;
        }
        Ok(())
    }
}

/// Writes `contents` unless the file already holds exactly that, so that
/// cargo does not rebuild dependents of an unchanged network.
fn write_if_changed(path: &Path, contents: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    std::fs::write(path, contents)
}
