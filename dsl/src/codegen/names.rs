//! Names in generated code: Rust fields for `state_dict` names, and the
//! comment markers that become `//` comments after formatting.

use proc_macro2::{Ident, Span};

/// `layer1.0.conv1.weight` → `layer1_0_conv1_weight`.
pub fn field(state_dict_name: &str) -> Ident {
    let mut s: String =
        state_dict_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    Ident::new(&s, Span::call_site())
}

pub fn ident(s: &str) -> Ident {
    Ident::new(s, Span::call_site())
}

/// The marker macro name: `__netc_comment!("text");` statements are turned
/// into `// text` lines once prettyplease has formatted the code (it drops
/// ordinary comments, which are not tokens).
pub const COMMENT_MARKER: &str = "__netc_comment";

/// Replaces every `__netc_comment!("...");` statement, which prettyplease
/// may have split over several lines, with a `//` comment, and drops the
/// `usize` suffixes that quote puts on integer literals.
pub fn expand_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut lines = code.lines();
    let opener = format!("{COMMENT_MARKER}!(");
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(&opener) else {
            out.push_str(&strip_usize_suffixes(line));
            out.push('\n');
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        let mut text = rest.to_string();
        while !text.trim_end().ends_with(");") {
            match lines.next() {
                Some(more) => text.push_str(more.trim()),
                None => break,
            }
        }
        let text = text.trim_end().trim_end_matches(';').trim_end_matches(')').trim();
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        out.push_str(indent);
        out.push_str("// ");
        out.push_str(&text.replace("\\\"", "\"").replace("\\\\", "\\"));
        out.push('\n');
    }
    out
}

/// `4704usize` → `4704` (outside string literals, which never hold digits
/// followed by `usize` in generated code).
fn strip_usize_suffixes(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i..].starts_with("usize") && i > 0 && bytes[i - 1].is_ascii_digit() {
            let after = bytes.get(i + 5).copied();
            if !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                i += 5;
                continue;
            }
        }
        let c = line[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_identifiers() {
        assert_eq!(field("layer1.0.conv1.weight").to_string(), "layer1_0_conv1_weight");
        assert_eq!(field("0.w").to_string(), "_0_w");
    }

    #[test]
    fn markers_become_comments() {
        let code = "fn f() {\n    __netc_comment!(\"a \\\"b\\\"\");\n    g();\n}\n";
        assert_eq!(expand_comments(code), "fn f() {\n    // a \"b\"\n    g();\n}\n");
        let split =
            "    __netc_comment!(\n        \"long text\"\n    );\n    let a = [0usize; 3usize];\n";
        assert_eq!(expand_comments(split), "    // long text\n    let a = [0; 3];\n");
    }
}
