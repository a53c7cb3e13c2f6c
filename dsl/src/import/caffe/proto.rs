//! Reading Caffe's two files into one model: the `.prototxt` through the
//! `protobuf` crate's text format parser, the `.caffemodel` through its
//! wire decoder, both against the schema of `schema.rs`. Both the current
//! `layer` and the V1 `layers` form are read, V1 types renamed as Caffe's
//! own upgrade does. Fields are read through the descriptor, so absent
//! ones have `caffe.proto`'s defaults.

use super::schema::{net_parameter, v1_type_name};
use protobuf::reflect::{MessageRef, ReflectValueRef};
use protobuf::{CodedInputStream, MessageDyn};
use std::collections::HashMap;
use std::fmt;

/// A `.prototxt` that is not well-formed text format for `NetParameter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based, as editors count.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: syntax error: {}", self.line, self.column, self.message)
    }
}

/// A `.caffemodel` that is not a well-formed `NetParameter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedModel {
    /// The offset in the file where decoding stopped.
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for MalformedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed caffemodel at byte {}: {}", self.offset, self.message)
    }
}

/// A decoded message, read field by field through its descriptor.
#[derive(Clone, Debug)]
pub(crate) struct Msg<'a>(MessageRef<'a>);

impl<'a> Msg<'a> {
    fn field(&self, name: &str) -> protobuf::reflect::FieldDescriptor {
        self.0
            .descriptor_dyn()
            .field_by_name(name)
            .unwrap_or_else(|| panic!("`{name}` is not in the importer's schema"))
    }

    fn value(&self, name: &str) -> ReflectValueRef<'_> {
        self.field(name).get_singular_field_or_default(&*self.0)
    }

    /// Whether an optional field is set.
    pub fn has(&self, name: &str) -> bool {
        self.field(name).has_field(&*self.0)
    }

    pub fn u32(&self, name: &str) -> u32 {
        self.value(name).to_u32().unwrap_or_default()
    }

    pub fn i32(&self, name: &str) -> i32 {
        self.value(name).to_i32().unwrap_or_default()
    }

    pub fn f32(&self, name: &str) -> f32 {
        self.value(name).to_f32().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.value(name).to_bool().unwrap_or_default()
    }

    pub fn string(&self, name: &str) -> String {
        self.value(name).to_str().unwrap_or_default().to_string()
    }

    /// The name of an enum field's value (`MAX`, `ACROSS_CHANNELS`).
    pub fn enum_name(&self, name: &str) -> String {
        enum_value_name(&self.value(name))
    }

    /// A message field, or its default instance when absent.
    pub fn msg(&self, name: &str) -> Msg<'_> {
        Msg(self.field(name).get_message(&*self.0))
    }

    fn repeated<'s, T>(
        &'s self,
        name: &str,
        f: impl Fn(ReflectValueRef<'s>) -> Option<T>,
    ) -> Vec<T> {
        let r = self.field(name).get_repeated(&*self.0);
        (0..r.len()).filter_map(|i| f(r.get(i))).collect()
    }

    pub fn u32s(&self, name: &str) -> Vec<u32> {
        self.repeated(name, |v| v.to_u32())
    }

    pub fn i64s(&self, name: &str) -> Vec<i64> {
        self.repeated(name, |v| v.to_i64().or_else(|| v.to_i32().map(i64::from)))
    }

    pub fn f32s(&self, name: &str) -> Vec<f32> {
        self.repeated(name, |v| v.to_f32())
    }

    pub fn f64s(&self, name: &str) -> Vec<f64> {
        self.repeated(name, |v| v.to_f64())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.repeated(name, |v| v.to_str().map(str::to_string))
    }

    pub fn msgs(&self, name: &str) -> Vec<Msg<'_>> {
        self.repeated(name, |v| match v {
            ReflectValueRef::Message(m) => Some(Msg(m)),
            _ => None,
        })
    }
}

fn enum_value_name(v: &ReflectValueRef<'_>) -> String {
    match v {
        ReflectValueRef::Enum(desc, number) => desc
            .value_by_number(*number)
            .map_or_else(|| number.to_string(), |v| v.name().to_string()),
        other => format!("{other:?}"),
    }
}

/// One layer of either format.
#[derive(Clone, Debug)]
pub(crate) struct Layer<'a> {
    pub name: String,
    /// The current format's type name (`Convolution`); a V1 type is
    /// renamed, or kept as written when it has no current name.
    pub kind: String,
    pub bottoms: Vec<String>,
    pub tops: Vec<String>,
    /// The layer message, for its `*_param` fields.
    pub params: Msg<'a>,
}

/// A parsed `NetParameter` message, owned.
pub(crate) struct NetMessage(Box<dyn MessageDyn>);

impl fmt::Debug for NetMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetMessage")
    }
}

impl NetMessage {
    pub fn msg(&self) -> Msg<'_> {
        Msg(MessageRef::new(&*self.0))
    }

    /// The layers in file order: the current format's, then V1's (a file
    /// holds one or the other).
    pub fn layers(&self) -> Vec<Layer<'_>> {
        let mut out = Vec::new();
        for (field, v1) in [("layer", false), ("layers", true)] {
            for params in self.msg_static(field) {
                let kind = if v1 {
                    let t = params.enum_name("type");
                    v1_type_name(&t).map_or(t, str::to_string)
                } else {
                    params.string("type")
                };
                out.push(Layer {
                    name: params.string("name"),
                    kind,
                    bottoms: params.strings("bottom"),
                    tops: params.strings("top"),
                    params,
                });
            }
        }
        out
    }

    fn msg_static(&self, field: &str) -> Vec<Msg<'_>> {
        let descriptor = self.0.descriptor_dyn();
        let f = descriptor.field_by_name(field).expect("layer fields are in the schema");
        let r = f.get_repeated(&*self.0);
        (0..r.len())
            .filter_map(|i| match r.get(i) {
                ReflectValueRef::Message(m) => Some(Msg(m)),
                _ => None,
            })
            .collect()
    }
}

/// Parses the text of a `.prototxt`.
pub(crate) fn parse_prototxt(text: &str) -> Result<NetMessage, SyntaxError> {
    let mut message = net_parameter().new_instance();
    let text = blank_colons_before_messages(text);
    protobuf::text_format::merge_from_str(&mut *message, &text).map_err(|e| syntax_error(&e))?;
    Ok(NetMessage(message))
}

/// The text format allows a colon between a field's name and a message
/// value (`shape: { dim: 1 }`, as Caffe's own deploy files write it), and
/// the `protobuf` crate's parser does not take it: such colons, outside
/// strings and comments, become spaces, which keeps every line and column.
fn blank_colons_before_messages(text: &str) -> String {
    let mut out: Vec<char> = text.chars().collect();
    let mut pending_colon: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < out.len() {
        let c = out[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    pending_colon = None;
                }
                '#' => {
                    while i < out.len() && out[i] != '\n' {
                        i += 1;
                    }
                }
                ':' => pending_colon = Some(i),
                '{' | '<' => {
                    if let Some(colon) = pending_colon.take() {
                        out[colon] = ' ';
                    }
                }
                c if c.is_whitespace() => {}
                _ => pending_colon = None,
            },
        }
        i += 1;
    }
    out.into_iter().collect()
}

/// The parser's error as line, column and message: the crate prints them
/// as `line:column: message` and keeps the location otherwise private.
fn syntax_error(e: &protobuf::text_format::ParseError) -> SyntaxError {
    let text = e.to_string();
    let mut parts = text.splitn(3, ':');
    let (line, column, rest) = (parts.next(), parts.next(), parts.next());
    match (line.and_then(|l| l.parse().ok()), column.and_then(|c| c.parse().ok()), rest) {
        (Some(line), Some(column), Some(rest)) => {
            SyntaxError { line, column, message: rest.trim().to_string() }
        }
        _ => SyntaxError { line: 1, column: 1, message: text },
    }
}

/// Decodes the bytes of a `.caffemodel`.
pub(crate) fn decode_caffemodel(bytes: &[u8]) -> Result<NetMessage, MalformedModel> {
    let mut message = net_parameter().new_instance();
    let mut input = CodedInputStream::from_bytes(bytes);
    match message.merge_from_dyn(&mut input) {
        Ok(()) => Ok(NetMessage(message)),
        Err(e) => Err(MalformedModel { offset: input.pos(), message: e.to_string() }),
    }
}

/// A blob of a `.caffemodel`: its shape, and whether that shape is the
/// legacy 4-d `num, channels, height, width` form.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Blob {
    pub shape: Vec<usize>,
    pub legacy: bool,
    pub values: Vec<f32>,
}

impl Blob {
    fn read(m: &Msg<'_>) -> Blob {
        let legacy_fields = ["num", "channels", "height", "width"];
        let (shape, legacy) = if m.has("shape") {
            let dims = m.msg("shape").i64s("dim");
            (dims.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect(), false)
        } else if !legacy_fields.iter().any(|f| m.has(f)) {
            // A blob of no axes (one value, as a shared PReLU slope):
            // Caffe writes an empty shape as no shape at all.
            (Vec::new(), false)
        } else {
            let dims = legacy_fields.map(|f| m.i32(f));
            (dims.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect(), true)
        };
        let mut values = m.f32s("data");
        if values.is_empty() {
            values = m.f64s("double_data").iter().map(|&v| v as f32).collect();
        }
        Blob { shape, legacy, values }
    }

    /// The number of values its shape holds, if it does not overflow.
    pub fn count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// The blobs of each layer of a `.caffemodel`, by layer name (the name is
/// what Caffe matches when it copies trained layers into a net).
pub(crate) fn blobs_by_layer(model: &NetMessage) -> HashMap<String, Vec<Blob>> {
    model
        .layers()
        .iter()
        .filter(|l| !l.params.msgs("blobs").is_empty())
        .map(|l| (l.name.clone(), l.params.msgs("blobs").iter().map(Blob::read).collect()))
        .collect()
}

/// The layer and net state Caffe builds for training: phase `TRAIN`,
/// level 0, no stages. A layer is kept when an `include` rule, if any,
/// meets it, and no `exclude` rule does.
pub(crate) fn in_train_phase(layer: &Layer<'_>) -> bool {
    let meets = |rule: &Msg<'_>| {
        (!rule.has("phase") || rule.enum_name("phase") == "TRAIN")
            && (!rule.has("min_level") || rule.i32("min_level") <= 0)
            && (!rule.has("max_level") || rule.i32("max_level") >= 0)
            && rule.strings("stage").is_empty()
    };
    let include = layer.params.msgs("include");
    let exclude = layer.params.msgs("exclude");
    (include.is_empty() || include.iter().any(meets)) && !exclude.iter().any(meets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let err = parse_prototxt("name: \"x\"\nlayer {\n  name: \"a\"\n  type: \n}\n")
            .expect_err("a value is missing");
        assert_eq!(err.line, 5, "{err}");
    }

    #[test]
    fn a_colon_may_come_before_a_message() {
        let text = "input_shape: { dim: 1 dim: 2 }  # a: {\nname: \"a: {\"";
        let net = parse_prototxt(text).expect("the colon is optional");
        assert_eq!(net.msg().msgs("input_shape")[0].i64s("dim"), vec![1, 2]);
        assert_eq!(net.msg().string("name"), "a: {");
    }

    #[test]
    fn v1_types_are_renamed() {
        let net =
            parse_prototxt("layers { name: \"c\" type: CONVOLUTION top: \"c\" }").expect("v1");
        let layers = net.layers();
        assert_eq!(layers[0].kind, "Convolution");
        assert_eq!(layers[0].params.msg("convolution_param").u32("group"), 1);
    }
}
