//! Every file in `data/err/` must fail to check, and its rendered diagnostics
//! are snapshot-tested: the message, the line and column, the carets, the
//! notes and the help. Review changes with `cargo insta review`.

use std::path::Path;

fn render(path: &Path) -> String {
    let source = std::fs::read_to_string(path).expect("readable test file");
    let name = format!("err/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
    match netc_dsl::check_source(&name, &source) {
        Ok(checked) => panic!("{name} checked without errors: {:?}", checked.graphs.len()),
        Err(diags) => {
            assert!(diags.error_count() > 0, "{name}: a failure must carry an error");
            diags.to_string()
        }
    }
}

#[test]
fn bad_inputs_give_snapshot_diagnostics() {
    insta::glob!("data/err/*.net", |path| {
        insta::assert_snapshot!(render(path));
    });
}

#[test]
fn there_are_at_least_thirty_bad_input_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/err");
    let count = std::fs::read_dir(dir).expect("err dir").filter(|e| e.is_ok()).count();
    assert!(count >= 30, "only {count} cases");
}

#[test]
fn every_good_file_checks() {
    insta::glob!("data/ok/*.net", |path| {
        let source = std::fs::read_to_string(path).expect("readable test file");
        let checked = netc_dsl::check_source("ok.net", &source).unwrap_or_else(|d| panic!("{d}"));
        let tables: Vec<String> = checked.graphs.iter().map(|g| g.table()).collect();
        insta::assert_snapshot!(tables.join("\n"));
    });
}
