//! What an op's ONNX export works with ([`OnnxCx`]): its node's inputs,
//! parameters and shapes, and where its ONNX nodes go. Each op writes its
//! own nodes in its module (`OpKind::onnx`), as it writes its own steps.

use crate::import::onnx::encode::{FLOAT, INT64};
use crate::import::onnx::proto::{self, Attribute};
use crate::ir::{Graph, Node, Shape};

/// One layer's export: the names of its ONNX values, and the nodes written.
#[derive(Debug)]
pub struct OnnxCx<'a> {
    pub(super) g: &'a Graph,
    pub(super) node: &'a Node,
    /// The ONNX value of each input.
    pub(super) xs: Vec<String>,
    /// The ONNX value the layer's output must be written to.
    pub(super) y: String,
    pub(super) batch: usize,
    pub(super) nodes: Vec<proto::Node>,
    /// Whether the output has been written.
    pub(super) wrote_y: bool,
}

impl OnnxCx<'_> {
    /// The ONNX value of input `i`.
    pub fn x(&self, i: usize) -> String {
        self.xs[i].clone()
    }

    /// How many inputs the layer has.
    pub fn inputs(&self) -> usize {
        self.xs.len()
    }

    /// The per-sample shape of input `i`.
    pub fn x_shape(&self, i: usize) -> &Shape {
        &self.g.node(self.node.inputs[i]).shape
    }

    /// The per-sample shape of the output.
    pub fn y_shape(&self) -> &Shape {
        &self.node.shape
    }

    /// The batch of the exported graph, its leading dim everywhere.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The initializer of the layer's parameter `suffix` (`weight`, ...),
    /// named as its `state_dict` entry.
    pub fn param(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.node.name)
    }

    /// A node computing a new value, whose name it returns.
    pub fn node(&mut self, op_type: &str, inputs: Vec<String>, attrs: Vec<Attribute>) -> String {
        let out = format!("{}/{}{}", self.node.name, op_type, self.nodes.len());
        self.push(op_type, inputs, attrs, out.clone());
        out
    }

    /// The node computing the layer's output.
    pub fn output(&mut self, op_type: &str, inputs: Vec<String>, attrs: Vec<Attribute>) {
        let out = self.y.clone();
        self.push(op_type, inputs, attrs, out);
        self.wrote_y = true;
    }

    fn push(&mut self, op_type: &str, inputs: Vec<String>, attrs: Vec<Attribute>, out: String) {
        let name = if self.nodes.is_empty() {
            self.node.name.clone()
        } else {
            format!("{}/{}", self.node.name, self.nodes.len())
        };
        self.nodes.push(proto::Node {
            input: inputs,
            output: vec![out],
            name,
            op_type: op_type.to_string(),
            domain: String::new(),
            attribute: attrs,
        });
    }

    /// A `Constant` node of i64 values of shape `[values.len()]`.
    pub fn ints_const(&mut self, values: &[i64]) -> String {
        let dims = vec![values.len() as i64];
        self.constant(INT64, dims, values.iter().map(|&v| v as f64).collect())
    }

    /// A `Constant` node of an f32 scalar.
    pub fn scalar_const(&mut self, value: f64) -> String {
        self.constant(FLOAT, Vec::new(), vec![value])
    }

    /// A `Constant` node of f32 values of shape `dims`.
    pub fn floats_const(&mut self, dims: &[usize], values: Vec<f64>) -> String {
        let dims = dims.iter().map(|&d| d as i64).collect();
        self.constant(FLOAT, dims, values)
    }

    fn constant(&mut self, data_type: i32, dims: Vec<i64>, values: Vec<f64>) -> String {
        let t = proto::Tensor { name: String::new(), dims, data_type, values, external: false };
        let value = Attribute { name: "value".into(), kind: 4, t: Some(t), ..Default::default() };
        self.node("Constant", Vec::new(), vec![value])
    }
}

/// An integer attribute.
pub fn int(name: &str, i: i64) -> Attribute {
    Attribute { name: name.into(), kind: 2, i, ..Default::default() }
}

/// A float attribute.
pub fn float(name: &str, f: f64) -> Attribute {
    Attribute { name: name.into(), kind: 1, f: f as f32, ..Default::default() }
}

/// A string attribute.
pub fn string(name: &str, s: &str) -> Attribute {
    Attribute { name: name.into(), kind: 3, s: s.as_bytes().to_vec(), ..Default::default() }
}

/// An attribute of integers.
pub fn ints(name: &str, ints: &[usize]) -> Attribute {
    Attribute {
        name: name.into(),
        kind: 7,
        ints: ints.iter().map(|&i| i as i64).collect(),
        ..Default::default()
    }
}

/// Symmetric 2-d pads as ONNX writes them, `[top, left, bottom, right]`.
pub fn pads(pad: [usize; 2]) -> Attribute {
    ints("pads", &[pad[0], pad[1], pad[0], pad[1]])
}
