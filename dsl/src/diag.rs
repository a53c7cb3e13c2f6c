//! Diagnostics: what went wrong, where, and what might fix it, rendered in
//! rustc's style by codespan-reporting. The same renderer serves the `netc`
//! command, `build.rs` output and the `network!` macro.

use crate::ast::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor, Chars, Config};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a short message under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Lowercase, no trailing period, code in backticks.
    pub message: String,
    /// The smallest span that shows the problem; carets go under it.
    pub primary: Label,
    /// Context, drawn with dashes.
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    /// Only `help` suggests a fix.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Sets the text written under the carets.
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders this diagnostic against `source`, without colour.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        render_all(std::slice::from_ref(self), file_name, source)
    }

    /// 1-based line and column of the primary span.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.primary.span.start)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Clamps a span to the source and to char boundaries, so a renderer never
/// slices in the middle of a character.
fn clamp(span: Span, source: &str) -> std::ops::Range<usize> {
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let end = floor_char_boundary(source, span.end.min(source.len())).max(start);
    start..end
}

fn to_codespan(d: &Diagnostic, source: &str) -> CsDiagnostic<()> {
    let base = match d.severity {
        Severity::Error => CsDiagnostic::error(),
        Severity::Warning => CsDiagnostic::warning(),
    };
    let mut labels =
        vec![CsLabel::primary((), clamp(d.primary.span, source))
            .with_message(d.primary.message.clone())];
    labels.extend(
        d.secondary
            .iter()
            .map(|l| CsLabel::secondary((), clamp(l.span, source)).with_message(l.message.clone())),
    );
    let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(help) = &d.help {
        notes.push(format!("help: {help}"));
    }
    base.with_message(d.message.clone()).with_labels(labels).with_notes(notes)
}

fn config() -> Config {
    Config { chars: Chars::ascii(), ..Config::default() }
}

/// Renders every diagnostic, in order, as plain text.
pub fn render_all(diags: &[Diagnostic], file_name: &str, source: &str) -> String {
    let mut out = termcolor::NoColor::new(Vec::new());
    write_all(&mut out, diags, file_name, source);
    String::from_utf8_lossy(&out.into_inner()).into_owned()
}

/// Writes every diagnostic to `out`, which may colour them.
pub fn write_all(
    out: &mut dyn termcolor::WriteColor,
    diags: &[Diagnostic],
    file_name: &str,
    source: &str,
) {
    let file = SimpleFile::new(file_name, source);
    let config = config();
    for d in diags {
        // Writing into memory or a terminal; a failure here has nowhere better
        // to be reported, so the diagnostic is dropped rather than panicking.
        let _ = term::emit(out, &config, &file, &to_codespan(d, source));
    }
}

/// The diagnostics of a failed phase, with the source they refer to, so they
/// can be rendered later (by `Display`) or inspected.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    pub file_name: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_all(&self.items, &self.file_name, &self.source))?;
        let n = self.error_count();
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            write!(
                f,
                "error: could not compile `{}` due to {n} previous error{s}",
                self.file_name
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `name` by edit distance, if it is close enough to
/// be a plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        // A one-letter name is one edit from every other one-letter name.
        .filter(|&(d, _)| d <= limit && d < len)
        // Ties break alphabetically, so suggestions do not depend on hash order.
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent swaps, so
/// that `imgae` is one edit from `image`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let src = "ab\ncé d";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 7), (2, 4));
    }

    #[test]
    fn suggestions_only_for_close_names() {
        assert_eq!(did_you_mean("conv2", ["conv2d", "dense"]), Some("conv2d"));
        assert_eq!(did_you_mean("zzz", ["conv2d", "dense"]), None);
        assert_eq!(did_you_mean("imgae", ["image", "x"]), Some("image"));
    }
}
