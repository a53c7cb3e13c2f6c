//! The checker: resolves names, expands blocks and repeats, and infers every
//! shape, turning the AST into typed IR graphs. It reports every error it can
//! find instead of stopping at the first; an expression whose error was
//! reported evaluates to `Value::Poisoned`, so one cause gives one error.
//!
//! Bindings inside a body are order-independent (a DAG written in any order):
//! a name is evaluated on first use, and a use during its own evaluation is a
//! cycle.

pub(crate) mod args;
mod scope;
mod training;
mod value;

use crate::ast::*;
use crate::diag::{did_you_mean, line_col, Diagnostic, Severity};
use crate::ir::{Graph, Loss, LossKind, Multipliers, Node, NodeId, Op, Shape, MAX_ELEMENTS};
use crate::ops::{self, Arity};
use args::GivenArg;
use scope::{Entry, NameKind, Namer, Scope, StmtState};
use std::collections::{HashMap, HashSet};
pub use value::Value;

/// Upper bound on layers after expansion, so that `repeat` cannot hang the
/// compiler or exhaust memory.
pub const MAX_NODES: usize = 100_000;
/// Upper bound on one `repeat` count.
pub const MAX_REPEAT: i64 = 10_000;

/// Checks every network in `file`. Returns the graphs of the networks that
/// checked cleanly, and all diagnostics (errors and warnings) in source order.
pub fn check(file: &File, source: &str) -> (Vec<Graph>, Vec<Diagnostic>) {
    let mut checker = Checker { source, blocks: HashMap::new(), diags: Vec::new() };
    checker.collect_blocks(file);
    if file.networks.is_empty() && file.blocks.is_empty() {
        checker.diags.push(
            Diagnostic::error("no `network` in this file", Span::new(0, 0))
                .label("expected a network")
                .help("a file needs at least one `network Name { input x: [...] ... }`"),
        );
    }
    let mut graphs = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for net in &file.networks {
        if let Some(first) = seen.insert(&net.name.name, net.name.span) {
            checker.diags.push(
                Diagnostic::error(
                    format!("network `{}` is defined twice", net.name),
                    net.name.span,
                )
                .label("defined again here")
                .secondary(first, "first defined here"),
            );
            continue;
        }
        if let Some(d) = unusable_type_name(&net.name.name, net.name.span) {
            checker.diags.push(d);
            continue;
        }
        if let Some(g) = checker.check_network(net) {
            graphs.push(g);
        }
    }
    let mut diags = checker.diags;
    dedup(&mut diags);
    (graphs, diags)
}

/// The generated code names its model type after the network (and
/// `<Name>Params` after it), so a Rust keyword cannot be one, and a
/// primitive or a prelude item that the generated code uses would be
/// shadowed by it.
fn unusable_type_name(name: &str, span: Span) -> Option<Diagnostic> {
    const KEYWORDS: &[&str] = &[
        "_", "Self", "abstract", "as", "async", "await", "become", "box", "break", "const",
        "continue", "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for",
        "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut",
        "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
        "true", "try", "type", "typeof", "union", "unsafe", "unsized", "use", "virtual", "where",
        "while", "yield",
    ];
    const USED_TYPES: &[&str] = &[
        "Box", "Err", "None", "Ok", "Option", "Result", "Some", "String", "Vec", "bool", "f32",
        "f64", "str", "u8", "u32", "u64", "usize",
    ];
    let why = if KEYWORDS.contains(&name) {
        "is a Rust keyword"
    } else if USED_TYPES.contains(&name) {
        "would shadow a Rust type that generated code uses"
    } else {
        return None;
    };
    Some(
        Diagnostic::error(format!("network name `{name}` {why}"), span)
            .label("the generated model type takes this name")
            .help("choose another name, such as `Net` or `MyModel`"),
    )
}

/// Removes repeats: an error inside a block is found once per instance.
fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    diags.retain(|d| seen.insert((d.primary.span, d.message.clone())));
    diags.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
}

struct Checker<'a> {
    source: &'a str,
    blocks: HashMap<&'a str, &'a BlockDef>,
    diags: Vec<Diagnostic>,
}

/// The graph of one network while it is being built.
struct Build<'a> {
    nodes: Vec<Node>,
    consumers: Vec<usize>,
    /// Every layer path and block-instance prefix used so far.
    paths: HashSet<String>,
    /// Blocks being instantiated, innermost last, to catch recursion.
    block_stack: Vec<&'a str>,
    /// Set once the graph grew past `MAX_NODES`; everything then evaluates
    /// to `Poisoned`.
    aborted: bool,
}

/// A tensor value and the source that produced it, for labels.
type Operand = (NodeId, Span);

impl<'a> Checker<'a> {
    fn collect_blocks(&mut self, file: &'a File) {
        for def in &file.blocks {
            if ops::find_op(&def.name.name).is_some() || is_loss_or_optimizer(&def.name.name) {
                self.diags.push(
                    Diagnostic::error(
                        format!("block `{}` has the name of a built-in", def.name),
                        def.name.span,
                    )
                    .label("reserved name")
                    .help("rename the block"),
                );
                continue;
            }
            if let Some(first) = self.blocks.get(def.name.name.as_str()) {
                self.diags.push(
                    Diagnostic::error(
                        format!("block `{}` is defined twice", def.name),
                        def.name.span,
                    )
                    .label("defined again here")
                    .secondary(first.name.span, "first defined here"),
                );
                continue;
            }
            self.blocks.insert(&def.name.name, def);
        }
    }

    fn line(&self, span: Span) -> usize {
        line_col(self.source, span.start).0
    }

    fn error(&mut self, d: Diagnostic) -> Value {
        self.diags.push(d);
        Value::Poisoned
    }

    fn check_network(&mut self, net: &'a Network) -> Option<Graph> {
        let errors_before = self.error_count();
        let mut b = Build {
            nodes: Vec::new(),
            consumers: Vec::new(),
            paths: HashSet::new(),
            block_stack: Vec::new(),
            aborted: false,
        };
        let mut scope = Scope::new(String::new(), &net.body, None);
        self.prescan(&mut scope);

        let mut inputs = Vec::new();
        for stmt in &net.body {
            if let StmtKind::Input { name, shape } = &stmt.kind {
                if let Some(id) = self.input_node(&mut b, &mut scope, name, shape) {
                    inputs.push(id);
                    scope.names.insert(
                        name.name.clone(),
                        Entry::Ready {
                            value: Value::Tensor(id),
                            span: name.span,
                            used: false,
                            kind: NameKind::Input,
                        },
                    );
                }
            }
        }
        if inputs.is_empty() && !net.body.iter().any(|s| matches!(s.kind, StmtKind::Input { .. })) {
            self.diags.push(
                Diagnostic::error(format!("network `{}` has no `input`", net.name), net.name.span)
                    .label("no input declared")
                    .help("declare one, such as `input x: [1, 28, 28]`"),
            );
        }
        for i in 0..net.body.len() {
            self.force(&mut b, &mut scope, i);
        }

        // The output: `output`, else the loss input, else the last bare chain.
        let output =
            scope.output.clone().or_else(|| scope.loss.as_ref().map(|l| l.input.clone())).or_else(
                || {
                    scope
                        .expr_results
                        .iter()
                        .rev()
                        .find(|(v, _)| matches!(v, Value::Tensor(id) if b.consumers[id.0] == 0))
                        .cloned()
                },
            );
        let output_node = match &output {
            Some((Value::Tensor(id), _)) => Some(*id),
            Some(_) => None,
            None => {
                if !b.aborted && self.error_count() == errors_before {
                    self.diags.push(
                        Diagnostic::error(
                            format!("network `{}` has no output", net.name),
                            net.name.span,
                        )
                        .label("nothing is computed")
                        .help("end a chain with `as name` and add `output name`, or add a `loss`"),
                    );
                }
                None
            }
        };
        let mut keep: HashSet<NodeId> = output_node.into_iter().collect();
        let loss = self.finish_loss(&b, &scope, &mut keep);
        let multipliers = self.multipliers(&b, &scope);
        let optimizer = scope.optimizer.clone();
        let schedule = scope.schedule.clone();
        let training_spans = [
            ("an optimizer", optimizer.as_ref().map(|o| o.1)),
            ("a schedule", schedule.as_ref().map(|s| s.1)),
        ];
        for (what, span) in training_spans {
            if let (Some(span), None) = (span, &scope.loss) {
                self.diags.push(
                    Diagnostic::error(
                        format!("{what} is given but the network has no `loss`"),
                        span,
                    )
                    .label("training needs a loss")
                    .help("add `loss cross_entropy(logits)` or `loss mse(y)`"),
                );
            }
        }
        // Unused values are usually the echo of another error; report them
        // only when they are the whole story.
        if self.error_count() == errors_before {
            self.check_unused(&b, &scope, &keep);
        }

        if self.error_count() > errors_before || b.aborted {
            return None;
        }
        Some(Graph {
            name: net.name.name.clone(),
            nodes: b.nodes,
            inputs,
            output: output_node?,
            loss,
            optimizer: optimizer.and_then(|(o, _)| o),
            schedule: schedule.and_then(|(s, _)| s),
            precision: scope.precision.map_or(crate::ir::Precision::F32, |(p, _)| p),
            multipliers,
            span: net.span,
        })
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.severity == Severity::Error).count()
    }

    fn finish_loss(
        &mut self,
        b: &Build<'a>,
        scope: &Scope<'a>,
        keep: &mut HashSet<NodeId>,
    ) -> Option<Loss> {
        let training::LossDecl { kind, input: (value, span), list } = scope.loss.clone()?;
        let Value::Tensor(id) = value else { return None };
        keep.insert(id);
        let shape = &b.nodes[id.0].shape;
        if let LossKind::CrossEntropy { .. } = kind {
            if shape.rank() != 1 || shape.dims()[0] < 2 {
                self.diags.push(
                    Diagnostic::error(
                        format!("`cross_entropy` expects logits [classes], found {shape}"),
                        span,
                    )
                    .label(format!("this is {shape}"))
                    .help("insert `-> flatten` or `-> global_avg_pool`, then `-> dense(classes)`"),
                );
                return None;
            }
            let producer = &b.nodes[id.0];
            if producer.op.name() == "softmax" {
                let mut d =
                    Diagnostic::error("`cross_entropy` applies softmax itself", producer.span)
                        .label("this softmax is applied twice")
                        .secondary(span, "the loss takes this input")
                        .help("remove the `softmax`; `forward` returns logits");
                d.severity = Severity::Warning;
                self.diags.push(d);
            }
        }
        if let Some(d) = list.and_then(|list| loss_list_mismatch(&kind, shape, list, span)) {
            self.diags.push(d);
            return None;
        }
        Some(Loss { kind, input: id, span })
    }

    /// Each node's multipliers from the `train` statements, in order (a
    /// later statement overrides an earlier one for the layers both name).
    fn multipliers(&mut self, b: &Build<'a>, scope: &Scope<'a>) -> Vec<Multipliers> {
        let mut out = vec![Multipliers::ONE; b.nodes.len()];
        for (call, given) in &scope.train {
            let Some(bound) =
                args::bind("train", training::TRAIN, given, call.span, &mut self.diags)
            else {
                continue;
            };
            let Some(m) = self.train_multipliers(&bound) else { continue };
            let path = &call.name.name;
            let nested = format!("{path}.");
            let layers: Vec<usize> = (0..b.nodes.len())
                .filter(|&i| b.nodes[i].name == *path || b.nodes[i].name.starts_with(&nested))
                .collect();
            if layers.is_empty() {
                let mut d = Diagnostic::error(format!("no layer named `{path}`"), call.name.span)
                    .label("not a layer of this network");
                let names = b.nodes.iter().map(|n| n.name.as_str());
                if let Some(best) = did_you_mean(path, names) {
                    d = d.help(format!("did you mean `{best}`?"));
                }
                self.diags.push(d);
                continue;
            }
            let learns = |i: &usize| {
                let node = &b.nodes[*i];
                let shapes: Vec<&Shape> = node.inputs.iter().map(|x| &b.nodes[x.0].shape).collect();
                node.op.params(&shapes).iter().any(|p| p.learnable)
            };
            if !layers.iter().any(learns) {
                self.diags.push(
                    Diagnostic::error(
                        format!("`{path}` has no learnable parameters"),
                        call.name.span,
                    )
                    .label("nothing to train here")
                    .help("name a layer with weights, such as a `conv2d` or a `dense`"),
                );
                continue;
            }
            for i in layers {
                out[i] = m;
            }
        }
        out
    }

    /// `frozen: true` is `lr_mult: 0`; both at once must agree.
    fn train_multipliers(&mut self, bound: &args::Bound) -> Option<Multipliers> {
        let (lr, decay) = (bound.float("lr_mult")?, bound.float("decay_mult")?);
        if bound.bool("frozen") != Some(true) {
            return Some(Multipliers { lr, decay });
        }
        if lr != 1.0 {
            self.diags.push(
                Diagnostic::error("a frozen layer takes no step", bound.span("lr_mult"))
                    .label("`lr_mult` of a frozen layer")
                    .secondary(bound.span("frozen"), "frozen here")
                    .help("drop `lr_mult`, or `frozen` (`lr_mult: 0` freezes too)"),
            );
            return None;
        }
        Some(Multipliers { lr: 0.0, decay })
    }

    /// Reports bindings and chains whose values nothing uses.
    fn check_unused(&mut self, b: &Build<'a>, scope: &Scope<'a>, keep: &HashSet<NodeId>) {
        if b.aborted {
            return;
        }
        for entry in scope.names.values() {
            if let Entry::Ready {
                used: false,
                span,
                kind: kind @ (NameKind::Binding | NameKind::Input),
                value,
            } = entry
            {
                if matches!(value, Value::Tensor(id) if keep.contains(id)) {
                    continue;
                }
                let name = &self.source[span.range()];
                let what = if *kind == NameKind::Input { "input" } else { "value" };
                self.diags.push(
                    Diagnostic::error(format!("{what} `{name}` is never used"), *span)
                        .label("defined here")
                        .help("use it in a later layer, or remove it"),
                );
            }
        }
        for (value, span) in &scope.expr_results {
            if let Value::Tensor(id) = value {
                if b.consumers[id.0] == 0 && !keep.contains(id) {
                    self.diags.push(
                        Diagnostic::error("the result of this chain is never used", *span)
                            .label(format!("computes {} and drops it", b.nodes[id.0].shape))
                            .help("name it with `as name` and use it, or make it the `output`"),
                    );
                }
            }
        }
    }

    fn input_node(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        name: &Ident,
        shape: &'a Expr,
    ) -> Option<NodeId> {
        let dims = self.shape_list(b, scope, shape, "input shape")?;
        if dims.is_empty() {
            self.diags.push(
                Diagnostic::error(format!("input `{name}` has an empty shape"), shape.span)
                    .label("no dimensions")
                    .help("give the per-sample shape, such as `[1, 28, 28]` or `[784]`"),
            );
            return None;
        }
        b.paths.insert(name.name.clone());
        self.push_node(b, name.name.clone(), Op::input(), Vec::new(), Shape(dims), name.span)
    }

    /// Evaluates a list of positive integers, such as a shape.
    fn shape_list(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        e: &'a Expr,
        what: &str,
    ) -> Option<Vec<usize>> {
        let value = self.eval(b, scope, e);
        let Value::List(items) = value else {
            if value != Value::Poisoned {
                self.diags.push(
                    Diagnostic::error(
                        format!("{what} must be a list, found {}", value.describe()),
                        e.span,
                    )
                    .label("expected `[...]`"),
                );
            }
            return None;
        };
        let mut dims = Vec::new();
        let mut ok = true;
        let mut elements: usize = 1;
        for (v, span) in items {
            match v {
                Value::Int(d) if d >= 1 && (d as u64) <= MAX_ELEMENTS as u64 => {
                    let d = d as usize;
                    elements = elements.saturating_mul(d);
                    dims.push(d);
                }
                Value::Int(d) if d < 1 => {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            format!("{what} dimensions must be positive, found {d}"),
                            span,
                        )
                        .label("not a valid size"),
                    );
                }
                Value::Poisoned => ok = false,
                other => {
                    ok = false;
                    let msg = match other {
                        Value::Int(_) => format!("{what} dimension is too large"),
                        _ => format!(
                            "{what} dimensions must be integers, found {}",
                            other.describe()
                        ),
                    };
                    self.diags.push(Diagnostic::error(msg, span).label("not a valid size"));
                }
            }
        }
        if ok && elements > MAX_ELEMENTS {
            self.diags.push(
                Diagnostic::error(format!("{what} has too many elements"), e.span)
                    .label(format!("more than {MAX_ELEMENTS} per sample")),
            );
            ok = false;
        }
        ok.then_some(dims)
    }

    /// Appends a node; `None` if the graph is too large (reported once).
    fn push_node(
        &mut self,
        b: &mut Build<'a>,
        name: String,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Shape,
        span: Span,
    ) -> Option<NodeId> {
        if b.aborted {
            return None;
        }
        if b.nodes.len() >= MAX_NODES {
            b.aborted = true;
            self.diags.push(
                Diagnostic::error(
                    format!("the network has more than {MAX_NODES} layers after expansion"),
                    span,
                )
                .label("limit reached here")
                .help("reduce the `repeat` counts"),
            );
            return None;
        }
        for i in &inputs {
            b.consumers[i.0] += 1;
        }
        b.nodes.push(Node { name, op, inputs, shape, span });
        b.consumers.push(0);
        Some(NodeId(b.nodes.len() - 1))
    }

    // ----- scopes and statements -----

    /// Registers every name a body defines, so that uses may come before
    /// definitions, and reports names defined twice.
    fn prescan(&mut self, scope: &mut Scope<'a>) {
        let mut defs: Vec<(&'a Ident, Entry, bool)> = Vec::new();
        for (i, stmt) in scope.stmts.iter().enumerate() {
            match &stmt.kind {
                StmtKind::Input { name, .. } => {
                    defs.push((name, Entry::Pending { stmt: i, span: name.span }, false))
                }
                StmtKind::Bind { name, value, .. } => {
                    defs.push((name, Entry::Pending { stmt: i, span: name.span }, false));
                    collect_aliases(value, &mut |a| {
                        defs.push((a, Entry::Pending { stmt: i, span: a.span }, true))
                    });
                }
                StmtKind::Expr(e) | StmtKind::Out(e) | StmtKind::Output(e) => {
                    collect_aliases(e, &mut |a| {
                        defs.push((a, Entry::Pending { stmt: i, span: a.span }, true))
                    });
                }
                // A `train` statement names layers, which exist only once
                // the body is checked; it is resolved then.
                StmtKind::Train(_) | StmtKind::Precision(_) => {}
                StmtKind::Loss(c) | StmtKind::Optimizer(c) | StmtKind::Schedule(c) => {
                    for arg in &c.args {
                        collect_aliases(&arg.value, &mut |a| {
                            defs.push((a, Entry::Pending { stmt: i, span: a.span }, true))
                        });
                    }
                }
            }
        }
        for (ident, entry, is_alias) in defs {
            if let Some(first) = scope.names.get(&ident.name) {
                let what = if is_alias { "layer name" } else { "name" };
                let d =
                    Diagnostic::error(format!("the {what} `{ident}` is defined twice"), ident.span)
                        .label("defined again here")
                        .secondary(first.span(), "first defined here");
                self.diags.push(d);
                if is_alias {
                    scope.bad_aliases.insert(ident.span);
                }
                continue;
            }
            if is_alias {
                scope.namer().reserved.insert(ident.name.clone());
            }
            scope.names.insert(ident.name.clone(), entry);
        }
    }

    /// Evaluates statement `i` unless that is already done or under way.
    fn force(&mut self, b: &mut Build<'a>, scope: &mut Scope<'a>, i: usize) {
        if scope.state[i] != StmtState::NotStarted {
            return;
        }
        scope.state[i] = StmtState::InProgress;
        let stmt = &scope.stmts[i];
        let in_block = scope.block.is_some();
        match &stmt.kind {
            StmtKind::Input { .. } => {
                if in_block {
                    self.diags.push(misplaced(
                        "input",
                        stmt.span,
                        "a block receives its inputs in its header: `block b(c)(x)`",
                    ));
                }
            }
            StmtKind::Bind { name, value, annotation } => {
                let mut v = self.eval(b, scope, value);
                if let Some(annotation) = annotation {
                    v = self.check_annotation(b, scope, annotation, v, value.span);
                }
                scope.names.insert(
                    name.name.clone(),
                    Entry::Ready {
                        value: v,
                        span: name.span,
                        used: false,
                        kind: NameKind::Binding,
                    },
                );
            }
            StmtKind::Expr(e) => {
                let v = self.eval(b, scope, e);
                scope.expr_results.push((v, e.span));
            }
            StmtKind::Out(e) => {
                if !in_block {
                    self.diags.push(misplaced(
                        "out",
                        stmt.span,
                        "a network names its result with `output`",
                    ));
                    self.eval(b, scope, e);
                } else if let Some((_, first)) = &scope.output {
                    let first = *first;
                    self.diags.push(
                        Diagnostic::error("a block has exactly one `out`", stmt.span)
                            .label("second `out`")
                            .secondary(first, "first `out` here"),
                    );
                } else {
                    let v = self.eval(b, scope, e);
                    scope.output = Some((v, e.span));
                }
            }
            StmtKind::Output(e) => {
                if in_block {
                    self.diags.push(misplaced(
                        "output",
                        stmt.span,
                        "a block returns its value with `out`",
                    ));
                    self.eval(b, scope, e);
                } else if let Some((_, first)) = &scope.output {
                    let first = *first;
                    self.diags.push(
                        Diagnostic::error("a network has at most one `output`", stmt.span)
                            .label("second `output`")
                            .secondary(first, "first `output` here"),
                    );
                } else {
                    let v = self.eval(b, scope, e);
                    scope.output = Some((v, e.span));
                }
            }
            StmtKind::Loss(call) => {
                if in_block {
                    self.diags.push(misplaced("loss", stmt.span, "put the `loss` in the network"));
                } else if let Some(first) = &scope.loss {
                    let first = first.input.1;
                    self.diags.push(
                        Diagnostic::error("a network has at most one `loss`", stmt.span)
                            .label("second `loss`")
                            .secondary(first, "first `loss` here"),
                    );
                } else {
                    scope.loss = self.eval_loss(b, scope, call);
                }
            }
            StmtKind::Train(call) => {
                if in_block {
                    self.diags.push(misplaced(
                        "train",
                        stmt.span,
                        "name the layers from the network: `train layer1.conv1(...)`",
                    ));
                } else {
                    let given = self.eval_args(b, scope, &call.args, &[]);
                    scope.train.push((call, given));
                }
            }
            StmtKind::Optimizer(call) => {
                if self.once_per_network("optimizer", in_block, scope.optimizer.as_ref(), stmt.span)
                {
                    let opt = self.eval_optimizer(b, scope, call);
                    scope.optimizer = Some((opt, stmt.span));
                }
            }
            StmtKind::Schedule(call) => {
                if self.once_per_network("schedule", in_block, scope.schedule.as_ref(), stmt.span) {
                    let schedule = self.eval_schedule(b, scope, call);
                    scope.schedule = Some((schedule, stmt.span));
                }
            }
            StmtKind::Precision(name) => {
                let first = scope.precision.as_ref();
                if self.once_per_network("precision", in_block, first, stmt.span) {
                    if let Some(precision) = self.eval_precision(name) {
                        scope.precision = Some((precision, stmt.span));
                    }
                }
            }
        }
        scope.state[i] = StmtState::Done;
    }

    fn eval_loss(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        call: &'a Call,
    ) -> Option<training::LossDecl> {
        let Some(&(name, specs)) = training::LOSSES.iter().find(|(n, _)| *n == call.name.name)
        else {
            let mut d = Diagnostic::error(format!("unknown loss `{}`", call.name), call.name.span)
                .label("not a loss")
                .note(format!("the losses are {}", training::loss_list()));
            if let Some(best) =
                did_you_mean(&call.name.name, training::LOSSES.iter().map(|(n, _)| *n))
            {
                d = d.help(format!("did you mean `{best}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let args = self.eval_args(b, scope, &call.args, &[]);
        let is_tensor = |a: &GivenArg| matches!(a.value, Value::Tensor(_) | Value::Poisoned);
        let Some(first) = args.first().filter(|a| a.name.is_none() && is_tensor(a)) else {
            self.diags.push(
                Diagnostic::error(format!("`{name}` needs the tensor to score"), call.span)
                    .label("no input")
                    .help(format!("write `loss {name}(logits)`, the tensor first")),
            );
            return None;
        };
        if let Some(extra) = args[1..].iter().find(|a| matches!(a.value, Value::Tensor(_))) {
            self.diags.push(
                Diagnostic::error(format!("`{name}` scores exactly one tensor"), extra.span)
                    .label("a second tensor")
                    .help(format!("write `loss {name}(logits)`")),
            );
            return None;
        }
        let bound = args::bind(name, specs, &args[1..], call.span, &mut self.diags)?;
        let list =
            training::LOSS_LISTS.iter().find(|l| bound.numbers(l).is_some()).map(|l| bound.span(l));
        let kind = training::build_loss(name, &bound);
        Some(training::LossDecl { kind, input: (first.value.clone(), first.value_span), list })
    }

    /// Whether a statement that a network has at most one of (`what`)
    /// may stand here: not in a block, and not after an earlier one
    /// (`first`). Reports why not.
    fn once_per_network<T>(
        &mut self,
        what: &str,
        in_block: bool,
        first: Option<&(T, Span)>,
        span: Span,
    ) -> bool {
        if in_block {
            self.diags.push(misplaced(what, span, &format!("put the `{what}` in the network")));
            return false;
        }
        if let Some((_, first)) = first {
            self.diags.push(
                Diagnostic::error(format!("a network has at most one `{what}`"), span)
                    .label(format!("second `{what}`"))
                    .secondary(*first, format!("first `{what}` here")),
            );
            return false;
        }
        true
    }

    /// The precision `name` names, or a diagnostic at it.
    fn eval_precision(&mut self, name: &Ident) -> Option<crate::ir::Precision> {
        let found = crate::ir::Precision::named(&name.name);
        if found.is_none() {
            let names = crate::ir::Precision::ALL.map(|(n, _)| n);
            let mut d = Diagnostic::error(format!("unknown precision `{name}`"), name.span)
                .label("not a precision")
                .note(
                    "the precisions are `f32` (the default) and `bf16` (bf16 operands, f32 sums)",
                );
            if let Some(best) = did_you_mean(&name.name, names) {
                d = d.help(format!("did you mean `{best}`?"));
            }
            self.diags.push(d);
        }
        found
    }

    fn eval_schedule(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        call: &'a Call,
    ) -> Option<crate::ir::Schedule> {
        let Some(&(name, specs)) = training::SCHEDULES.iter().find(|(n, _)| *n == call.name.name)
        else {
            let mut d =
                Diagnostic::error(format!("unknown schedule `{}`", call.name), call.name.span)
                    .label("not a schedule")
                    .note("the schedules are `constant`, `step`, `multistep` and `cosine`");
            if let Some(best) =
                did_you_mean(&call.name.name, training::SCHEDULES.iter().map(|(n, _)| *n))
            {
                d = d.help(format!("did you mean `{best}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let given = self.eval_args(b, scope, &call.args, &[]);
        let bound = args::bind(name, specs, &given, call.span, &mut self.diags)?;
        if let Some(milestones) = bound.numbers("milestones") {
            let increasing = milestones.windows(2).all(|w| w[0] < w[1]);
            if milestones.is_empty() || !increasing || milestones.iter().any(|m| *m <= 0.0) {
                self.diags.push(
                    Diagnostic::error(
                        "milestones are epochs in increasing order, each above 0",
                        bound.span("milestones"),
                    )
                    .label("such as `[30, 60, 90]`"),
                );
                return None;
            }
        }
        Some(training::build_schedule(name, &bound))
    }

    fn eval_optimizer(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        call: &'a Call,
    ) -> Option<crate::ir::Optimizer> {
        let Some(&(name, specs)) = training::OPTIMIZERS.iter().find(|(n, _)| *n == call.name.name)
        else {
            let mut d =
                Diagnostic::error(format!("unknown optimizer `{}`", call.name), call.name.span)
                    .label("not an optimizer")
                    .note("the optimizers are `sgd`, `adam` and `adamw`");
            if let Some(best) =
                did_you_mean(&call.name.name, training::OPTIMIZERS.iter().map(|(n, _)| *n))
            {
                d = d.help(format!("did you mean `{best}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let given = self.eval_args(b, scope, &call.args, &[]);
        let bound = args::bind(name, specs, &given, call.span, &mut self.diags)?;
        let opt = training::build_optimizer(name, &bound);
        if let crate::ir::Optimizer::Sgd { nesterov: true, momentum, .. } = opt {
            if momentum == 0.0 {
                self.diags.push(
                    Diagnostic::error(
                        "nesterov momentum needs `momentum` above 0",
                        bound.span("nesterov"),
                    )
                    .label("has no effect without momentum")
                    .help("add `momentum: 0.9`"),
                );
                return None;
            }
        }
        Some(opt)
    }

    // ----- expressions -----

    fn lookup(&mut self, b: &mut Build<'a>, scope: &mut Scope<'a>, ident: &Ident) -> Value {
        match scope.names.get(&ident.name) {
            None => {
                if ops::find_op(&ident.name).is_some()
                    || self.blocks.contains_key(ident.name.as_str())
                {
                    return self.error(
                        Diagnostic::error(format!("`{ident}` is a layer, not a value"), ident.span)
                            .label("used as a value")
                            .help(format!("apply it with `->`, as in `x -> {ident}`; is a `->` missing before it?")),
                    );
                }
                let mut d =
                    Diagnostic::error(format!("cannot find `{ident}` in this scope"), ident.span)
                        .label("not defined");
                if let Some(best) =
                    did_you_mean(&ident.name, scope.names.keys().map(String::as_str))
                {
                    d = d.help(format!("did you mean `{best}`?"));
                }
                self.error(d)
            }
            Some(Entry::Pending { stmt, span, .. }) => {
                let (stmt, def_span) = (*stmt, *span);
                if scope.state[stmt] == StmtState::InProgress {
                    return self.error(
                        Diagnostic::error(
                            format!("cycle: `{ident}` depends on itself"),
                            ident.span,
                        )
                        .label("used here while it is being defined")
                        .secondary(def_span, format!("`{ident}` is defined here")),
                    );
                }
                self.force(b, scope, stmt);
                match scope.names.get(&ident.name) {
                    Some(Entry::Ready { .. }) => self.lookup(b, scope, ident),
                    _ => Value::Poisoned,
                }
            }
            Some(Entry::Ready { .. }) => {
                let Some(Entry::Ready { value, used, .. }) = scope.names.get_mut(&ident.name)
                else {
                    unreachable!("matched above")
                };
                *used = true;
                value.clone()
            }
        }
    }

    fn eval(&mut self, b: &mut Build<'a>, scope: &mut Scope<'a>, e: &'a Expr) -> Value {
        if b.aborted {
            return Value::Poisoned;
        }
        match &e.kind {
            ExprKind::Int(v) => Value::Int(*v),
            ExprKind::Float(v) => Value::Float(*v),
            ExprKind::Bool(v) => Value::Bool(*v),
            ExprKind::Name(ident) => self.lookup(b, scope, ident),
            ExprKind::List(items) => {
                let values: Vec<(Value, Span)> =
                    items.iter().map(|i| (self.eval(b, scope, i), i.span)).collect();
                if values.iter().any(|(v, _)| *v == Value::Poisoned) {
                    Value::Poisoned
                } else {
                    Value::List(values)
                }
            }
            ExprKind::Neg(inner) => match self.eval(b, scope, inner) {
                Value::Int(v) => v.checked_neg().map_or(Value::Poisoned, Value::Int),
                Value::Float(v) => Value::Float(-v),
                Value::Poisoned => Value::Poisoned,
                other => self.error(
                    Diagnostic::error(format!("cannot negate {}", other.describe()), e.span)
                        .label("`-` applies to numbers only"),
                ),
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.eval(b, scope, lhs);
                let r = self.eval(b, scope, rhs);
                self.binary(b, scope, *op, (l, lhs.span), (r, rhs.span), e.span)
            }
            ExprKind::Chain { head, stages } => {
                let mut value = self.eval(b, scope, head);
                let mut span = head.span;
                for stage in stages {
                    value = match value {
                        Value::Tensor(id) => {
                            self.apply_stage(b, scope, stage, (id, span), None, true)
                        }
                        Value::Poisoned => return Value::Poisoned,
                        other => {
                            return self.error(
                                Diagnostic::error(
                                    format!("{} cannot flow into a layer", other.describe()),
                                    span,
                                )
                                .label("not a tensor")
                                .secondary(stage.span, "this layer needs a tensor input"),
                            )
                        }
                    };
                    span = stage.span;
                }
                value
            }
            ExprKind::Call(call) => self.apply_call(b, scope, call, None, None, None),
        }
    }

    fn binary(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        op: BinOp,
        (l, lspan): (Value, Span),
        (r, rspan): (Value, Span),
        span: Span,
    ) -> Value {
        match (&l, &r) {
            (Value::Poisoned, _) | (_, Value::Poisoned) => Value::Poisoned,
            (Value::Int(a), Value::Int(c)) => {
                let result = match op {
                    BinOp::Add => a.checked_add(*c),
                    BinOp::Sub => a.checked_sub(*c),
                    BinOp::Mul => a.checked_mul(*c),
                    BinOp::Div if *c == 0 => {
                        return self.error(
                            Diagnostic::error("division by zero", rspan).label("this is zero"),
                        )
                    }
                    BinOp::Div => a.checked_div(*c),
                };
                match result {
                    Some(v) => Value::Int(v),
                    None => self.error(
                        Diagnostic::error("integer overflow", span)
                            .label("the result does not fit in 64 bits"),
                    ),
                }
            }
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                let as_f = |v: &Value| match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => *f,
                    _ => 0.0,
                };
                let (a, c) = (as_f(&l), as_f(&r));
                let v = match op {
                    BinOp::Add => a + c,
                    BinOp::Sub => a - c,
                    BinOp::Mul => a * c,
                    BinOp::Div => a / c,
                };
                if v.is_finite() {
                    Value::Float(v)
                } else {
                    self.error(
                        Diagnostic::error("arithmetic gives a non-finite number", span)
                            .label("overflow or division by zero"),
                    )
                }
            }
            (Value::Tensor(a), Value::Tensor(c)) if matches!(op, BinOp::Add | BinOp::Mul) => {
                let op = if op == BinOp::Add { Op::add() } else { Op::mul() };
                self.make_node(b, scope, &op, None, vec![(*a, lspan), (*c, rspan)], span, None)
            }
            _ => self.error(
                Diagnostic::error(
                    format!(
                        "cannot apply `{}` to {} and {}",
                        op.symbol(),
                        l.describe(),
                        r.describe()
                    ),
                    span,
                )
                .label("unsupported operands")
                .secondary(lspan, l.describe())
                .secondary(rspan, r.describe())
                .note("tensors support `+` and `*`; numbers support `+ - * /`"),
            ),
        }
    }

    /// Evaluates call arguments; a bare name given to one of `words`, the
    /// arguments that take a name, is that name where its kind says
    /// ([`args::Kind::takes_word`]).
    fn eval_args(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        args: &'a [Arg],
        words: &[(&str, args::Kind)],
    ) -> Vec<GivenArg> {
        args.iter()
            .map(|a| GivenArg {
                name: a.name.as_ref().map(|n| (n.name.clone(), n.span)),
                value: match (&a.name, &a.value.kind) {
                    (Some(n), ExprKind::Name(word))
                        if words.iter().any(|&(arg, kind)| {
                            arg == n.name && kind.takes_word(scope.names.contains_key(&word.name))
                        }) =>
                    {
                        Value::Word(word.name.clone())
                    }
                    _ => self.eval(b, scope, &a.value),
                },
                value_span: a.value.span,
                span: a.span,
            })
            .collect()
    }

    // ----- stages, calls and blocks -----

    /// Applies one chain stage to `piped`. `path` overrides the layer name
    /// (for the single stage of a named `repeat`); `bind_alias` is false
    /// inside repeat bodies, whose `as` names are layer names only.
    #[allow(clippy::too_many_arguments)]
    fn apply_stage(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        stage: &'a Stage,
        piped: Operand,
        path: Option<String>,
        bind_alias: bool,
    ) -> Value {
        // An alias already reported as a duplicate names nothing, so that one
        // mistake gives one error.
        let alias = stage.alias.as_ref().filter(|a| !scope.bad_aliases.contains(&a.span));
        let path = path.or_else(|| alias.map(|a| scope.namer().prefix.clone() + &a.name));
        let value = match &stage.kind {
            StageKind::Call(call) => {
                self.apply_call(b, scope, call, Some(piped), path, stage.alias.as_ref())
            }
            StageKind::Repeat { count, body, keyword } => {
                self.apply_repeat(b, scope, count, body, *keyword, piped, path)
            }
        };
        if bind_alias {
            if let Some(alias) = &stage.alias {
                if let Some(Entry::Pending { .. }) = scope.names.get(&alias.name) {
                    scope.names.insert(
                        alias.name.clone(),
                        Entry::Ready {
                            value: value.clone(),
                            span: alias.span,
                            used: false,
                            kind: NameKind::Alias,
                        },
                    );
                }
            }
        }
        match &stage.annotation {
            Some(annotation) => self.check_annotation(b, scope, annotation, value, stage.span),
            None => value,
        }
    }

    /// Checks `: [shape]` against the value it annotates (made by `span`).
    fn check_annotation(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        annotation: &'a Expr,
        value: Value,
        span: Span,
    ) -> Value {
        let Value::Tensor(id) = value else { return value };
        let Some(expected) = self.shape_list(b, scope, annotation, "shape annotation") else {
            return Value::Poisoned;
        };
        let actual = &b.nodes[id.0].shape;
        if expected == actual.0 {
            return value;
        }
        let expected = Shape(expected);
        self.error(
            Diagnostic::error(
                format!("shape mismatch: annotated {expected}, inferred {actual}"),
                annotation.span,
            )
            .label(format!("expects {expected}"))
            .secondary(span, format!("this gives {actual}")),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_repeat(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        count: &'a Expr,
        body: &'a [Stage],
        keyword: Span,
        piped: Operand,
        path: Option<String>,
    ) -> Value {
        let n = match self.eval(b, scope, count) {
            Value::Int(n) if (1..=MAX_REPEAT).contains(&n) => n,
            Value::Poisoned => return Value::Poisoned,
            Value::Int(n) => {
                let why = if n < 1 { "at least 1" } else { "at most 10000" };
                return self.error(
                    Diagnostic::error(
                        format!("`repeat` count must be {why}, found {n}"),
                        count.span,
                    )
                    .label("invalid count")
                    .secondary(keyword, "in this repeat"),
                );
            }
            other => {
                return self.error(
                    Diagnostic::error(
                        format!("`repeat` count must be an integer, found {}", other.describe()),
                        count.span,
                    )
                    .label("expected an integer"),
                )
            }
        };
        let mut current = piped;
        for i in 0..n {
            // A named repeat gives each iteration its own naming scope.
            let single_path = path.as_ref().and_then(|p| {
                b.paths.insert(p.clone());
                let mut sub = Namer::new(format!("{p}.{i}."));
                collect_stage_aliases(body, &mut |a| {
                    sub.reserved.insert(a.name.clone());
                });
                scope.namers.push(sub);
                (body.len() == 1 && body[0].alias.is_none()).then(|| format!("{p}.{i}"))
            });
            // An iteration that reported errors ends the repeat: the later
            // ones would only repeat them, thousands of times.
            let errors_before = self.error_count();
            let mut failed = false;
            for stage in body {
                match self.apply_stage(b, scope, stage, current, single_path.clone(), false) {
                    Value::Tensor(id) => current = (id, stage.span),
                    _ => {
                        failed = true;
                        break;
                    }
                }
            }
            if path.is_some() {
                scope.namers.pop();
            }
            if failed || self.error_count() > errors_before {
                return Value::Poisoned;
            }
        }
        Value::Tensor(current.0)
    }

    /// Applies a call: an op or a block, to `piped` (in a chain) and to any
    /// leading tensor arguments.
    #[allow(clippy::too_many_arguments)]
    fn apply_call(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        call: &'a Call,
        piped: Option<Operand>,
        path: Option<String>,
        alias: Option<&'a Ident>,
    ) -> Value {
        let name = call.name.name.as_str();
        let op = ops::find_op(name);
        let words: Vec<(&str, args::Kind)> = op
            .map(|d| {
                d.args
                    .iter()
                    .filter(|a| a.kind.takes_word(false))
                    .map(|a| (a.name, a.kind))
                    .collect()
            })
            .unwrap_or_default();
        let given = self.eval_args(b, scope, &call.args, &words);
        if given.iter().any(|a| a.value == Value::Poisoned) || b.aborted {
            return Value::Poisoned;
        }
        let leading = given
            .iter()
            .take_while(|a| a.name.is_none() && matches!(a.value, Value::Tensor(_)))
            .count();
        let mut inputs: Vec<Operand> = piped.into_iter().collect();
        inputs.extend(given[..leading].iter().map(|a| match a.value {
            Value::Tensor(id) => (id, a.value_span),
            _ => unreachable!("filtered above"),
        }));
        let config = &given[leading..];

        if let Some(def) = op {
            if !call.parens && def.args.iter().any(|s| s.default == args::Lit::Required) {
                return self.error(
                    Diagnostic::error(format!("`{name}` needs arguments"), call.span)
                        .label("no arguments given")
                        .help(format!("the signature is `{}`", args::usage(name, def.args))),
                );
            }
            match (def.arity, inputs.len()) {
                (_, 0) => {
                    return self.error(
                        Diagnostic::error(format!("`{name}` has no input"), call.span)
                            .label("applied to nothing")
                            .help(format!(
                                "apply it in a chain: `x -> {}`",
                                &self.source[call.span.range()]
                            )),
                    )
                }
                (Arity::One, n @ 2..) => {
                    let extra = inputs[1].1;
                    return self.error(
                        Diagnostic::error(format!("`{name}` takes one input, found {n}"), extra)
                            .label("extra input")
                            .help("combine tensors first with `+` or `concat`"),
                    );
                }
                (Arity::Two, n @ (1 | 3..)) => {
                    return self.error(
                        Diagnostic::error(
                            format!("`{name}` takes two inputs, found {n}"),
                            call.span,
                        )
                        .label(format!("{n} inputs"))
                        .help(format!("write `{name}(a, b)` or `a -> {name}(b)`")),
                    )
                }
                (Arity::Many, 1) => {
                    return self.error(
                        Diagnostic::error(format!("`{name}` needs at least two inputs"), call.span)
                            .label("only one input")
                            .help(format!("write `{name}(a, b)` or `a -> {name}(b)`")),
                    )
                }
                (Arity::One, 1) | (Arity::Two, 2) | (Arity::Many, 2..) => {}
            }
            let Some(bound) = args::bind(name, def.args, config, call.span, &mut self.diags) else {
                return Value::Poisoned;
            };
            let op = (def.build)(&bound);
            return self.make_node(b, scope, &op, Some(&bound), inputs, call.span, path);
        }

        if let Some(def) = self.blocks.get(name).copied() {
            let path = match path {
                Some(p) => {
                    if !b.paths.insert(p.clone()) {
                        return self.duplicate_layer(&p, alias.map_or(call.span, |a| a.span));
                    }
                    p
                }
                None => scope.namer().auto(name, &mut b.paths),
            };
            return self.instantiate(b, def, call, inputs, config, path);
        }

        if is_loss_or_optimizer(name) {
            let what =
                if training::LOSSES.iter().any(|(n, _)| *n == name) { "loss" } else { "optimizer" };
            return self.error(
                Diagnostic::error(format!("`{name}` is a {what}, not a layer"), call.name.span)
                    .label(format!("a {what} cannot appear in a chain"))
                    .help(format!("write it as a statement: `{what} {name}(...)`")),
            );
        }
        let mut d = Diagnostic::error(format!("unknown op `{name}`"), call.name.span)
            .label("not an op or a block");
        let candidates = ops::OPS.iter().map(|o| o.name).chain(self.blocks.keys().copied());
        if let Some(best) = did_you_mean(name, candidates) {
            d = d.help(format!("did you mean `{best}`?"));
        } else if scope.names.contains_key(name) {
            d = d.note(format!("`{name}` is a value; only ops and blocks can be applied"));
        }
        self.error(d)
    }

    fn duplicate_layer(&mut self, path: &str, span: Span) -> Value {
        self.error(
            Diagnostic::error(format!("the layer name `{path}` is used twice"), span)
                .label("names an earlier layer too")
                .help("a named layer inside `repeat` needs the repeat itself to be named: `repeat 2 { ... } as stack`"),
        )
    }

    /// Infers the shape of `op` on `inputs` and appends it as a node.
    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &mut self,
        b: &mut Build<'a>,
        scope: &mut Scope<'a>,
        op: &Op,
        bound: Option<&args::Bound>,
        inputs: Vec<Operand>,
        span: Span,
        path: Option<String>,
    ) -> Value {
        let name = match path {
            Some(p) => {
                if !b.paths.insert(p.clone()) {
                    return self.duplicate_layer(&p, span);
                }
                p
            }
            None => scope.namer().auto(op.stem(), &mut b.paths),
        };
        let shapes: Vec<&Shape> = inputs.iter().map(|(id, _)| &b.nodes[id.0].shape).collect();
        let shape = match op.infer(&shapes) {
            Ok(s) => s,
            Err(e) => {
                let primary = match (e.arg, bound) {
                    (Some(arg), Some(bound)) => bound.span(arg),
                    _ => span,
                };
                let mut d = Diagnostic::error(e.message, primary).label(e.label);
                for (id, input_span) in &inputs {
                    if *input_span != primary {
                        d = d.secondary(*input_span, format!("this gives {}", b.nodes[id.0].shape));
                    }
                }
                d = d.note(format!(
                    "in layer `{name}` (`{}`){}",
                    op.name(),
                    scope.block.clone().unwrap_or_default()
                ));
                if let Some(h) = e.help {
                    d = d.help(h);
                }
                return self.error(d);
            }
        };
        let params: usize =
            op.params(&shapes).iter().map(|p| p.shape.elements()).fold(0, usize::saturating_add);
        if shape.elements() > MAX_ELEMENTS || params > MAX_ELEMENTS {
            return self.error(
                Diagnostic::error(format!("layer `{name}` is too large"), span)
                    .label(format!("output {shape}, {params} parameters"))
                    .note(format!("the limit is {MAX_ELEMENTS} elements per tensor")),
            );
        }
        let ids = inputs.iter().map(|(id, _)| *id).collect();
        match self.push_node(b, name, op.clone(), ids, shape, span) {
            Some(id) => Value::Tensor(id),
            None => Value::Poisoned,
        }
    }

    fn instantiate(
        &mut self,
        b: &mut Build<'a>,
        def: &'a BlockDef,
        call: &'a Call,
        inputs: Vec<Operand>,
        config: &[GivenArg],
        path: String,
    ) -> Value {
        let name = def.name.name.as_str();
        let errors_before = self.error_count();
        if b.block_stack.contains(&name) {
            return self.error(
                Diagnostic::error(format!("block `{name}` instantiates itself"), call.name.span)
                    .label("recursive use")
                    .secondary(def.name.span, "in this block")
                    .note(format!("expansion path: {} -> {name}", b.block_stack.join(" -> ")))
                    .help("blocks cannot recurse; use `repeat` to stack layers"),
            );
        }
        if inputs.len() != def.inputs.len() {
            let (n, m) = (def.inputs.len(), inputs.len());
            let s = if n == 1 { "" } else { "s" };
            return self.error(
                Diagnostic::error(
                    format!("block `{name}` takes {n} input{s}, found {m}"),
                    call.span,
                )
                .label(format!("given {m}"))
                .secondary(def.name.span, format!("`{name}` is defined here")),
            );
        }
        let line = self.line(call.span);
        let context = format!(", in block `{name}` instantiated as `{path}` at line {line}");
        let mut scope = Scope::new(format!("{path}."), &def.body, Some(context));
        self.prescan(&mut scope);

        // Inputs, then parameters (positional, then named, then defaults).
        for (ident, (id, _)) in def.inputs.iter().zip(&inputs) {
            if scope.names.contains_key(&ident.name) {
                return self.error(
                    Diagnostic::error(format!("the name `{ident}` is defined twice"), ident.span)
                        .label("shadows a name of the block body"),
                );
            }
            scope.names.insert(
                ident.name.clone(),
                Entry::Ready {
                    value: Value::Tensor(*id),
                    span: ident.span,
                    used: false,
                    kind: NameKind::Input,
                },
            );
        }
        let Some(given) = self.bind_block_args(def, config) else {
            return Value::Poisoned;
        };
        b.block_stack.push(name);
        for (param, value) in def.params.iter().zip(given) {
            let value = match (value, &param.default) {
                (Some((v, _)), _) => v,
                (None, Some(default)) => self.eval(b, &mut scope, default),
                (None, None) => {
                    self.diags.push(
                        Diagnostic::error(
                            format!("missing argument `{}` for block `{name}`", param.name),
                            call.span,
                        )
                        .label(format!("`{}` is required", param.name))
                        .secondary(param.name.span, "declared here"),
                    );
                    Value::Poisoned
                }
            };
            if scope.names.contains_key(&param.name.name) {
                self.diags.push(
                    Diagnostic::error(
                        format!("the name `{}` is defined twice", param.name),
                        param.name.span,
                    )
                    .label("a parameter and another name clash"),
                );
            }
            scope.names.insert(
                param.name.name.clone(),
                Entry::Ready { value, span: param.name.span, used: true, kind: NameKind::Param },
            );
        }
        for i in 0..def.body.len() {
            self.force(b, &mut scope, i);
        }
        b.block_stack.pop();
        let result = match &scope.output {
            Some((v, _)) => v.clone(),
            None => {
                return self.error(
                    Diagnostic::error(format!("block `{name}` has no `out`"), def.name.span)
                        .label("returns nothing")
                        .help("end the block with `out <value>`"),
                )
            }
        };
        let keep: HashSet<NodeId> = match &result {
            Value::Tensor(id) => [*id].into_iter().collect(),
            _ => HashSet::new(),
        };
        if self.error_count() == errors_before {
            self.check_unused(b, &scope, &keep);
        }
        if !matches!(result, Value::Tensor(_) | Value::Poisoned) {
            let span = scope.output.as_ref().map_or(def.name.span, |o| o.1);
            return self.error(
                Diagnostic::error(
                    format!("block `{name}` must return a tensor, found {}", result.describe()),
                    span,
                )
                .label("not a tensor"),
            );
        }
        result
    }

    /// Binds a block call's arguments to the block's parameters: positional,
    /// then named. `None` when any is wrong (each reported).
    fn bind_block_args(
        &mut self,
        def: &'a BlockDef,
        config: &[GivenArg],
    ) -> Option<Vec<Option<(Value, Span)>>> {
        let name = def.name.name.as_str();
        let mut given: Vec<Option<(Value, Span)>> = vec![None; def.params.len()];
        let mut next_positional = 0;
        let mut ok = true;
        for arg in config {
            let index = match &arg.name {
                None => {
                    let i = next_positional;
                    next_positional += 1;
                    if i >= def.params.len() {
                        ok = false;
                        self.diags.push(
                            Diagnostic::error(
                                format!("too many arguments to block `{name}`"),
                                arg.span,
                            )
                            .label("unexpected argument")
                            .secondary(
                                def.name.span,
                                format!("`{name}` takes {} parameters", def.params.len()),
                            ),
                        );
                        continue;
                    }
                    i
                }
                Some((arg_name, span)) => {
                    match def.params.iter().position(|p| p.name.name == *arg_name) {
                        Some(i) => i,
                        None => {
                            ok = false;
                            let mut d = Diagnostic::error(
                                format!("unknown argument `{arg_name}` for block `{name}`"),
                                *span,
                            )
                            .label("no such parameter")
                            .secondary(def.name.span, format!("`{name}` is defined here"));
                            if let Some(best) = did_you_mean(
                                arg_name,
                                def.params.iter().map(|p| p.name.name.as_str()),
                            ) {
                                d = d.help(format!("did you mean `{best}`?"));
                            }
                            self.diags.push(d);
                            continue;
                        }
                    }
                }
            };
            if given[index].is_some() {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        format!("argument `{}` is given twice", def.params[index].name),
                        arg.span,
                    )
                    .label("given again here"),
                );
                continue;
            }
            given[index] = Some((arg.value.clone(), arg.value_span));
        }
        ok.then_some(given)
    }
}

fn misplaced(keyword: &str, span: Span, help: &str) -> Diagnostic {
    let place = if matches!(keyword, "out") { "a block" } else { "a network" };
    Diagnostic::error(format!("`{keyword}` is only allowed in {place}"), span)
        .label("not allowed here")
        .help(help)
}

fn is_loss_or_optimizer(name: &str) -> bool {
    training::LOSSES.iter().any(|(n, _)| *n == name)
        || training::OPTIMIZERS.iter().any(|(n, _)| *n == name)
}

/// Calls `f` on every `as` name in `e` that binds a value in the enclosing
/// scope (those inside `repeat` bodies name layers only).
fn collect_aliases<'a>(e: &'a Expr, f: &mut impl FnMut(&'a Ident)) {
    match &e.kind {
        ExprKind::Chain { head, stages } => {
            collect_aliases(head, f);
            for s in stages {
                if let StageKind::Call(c) = &s.kind {
                    for a in &c.args {
                        collect_aliases(&a.value, f);
                    }
                }
                // A dotted alias (`as downsample.0`) names a layer only.
                if let Some(a) = s.alias.as_ref().filter(|a| !a.name.contains('.')) {
                    f(a);
                }
            }
        }
        ExprKind::Call(c) => c.args.iter().for_each(|a| collect_aliases(&a.value, f)),
        ExprKind::List(items) => items.iter().for_each(|i| collect_aliases(i, f)),
        ExprKind::Neg(i) => collect_aliases(i, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_aliases(lhs, f);
            collect_aliases(rhs, f);
        }
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
    }
}

/// The `as` names directly on the stages of a repeat body.
fn collect_stage_aliases<'a>(stages: &'a [Stage], f: &mut impl FnMut(&'a Ident)) {
    for s in stages {
        if let Some(a) = &s.alias {
            f(a);
        }
    }
}

/// A class-weight or `pos_weight` list whose length does not fit the scored
/// tensor `shape`: one value per class, or (`pos_weight`, as PyTorch
/// broadcasts it) per element of the last axis, or a single value.
fn loss_list_mismatch(
    kind: &LossKind,
    shape: &Shape,
    list: Span,
    input: Span,
) -> Option<Diagnostic> {
    let last = shape.dims().last().copied().unwrap_or(1);
    let (arg, found, fits, expected) = match kind {
        LossKind::CrossEntropy { weight: Some(w), .. } => {
            ("weight", w.len(), w.len() == last, format!("one per class, {last}"))
        }
        LossKind::BceWithLogits { pos_weight: Some(w) } => (
            "pos_weight",
            w.len(),
            w.len() == last || w.len() == 1,
            format!("one per element of the last axis, {last} (or 1)"),
        ),
        LossKind::CrossEntropy { weight: None, .. }
        | LossKind::BceWithLogits { pos_weight: None }
        | LossKind::Mse
        | LossKind::SmoothL1 { .. }
        | LossKind::Huber { .. } => return None,
    };
    if fits {
        return None;
    }
    let s = if found == 1 { "" } else { "s" };
    Some(
        Diagnostic::error(
            format!("`{arg}` of `{}` has {found} value{s}, expected {expected}", kind.name()),
            list,
        )
        .label(format!("{found} value{s}"))
        .secondary(input, format!("this is {shape}")),
    )
}
