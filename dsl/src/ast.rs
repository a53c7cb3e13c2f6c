//! The abstract syntax tree of a `.net` file. Every node carries the byte span
//! of the source text it came from, so later phases can point at it.

use std::fmt;

/// A half-open byte range `start..end` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// A name as written in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A whole source file.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct File {
    pub networks: Vec<Network>,
    pub blocks: Vec<BlockDef>,
}

/// `network Name { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub name: Ident,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// `block name(params)(inputs) { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub inputs: Vec<Ident>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// A block parameter, with its default value if it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `input x: [1, 28, 28]`; `shape` is a list expression.
    Input { name: Ident, shape: Expr },
    /// `name = value`, optionally `: [shape]`.
    Bind { name: Ident, value: Expr, annotation: Option<Expr> },
    /// A bare expression.
    Expr(Expr),
    /// `out value`, the result of a block.
    Out(Expr),
    /// `output value`, the result of a network.
    Output(Expr),
    /// `loss cross_entropy(logits)`.
    Loss(Call),
    /// `optimizer adam(lr: 1e-3)`.
    Optimizer(Call),
    /// `schedule cosine(warmup: 5)`.
    Schedule(Call),
    /// `precision bf16`.
    Precision(Ident),
    /// `train conv1(frozen: true)`: the call's name is a layer path.
    Train(Call),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Name(Ident),
    Call(Call),
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `head -> stage -> ...`.
    Chain {
        head: Box<Expr>,
        stages: Vec<Stage>,
    },
}

/// `name(args)`, or a bare `name` used as a stage (then `args` is empty and
/// `parens` is false).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub parens: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// One step of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub kind: StageKind,
    /// `as name`.
    pub alias: Option<Ident>,
    /// `: [shape]`, a list expression.
    pub annotation: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    /// An op or a block, such as `relu` or `conv2d(6, kernel: 5)`.
    Call(Call),
    /// `repeat count { stages }`.
    Repeat { count: Box<Expr>, body: Vec<Stage>, keyword: Span },
}
