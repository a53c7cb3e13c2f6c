//! The values an expression can have while a network is being elaborated.

use crate::ast::Span;
use crate::ir::NodeId;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The output of a node in the graph being built.
    Tensor(NodeId),
    List(Vec<(Value, Span)>),
    /// A bare name given to an argument that takes one of a few names.
    Word(String),
    /// The value of an expression whose error was already reported. It
    /// propagates silently, so one cause gives one error.
    Poisoned,
}

impl Value {
    /// How the value reads in a message: "an integer `3`", "a tensor".
    pub fn describe(&self) -> String {
        match self {
            Value::Int(v) => format!("an integer `{v}`"),
            Value::Float(v) => format!("a number `{v}`"),
            Value::Bool(v) => format!("`{v}`"),
            Value::Tensor(_) => "a tensor".to_string(),
            Value::List(_) => "a list".to_string(),
            Value::Word(w) => format!("the name `{w}`"),
            Value::Poisoned => "an erroneous value".to_string(),
        }
    }
}
