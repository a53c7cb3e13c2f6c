//! The protobuf wire format of the ONNX messages `netc export` writes,
//! encoded by hand: the mirror of [`super::proto`]'s decoder, over the same
//! message types and field numbers (onnx/onnx `onnx.proto`, IR version 9).
//! Float tensors are written as little-endian `raw_data` of f32, integer
//! tensors as `raw_data` of i64, so that what the decoder reads back is
//! what was written.

use super::proto::{Attribute, Graph, Model, Node, Tensor, ValueInfo};

/// `TensorProto.DataType` of f32.
pub const FLOAT: i32 = 1;
/// `TensorProto.DataType` of i64.
pub const INT64: i32 = 7;

/// The bytes of a `.onnx` file holding `model`.
pub fn encode_model(model: &Model) -> Vec<u8> {
    let mut w = Writer::default();
    w.varint_field(1, model.ir_version as u64);
    w.string_field(2, "netc");
    w.message(7, |w| graph(w, &model.graph));
    for (domain, version) in &model.opset_import {
        w.message(8, |w| {
            if !domain.is_empty() {
                w.string_field(1, domain);
            }
            w.varint_field(2, *version as u64);
        });
    }
    w.buf
}

fn graph(w: &mut Writer, g: &Graph) {
    for n in &g.node {
        w.message(1, |w| node(w, n));
    }
    w.string_field(2, &g.name);
    for t in &g.initializer {
        w.message(5, |w| tensor(w, t));
    }
    for (field, infos) in [(11, &g.input), (12, &g.output), (13, &g.value_info)] {
        for v in infos {
            w.message(field, |w| value_info(w, v));
        }
    }
}

fn node(w: &mut Writer, n: &Node) {
    for i in &n.input {
        w.string_field(1, i);
    }
    for o in &n.output {
        w.string_field(2, o);
    }
    if !n.name.is_empty() {
        w.string_field(3, &n.name);
    }
    w.string_field(4, &n.op_type);
    for a in &n.attribute {
        w.message(5, |w| attribute(w, a));
    }
    if !n.domain.is_empty() {
        w.string_field(7, &n.domain);
    }
}

/// The field that holds a value of the attribute's type, and the type.
fn attribute(w: &mut Writer, a: &Attribute) {
    w.string_field(1, &a.name);
    match a.kind {
        1 => w.fixed32_field(2, a.f.to_bits()),
        2 => w.varint_field(3, a.i as u64),
        3 => w.bytes_field(4, &a.s),
        4 => {
            if let Some(t) = &a.t {
                w.message(5, |w| tensor(w, t));
            }
        }
        5 => {
            if let Some(g) = &a.g {
                w.message(6, |w| graph(w, g));
            }
        }
        6 => w.packed(7, a.floats.iter().flat_map(|f| f.to_bits().to_le_bytes()).collect()),
        7 => {
            let mut packed = Writer::default();
            for &i in &a.ints {
                packed.varint(i as u64);
            }
            w.packed(8, packed.buf);
        }
        // Sparse tensors and type protos: never written by netc.
        _ => {}
    }
    w.varint_field(20, a.kind as u64);
}

fn tensor(w: &mut Writer, t: &Tensor) {
    let mut dims = Writer::default();
    for &d in &t.dims {
        dims.varint(d as u64);
    }
    w.packed(1, dims.buf);
    w.varint_field(2, t.data_type as u64);
    w.string_field(8, &t.name);
    let raw: Vec<u8> = match t.data_type {
        INT64 => t.values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        _ => t.values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
    };
    w.bytes_field(9, &raw);
}

fn value_info(w: &mut Writer, v: &ValueInfo) {
    w.string_field(1, &v.name);
    // TypeProto { tensor_type: { elem_type, shape: { dim: { dim_value } ... } } }
    w.message(2, |w| {
        w.message(1, |w| {
            w.varint_field(1, v.elem_type as u64);
            if let Some(dims) = &v.dims {
                w.message(2, |w| {
                    for d in dims {
                        w.message(1, |w| match d {
                            Some(value) => w.varint_field(1, *value as u64),
                            None => w.string_field(2, "N"),
                        });
                    }
                });
            }
        });
    });
}

/// The bytes of one message being written.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint(field << 3 | wire);
    }

    fn varint_field(&mut self, field: u64, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    fn fixed32_field(&mut self, field: u64, v: u32) {
        self.key(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes_field(&mut self, field: u64, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    fn string_field(&mut self, field: u64, s: &str) {
        self.bytes_field(field, s.as_bytes());
    }

    /// A packed repeated scalar field, given its encoded values.
    fn packed(&mut self, field: u64, values: Vec<u8>) {
        self.bytes_field(field, &values);
    }

    /// An embedded message, written by `body`.
    fn message(&mut self, field: u64, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        body(&mut inner);
        self.bytes_field(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::decode_model;
    use super::*;

    #[test]
    fn a_model_reads_back_as_written() {
        let attr =
            |name: &str, kind: i64| Attribute { name: name.into(), kind, ..Default::default() };
        let node = Node {
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            name: "conv1".into(),
            op_type: "Conv".into(),
            domain: String::new(),
            attribute: vec![
                Attribute { ints: vec![1, 300, -1], ..attr("pads", 7) },
                Attribute { f: 0.25, ..attr("alpha", 1) },
                Attribute { i: -3, ..attr("axis", 2) },
                Attribute { s: b"VALID".to_vec(), ..attr("auto_pad", 3) },
                Attribute { floats: vec![1.5, -2.0], ..attr("scales", 6) },
            ],
        };
        let weight = Tensor {
            name: "w".into(),
            dims: vec![2, 1],
            data_type: FLOAT,
            values: vec![0.5, -1.25],
            external: false,
        };
        let shape = Tensor {
            name: "s".into(),
            dims: vec![2],
            data_type: INT64,
            values: vec![-1.0, 7.0],
            external: false,
        };
        let info = |name: &str, dims: Vec<Option<i64>>| ValueInfo {
            name: name.into(),
            elem_type: FLOAT,
            dims: Some(dims),
        };
        let model = Model {
            ir_version: 8,
            opset_import: vec![(String::new(), 17)],
            graph: Graph {
                name: "g".into(),
                node: vec![node],
                initializer: vec![weight, shape],
                input: vec![info("x", vec![Some(2), Some(1)])],
                output: vec![info("y", vec![None, Some(1)])],
                value_info: vec![info("y", vec![Some(2), Some(1)])],
            },
        };
        let back = decode_model(&encode_model(&model)).expect("decodes");
        assert_eq!(back.ir_version, 8);
        assert_eq!(back.opset_import, model.opset_import);
        let (g, want) = (&back.graph, &model.graph);
        assert_eq!(g.name, "g");
        assert_eq!(g.node[0].input, want.node[0].input);
        assert_eq!(g.node[0].op_type, "Conv");
        for (a, b) in g.node[0].attribute.iter().zip(&want.node[0].attribute) {
            assert_eq!((&a.name, a.kind, a.f, a.i), (&b.name, b.kind, b.f, b.i));
            assert_eq!((&a.s, &a.floats, &a.ints), (&b.s, &b.floats, &b.ints));
        }
        for (a, b) in g.initializer.iter().zip(&want.initializer) {
            assert_eq!(
                (&a.name, &a.dims, a.data_type, &a.values),
                (&b.name, &b.dims, b.data_type, &b.values)
            );
        }
        assert_eq!(g.input[0].dims, want.input[0].dims);
        assert_eq!(g.output[0].dims, want.output[0].dims);
        assert_eq!(g.value_info[0].name, "y");
    }
}
