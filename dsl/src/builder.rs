//! The `build.rs` API, in the style of prost-build: configure a
//! [`Builder`], then [`Builder::compile`] `.net` files into Rust modules in
//! `OUT_DIR`, included with `netc::include_network!("name")`. An `.onnx`
//! file compiles too: it is imported at build time (its `.net` source and
//! weights land in `OUT_DIR`), and its weights are embedded.
//!
//! ```no_run
//! // build.rs: warnings show in cargo's output; errors print rustc-style,
//! // once, and fail the build.
//! if let Err(e) = netc_dsl::Builder::new().compile(&["models/lenet5.net"]) {
//!     eprintln!("{e}");
//!     std::process::exit(1);
//! }
//! ```

use crate::codegen::{self, Options};
use crate::diag::Diagnostics;
use crate::ir::Precision;
use crate::Checked;
use std::fmt;
use std::path::{Path, PathBuf};

/// Compiles `.net` files to Rust.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    options: Options,
    /// Weights files to embed, by the `.net` file they belong to.
    embedded: Vec<(PathBuf, PathBuf)>,
    /// The precision of every network, over their `precision` statements.
    precision: Option<Precision>,
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
    /// Two files whose modules would have the same name.
    StemCollision {
        stem: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A weights file to embed that does not fit its network, or is given
    /// for a `.net` file of several networks.
    Weights {
        path: PathBuf,
        network: String,
        problem: String,
    },
    /// An `.onnx` file that cannot be imported.
    Import {
        path: PathBuf,
        problem: String,
    },
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
            BuildError::StemCollision { stem, first, second } => write!(
                f,
                "error: `{}` and `{}` would both become the module `{stem}`: rename one",
                first.display(),
                second.display()
            ),
            BuildError::Weights { path, network, problem } => {
                write!(f, "error: cannot embed `{}` in `{network}`: {problem}", path.display())
            }
            BuildError::Import { path, problem } => {
                write!(f, "error: cannot import `{}`: {problem}", path.display())
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

    /// Compiles every network in `precision`, whatever its `precision`
    /// statement says: the same `.net` files built for bf16 training on a
    /// CPU that has it, and for f32 elsewhere.
    pub fn precision(&mut self, precision: Precision) -> &mut Self {
        self.precision = Some(precision);
        self
    }

    /// Embeds the safetensors file `weights` in the code of the network of
    /// `net_file` (as given to [`Builder::compile`]): the network gets
    /// `EMBEDDED_WEIGHTS` and `embedded()`, a model of those weights. The
    /// build checks that the file holds exactly the network's tensors, and
    /// reruns when it changes.
    pub fn embed_weights(
        &mut self,
        net_file: impl Into<PathBuf>,
        weights: impl Into<PathBuf>,
    ) -> &mut Self {
        self.embedded.push((net_file.into(), weights.into()));
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
            let mut g = g.clone();
            g.precision = self.precision.unwrap_or(g.precision);
            let g = &g;
            let program = crate::program::lower(g);
            out.push_str(&codegen::generate(g, &program, file_name, source, &self.options));
        }
        out
    }

    /// Compiles each file to `<out_dir>/<file stem>.rs`, writing only files
    /// whose contents change, and tells cargo to rerun when a file changes.
    /// Warnings go to cargo (`cargo:warning`, shown with the build);
    /// errors come back as the error, to print once. Two files with the
    /// same stem would write the same module: that is an error naming both.
    pub fn compile(&self, files: &[impl AsRef<Path>]) -> Result<(), BuildError> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(BuildError::NoOutDir)?,
        };
        let mut stems: Vec<(String, PathBuf)> = Vec::new();
        for file in files {
            let path = file.as_ref();
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "network".into());
            if let Some((_, first)) = stems.iter().find(|(s, _)| *s == stem) {
                return Err(BuildError::StemCollision {
                    stem,
                    first: first.clone(),
                    second: path.to_path_buf(),
                });
            }
            stems.push((stem.clone(), path.to_path_buf()));
            println!("cargo:rerun-if-changed={}", path.display());
            let (name, source, imported_weights) = if path.extension().is_some_and(|e| e == "onnx")
            {
                import_onnx(path, &stem, &out_dir)?
            } else {
                let source = std::fs::read_to_string(path)
                    .map_err(|error| BuildError::Io { path: path.to_path_buf(), error })?;
                (path.display().to_string(), source, None)
            };
            let checked = crate::check_source(&name, &source)
                .map_err(|d| BuildError::Diagnostics(Box::new(d)))?;
            for w in &checked.warnings {
                let (line, col) = w.line_col(&source);
                println!("cargo:warning={name}:{line}:{col}: {}", w.message);
            }
            let mut code = self.generate_checked(&checked, &name, &source);
            let weights = self.embedded.iter().find(|(net, _)| net == path).map(|(_, w)| w);
            if let Some(weights) = weights.or(imported_weights.as_ref()) {
                code.push_str(&self.embed(&checked, weights)?);
            }
            let target = out_dir.join(format!("{stem}.rs"));
            write_if_changed(&target, &code)
                .map_err(|error| BuildError::Io { path: target.clone(), error })?;
        }
        Ok(())
    }
}

impl Builder {
    /// The code that embeds `weights` in the one network of `checked`,
    /// once the file is found to fit it.
    fn embed(&self, checked: &Checked, weights: &Path) -> Result<String, BuildError> {
        let fail = |network: &str, problem: String| BuildError::Weights {
            path: weights.to_path_buf(),
            network: network.to_string(),
            problem,
        };
        let [g] = checked.graphs.as_slice() else {
            let names: Vec<&str> = checked.graphs.iter().map(|g| g.name.as_str()).collect();
            return Err(fail(&names.join(", "), "the file holds several networks".into()));
        };
        println!("cargo:rerun-if-changed={}", weights.display());
        let bytes = std::fs::read(weights)
            .map_err(|error| BuildError::Io { path: weights.to_path_buf(), error })?;
        let program = crate::program::lower(g);
        codegen::check_weights(&program, &bytes).map_err(|problem| fail(&g.name, problem))?;
        // `include_bytes!` resolves a relative path against the generated
        // file, in `OUT_DIR`.
        let absolute = std::fs::canonicalize(weights)
            .map_err(|error| BuildError::Io { path: weights.to_path_buf(), error })?;
        Ok(codegen::embedded_weights(&program, &absolute, &self.options.runtime_path))
    }
}

/// Writes `contents` unless the file already holds exactly that, so that
/// cargo does not rebuild dependents of an unchanged network.
/// Imports an ONNX file at build time: its `.net` source and weights are
/// written to `out_dir` as `<stem>.net` and `<stem>.safetensors` (the
/// names diagnostics and the generated code's comments show), and the
/// weights are embedded unless `embed_weights` names others.
fn import_onnx(
    path: &Path,
    stem: &str,
    out_dir: &Path,
) -> Result<(String, String, Option<PathBuf>), BuildError> {
    let bytes =
        std::fs::read(path).map_err(|error| BuildError::Io { path: path.to_path_buf(), error })?;
    let imported = crate::import::onnx::import(&bytes, &crate::import::onnx::network_name(stem))
        .map_err(|e| BuildError::Import { path: path.to_path_buf(), problem: e.to_string() })?;
    let net = out_dir.join(format!("{stem}.net"));
    let weights = out_dir.join(format!("{stem}.safetensors"));
    for (target, contents) in
        [(&net, imported.source.as_bytes()), (&weights, &imported.safetensors()[..])]
    {
        write_if_changed(target, contents)
            .map_err(|error| BuildError::Io { path: target.clone(), error })?;
    }
    Ok((net.display().to_string(), imported.source, Some(weights)))
}

fn write_if_changed(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents.as_ref()) {
        return Ok(());
    }
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary folder with subfolders `a` and `b`.
    fn temp() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir_all(dir.path().join("a")).expect("dir");
        std::fs::create_dir_all(dir.path().join("b")).expect("dir");
        dir
    }

    const NET: &str = "network N {\n    input x: [4]\n    y = x -> dense(2)\n    loss mse(y)\n}\n";

    #[test]
    fn two_files_of_one_stem_are_an_error_naming_both() {
        let folder = temp();
        let dir = folder.path();
        let (a, b) = (dir.join("a/net.net"), dir.join("b/net.net"));
        std::fs::write(&a, NET).expect("write");
        std::fs::write(&b, NET).expect("write");
        let err = Builder::new().out_dir(dir).compile(&[&a, &b]).unwrap_err().to_string();
        assert!(
            err.contains("a/net.net") && err.contains("b/net.net") && err.contains("`net`"),
            "{err}"
        );
    }

    #[test]
    fn errors_are_returned_for_the_caller_to_print() {
        let folder = temp();
        let dir = folder.path();
        let bad = dir.join("bad.net");
        std::fs::write(&bad, "network N {\n    input x: [4]\n    y = x -> dense(0)\n}\n")
            .expect("write");
        let err = Builder::new().out_dir(dir).compile(&[&bad]).unwrap_err();
        assert!(matches!(err, BuildError::Diagnostics(_)));
        assert!(err.to_string().contains("bad.net:3"), "{err}");
        assert!(!dir.join("bad.rs").exists(), "nothing is written for a file with errors");
    }

    /// Writes a safetensors file of f32 zeros of these shapes.
    fn weights(path: &Path, tensors: &[(&str, &[usize])]) {
        use safetensors::tensor::{Dtype, TensorView};
        let data: Vec<Vec<u8>> =
            tensors.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .zip(&data)
            .map(|((n, s), d)| {
                (n.to_string(), TensorView::new(Dtype::F32, s.to_vec(), d).expect("view"))
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, &None).expect("serialize"))
            .expect("write");
    }

    #[test]
    fn an_onnx_file_is_imported_and_its_weights_embedded() {
        let folder = temp();
        let dir = folder.path();
        let onnx = dir.join("small_cnn.onnx");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/onnx/small_cnn.onnx");
        std::fs::copy(fixture, &onnx).expect("copy");
        Builder::new().out_dir(dir).compile(&[&onnx]).expect("imports and compiles");
        let code = std::fs::read_to_string(dir.join("small_cnn.rs")).expect("generated");
        assert!(
            code.contains("pub struct SmallCnn") && code.contains("pub fn embedded()"),
            "{code}"
        );
        let net = std::fs::read_to_string(dir.join("small_cnn.net")).expect("the .net source");
        assert!(net.contains("network SmallCnn") && net.contains("as stem.0"), "{net}");
        assert!(dir.join("small_cnn.safetensors").exists());

        std::fs::write(&onnx, b"not a model").expect("write");
        let err = Builder::new().out_dir(dir).compile(&[&onnx]).unwrap_err().to_string();
        assert!(err.contains("cannot import") && err.contains("small_cnn.onnx"), "{err}");
    }

    #[test]
    fn embedded_weights_are_checked_against_the_network() {
        let folder = temp();
        let dir = folder.path();
        let net = dir.join("n.net");
        std::fs::write(&net, NET).expect("write");
        let good = dir.join("good.safetensors");
        weights(&good, &[("fc1.weight", &[2, 4]), ("fc1.bias", &[2])]);
        Builder::new().out_dir(dir).embed_weights(&net, &good).compile(&[&net]).expect("fits");
        let code = std::fs::read_to_string(dir.join("n.rs")).expect("generated");
        assert!(code.contains("include_bytes!") && code.contains("pub fn embedded()"), "{code}");

        let bad = dir.join("bad.safetensors");
        weights(&bad, &[("fc1.weight", &[3, 4]), ("fc9.bias", &[2])]);
        let err = Builder::new().out_dir(dir).embed_weights(&net, &bad).compile(&[&net]);
        let err = err.unwrap_err().to_string();
        for part in
            ["bad.safetensors", "`N`", "fc1.weight", "[3, 4]", "lacks `fc1.bias`", "fc9.bias"]
        {
            assert!(err.contains(part), "`{part}` not in: {err}");
        }

        let two = dir.join("two.net");
        std::fs::write(&two, format!("{NET}{}", NET.replace("network N", "network M")))
            .expect("write");
        let err = Builder::new().out_dir(dir).embed_weights(&two, &good).compile(&[&two]);
        assert!(err.unwrap_err().to_string().contains("several networks"));
    }
}
