//! Scopes of the checker: the names a network or block instance defines,
//! the evaluation state of its statements, and how its layers are named.

use super::args::GivenArg;
use super::value::Value;
use crate::ast::{Call, Span, Stmt};
use crate::ir::Optimizer;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Input,
    Param,
    Binding,
    Alias,
}

/// What a name refers to.
#[derive(Clone, Debug)]
pub enum Entry {
    /// Defined by statement `stmt`, not yet evaluated.
    Pending {
        stmt: usize,
        span: Span,
    },
    Ready {
        value: Value,
        span: Span,
        used: bool,
        kind: NameKind,
    },
}

impl Entry {
    /// Where the name is defined.
    pub fn span(&self) -> Span {
        match self {
            Entry::Pending { span, .. } | Entry::Ready { span, .. } => *span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StmtState {
    NotStarted,
    InProgress,
    Done,
}

/// Gives layers their paths: `prefix` + an explicit name, or an automatic
/// one (`conv1`, `conv2`, ...) that avoids the explicit names of the scope.
#[derive(Debug, Default)]
pub struct Namer {
    pub prefix: String,
    counters: HashMap<String, usize>,
    /// Explicit (`as`) names of this scope, without the prefix.
    pub reserved: HashSet<String>,
}

impl Namer {
    pub fn new(prefix: String) -> Self {
        Namer { prefix, ..Namer::default() }
    }

    /// The next free automatic name for `stem`, recorded in `paths`.
    pub fn auto(&mut self, stem: &str, paths: &mut HashSet<String>) -> String {
        let counter = self.counters.entry(stem.to_string()).or_insert(0);
        loop {
            *counter += 1;
            let bare = format!("{stem}{counter}");
            let path = format!("{}{bare}", self.prefix);
            if !self.reserved.contains(&bare) && !paths.contains(&path) {
                paths.insert(path.clone());
                return path;
            }
        }
    }
}

/// The body of a network or of one block instance, being evaluated.
#[derive(Debug)]
pub struct Scope<'a> {
    pub names: HashMap<String, Entry>,
    pub stmts: &'a [Stmt],
    pub state: Vec<StmtState>,
    /// The namer of the body, and one more inside each named `repeat`.
    pub namers: Vec<Namer>,
    /// For block instances: ", in block `b` instantiated as `p` at line n",
    /// appended to notes. `None` in a network.
    pub block: Option<String>,
    /// `out` of a block or `output` of a network.
    pub output: Option<(Value, Span)>,
    pub loss: Option<super::training::LossDecl>,
    /// The optimizer (if its arguments were valid) and the statement's span.
    pub optimizer: Option<(Option<Optimizer>, Span)>,
    /// The schedule (if its arguments were valid) and the statement's span.
    pub schedule: Option<(Option<crate::ir::Schedule>, Span)>,
    pub precision: Option<(crate::ir::Precision, Span)>,
    /// The `train` statements, resolved once every layer exists.
    pub train: Vec<(&'a Call, Vec<GivenArg>)>,
    /// Values of bare expression statements, to find unused results.
    pub expr_results: Vec<(Value, Span)>,
    /// `as` names reported as duplicates; they are ignored afterwards.
    pub bad_aliases: HashSet<Span>,
}

impl<'a> Scope<'a> {
    pub fn new(prefix: String, stmts: &'a [Stmt], block: Option<String>) -> Self {
        Scope {
            names: HashMap::new(),
            stmts,
            state: vec![StmtState::NotStarted; stmts.len()],
            namers: vec![Namer::new(prefix)],
            block,
            output: None,
            loss: None,
            optimizer: None,
            schedule: None,
            precision: None,
            train: Vec::new(),
            expr_results: Vec::new(),
            bad_aliases: HashSet::new(),
        }
    }

    /// The namer of the innermost naming scope.
    pub fn namer(&mut self) -> &mut Namer {
        self.namers.last_mut().expect("a scope always has its own namer")
    }
}
