//! ONNX export: a checked network and its weights to a `.onnx` file of
//! opset 17, for inference.
//!
//! Each layer writes its own nodes (`OpKind::onnx` in its op module);
//! this module declares the graph's inputs, its output and the static
//! shape of every layer's output (`value_info`, batch first), and stores
//! each parameter as an initializer named as its `state_dict` entry
//! (`conv1.weight`), so that `netc import` gives the layers their names
//! back. Dropout and stochastic depth export as at inference; batch norm
//! uses its running statistics. A layer with no ONNX form is a diagnostic
//! at its `.net` span, and nothing is written.

mod cx;

pub use cx::{float, int, ints, pads, string, OnnxCx};

use crate::diag::Diagnostic;
use crate::import::onnx::encode::{encode_model, FLOAT};
use crate::import::onnx::proto;
use crate::ir::Graph;
use std::collections::HashMap;
use std::fmt;

/// The default-domain opset of exported files.
pub const OPSET: i64 = 17;
/// The IR version of opset 17.
pub const IR_VERSION: i64 = 8;

/// Why a network cannot be exported.
#[derive(Clone, Debug)]
pub enum ExportError {
    /// Layers with no ONNX form, one diagnostic each.
    Layers(Vec<Diagnostic>),
    /// A parameter missing from the weights, or of the wrong size.
    Weights(String),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Layers(diags) => {
                let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
                f.write_str(&messages.join("\n"))
            }
            ExportError::Weights(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ExportError {}

/// Parameters and buffers by `state_dict` name.
pub type Weights = HashMap<String, Vec<f32>>;

/// The bytes of a `.onnx` file computing `g`'s inference forward pass on
/// batches of `batch` samples with `weights`.
pub fn export(g: &Graph, weights: &Weights, batch: usize) -> Result<Vec<u8>, ExportError> {
    Ok(encode_model(&to_model(g, weights, batch)?))
}

/// The ONNX model of `g`, before encoding.
pub fn to_model(g: &Graph, weights: &Weights, batch: usize) -> Result<proto::Model, ExportError> {
    let mut graph = proto::Graph { name: g.name.clone(), ..Default::default() };
    let mut diags = Vec::new();
    let mut missing = Vec::new();
    for node in &g.nodes {
        for p in g.params_of(node) {
            let name = format!("{}.{}", node.name, p.name);
            match weights.get(&name) {
                Some(v) if v.len() == p.shape.elements() => graph.initializer.push(proto::Tensor {
                    name,
                    dims: p.shape.dims().iter().map(|&d| d as i64).collect(),
                    data_type: FLOAT,
                    values: v.iter().map(|&x| f64::from(x)).collect(),
                    external: false,
                }),
                Some(v) => missing.push(format!(
                    "`{name}` holds {} values, its shape {} takes {}",
                    v.len(),
                    p.shape,
                    p.shape.elements()
                )),
                None => missing.push(format!("`{name}` is missing")),
            }
        }
        let info = value_info(&node.name, batch, node.shape.dims());
        if node.op.is_input() {
            graph.input.push(info);
            continue;
        }
        let mut cx = OnnxCx {
            g,
            node,
            xs: node.inputs.iter().map(|&i| g.node(i).name.clone()).collect(),
            y: node.name.clone(),
            batch,
            nodes: Vec::new(),
            wrote_y: false,
        };
        match node.op.onnx(&mut cx) {
            Ok(()) if cx.wrote_y => {
                graph.node.append(&mut cx.nodes);
                graph.value_info.push(info);
            }
            Ok(()) => diags.push(layer_error(node, "it wrote no output", None)),
            Err(e) => {
                let d = layer_error(node, &e.message, e.help).label(e.label);
                diags.push(d);
            }
        }
    }
    if !diags.is_empty() {
        return Err(ExportError::Layers(diags));
    }
    if !missing.is_empty() {
        return Err(ExportError::Weights(format!(
            "the weights do not fit: {}",
            missing.join("; ")
        )));
    }
    let out = g.node(g.output);
    graph.value_info.retain(|v| v.name != out.name);
    graph.output.push(value_info(&out.name, batch, out.shape.dims()));
    Ok(proto::Model { ir_version: IR_VERSION, opset_import: vec![(String::new(), OPSET)], graph })
}

fn layer_error(node: &crate::ir::Node, reason: &str, help: Option<String>) -> Diagnostic {
    let d = Diagnostic::error(
        format!(
            "layer `{}` (`{}`) cannot be exported to ONNX: {reason}",
            node.name,
            node.op.name()
        ),
        node.span,
    );
    match help {
        Some(h) => d.help(h),
        None => d,
    }
}

/// The static shape of a value: the batch, then the sample's dims.
fn value_info(name: &str, batch: usize, dims: &[usize]) -> proto::ValueInfo {
    let dims = std::iter::once(batch).chain(dims.iter().copied()).map(|d| Some(d as i64));
    proto::ValueInfo { name: name.to_string(), elem_type: FLOAT, dims: Some(dims.collect()) }
}
