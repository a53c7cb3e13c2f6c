//! Shrinks a network that fails the differential test to a minimal one that
//! fails the same check, and saves it as a regression file.
//!
//! `cargo run -p netc-tests --example shrink -- SEED|FILE.net [-o OUT.net]`
//!
//! Each round writes the one-edit reductions of the current network that
//! the checker accepts (`random/shrink.rs`) into a folder, compiles them
//! all into the differential test at once (`NETC_DIFF_FILES`, one build a
//! round), runs them, and keeps the smallest that fails the same check as
//! the first. The environment passes through, so a failure that needs
//! `NETC_GEMM_KERNEL` or `RAYON_NUM_THREADS` shrinks under it. The result
//! (by default `tests/random/regressions/seed_<SEED>.net`) says which
//! check failed, and keeps the seed and batch the failure needs.

#[path = "../random/generate.rs"]
#[allow(dead_code)]
mod generate;
#[path = "../random/shrink.rs"]
mod shrink;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = run() {
        eprintln!("shrink: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (what, out) = match args.as_slice() {
        [what] => (what.clone(), None),
        [what, flag, out] if flag == "-o" => (what.clone(), Some(PathBuf::from(out))),
        _ => return Err("usage: shrink SEED|FILE.net [-o OUT.net]".into()),
    };
    let (source, stem) = match what.parse::<u64>() {
        Ok(seed) => {
            let net = generate::generate(seed);
            let header = format!("// seed: {seed}\n// batch: {}\n", net.batch);
            (header + &net.source, format!("seed_{seed}"))
        }
        Err(_) => {
            let text = std::fs::read_to_string(&what).map_err(|e| format!("{what}: {e}"))?;
            let stem = Path::new(&what).file_stem().and_then(|s| s.to_str()).unwrap_or("shrunk");
            (text, format!("{stem}_shrunk"))
        }
    };
    let out = out.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("random/regressions/{stem}.net"))
    });
    let folder = std::env::temp_dir().join(format!("netc-shrink-{}", std::process::id()));

    // The network as given, and without its annotations, which would
    // refuse any edit that changes a shape.
    let plain = shrink::without_annotations(&source);
    let first = compile_and_run(&folder, &[source.clone(), plain.clone()])?;
    let Some(failure) = first.get(&0).cloned() else {
        return Err(format!("{what} does not fail the differential test here"));
    };
    let kind = kind_of(&failure).to_string();
    eprintln!("shrink: {what} fails with: {failure}");
    let start = match first.get(&1) {
        Some(m) if kind_of(m) == kind && valid(&plain) => plain,
        _ => source,
    };
    let mut message = failure;
    let minimal = shrink::minimise(&start, valid, |candidates| {
        eprintln!("shrink: trying {} reductions", candidates.len());
        let failed = compile_and_run(&folder, candidates)?;
        let same = |k: usize| failed.get(&k).is_some_and(|m| kind_of(m) == kind);
        let verdicts: Vec<bool> = (0..candidates.len()).map(same).collect();
        // The message of the smallest that failed, which the next round keeps.
        if let Some(k) = (0..candidates.len())
            .filter(|&k| verdicts[k])
            .min_by_key(|&k| shrink::size(&candidates[k]))
        {
            message = failed[&k].clone();
        }
        Ok::<_, String>(verdicts)
    })?;
    let _ = std::fs::remove_dir_all(&folder);
    // Deleted statements leave their lines blank.
    let minimal: String =
        minimal.lines().filter(|l| !l.trim().is_empty()).flat_map(|l| [l, "\n"]).collect();
    let text = format!(
        "// Shrunk from {what} by tests/examples/shrink.rs; it failed with:\n// {}\n{minimal}",
        message.lines().next().unwrap_or_default()
    );
    std::fs::write(&out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("shrink: saved {}:\n{text}", out.display());
    Ok(())
}

/// The kind of check a failure message is from: its first word
/// (`gradient`, `inference`, `loss`, `train_step:` …).
fn kind_of(message: &str) -> &str {
    message.split_whitespace().next().unwrap_or_default()
}

/// Whether the checker accepts `source` as one network.
fn valid(source: &str) -> bool {
    netc_dsl::check_source("shrink.net", source).is_ok_and(|c| c.graphs.len() == 1)
}

/// Compiles `sources` into the differential test as `shrink_<k>` and runs
/// them: the failure message of each that failed, by index.
fn compile_and_run(folder: &Path, sources: &[String]) -> Result<BTreeMap<usize, String>, String> {
    let _ = std::fs::remove_dir_all(folder);
    std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    for (k, source) in sources.iter().enumerate() {
        let path = folder.join(format!("shrink_{k}.net"));
        std::fs::write(&path, source).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "-q", "-p", "netc-tests", "--test", "differential", "--", "shrink_"])
        .env("NETC_DIFF_FILES", folder)
        .env("NETC_DIFF_COUNT", "0")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed = failures(&stdout);
    if !output.status.success() && failed.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("the differential test did not build or run:\n{stderr}"));
    }
    Ok(failed)
}

/// The first line of each failed `shrink_<k>` test's panic message in
/// libtest's output.
fn failures(stdout: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        let Some(k) = line
            .strip_prefix("---- shrink_")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
            .and_then(|k| k.parse::<usize>().ok())
        else {
            continue;
        };
        let message = lines
            .by_ref()
            .skip_while(|l| !l.contains("panicked at"))
            .nth(1)
            .unwrap_or("(no message)");
        out.insert(k, message.to_string());
    }
    out
}
