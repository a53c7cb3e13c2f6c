//! Binds call arguments to an op's signature: positional and named arguments,
//! defaults, types and ranges. Every mistake becomes its own diagnostic.

use super::value::Value;
use crate::ast::Span;
use crate::diag::{did_you_mean, Diagnostic};

/// Integer arguments above this are rejected, which keeps shape arithmetic far
/// from overflow.
pub const MAX_ARG: i64 = 1 << 31;

/// The type and range an argument accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer ≥ 1.
    Size,
    /// An integer ≥ 1, or a list `[h, w]` of them.
    Pair,
    /// An integer ≥ 0, or a list `[h, w]` of them.
    PairCount,
    /// A convolution's padding: as [`Kind::PairCount`], or `same` or `valid`
    /// written bare, as PyTorch's `padding='same'` and `'valid'`.
    Padding,
    /// Any finite number.
    Float,
    /// A number > 0.
    Positive,
    /// A number ≥ 0.
    NonNegative,
    /// A number in `[0, 1)`.
    Fraction,
    Bool,
    /// One of a few names, written bare: `approximate: tanh`.
    Word(&'static [&'static str]),
    /// A list of integers `[a, b, ...]`, or one integer as a list of one:
    /// shapes and axis orders. Their ranges are the op's to check, since
    /// they depend on the input's shape (reshape's `-1`, permute's axes).
    Ints,
    /// A list of numbers ≥ 0: `weight: [1.0, 2.5, 0.5]`.
    Numbers,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Size => "an integer",
            Kind::Pair | Kind::PairCount => "an integer or a pair `[h, w]`",
            Kind::Padding => "an integer, a pair `[h, w]`, `same` or `valid`",
            Kind::Float | Kind::Positive | Kind::NonNegative | Kind::Fraction => "a number",
            Kind::Bool => "`true` or `false`",
            Kind::Word(_) => "a name",
            Kind::Ints => "a list of integers",
            Kind::Numbers => "a list of numbers",
        }
    }

    /// Whether a bare name given to an argument of this kind is a word
    /// rather than a value: always for [`Kind::Word`]; for [`Kind::Padding`]
    /// when no value of that name is `bound`, so that a block's `pad: p`
    /// still passes its parameter.
    pub fn takes_word(self, bound: bool) -> bool {
        match self {
            Kind::Word(_) => true,
            Kind::Padding => !bound,
            Kind::Size
            | Kind::Pair
            | Kind::PairCount
            | Kind::Float
            | Kind::Positive
            | Kind::NonNegative
            | Kind::Fraction
            | Kind::Bool
            | Kind::Ints
            | Kind::Numbers => false,
        }
    }
}

/// The words a [`Kind::Padding`] argument takes.
const PADDING_WORDS: &[&str] = &["same", "valid"];

/// A default value of an optional argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    /// The argument is required.
    Required,
    /// The argument is optional and has no default; the op decides.
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Word(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Lit,
    /// May be given without its name, in signature order.
    pub positional: bool,
}

pub const fn pos(name: &'static str, kind: Kind, default: Lit) -> ArgSpec {
    ArgSpec { name, kind, default, positional: true }
}

pub const fn named(name: &'static str, kind: Kind, default: Lit) -> ArgSpec {
    ArgSpec { name, kind, default, positional: false }
}

/// A validated argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Int(usize),
    Pair([usize; 2]),
    Float(f64),
    Bool(bool),
    Word(&'static str),
    /// Each within `±MAX_ARG`.
    Ints(Vec<i64>),
    Numbers(Vec<f64>),
}

/// One argument as written: its name if given, its value and where it is.
#[derive(Clone, Debug)]
pub struct GivenArg {
    pub name: Option<(String, Span)>,
    pub value: Value,
    /// The value alone, without `name:`.
    pub value_span: Span,
    /// The whole argument.
    pub span: Span,
}

/// The arguments of one call, bound to the signature.
#[derive(Debug)]
pub struct Bound {
    values: Vec<(&'static str, Option<(ArgValue, Span)>)>,
    call_span: Span,
}

impl Bound {
    fn find(&self, name: &str) -> Option<(&ArgValue, Span)> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_ref())
            .map(|(v, s)| (v, *s))
    }

    /// The span of an argument if it was written, else of the whole call.
    pub fn span(&self, name: &str) -> Span {
        self.find(name).map_or(self.call_span, |(_, s)| s)
    }

    pub fn numbers(&self, name: &str) -> Option<Vec<f64>> {
        match &self.find(name)?.0 {
            ArgValue::Numbers(v) => Some(v.clone()),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<usize> {
        match self.find(name)?.0 {
            ArgValue::Int(v) => Some(*v),
            ArgValue::Pair([a, _]) => Some(*a),
            _ => None,
        }
    }

    pub fn pair(&self, name: &str) -> Option<[usize; 2]> {
        match self.find(name)?.0 {
            ArgValue::Int(v) => Some([*v, *v]),
            ArgValue::Pair(p) => Some(*p),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.find(name)?.0 {
            ArgValue::Float(v) => Some(*v),
            ArgValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn word(&self, name: &str) -> Option<&'static str> {
        match self.find(name)?.0 {
            ArgValue::Word(w) => Some(*w),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.find(name)?.0 {
            ArgValue::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// A list of integers, as written.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match self.find(name)?.0 {
            ArgValue::Ints(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// The signature written out, for `help` lines: `conv2d(channels, kernel, stride: 1, ...)`.
pub fn usage(callee: &str, specs: &[ArgSpec]) -> String {
    let parts: Vec<String> = specs
        .iter()
        .map(|s| match s.default {
            Lit::Required => s.name.to_string(),
            Lit::Absent => format!("{}: ..", s.name),
            Lit::Int(v) => format!("{}: {v}", s.name),
            Lit::Float(v) => format!("{}: {v}", s.name),
            Lit::Bool(v) => format!("{}: {v}", s.name),
            Lit::Word(v) => format!("{}: {v}", s.name),
        })
        .collect();
    format!("{callee}({})", parts.join(", "))
}

/// Binds `args` to `specs`. Returns `None` if any argument was wrong; the
/// reasons are pushed to `diags`. A poisoned value (an error already reported)
/// fails the binding silently.
pub fn bind(
    callee: &str,
    specs: &[ArgSpec],
    args: &[GivenArg],
    call_span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<Bound> {
    let errors_before = diags.len();
    let mut poisoned = false;
    let mut slots: Vec<Option<(&GivenArg, Span)>> = vec![None; specs.len()];
    let mut positional_specs =
        specs.iter().enumerate().filter(|(_, s)| s.positional).map(|(i, _)| i);

    for arg in args {
        let index = match &arg.name {
            None => match positional_specs.next() {
                Some(i) => i,
                None => {
                    let n = specs.iter().filter(|s| s.positional).count();
                    let s = if n == 1 { "" } else { "s" };
                    diags.push(
                        Diagnostic::error(format!("too many arguments to `{callee}`"), arg.span)
                            .label("unexpected argument")
                            .note(format!("`{callee}` takes {n} positional argument{s}"))
                            .help(format!("the signature is `{}`", usage(callee, specs))),
                    );
                    continue;
                }
            },
            Some((name, name_span)) => match specs.iter().position(|s| s.name == name) {
                Some(i) => i,
                None => {
                    let mut d = Diagnostic::error(
                        format!("unknown argument `{name}` for `{callee}`"),
                        *name_span,
                    )
                    .label("unknown argument");
                    d = match did_you_mean(name, specs.iter().map(|s| s.name)) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None if specs.is_empty() => {
                            d.note(format!("`{callee}` takes no arguments"))
                        }
                        None => d.note(format!("the signature is `{}`", usage(callee, specs))),
                    };
                    diags.push(d);
                    continue;
                }
            },
        };
        if let Some((_, first)) = slots[index] {
            diags.push(
                Diagnostic::error(
                    format!("argument `{}` is given twice", specs[index].name),
                    arg.span,
                )
                .label("given again here")
                .secondary(first, "first given here"),
            );
            continue;
        }
        slots[index] = Some((arg, arg.span));
    }

    // A misspelt name also leaves its argument missing: report only the name.
    let misnamed = diags.len() > errors_before;
    let mut values = Vec::with_capacity(specs.len());
    for (spec, slot) in specs.iter().zip(slots) {
        let value = match slot {
            Some((arg, span)) => {
                if matches!(arg.value, Value::Poisoned) {
                    poisoned = true;
                    None
                } else {
                    convert(callee, spec, &arg.value, arg.value_span, diags).map(|v| (v, span))
                }
            }
            None => match spec.default {
                Lit::Required if misnamed => None,
                Lit::Required => {
                    diags.push(
                        Diagnostic::error(
                            format!("missing argument `{}` for `{callee}`", spec.name),
                            call_span,
                        )
                        .label(format!("`{}` is required", spec.name))
                        .help(format!("the signature is `{}`", usage(callee, specs))),
                    );
                    None
                }
                Lit::Absent => None,
                Lit::Int(v) => Some((ArgValue::Int(v as usize), call_span)),
                Lit::Float(v) => Some((ArgValue::Float(v), call_span)),
                Lit::Bool(v) => Some((ArgValue::Bool(v), call_span)),
                Lit::Word(v) => Some((ArgValue::Word(v), call_span)),
            },
        };
        values.push((spec.name, value));
    }
    if poisoned || diags.len() > errors_before {
        return None;
    }
    Some(Bound { values, call_span })
}

fn int_in_range(
    callee: &str,
    spec: &ArgSpec,
    v: i64,
    min: i64,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<usize> {
    if v < min {
        let what = if min == 1 { "must be positive" } else { "cannot be negative" };
        diags.push(
            Diagnostic::error(format!("`{}` of `{callee}` {what}, found {v}", spec.name), span)
                .label(if v == 0 { "zero is not allowed here" } else { "negative" }),
        );
        return None;
    }
    if v > MAX_ARG {
        diags.push(
            Diagnostic::error(format!("`{}` of `{callee}` is too large: {v}", spec.name), span)
                .label(format!("the limit is {MAX_ARG}")),
        );
        return None;
    }
    usize::try_from(v).ok()
}

/// `v` if its magnitude is within [`MAX_ARG`], else a diagnostic.
fn int_within_limit(
    callee: &str,
    spec: &ArgSpec,
    v: i64,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<i64> {
    if v.unsigned_abs() > MAX_ARG as u64 {
        diags.push(
            Diagnostic::error(format!("`{}` of `{callee}` is too large: {v}", spec.name), span)
                .label(format!("the limit is {MAX_ARG}")),
        );
        return None;
    }
    Some(v)
}

fn convert(
    callee: &str,
    spec: &ArgSpec,
    value: &Value,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<ArgValue> {
    let wrong_type = |diags: &mut Vec<Diagnostic>| {
        diags.push(
            Diagnostic::error(
                format!(
                    "`{}` of `{callee}` expects {}, found {}",
                    spec.name,
                    spec.kind.describe(),
                    value.describe()
                ),
                span,
            )
            .label(format!("expected {}", spec.kind.describe())),
        );
        None
    };
    match (spec.kind, value) {
        (Kind::Size, Value::Int(v)) => {
            int_in_range(callee, spec, *v, 1, span, diags).map(ArgValue::Int)
        }
        (Kind::Pair | Kind::PairCount | Kind::Padding, Value::Int(v)) => {
            let min = if spec.kind == Kind::Pair { 1 } else { 0 };
            int_in_range(callee, spec, *v, min, span, diags).map(ArgValue::Int)
        }
        (Kind::Pair | Kind::PairCount | Kind::Padding, Value::List(items)) => {
            let min = if spec.kind == Kind::Pair { 1 } else { 0 };
            match items.as_slice() {
                [(Value::Int(a), sa), (Value::Int(b), sb)] => {
                    let a = int_in_range(callee, spec, *a, min, *sa, diags);
                    let b = int_in_range(callee, spec, *b, min, *sb, diags);
                    Some(ArgValue::Pair([a?, b?]))
                }
                _ => wrong_type(diags),
            }
        }
        (
            Kind::Float | Kind::Positive | Kind::NonNegative | Kind::Fraction,
            Value::Int(_) | Value::Float(_),
        ) => {
            let v = match value {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => unreachable!("matched above"),
            };
            let problem = match spec.kind {
                Kind::Positive if v <= 0.0 => Some("must be greater than 0"),
                Kind::NonNegative if v < 0.0 => Some("cannot be negative"),
                Kind::Fraction if !(0.0..1.0).contains(&v) => Some("must be in [0, 1)"),
                _ => None,
            };
            match problem {
                Some(p) => {
                    diags.push(
                        Diagnostic::error(
                            format!("`{}` of `{callee}` {p}, found {v}", spec.name),
                            span,
                        )
                        .label("out of range"),
                    );
                    None
                }
                None => Some(ArgValue::Float(v)),
            }
        }
        (Kind::Numbers, Value::List(items)) => {
            let mut numbers = Vec::with_capacity(items.len());
            for (item, item_span) in items {
                let v = match item {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => *f,
                    _ => return wrong_type(diags),
                };
                if v < 0.0 {
                    diags.push(
                        Diagnostic::error(
                            format!("`{}` of `{callee}` cannot be negative, found {v}", spec.name),
                            *item_span,
                        )
                        .label("out of range"),
                    );
                    return None;
                }
                numbers.push(v);
            }
            Some(ArgValue::Numbers(numbers))
        }
        (Kind::Bool, Value::Bool(b)) => Some(ArgValue::Bool(*b)),
        (Kind::Ints, Value::Int(v)) => {
            int_within_limit(callee, spec, *v, span, diags).map(|v| ArgValue::Ints(vec![v]))
        }
        (Kind::Ints, Value::List(items)) => {
            let mut ints = Vec::with_capacity(items.len());
            for (item, item_span) in items {
                match item {
                    Value::Int(v) => {
                        ints.push(int_within_limit(callee, spec, *v, *item_span, diags))
                    }
                    other => {
                        diags.push(
                            Diagnostic::error(
                                format!(
                                    "`{}` of `{callee}` expects a list of integers, found {} in it",
                                    spec.name,
                                    other.describe()
                                ),
                                *item_span,
                            )
                            .label("not an integer"),
                        );
                        return None;
                    }
                }
            }
            ints.into_iter().collect::<Option<Vec<i64>>>().map(ArgValue::Ints)
        }
        (Kind::Word(choices), Value::Word(w)) => word(callee, spec, choices, w, span, diags),
        (Kind::Padding, Value::Word(w)) => word(callee, spec, PADDING_WORDS, w, span, diags),
        _ => wrong_type(diags),
    }
}

/// `w` if it is one of `choices`, else a diagnostic listing them.
fn word(
    callee: &str,
    spec: &ArgSpec,
    choices: &'static [&'static str],
    w: &str,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<ArgValue> {
    if let Some(choice) = choices.iter().find(|c| **c == w) {
        return Some(ArgValue::Word(choice));
    }
    let list: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    let mut d = Diagnostic::error(
        format!("`{}` of `{callee}` is one of {}, found `{w}`", spec.name, list.join(", ")),
        span,
    )
    .label("not a choice");
    if let Some(best) = did_you_mean(w, choices.iter().copied()) {
        d = d.help(format!("did you mean `{best}`?"));
    }
    diags.push(d);
    None
}
