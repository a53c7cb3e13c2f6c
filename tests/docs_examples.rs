//! Every ```net example in docs/language.md and the README checks cleanly, so
//! the documentation cannot drift from the language.

fn examples(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim()) {
            (None, "```net") => current = Some((i + 2, String::new())),
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn check_all(doc: &str) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let markdown = std::fs::read_to_string(&path).expect("doc exists");
    let examples = examples(&markdown);
    for (line, text) in &examples {
        if let Err(diags) = netc_dsl::check_source(&format!("{doc}:{line}"), text) {
            panic!("the example at {doc}:{line} does not check:\n{diags}");
        }
    }
    examples.len()
}

#[test]
fn language_reference_examples_check() {
    assert!(check_all("docs/language.md") >= 10);
}

#[test]
fn readme_examples_check() {
    assert!(check_all("README.md") >= 1);
}
