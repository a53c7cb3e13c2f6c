//! Names in generated code: Rust fields for `state_dict` names, and the
//! comment markers that become `//` comments after formatting.

use proc_macro2::{Ident, Literal, Span};

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

/// An integer literal without a type suffix, as a person writes it.
pub fn lit(v: usize) -> Literal {
    Literal::usize_unsuffixed(v)
}

/// Names the generated code uses for its own locals, which a view must not
/// shadow.
const RESERVED: &[&str] = &[
    "n",
    "cap",
    "arena",
    "argmax",
    "stats",
    "seed",
    "step",
    "params",
    "grads",
    "fused",
    "forward_caches",
    "targets",
    "labels",
    "loss",
    "logits",
    "d",
    "out",
    "self",
    "opt",
    "first",
    "shard",
    "rt",
    "weight_grad",
    "pass",
];

/// The arena view of a tensor, named after its `.net` layer: a layer's
/// output `conv1` is `conv1_out`, its gradient `conv1.grad` is
/// `conv1_grad`, a network input keeps its name.
pub fn view_name(tensor: &str, is_input: bool) -> Ident {
    let mut s = field(tensor).to_string();
    let made_by_lowering = ["grad", "grad_part", "grad_unused", "scale"]
        .iter()
        .any(|suffix| tensor.rsplit('.').next() == Some(suffix) && tensor.contains('.'));
    if !is_input && !made_by_lowering {
        s.push_str("_out");
    }
    if RESERVED.contains(&s.as_str()) || syn::parse_str::<Ident>(&s).is_err() {
        s.push_str("_in");
    }
    Ident::new(&s, Span::call_site())
}

/// The marker macro name: `__netc_comment!("text");` statements are turned
/// into `// text` lines once prettyplease has formatted the code (it drops
/// ordinary comments, which are not tokens).
pub const COMMENT_MARKER: &str = "__netc_comment";

/// Replaces every `__netc_comment!("...");` statement, which prettyplease
/// may have split over several lines, with a `//` comment.
pub fn expand_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut lines = code.lines();
    let opener = format!("{COMMENT_MARKER}!(");
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(&opener) else {
            out.push_str(line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_identifiers() {
        assert_eq!(field("layer1.0.conv1.weight").to_string(), "layer1_0_conv1_weight");
        assert_eq!(field("0.w").to_string(), "_0_w");
    }

    #[test]
    fn views_take_layer_names() {
        assert_eq!(view_name("conv1", false).to_string(), "conv1_out");
        assert_eq!(view_name("conv1.grad", false).to_string(), "conv1_grad");
        assert_eq!(
            view_name("layer1.0.bn1.grad_part", false).to_string(),
            "layer1_0_bn1_grad_part"
        );
        assert_eq!(view_name("layer1.0.conv1", false).to_string(), "layer1_0_conv1_out");
        assert_eq!(view_name("lrn1.scale", false).to_string(), "lrn1_scale");
        assert_eq!(view_name("x", true).to_string(), "x");
        assert_eq!(view_name("n", true).to_string(), "n_in");
    }

    #[test]
    fn markers_become_comments() {
        let code = "fn f() {\n    __netc_comment!(\"a \\\"b\\\"\");\n    g();\n}\n";
        assert_eq!(expand_comments(code), "fn f() {\n    // a \"b\"\n    g();\n}\n");
        let split = "    __netc_comment!(\n        \"long text\"\n    );\n    let a = [0; 3];\n";
        assert_eq!(expand_comments(split), "    // long text\n    let a = [0; 3];\n");
    }
}
