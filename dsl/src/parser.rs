//! Parses `.net` source text into the AST with the pest grammar in
//! `grammar.pest`. Syntax errors become diagnostics naming what was expected.

use crate::ast::*;
use crate::diag::Diagnostic;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct NetParser;

/// Brackets nested deeper than this are rejected before parsing, so that a
/// hostile input cannot overflow the stack of the recursive-descent parser.
pub const MAX_NESTING: usize = 64;

/// Operands of one `+`/`*` sequence are nested left to right in the AST; this
/// bound keeps that nesting, and the recursion over it, shallow.
pub const MAX_OPERANDS: usize = 256;

/// Parses a whole file. On failure returns every syntax diagnostic found
/// (pest stops at the first syntax error; literal errors are all collected).
pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    check_nesting(source)?;
    // Record the literal tokens pest tried, so that errors can say "expected `)`".
    pest::set_error_detail(true);
    let mut pairs =
        NetParser::parse(Rule::file, source).map_err(|e| vec![syntax_error(&e, source)])?;
    let mut builder = AstBuilder { errors: Vec::new() };
    let mut file = File::default();
    let Some(root) = pairs.next() else { return Ok(file) };
    for item in root.into_inner() {
        match item.as_rule() {
            Rule::network => file.networks.push(builder.network(item)),
            Rule::block => file.blocks.push(builder.block(item)),
            _ => {}
        }
    }
    if builder.errors.is_empty() {
        Ok(file)
    } else {
        Err(builder.errors)
    }
}

fn check_nesting(source: &str) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    let mut in_comment = false;
    let mut prev = '\0';
    for (i, c) in source.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if c == '/' && prev == '/' {
            in_comment = true;
        } else if matches!(c, '(' | '[' | '{') {
            depth += 1;
            if depth > MAX_NESTING {
                let msg = format!("brackets are nested more than {MAX_NESTING} deep");
                return Err(vec![Diagnostic::error(msg, Span::new(i, i + 1))
                    .label("too deep")
                    .help("bind inner values to names to flatten the expression")]);
            }
        } else if matches!(c, ')' | ']' | '}') {
            depth = depth.saturating_sub(1);
        }
        prev = c;
    }
    Ok(())
}

/// A human description of what a grammar rule stands for, for "expected ..."
fn describe(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::network | Rule::kw_network => "`network`",
        Rule::block | Rule::kw_block => "`block`",
        Rule::ident => "a name",
        Rule::integer => "an integer",
        Rule::float => "a number",
        Rule::boolean => "`true` or `false`",
        Rule::expr | Rule::sum | Rule::product | Rule::chain | Rule::unary | Rule::paren => {
            "an expression"
        }
        Rule::list | Rule::annotation => "a shape such as `[3, 32, 32]`",
        Rule::stage | Rule::stage_head | Rule::call | Rule::repeat => "a layer",
        Rule::repeat_count => "a repeat count",
        Rule::repeat_body => "`{`",
        Rule::param_list | Rule::input_list => "`(`",
        Rule::param => "a parameter name",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*` or `/`",
        Rule::alias | Rule::kw_as => "`as`",
        Rule::layer_path => "a layer name",
        Rule::named_arg | Rule::positional_arg => "an argument",
        Rule::input_decl | Rule::kw_input => "`input`",
        Rule::loss_stmt | Rule::kw_loss => "`loss`",
        Rule::optimizer_stmt | Rule::kw_optimizer => "`optimizer`",
        Rule::schedule_stmt | Rule::kw_schedule => "`schedule`",
        Rule::precision_stmt | Rule::kw_precision => "`precision`",
        Rule::train_stmt | Rule::kw_train => "`train`",
        Rule::output_stmt | Rule::kw_output => "`output`",
        Rule::out_stmt | Rule::kw_out => "`out`",
        Rule::binding | Rule::expr_stmt => "a statement",
        Rule::neg => "`-`",
        Rule::kw_repeat => "`repeat`",
        Rule::keyword => "a keyword",
        Rule::statement => "a statement",
        Rule::primary => "an expression",
        Rule::arg => "an argument",
        _ => "more input",
    }
}

/// The token at `pos`, for "found ...".
fn found_at(source: &str, pos: usize) -> (String, Span) {
    let rest = source.get(pos..).unwrap_or("");
    let Some(c) = rest.chars().next() else {
        return ("end of file".to_string(), Span::new(pos, pos));
    };
    if c.is_alphanumeric() || c == '_' {
        let len: usize = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .map(char::len_utf8)
            .sum();
        let word = &rest[..len];
        (format!("`{word}`"), Span::new(pos, pos + len))
    } else if rest.starts_with("->") {
        ("`->`".to_string(), Span::new(pos, pos + 2))
    } else {
        (format!("`{}`", c.escape_debug()), Span::new(pos, pos + c.len_utf8()))
    }
}

/// Continuations that are possible after almost any complete expression;
/// listing them in "expected ..." only hides the token that is missing.
const CONTINUATIONS: &[&str] = &[
    "`+`",
    "`-`",
    "`*`",
    "`/`",
    "`:`",
    "`+` or `-`",
    "`*` or `/`",
    "a shape such as `[3, 32, 32]`",
    "`as`",
];

fn syntax_error(e: &pest::error::Error<Rule>, source: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let (found, span) = found_at(source, pos);
    let ErrorVariant::ParsingError { positives, negatives } = &e.variant else {
        return Diagnostic::error(e.variant.message().into_owned(), span);
    };
    let mut expected: Vec<String> = positives.iter().map(|r| describe(r).to_string()).collect();
    if let Some(attempts) = e.parse_attempts() {
        for token in attempts.expected_tokens() {
            // pest does not export the token type; its Debug form names the variant.
            if format!("{token:?}").starts_with("Sensitive") {
                let token = token.to_string();
                let t = token.trim();
                if !t.is_empty() && t != "//" && !expected.iter().any(|e| e.trim_matches('`') == t)
                {
                    expected.push(format!("`{t}`"));
                }
            }
        }
    }
    expected.sort_unstable();
    expected.dedup();
    if expected.iter().any(|e| !CONTINUATIONS.contains(&e.as_str())) {
        expected.retain(|e| !CONTINUATIONS.contains(&e.as_str()));
    }
    // Tokens that say less than a neighbour in the list: `_` continues a
    // name or number, `;` is optional, and an expression may start with any
    // of the rest.
    expected.retain(|e| !matches!(e.as_str(), "`_`" | "`;`"));
    if expected.iter().any(|e| e == "an expression") {
        expected.retain(|e| {
            !matches!(
                e.as_str(),
                "`(`" | "`[`" | "`-`" | "`true`" | "`false`" | "a name" | "an integer" | "a number"
            )
        });
    }
    if pos >= source.len() && expected.iter().any(|e| matches!(e.as_str(), "`)`" | "`]`" | "`}`")) {
        expected.retain(|e| matches!(e.as_str(), "`)`" | "`]`" | "`}`"));
    }
    // Closing brackets and commas first: they are what is usually missing.
    expected.sort_by_key(|e| !matches!(e.as_str(), "`)`" | "`]`" | "`}`" | "`,`"));
    let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
    let expected = join_or(&refs);
    let message = if !expected.is_empty() {
        format!("expected {expected}, found {found}")
    } else if let Some(first) = negatives.first() {
        format!("unexpected {}, found {found}", describe(first))
    } else {
        format!("unexpected {found}")
    };
    let mut d = Diagnostic::error(message, span).label(if expected.is_empty() {
        "unexpected here".to_string()
    } else {
        format!("expected {expected}")
    });
    if is_keyword(found.trim_matches('`')) && refs.contains(&"a name") {
        d = d.note(format!("{found} is a keyword and cannot be used as a name"));
    }
    d
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "network"
            | "block"
            | "input"
            | "output"
            | "out"
            | "loss"
            | "optimizer"
            | "train"
            | "repeat"
            | "as"
            | "true"
            | "false"
    )
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The span of a pair without the whitespace and comments that pest's
/// implicit whitespace rule leaves at its end (after a failed optional part).
fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    let text = s.as_str();
    let mut end = text.len();
    loop {
        let trimmed = text[..end].trim_end();
        end = trimmed.len();
        // `//` appears in this language only as a comment opener.
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        match trimmed[line_start..].find("//") {
            Some(i) if line_start + i > 0 => end = line_start + i,
            _ => break,
        }
    }
    Span::new(s.start(), s.start() + end.max(text.len().min(1)))
}

/// Builds AST nodes from pest pairs, collecting literal errors as it goes.
struct AstBuilder {
    errors: Vec<Diagnostic>,
}

impl AstBuilder {
    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: span_of(&pair) }
    }

    fn network(&mut self, pair: Pair<'_, Rule>) -> Network {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        inner.next(); // keyword
        let name = self.ident(inner.next().expect("grammar: network name"));
        let body = inner.map(|p| self.statement(p)).collect();
        Network { name, body, span }
    }

    fn block(&mut self, pair: Pair<'_, Rule>) -> BlockDef {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        inner.next(); // keyword
        let name = self.ident(inner.next().expect("grammar: block name"));
        let params = inner
            .next()
            .expect("grammar: param list")
            .into_inner()
            .map(|p| {
                let mut parts = p.into_inner();
                let name = self.ident(parts.next().expect("grammar: param name"));
                let default = parts.next().map(|e| self.expr(e));
                Param { name, default }
            })
            .collect();
        let inputs = inner
            .next()
            .expect("grammar: input list")
            .into_inner()
            .map(|p| self.ident(p))
            .collect();
        let body = inner.map(|p| self.statement(p)).collect();
        BlockDef { name, params, inputs, body, span }
    }

    fn statement(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let kind = match rule {
            Rule::input_decl => {
                inner.next();
                let name = self.ident(inner.next().expect("grammar: input name"));
                let shape = self.list(inner.next().expect("grammar: input shape"));
                StmtKind::Input { name, shape }
            }
            Rule::loss_stmt => {
                inner.next();
                StmtKind::Loss(self.call(inner.next().expect("grammar: loss call")))
            }
            Rule::optimizer_stmt => {
                inner.next();
                StmtKind::Optimizer(self.call(inner.next().expect("grammar: optimizer call")))
            }
            Rule::schedule_stmt => {
                inner.next();
                StmtKind::Schedule(self.call(inner.next().expect("grammar: schedule call")))
            }
            Rule::precision_stmt => {
                inner.next();
                StmtKind::Precision(self.ident(inner.next().expect("grammar: precision name")))
            }
            Rule::train_stmt => {
                inner.next();
                let layer = inner.next().expect("grammar: train layer");
                let name = Ident { name: layer.as_str().to_string(), span: span_of(&layer) };
                let args = inner.map(|a| self.arg(a)).collect();
                StmtKind::Train(Call { name, args, parens: true, span })
            }
            Rule::output_stmt => {
                inner.next();
                StmtKind::Output(self.expr(inner.next().expect("grammar: output expr")))
            }
            Rule::out_stmt => {
                inner.next();
                StmtKind::Out(self.expr(inner.next().expect("grammar: out expr")))
            }
            Rule::binding => {
                let name = self.ident(inner.next().expect("grammar: binding name"));
                let value = self.expr(inner.next().expect("grammar: binding value"));
                let annotation = inner
                    .next()
                    .map(|a| self.list(a.into_inner().next().expect("grammar: annotation shape")));
                StmtKind::Bind { name, value, annotation }
            }
            Rule::expr_stmt => StmtKind::Expr(self.expr(inner.next().expect("grammar: expr"))),
            other => unreachable!("grammar: unexpected statement rule {other:?}"),
        };
        Stmt { kind, span }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        match pair.as_rule() {
            Rule::expr | Rule::paren => {
                self.expr(pair.into_inner().next().expect("grammar: inner expr"))
            }
            Rule::sum | Rule::product => {
                let mut inner = pair.into_inner();
                if inner.len() > 2 * MAX_OPERANDS {
                    self.errors.push(
                        Diagnostic::error(
                            format!("expression has more than {MAX_OPERANDS} operands"),
                            span,
                        )
                        .label("too long")
                        .help("split it with named bindings"),
                    );
                    return Expr { kind: ExprKind::Int(0), span };
                }
                let mut lhs = self.expr(inner.next().expect("grammar: operand"));
                while let Some(op) = inner.next() {
                    let op = match op.as_str().trim() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    let rhs = self.expr(inner.next().expect("grammar: operand"));
                    let span = lhs.span.to(rhs.span);
                    lhs = Expr {
                        kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) },
                        span,
                    };
                }
                lhs
            }
            Rule::chain => {
                let mut inner = pair.into_inner();
                let head = self.expr(inner.next().expect("grammar: chain head"));
                let stages: Vec<Stage> = inner.map(|s| self.stage(s)).collect();
                if stages.is_empty() {
                    head
                } else {
                    Expr { kind: ExprKind::Chain { head: Box::new(head), stages }, span }
                }
            }
            Rule::unary => {
                let mut inner = pair.into_inner().peekable();
                let mut negs = Vec::new();
                while let Some(p) = inner.next_if(|p| p.as_rule() == Rule::neg) {
                    negs.push(span_of(&p));
                }
                if negs.len() > MAX_OPERANDS {
                    self.errors
                        .push(Diagnostic::error("too many `-` signs in a row", span).label("here"));
                    return Expr { kind: ExprKind::Int(0), span };
                }
                let mut e = self.expr(inner.next().expect("grammar: primary"));
                for neg in negs.into_iter().rev() {
                    let span = neg.to(e.span);
                    e = Expr { kind: ExprKind::Neg(Box::new(e)), span };
                }
                e
            }
            Rule::integer => {
                let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                match digits.parse::<i64>() {
                    Ok(v) => Expr { kind: ExprKind::Int(v), span },
                    Err(_) => {
                        self.errors.push(
                            Diagnostic::error("integer literal is too large", span)
                                .label("does not fit in 64 bits"),
                        );
                        Expr { kind: ExprKind::Int(0), span }
                    }
                }
            }
            Rule::float => {
                let text: String = pair.as_str().chars().filter(|c| *c != '_').collect();
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Expr { kind: ExprKind::Float(v), span },
                    _ => {
                        self.errors.push(
                            Diagnostic::error("number literal is out of range", span)
                                .label("not a finite 64-bit float"),
                        );
                        Expr { kind: ExprKind::Float(0.0), span }
                    }
                }
            }
            Rule::boolean => Expr { kind: ExprKind::Bool(pair.as_str() == "true"), span },
            Rule::ident => Expr { kind: ExprKind::Name(self.ident(pair)), span },
            Rule::call => Expr { kind: ExprKind::Call(self.call(pair)), span },
            Rule::list => self.list(pair),
            other => unreachable!("grammar: unexpected expression rule {other:?}"),
        }
    }

    fn list(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        let items = pair.into_inner().map(|p| self.expr(p)).collect();
        Expr { kind: ExprKind::List(items), span }
    }

    fn call(&mut self, pair: Pair<'_, Rule>) -> Call {
        let span = span_of(&pair);
        if pair.as_rule() == Rule::ident {
            return Call { name: self.ident(pair), args: Vec::new(), parens: false, span };
        }
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("grammar: call name"));
        let args = inner.map(|a| self.arg(a)).collect();
        Call { name, args, parens: true, span }
    }

    fn arg(&mut self, a: Pair<'_, Rule>) -> Arg {
        let span = span_of(&a);
        match a.as_rule() {
            Rule::named_arg => {
                let mut parts = a.into_inner();
                let name = self.ident(parts.next().expect("grammar: arg name"));
                let value = self.expr(parts.next().expect("grammar: arg value"));
                Arg { name: Some(name), value, span }
            }
            _ => Arg {
                name: None,
                value: self.expr(a.into_inner().next().expect("grammar: arg")),
                span,
            },
        }
    }

    fn stage(&mut self, pair: Pair<'_, Rule>) -> Stage {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let head = inner.next().expect("grammar: stage head");
        let kind = match head.as_rule() {
            Rule::repeat => {
                let mut parts = head.into_inner();
                let keyword = span_of(&parts.next().expect("grammar: repeat keyword"));
                let count_pair = parts.next().expect("grammar: repeat count");
                let count =
                    Box::new(self.expr(count_pair.into_inner().next().expect("grammar: count")));
                let body_pair = parts.next().expect("grammar: repeat body");
                let body = match body_pair.as_rule() {
                    Rule::repeat_body => body_pair.into_inner().map(|s| self.stage(s)).collect(),
                    _ => {
                        let call = body_pair.into_inner().next().expect("grammar: repeated stage");
                        let span = span_of(&call);
                        vec![Stage {
                            kind: StageKind::Call(self.call(call)),
                            alias: None,
                            annotation: None,
                            span,
                        }]
                    }
                };
                StageKind::Repeat { count, body, keyword }
            }
            _ => StageKind::Call(self.call(head)),
        };
        let mut alias = None;
        let mut annotation = None;
        for p in inner {
            match p.as_rule() {
                Rule::alias => {
                    alias = Some(self.ident(p.into_inner().nth(1).expect("grammar: alias name")))
                }
                Rule::annotation => {
                    annotation = Some(self.list(p.into_inner().next().expect("grammar: shape")))
                }
                _ => {}
            }
        }
        Stage { kind, alias, annotation, span }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chain_with_alias_and_annotation() {
        let src =
            "network N { input x: [4]\n x -> dense(3) as fc : [3] -> relu as out1\n output out1 }";
        let file = parse(src).expect("parses");
        let net = &file.networks[0];
        assert_eq!(net.name.name, "N");
        assert_eq!(net.body.len(), 3);
        let StmtKind::Expr(Expr { kind: ExprKind::Chain { stages, .. }, .. }) = &net.body[1].kind
        else {
            panic!("expected a chain, got {:?}", net.body[1].kind);
        };
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].alias.as_ref().map(|a| a.name.as_str()), Some("fc"));
        assert!(stages[0].annotation.is_some());
    }

    #[test]
    fn minus_is_not_confused_with_arrow() {
        let src = "block b(c, d = c - 1)(x) { out x -> dense(d) }";
        let file = parse(src).expect("parses");
        let d = file.blocks[0].params[1].default.as_ref().expect("default");
        assert!(matches!(d.kind, ExprKind::Binary { op: BinOp::Sub, .. }));
    }

    #[test]
    fn spans_point_at_source_text() {
        let src = "network Net { input img: [1, 2, 2] }";
        let file = parse(src).expect("parses");
        let StmtKind::Input { name, .. } = &file.networks[0].body[0].kind else { panic!() };
        assert_eq!(&src[name.span.range()], "img");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src =
            format!("network N {{ input x: [{}1{}] }}", "(".repeat(10_000), ")".repeat(10_000));
        let err = parse(&src).unwrap_err();
        assert!(err[0].message.contains("nested"));
    }
}
