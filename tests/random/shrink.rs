//! The reductions of a failing network's source that the shrinker
//! (`examples/shrink.rs`) tries: each is one edit of the syntax tree, such
//! as deleting a statement, a stage, an argument or a list element,
//! replacing a call or a sum by one of its operands, or making an integer
//! smaller. Only edits whose result the checker accepts are kept, so the
//! slow part (compiling and running) is spent on valid networks only.

/// The most candidates compiled in one round.
pub const ROUND: usize = 80;

/// Shrinks `source`, which `fails`, to a network no single edit of which
/// still fails. `fails` gets a round of candidates at a time (one build)
/// and says which of them fail as the first did. Each round keeps the
/// smallest that fails; the edits that failed are also tried all together
/// in the next round, which saves rounds when many reductions are
/// independent.
pub fn minimise<E>(
    source: &str,
    valid: impl Fn(&str) -> bool,
    mut fails: impl FnMut(&[String]) -> Result<Vec<bool>, E>,
) -> Result<String, E> {
    let mut current = source.to_string();
    let mut last_round: Option<(String, Vec<Edit>)> = None;
    loop {
        let size_now = size(&current);
        let single = edits(&current);
        let mut candidates: Vec<String> = Vec::new();
        if let Some((base, worked)) = last_round.take() {
            let together = apply_all(&base, &worked, &valid);
            if size(&together) < size_now {
                candidates.push(together);
            }
        }
        let mut reduced: Vec<String> = single
            .iter()
            .map(|e| e.apply(&current))
            .chain(inlined_aliases(&current))
            .chain(dropped_names(&current))
            .filter(|c| size(c) < size_now && valid(c))
            .collect();
        reduced.sort_by_key(|c| size(c));
        reduced.dedup();
        reduced.retain(|c| candidates.first() != Some(c));
        candidates.extend(reduced);
        candidates.truncate(ROUND);
        if candidates.is_empty() {
            return Ok(current);
        }
        let failed = fails(&candidates)?;
        let Some(best) =
            (0..candidates.len()).filter(|&k| failed[k]).min_by_key(|&k| size(&candidates[k]))
        else {
            return Ok(current);
        };
        let worked: Vec<Edit> = single
            .into_iter()
            .filter(|e| {
                let result = e.apply(&current);
                candidates.iter().zip(&failed).any(|(c, &f)| f && *c == result)
            })
            .collect();
        let next = candidates.swap_remove(best);
        last_round = (worked.len() > 1).then(|| (current.clone(), worked));
        current = next;
    }
}

use netc_dsl::ast::{Arg, Call, Expr, ExprKind, Span, Stage, StageKind, Stmt, StmtKind};

/// One edit: replace the bytes `span` of the source with `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub span: Span,
    pub text: String,
}

impl Edit {
    fn delete(start: usize, end: usize) -> Edit {
        Edit { span: Span::new(start, end), text: String::new() }
    }

    fn replace(span: Span, text: &str) -> Edit {
        Edit { span, text: text.to_string() }
    }

    /// `source` with this edit made.
    pub fn apply(&self, source: &str) -> String {
        let mut out = String::with_capacity(source.len());
        out.push_str(&source[..self.span.start]);
        out.push_str(&self.text);
        out.push_str(&source[self.span.end..]);
        out
    }
}

/// `source` with every edit of `edits` made that overlaps none made before
/// it (in order), and that keeps the file valid for `valid`.
pub fn apply_all(source: &str, edits: &[Edit], valid: impl Fn(&str) -> bool) -> String {
    let mut taken: Vec<&Edit> = Vec::new();
    for edit in edits {
        let overlaps = |t: &&Edit| edit.span.start < t.span.end && t.span.start < edit.span.end;
        if taken.iter().any(overlaps) {
            continue;
        }
        taken.push(edit);
        if !valid(&apply_sorted(source, &taken)) {
            taken.pop();
        }
    }
    apply_sorted(source, &taken)
}

fn apply_sorted(source: &str, edits: &[&Edit]) -> String {
    let mut sorted = edits.to_vec();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.span.start));
    sorted.iter().fold(source.to_string(), |text, edit| edit.apply(&text))
}

/// How big a network is for the shrinker: its text without comments, then
/// the sum of its integers. Every edit it keeps makes this smaller, so
/// shrinking ends.
pub fn size(source: &str) -> (usize, u64) {
    let code: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let integers = code
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|t| !t.is_empty() && !t.contains('.'))
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    (code.len(), integers)
}

/// `source` without shape annotations, which only assert and would refuse
/// every edit that changes a shape.
pub fn without_annotations(source: &str) -> String {
    let Ok(file) = netc_dsl::parser::parse(source) else { return source.to_string() };
    let mut edits = Vec::new();
    let bodies = file.networks.iter().map(|n| &n.body).chain(file.blocks.iter().map(|b| &b.body));
    for stmt in bodies.flatten() {
        if let StmtKind::Bind { value, annotation: Some(a), .. } = &stmt.kind {
            edits.push(Edit::delete(value.span.end, a.span.end));
        }
        visit_stmt(stmt, &mut |e: &Expr| {
            if let ExprKind::Chain { stages, .. } = &e.kind {
                for s in stages {
                    let end = s.alias.as_ref().map(|a| a.span.end).or(stage_body_end(s));
                    if let (Some(a), Some(end)) = (&s.annotation, end) {
                        edits.push(Edit::delete(end, a.span.end));
                    }
                }
            }
        });
    }
    apply_all(source, &edits, |_| true)
}

/// The end of a stage before its `as` name and annotation.
fn stage_body_end(stage: &Stage) -> Option<usize> {
    match &stage.kind {
        StageKind::Call(call) => Some(call.span.end),
        StageKind::Repeat { .. } => None,
    }
}

/// Every single edit of `source` the shrinker tries, the larger
/// reductions first: statements, stages, operands, arguments, list
/// elements, then integers.
pub fn edits(source: &str) -> Vec<Edit> {
    let Ok(file) = netc_dsl::parser::parse(source) else { return Vec::new() };
    let mut out = Vec::new();
    let bodies: Vec<&Vec<Stmt>> =
        file.networks.iter().map(|n| &n.body).chain(file.blocks.iter().map(|b| &b.body)).collect();
    for block in &file.blocks {
        out.push(Edit::delete(block.span.start, block.span.end));
    }
    for stmt in bodies.iter().copied().flatten() {
        out.push(Edit::delete(stmt.span.start, stmt.span.end));
    }
    let mut integers = Vec::new();
    for stmt in bodies.iter().copied().flatten() {
        if let StmtKind::Loss(c)
        | StmtKind::Optimizer(c)
        | StmtKind::Schedule(c)
        | StmtKind::Train(c) = &stmt.kind
        {
            call_edits(c, &mut out);
        }
        visit_stmt(stmt, &mut |e: &Expr| expr_edits(source, e, &mut out, &mut integers));
    }
    out.extend(integers);
    out.dedup();
    out
}

/// `source` without each binding `a = b` of one name to another, every
/// later use of `a` in its body then naming `b`: a chain of such bindings
/// is what deleting stages leaves, and no single edit removes one.
pub fn inlined_aliases(source: &str) -> Vec<String> {
    let Ok(file) = netc_dsl::parser::parse(source) else { return Vec::new() };
    let bodies = file.networks.iter().map(|n| &n.body).chain(file.blocks.iter().map(|b| &b.body));
    let mut out = Vec::new();
    for body in bodies {
        for (k, stmt) in body.iter().enumerate() {
            let StmtKind::Bind { name, value, .. } = &stmt.kind else { continue };
            let ExprKind::Name(target) = &value.kind else { continue };
            let mut edits = vec![Edit::delete(stmt.span.start, stmt.span.end)];
            for later in &body[k + 1..] {
                visit_stmt(later, &mut |e: &Expr| {
                    if let ExprKind::Name(used) = &e.kind {
                        if used.name == name.name {
                            edits.push(Edit::replace(used.span, &target.name));
                        }
                    }
                });
            }
            out.push(apply_sorted(source, &edits.iter().collect::<Vec<_>>()));
        }
    }
    out
}

fn expr_edits(source: &str, e: &Expr, out: &mut Vec<Edit>, integers: &mut Vec<Edit>) {
    let text = |s: Span| &source[s.range()];
    match &e.kind {
        ExprKind::Chain { head, stages } => {
            out.push(Edit::replace(e.span, text(head.span)));
            let mut previous_end = head.span.end;
            for stage in stages {
                out.push(Edit::delete(previous_end, stage.span.end));
                if let (Some(alias), Some(end)) = (&stage.alias, stage_body_end(stage)) {
                    out.push(Edit::delete(end, alias.span.end));
                }
                if let StageKind::Call(call) = &stage.kind {
                    call_edits(call, out);
                }
                previous_end = stage.span.end;
            }
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            out.push(Edit::replace(e.span, text(lhs.span)));
            out.push(Edit::replace(e.span, text(rhs.span)));
        }
        ExprKind::Call(call) => {
            for arg in call.args.iter().filter(|a| a.name.is_none()) {
                out.push(Edit::replace(e.span, text(arg.value.span)));
            }
            call_edits(call, out);
        }
        ExprKind::List(items) => list_edits(items.iter().map(|i| i.span).collect(), out),
        ExprKind::Int(n) if *n > 1 => {
            for smaller in [1, n / 2, n - 1] {
                if smaller < *n {
                    integers.push(Edit::replace(e.span, &smaller.to_string()));
                }
            }
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Name(_)
        | ExprKind::Neg(_) => {}
    }
}

/// Deleting each argument of a call, with its comma.
fn call_edits(call: &Call, out: &mut Vec<Edit>) {
    list_edits(call.args.iter().map(|a: &Arg| a.span).collect(), out);
}

/// Deleting each of the comma-separated items at `spans`, with the comma
/// before it (or after it, for the first).
fn list_edits(spans: Vec<Span>, out: &mut Vec<Edit>) {
    out.extend((0..spans.len()).map(|k| item_deletion(&spans, k)));
}

fn item_deletion(spans: &[Span], k: usize) -> Edit {
    match (k, spans.get(1)) {
        (0, Some(next)) => Edit::delete(spans[0].start, next.start),
        (0, None) => Edit::delete(spans[0].start, spans[0].end),
        _ => Edit::delete(spans[k - 1].end, spans[k].end),
    }
}

/// `source` without each input or binding, and without every argument and
/// list item that names it: an input that a concat joins goes in one step,
/// where deleting either alone leaves the file invalid.
pub fn dropped_names(source: &str) -> Vec<String> {
    let Ok(file) = netc_dsl::parser::parse(source) else { return Vec::new() };
    let bodies = file.networks.iter().map(|n| &n.body).chain(file.blocks.iter().map(|b| &b.body));
    let mut out = Vec::new();
    for body in bodies {
        for (k, stmt) in body.iter().enumerate() {
            let (StmtKind::Input { name, .. } | StmtKind::Bind { name, .. }) = &stmt.kind else {
                continue;
            };
            let mut edits = vec![Edit::delete(stmt.span.start, stmt.span.end)];
            let names = |e: &Expr| matches!(&e.kind, ExprKind::Name(n) if n.name == name.name);
            for later in &body[k + 1..] {
                visit_stmt(later, &mut |e: &Expr| {
                    let (spans, values): (Vec<Span>, Vec<&Expr>) = match &e.kind {
                        ExprKind::Call(call) => {
                            call.args.iter().map(|a| (a.span, &a.value)).unzip()
                        }
                        ExprKind::List(items) => items.iter().map(|i| (i.span, i)).unzip(),
                        _ => return,
                    };
                    for (i, value) in values.iter().enumerate() {
                        if names(value) {
                            edits.push(item_deletion(&spans, i));
                        }
                    }
                });
            }
            let overlapping = edits.iter().enumerate().any(|(i, a)| {
                edits[i + 1..]
                    .iter()
                    .any(|b| a.span.start < b.span.end && b.span.start < a.span.end)
            });
            if edits.len() > 1 && !overlapping {
                out.push(apply_sorted(source, &edits.iter().collect::<Vec<_>>()));
            }
        }
    }
    out
}

/// Calls `f` on every expression of `stmt`, outermost first.
fn visit_stmt(stmt: &Stmt, f: &mut impl FnMut(&Expr)) {
    match &stmt.kind {
        StmtKind::Input { shape, .. } => visit(shape, f),
        StmtKind::Bind { value, annotation, .. } => {
            visit(value, f);
            if let Some(a) = annotation {
                visit(a, f);
            }
        }
        StmtKind::Expr(e) | StmtKind::Out(e) | StmtKind::Output(e) => visit(e, f),
        StmtKind::Loss(c) | StmtKind::Optimizer(c) | StmtKind::Schedule(c) | StmtKind::Train(c) => {
            c.args.iter().for_each(|a| visit(&a.value, f))
        }
        StmtKind::Precision(_) => {}
    }
}

fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Chain { head, stages } => {
            visit(head, f);
            for stage in stages {
                visit_stage(stage, f);
            }
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            visit(lhs, f);
            visit(rhs, f);
        }
        ExprKind::Call(call) => call.args.iter().for_each(|a| visit(&a.value, f)),
        ExprKind::List(items) => items.iter().for_each(|i| visit(i, f)),
        ExprKind::Neg(inner) => visit(inner, f),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
    }
}

fn visit_stage(stage: &Stage, f: &mut impl FnMut(&Expr)) {
    match &stage.kind {
        StageKind::Call(call) => call.args.iter().for_each(|a| visit(&a.value, f)),
        StageKind::Repeat { count, body, .. } => {
            visit(count, f);
            body.iter().for_each(|s| visit_stage(s, f));
        }
    }
    if let Some(a) = &stage.annotation {
        visit(a, f);
    }
}
