//! `netc train FILE.net` (and `eval`, `predict`): checks the file, writes a
//! crate for its network into a cache directory keyed by the file's
//! content and netc's version and sources, builds it in release with cargo,
//! and runs the result with the same command line. The binary is netc's
//! own command with the network compiled in (`netc_cli::main_for`).
//!
//! Every cached crate shares one target directory, so netc's crates and
//! their dependencies build once; a new network then compiles only itself.
//! A second run of the same file finds its binary up to date.

use crate::source::read_checked;
use netc_dsl::Precision;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Where netc's crates are: the sources this command was built from.
const CLI_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The features of netc-cli that the network's binary is built with: this
/// command's own, so that a netc with MPI builds networks that train under
/// mpirun.
const FEATURES: &str = if cfg!(feature = "mpi") { "\"mpi\"" } else { "" };

/// Builds (or finds) the binary for `file`, then runs it with this
/// process's arguments and returns its exit status.
pub fn run(file: &Path, precision: Option<Precision>) -> ExitCode {
    let binary = match prepare(file, precision) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Command::new(&binary).args(std::env::args_os().skip(1)).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(status.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            eprintln!("error: cannot run `{}`: {e}", binary.display());
            ExitCode::FAILURE
        }
    }
}

/// The cache: `NETC_CACHE_DIR`, else `$XDG_CACHE_HOME/netc`, else
/// `~/.cache/netc`.
pub fn cache_root() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("NETC_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("netc")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("netc")))
        .unwrap_or_else(|| std::env::temp_dir().join("netc-cache"))
}

/// FNV-1a over the parts, each followed by a separator: a stable cache key
/// (std's hasher may change between Rust releases).
fn key(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The file's stem as a crate and directory name: lowercase ASCII letters,
/// digits and `_`.
fn stem_of(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        format!("net_{clean}")
    } else {
        clean
    }
}

fn prepare(file: &Path, precision: Option<Precision>) -> Result<PathBuf, String> {
    // Diagnostics (and warnings) are printed by `read_checked`.
    let source = read_checked(file).ok_or("the file did not check; nothing was built")?;
    let trainable: Vec<&netc_dsl::Graph> =
        source.checked.graphs.iter().filter(|g| g.loss.is_some() && g.inputs.len() == 1).collect();
    let graph = match trainable.as_slice() {
        [g] => *g,
        [] => {
            return Err(format!(
                "`{}` has no network of one input with a loss, which `netc train` needs \
                 (`netc import --loss` gives an imported model one)",
                file.display()
            ))
        }
        several => {
            let names: Vec<&str> = several.iter().map(|g| g.name.as_str()).collect();
            return Err(format!(
                "`{}` has several trainable networks ({}); give `netc train` a file with one",
                file.display(),
                names.join(", ")
            ));
        }
    };
    let sources = Path::new(CLI_DIR);
    let runtime = sources.join("../runtime");
    if !runtime.join("Cargo.toml").is_file() {
        return Err(format!(
            "netc builds `.net` files against its own sources, and `{}` no longer holds them",
            sources.display()
        ));
    }
    let stem = stem_of(file);
    let version = env!("CARGO_PKG_VERSION");
    let precision = precision.unwrap_or(graph.precision);
    let key = key(&[version, CLI_DIR, FEATURES, precision.name(), &source.text]);
    let root = cache_root();
    let dir = root.join("nets").join(format!("{stem}-{key}"));
    let package = format!("netc-net-{}-{key}", stem.replace('_', "-"));
    let code = netc_dsl::Builder::new()
        .runtime_path("::netc_runtime")
        .precision(precision)
        .generate_checked(&source.checked, &source.name, &source.text);
    // Ranks started together by mpirun build the same crate: one at a time,
    // so that none reads a file another is writing.
    let lock = std::fs::create_dir_all(&root)
        .and_then(|()| std::fs::File::create(root.join("build.lock")))
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| format!("cannot lock the cache `{}`: {e}", root.display()))?;
    let network = (stem.as_str(), graph.name.as_str(), precision);
    write_crate(&dir, &package, network, (&code, &source.text), sources)?;
    let target = root.join("target");
    eprintln!("netc: building `{}` (cached in {})", file.display(), dir.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| format!("cannot run cargo, which `netc train FILE.net` needs: {e}"))?;
    drop(lock);
    if !status.success() {
        return Err(format!(
            "cargo could not build the crate generated for `{}` (above); it is in {}",
            file.display(),
            dir.display()
        ));
    }
    Ok(target.join("release").join(format!("{package}{}", std::env::consts::EXE_SUFFIX)))
}

/// Writes the crate's files, each only when it changed, so that cargo
/// finds a second run's build up to date: the generated `code` and the
/// `.net` text it came from, which the binary embeds.
fn write_crate(
    dir: &Path,
    package: &str,
    (stem, network, precision): (&str, &str, Precision),
    (code, text): (&str, &str),
    sources: &Path,
) -> Result<(), String> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)
        .map_err(|e| format!("cannot create the cache directory `{}`: {e}", src.display()))?;
    let path_of = |p: PathBuf| p.canonicalize().unwrap_or(p).display().to_string();
    let (cli, runtime) = (path_of(sources.to_path_buf()), path_of(sources.join("../runtime")));
    let mut manifest = String::new();
    let _ = write!(
        manifest,
        "# Generated by netc for `{stem}`; rebuilt from the .net file when it changes.\n\
         [package]\nname = \"{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nnetc-cli = {{ path = {cli:?}, features = [{FEATURES}] }}\nnetc-runtime = {{ path = {runtime:?} }}\n\n\
         [profile.release]\ndebug = false\n\n[workspace]\n"
    );
    let main = format!(
        "//! `netc` with the network `{network}` of `{stem}.net` compiled in.\n\n\
         #[allow(clippy::all, dead_code, unused)]\nmod model;\n\n\
         fn main() -> std::process::ExitCode {{\n    \
         netc_cli::main_for(netc_cli::Network {{\n        name: {stem:?},\n        \
         factory: |seed, capacity| Box::new(model::{network}::with_capacity(seed, capacity)),\n        \
         source: include_str!(\"network.net\"),\n        \
         precision: netc_cli::Precision::{precision:?},\n    \
         }})\n}}\n"
    );
    let write = |path: PathBuf, text: &str| -> Result<(), String> {
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    write(dir.join("Cargo.toml"), &manifest)?;
    write(src.join("main.rs"), &main)?;
    write(src.join("model.rs"), code)?;
    write(src.join("network.net"), text)?;
    // netc's own lock file pins the dependencies it was tested with, and
    // lets cargo resolve without the network.
    let lock = dir.join("Cargo.lock");
    if !lock.exists() {
        if let Ok(text) = std::fs::read_to_string(sources.join("../Cargo.lock")) {
            write(lock, &text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_become_crate_names() {
        assert_eq!(stem_of(Path::new("dir/My-Net.v2.net")), "my_net_v2");
        assert_eq!(stem_of(Path::new("3layers.net")), "net_3layers");
    }

    #[test]
    fn keys_change_with_every_part() {
        let a = key(&["0.1.0", "/src", "network A {}"]);
        assert_eq!(a, key(&["0.1.0", "/src", "network A {}"]));
        assert_ne!(a, key(&["0.1.0", "/src", "network B {}"]));
        assert_ne!(a, key(&["0.1.1", "/src", "network A {}"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
    }
}
