//! Flattens the macro's token stream back into `.net` source text, keeping a
//! map from text offsets to token spans, so that the one pest grammar parses
//! it and errors land on the user's tokens.

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};

/// Source text rebuilt from tokens, with the span of every token.
pub struct SourceMap {
    pub text: String,
    /// `(start, end, span)` per token, in text order.
    tokens: Vec<(usize, usize, Span)>,
}

impl SourceMap {
    pub fn from_tokens(tokens: TokenStream) -> Self {
        let mut map = SourceMap { text: String::new(), tokens: Vec::new() };
        map.push_stream(tokens);
        map
    }

    fn push(&mut self, text: &str, span: Span) {
        let start = self.text.len();
        self.text.push_str(text);
        self.tokens.push((start, self.text.len(), span));
    }

    fn push_stream(&mut self, tokens: TokenStream) {
        for tree in tokens {
            match tree {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("", ""),
                    };
                    self.push(open, g.span_open());
                    self.text.push(' ');
                    self.push_stream(g.stream());
                    self.push(close, g.span_close());
                    self.text.push(' ');
                }
                TokenTree::Punct(p) => {
                    self.push(&p.as_char().to_string(), p.span());
                    // `->` arrives as two puncts; keep joint ones together.
                    if p.spacing() == Spacing::Alone {
                        self.text.push(' ');
                    }
                }
                TokenTree::Ident(i) => {
                    self.push(&i.to_string(), i.span());
                    self.text.push(' ');
                }
                TokenTree::Literal(l) => {
                    self.push(&l.to_string(), l.span());
                    self.text.push(' ');
                }
            }
        }
    }

    /// The spans of the first and last tokens overlapping `start..end`; a
    /// caret at the end of the text maps to the last token.
    pub fn spans(&self, start: usize, end: usize) -> (Span, Span) {
        let overlapping: Vec<Span> = self
            .tokens
            .iter()
            .filter(|(s, e, _)| *s < end.max(start + 1) && *e > start)
            .map(|(_, _, span)| *span)
            .collect();
        match (overlapping.first(), overlapping.last()) {
            (Some(first), Some(last)) => (*first, *last),
            _ => {
                let span = self.tokens.last().map_or_else(Span::call_site, |t| t.2);
                (span, span)
            }
        }
    }
}
