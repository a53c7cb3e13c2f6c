//! The protobuf wire format of the ONNX messages the importer reads,
//! decoded by hand: no `protoc` exists at build time, and only a few fields
//! of a few messages are needed. Unknown fields are skipped, as protobuf
//! requires; malformed bytes are an error naming their byte offset.
//!
//! Field numbers are those of `onnx.proto` (onnx/onnx, IR version 9).

use std::fmt;

/// Bytes that are not a well-formed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoError {
    /// The offset in the file of the byte where decoding failed.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed ONNX file at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ProtoError {}

/// `ModelProto`: the operator sets it imports and its graph.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub ir_version: i64,
    /// `(domain, version)`; the empty domain is the default `ai.onnx`.
    pub opset_import: Vec<(String, i64)>,
    pub graph: Graph,
}

/// `GraphProto`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub node: Vec<Node>,
    pub initializer: Vec<Tensor>,
    pub input: Vec<ValueInfo>,
    pub output: Vec<ValueInfo>,
    pub value_info: Vec<ValueInfo>,
}

/// `NodeProto`.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub attribute: Vec<Attribute>,
}

/// `AttributeProto`: the fields that hold values of the classic ops.
#[derive(Clone, Debug, Default)]
pub struct Attribute {
    pub name: String,
    /// `AttributeType`: 1 float, 2 int, 3 string, 4 tensor, 5 graph, 6 floats,
    /// 7 ints.
    pub kind: i64,
    pub f: f32,
    pub i: i64,
    pub s: Vec<u8>,
    pub t: Option<Tensor>,
    /// A subgraph, such as an `If`'s branch.
    pub g: Option<Box<Graph>>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

/// `TensorProto`, its values widened to f64 whatever their element type
/// (integers of shape plumbing and f32 weights alike are exact in f64).
#[derive(Clone, Debug, Default)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    /// `TensorProto.DataType`: 1 float, 6 int32, 7 int64, 9 bool, 11 double.
    pub data_type: i32,
    pub values: Vec<f64>,
    /// Whether the tensor's data lives in an external file, which the
    /// importer does not read.
    pub external: bool,
}

/// `ValueInfoProto` of a tensor: its name, element type and dims; a
/// symbolic dim (`dim_param`) is `None`.
#[derive(Clone, Debug, Default)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    pub dims: Option<Vec<Option<i64>>>,
}

/// Decodes a `ModelProto` from the bytes of a `.onnx` file.
pub fn decode_model(bytes: &[u8]) -> Result<Model, ProtoError> {
    let mut model = Model::default();
    let mut r = Reader { buf: bytes, pos: 0, base: 0 };
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Varint) => model.ir_version = r.varint()? as i64,
            (7, Wire::Len) => model.graph = decode_graph(&mut r.sub()?, 0)?,
            (8, Wire::Len) => model.opset_import.push(decode_opset(&mut r.sub()?)?),
            _ => r.skip(wire)?,
        }
    }
    Ok(model)
}

fn decode_opset(r: &mut Reader<'_>) -> Result<(String, i64), ProtoError> {
    let (mut domain, mut version) = (String::new(), 0);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Len) => domain = r.string()?,
            (2, Wire::Varint) => version = r.varint()? as i64,
            _ => r.skip(wire)?,
        }
    }
    Ok((domain, version))
}

/// How deep subgraphs (an `If`'s branches) may nest: the decoder recurses
/// once per level, and a small file must not exhaust the stack.
const MAX_GRAPH_DEPTH: usize = 8;

/// A graph at nesting `depth` (0 for the model's own).
fn decode_graph(r: &mut Reader<'_>, depth: usize) -> Result<Graph, ProtoError> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(r.error(format!("subgraphs nested deeper than {MAX_GRAPH_DEPTH}")));
    }
    let mut g = Graph::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Len) => g.node.push(decode_node(&mut r.sub()?, depth)?),
            (2, Wire::Len) => g.name = r.string()?,
            (5, Wire::Len) => g.initializer.push(decode_tensor(&mut r.sub()?)?),
            (11, Wire::Len) => g.input.push(decode_value_info(&mut r.sub()?)?),
            (12, Wire::Len) => g.output.push(decode_value_info(&mut r.sub()?)?),
            (13, Wire::Len) => g.value_info.push(decode_value_info(&mut r.sub()?)?),
            _ => r.skip(wire)?,
        }
    }
    Ok(g)
}

fn decode_node(r: &mut Reader<'_>, depth: usize) -> Result<Node, ProtoError> {
    let mut n = Node::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Len) => n.input.push(r.string()?),
            (2, Wire::Len) => n.output.push(r.string()?),
            (3, Wire::Len) => n.name = r.string()?,
            (4, Wire::Len) => n.op_type = r.string()?,
            (5, Wire::Len) => n.attribute.push(decode_attribute(&mut r.sub()?, depth)?),
            (7, Wire::Len) => n.domain = r.string()?,
            _ => r.skip(wire)?,
        }
    }
    Ok(n)
}

fn decode_attribute(r: &mut Reader<'_>, depth: usize) -> Result<Attribute, ProtoError> {
    let mut a = Attribute::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Len) => a.name = r.string()?,
            (2, Wire::Fixed32) => a.f = f32::from_bits(r.fixed32()?),
            (3, Wire::Varint) => a.i = r.varint()? as i64,
            (4, Wire::Len) => a.s = r.bytes()?.to_vec(),
            (5, Wire::Len) => a.t = Some(decode_tensor(&mut r.sub()?)?),
            (6, Wire::Len) => a.g = Some(Box::new(decode_graph(&mut r.sub()?, depth + 1)?)),
            (7, _) => r.repeated(wire, &mut a.floats, |r| Ok(f32::from_bits(r.fixed32()?)))?,
            (8, _) => r.repeated(wire, &mut a.ints, |r| Ok(r.varint()? as i64))?,
            (20, Wire::Varint) => a.kind = r.varint()? as i64,
            _ => r.skip(wire)?,
        }
    }
    Ok(a)
}

fn decode_tensor(r: &mut Reader<'_>) -> Result<Tensor, ProtoError> {
    let mut t = Tensor::default();
    let start = r.offset();
    let mut raw: Option<&[u8]> = None;
    let mut typed = Vec::new();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, _) => r.repeated(wire, &mut t.dims, |r| Ok(r.varint()? as i64))?,
            (2, Wire::Varint) => t.data_type = r.varint()? as i32,
            (4, _) => {
                r.repeated(wire, &mut typed, |r| Ok(f64::from(f32::from_bits(r.fixed32()?))))?
            }
            // int32_data also carries bool, int8, uint8, int16 and float16 bits.
            (5, _) => r.repeated(wire, &mut typed, |r| Ok(f64::from(r.varint()? as i32)))?,
            (7, _) => r.repeated(wire, &mut typed, |r| Ok(r.varint()? as i64 as f64))?,
            (8, Wire::Len) => t.name = r.string()?,
            (9, Wire::Len) => raw = Some(r.bytes()?),
            (10, _) => r.repeated(wire, &mut typed, |r| Ok(f64::from_bits(r.fixed64()?)))?,
            (13, Wire::Len) => {
                t.external = true;
                r.skip(wire)?;
            }
            (14, Wire::Varint) => t.external |= r.varint()? == 1,
            _ => r.skip(wire)?,
        }
    }
    t.values = match raw {
        Some(bytes) => raw_values(bytes, t.data_type).ok_or_else(|| ProtoError {
            offset: start,
            message: format!(
                "tensor `{}`: raw data of {} bytes for element type {}",
                t.name,
                bytes.len(),
                t.data_type
            ),
        })?,
        None => typed,
    };
    Ok(t)
}

/// Little-endian raw data of the element types the importer computes with.
fn raw_values(bytes: &[u8], data_type: i32) -> Option<Vec<f64>> {
    fn chunks<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Option<Vec<f64>> {
        if !bytes.len().is_multiple_of(N) {
            return None;
        }
        Some(bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect())
    }
    match data_type {
        1 => chunks::<4>(bytes, |b| f64::from(f32::from_le_bytes(b))),
        6 => chunks::<4>(bytes, |b| f64::from(i32::from_le_bytes(b))),
        7 => chunks::<8>(bytes, |b| i64::from_le_bytes(b) as f64),
        11 => chunks::<8>(bytes, f64::from_le_bytes),
        9 | 2 => chunks::<1>(bytes, |b| f64::from(b[0])),
        3 => chunks::<1>(bytes, |b| f64::from(b[0] as i8)),
        _ => None,
    }
}

fn decode_value_info(r: &mut Reader<'_>) -> Result<ValueInfo, ProtoError> {
    let mut v = ValueInfo::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Len) => v.name = r.string()?,
            (2, Wire::Len) => {
                // TypeProto: only `tensor_type` (1) has a shape the importer uses.
                let mut ty = r.sub()?;
                while let Some((field, wire)) = ty.key()? {
                    match (field, wire) {
                        (1, Wire::Len) => decode_tensor_type(&mut ty.sub()?, &mut v)?,
                        _ => ty.skip(wire)?,
                    }
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(v)
}

fn decode_tensor_type(r: &mut Reader<'_>, v: &mut ValueInfo) -> Result<(), ProtoError> {
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Varint) => v.elem_type = r.varint()? as i32,
            (2, Wire::Len) => {
                let mut dims = Vec::new();
                let mut shape = r.sub()?;
                while let Some((field, wire)) = shape.key()? {
                    match (field, wire) {
                        (1, Wire::Len) => dims.push(decode_dim(&mut shape.sub()?)?),
                        _ => shape.skip(wire)?,
                    }
                }
                v.dims = Some(dims);
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn decode_dim(r: &mut Reader<'_>) -> Result<Option<i64>, ProtoError> {
    let mut value = None;
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, Wire::Varint) => value = Some(r.varint()? as i64),
            (2, Wire::Len) => {
                r.skip(wire)?;
                value = None;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(value)
}

/// The wire type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A cursor over one message's bytes; `base` is the offset of `buf` in the
/// file, so that errors name file offsets.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn error(&self, message: impl Into<String>) -> ProtoError {
        ProtoError { offset: self.offset(), message: message.into() }
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, Wire)>, ProtoError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let at = self.offset();
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            5 => Wire::Fixed32,
            other => {
                return Err(ProtoError {
                    offset: at,
                    message: format!("unsupported wire type {other}"),
                })
            }
        };
        if key >> 3 == 0 {
            return Err(ProtoError { offset: at, message: "field number 0".into() });
        }
        Ok(Some((key >> 3, wire)))
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            if shift == 63 && byte > 1 {
                return Err(self.error("varint longer than 64 bits"));
            }
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(self.error(format!(
                "{n} bytes wanted, {} left in the message",
                self.buf.len() - self.pos
            ))),
        }
    }

    fn fixed32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn fixed64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A length-delimited field's bytes.
    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.error("length too large"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, ProtoError> {
        let at = self.offset();
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ProtoError { offset: at, message: "string is not UTF-8".into() })
    }

    /// A reader over an embedded message.
    fn sub(&mut self) -> Result<Reader<'a>, ProtoError> {
        let len = self.varint()?;
        let base = self.offset();
        let len = usize::try_from(len).map_err(|_| self.error("length too large"))?;
        Ok(Reader { buf: self.take(len)?, pos: 0, base })
    }

    /// One value of a repeated scalar field, or all of a packed one.
    fn repeated<T>(
        &mut self,
        wire: Wire,
        out: &mut Vec<T>,
        read: impl Fn(&mut Reader<'a>) -> Result<T, ProtoError>,
    ) -> Result<(), ProtoError> {
        if wire == Wire::Len {
            let mut packed = self.sub()?;
            while packed.pos < packed.buf.len() {
                out.push(read(&mut packed)?);
            }
            Ok(())
        } else {
            out.push(read(self)?);
            Ok(())
        }
    }

    fn skip(&mut self, wire: Wire) -> Result<(), ProtoError> {
        match wire {
            Wire::Varint => self.varint().map(drop),
            Wire::Fixed64 => self.take(8).map(drop),
            Wire::Len => self.bytes().map(drop),
            Wire::Fixed32 => self.take(4).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_node_with_packed_and_unpacked_ints() {
        // NodeProto { op_type: "Conv", attribute: { name: "pads", ints: [1, 2] packed, ints: 3 } }
        let attr = [0x0a, 4, b'p', b'a', b'd', b's', 0x42, 2, 1, 2, 0x40, 3, 0xa0, 0x01, 7];
        let mut node = vec![0x22, 4, b'C', b'o', b'n', b'v', 0x2a, attr.len() as u8];
        node.extend_from_slice(&attr);
        let n = decode_node(&mut Reader { buf: &node, pos: 0, base: 0 }, 0).expect("node");
        assert_eq!(n.op_type, "Conv");
        assert_eq!(n.attribute[0].name, "pads");
        assert_eq!(n.attribute[0].ints, vec![1, 2, 3]);
        assert_eq!(n.attribute[0].kind, 7);
    }

    /// A graph whose one node has a graph attribute, `levels` deep.
    fn nested_graph(levels: usize) -> Vec<u8> {
        fn field(number: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![(number << 3) | 2];
            let mut len = body.len();
            while len >= 0x80 {
                out.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(body);
            out
        }
        let mut graph = Vec::new();
        for _ in 0..levels {
            let attribute = field(6, &graph);
            graph = field(1, &field(5, &attribute));
        }
        graph
    }

    #[test]
    fn subgraphs_nest_to_a_bound() {
        let read = |bytes: &[u8]| decode_graph(&mut Reader { buf: bytes, pos: 0, base: 0 }, 0);
        let g = read(&nested_graph(MAX_GRAPH_DEPTH)).expect("within the bound");
        assert!(g.node[0].attribute[0].g.is_some());
        let err = read(&nested_graph(MAX_GRAPH_DEPTH + 1)).expect_err("too deep");
        assert!(err.message.contains("subgraphs nested deeper than 8"), "{err}");
    }

    #[test]
    fn a_truncated_length_names_its_offset() {
        // graph (field 7) claims 100 bytes but the file ends after 3.
        let err = decode_model(&[0x3a, 100, 1, 2, 3]).expect_err("truncated");
        assert_eq!(err.offset, 2);
        assert!(err.message.contains("100 bytes wanted"), "{err}");
    }

    #[test]
    fn raw_float_data_is_little_endian() {
        let mut t = vec![0x08, 2, 0x10, 1, 0x4a, 8];
        t.extend_from_slice(&1.5f32.to_le_bytes());
        t.extend_from_slice(&(-2.0f32).to_le_bytes());
        let tensor = decode_tensor(&mut Reader { buf: &t, pos: 0, base: 0 }).expect("tensor");
        assert_eq!(tensor.dims, vec![2]);
        assert_eq!(tensor.values, vec![1.5, -2.0]);
    }
}
