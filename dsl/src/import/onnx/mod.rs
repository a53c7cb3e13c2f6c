//! ONNX import: a `.onnx` file to a readable `.net` source and its weights.
//!
//! The graph is walked in its (topological) node order. Initializers and
//! the shape plumbing PyTorch exports (Shape, Gather, Unsqueeze, Concat,
//! Sub, Slice and Transpose of constants, ConstantOfShape, Constant, Cast,
//! Identity) are evaluated here, from the static
//! input shape, so that only layers reach the `.net` file. Layers with
//! parameters are named after their ONNX initializers (`features.0.weight`
//! gives `as features.0`), so a PyTorch export keeps its `state_dict` names.
//! The source is checked before it is returned: an import the checker
//! refuses is an error, not a file.

pub(crate) mod emit;
pub mod encode;
mod ops;
pub mod proto;

use emit::Emitter;
use std::collections::HashMap;
use std::fmt;

/// The ONNX operator types the importer maps, in the order of the docs.
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "PRelu",
    "Erf and Tanh GELU formulas",
    "Sigmoid and Mul SiLU",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Gemm",
    "MatMul",
    "Add",
    "Flatten",
    "Reshape",
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization of PyTorch's group norm",
    "LRN",
    "PyTorch's LocalResponseNorm decomposition",
    "Resize",
    "Upsample",
    "Transpose",
    "Sum",
    "Mul",
    "Concat",
    "Dropout",
    "Softmax",
    "LogSoftmax",
    "Identity",
    "Constant",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Cast",
    "Sub, ConstantOfShape, Slice and Transpose of constants",
];

/// The oldest default-domain opset whose operators the mapping follows.
pub const MIN_OPSET: i64 = 7;

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The `.net` source, one network.
    pub source: String,
    /// Parameters and buffers by `state_dict` name, in the source's layer
    /// order, as f32 (ONNX's element type for weights).
    pub weights: Vec<NamedTensor>,
}

/// One tensor of the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Imported {
    /// The weights as a safetensors file of f32 tensors.
    pub fn safetensors(&self) -> Vec<u8> {
        use safetensors::tensor::{Dtype, TensorView};
        let bytes: Vec<Vec<u8>> = self
            .weights
            .iter()
            .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(&str, TensorView<'_>)> = self
            .weights
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
                    .expect("the byte count is the shape's");
                (t.name.as_str(), view)
            })
            .collect();
        safetensors::serialize(views, &None).expect("f32 tensors serialize")
    }

    /// The weights as the f64 interpreter takes them.
    pub fn interp_weights(&self) -> crate::interp::Weights {
        self.weights
            .iter()
            .map(|t| (t.name.clone(), t.values.iter().map(|&v| f64::from(v)).collect()))
            .collect()
    }
}

/// Why a file cannot be imported.
#[derive(Clone, Debug)]
pub enum ImportError {
    /// The bytes are not a well-formed ONNX protobuf.
    Malformed(proto::ProtoError),
    /// A node the importer cannot map.
    Unsupported { node: String, op_type: String, opset: i64, reason: String },
    /// The model as a whole: no static input shape, no output, an old
    /// opset, and the like.
    Model(String),
    /// The generated source did not check: a bug of the importer, reported
    /// with the checker's diagnostics and the source.
    Checker(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Malformed(e) => e.fmt(f),
            ImportError::Unsupported { node, op_type, opset, reason } => write!(
                f,
                "node `{node}` (op `{op_type}`, opset {opset}) cannot be imported: {reason}\n\
                 supported ops: {}",
                SUPPORTED_OPS.join(", ")
            ),
            ImportError::Model(m) => f.write_str(m),
            ImportError::Checker(m) => write!(f, "the imported network does not check:\n{m}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<proto::ProtoError> for ImportError {
    fn from(e: proto::ProtoError) -> Self {
        ImportError::Malformed(e)
    }
}

/// A value of the graph: a constant known at import time (initializers
/// and folded shape plumbing), or a tensor the network computes.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Const(Const),
    Tensor(Flow),
}

/// A constant tensor, its values widened to f64.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub values: Vec<f64>,
    /// The initializer it came from, if any: it names the layer using it.
    pub name: Option<String>,
}

/// A computed tensor: its index in the emitter's flows, its ONNX shape
/// (batch first) and its per-sample shape in the `.net` source, which can
/// differ where a layer drops unit dims (`global_avg_pool` gives `[C]`
/// where ONNX keeps `[N, C, 1, 1]`).
#[derive(Clone, Debug)]
pub(crate) struct Flow {
    pub id: usize,
    pub onnx: Vec<usize>,
    pub net: Vec<usize>,
}

/// Imports the bytes of a `.onnx` file as the network `network_name`
/// (a valid `.net` network name, such as `SqueezeNet`).
pub fn import(bytes: &[u8], network_name: &str) -> Result<Imported, ImportError> {
    import_with_loss(bytes, network_name, None)
}

/// [`import`], with `loss NAME(output)` as the network's last statement
/// when `loss` names one (such as `cross_entropy`), so that the imported
/// network can be trained as it is.
pub fn import_with_loss(
    bytes: &[u8],
    network_name: &str,
    loss: Option<&str>,
) -> Result<Imported, ImportError> {
    let model = proto::decode_model(bytes)?;
    let opset = default_opset(&model)?;
    let graph = &model.graph;
    let mut values: HashMap<String, Value> = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), Value::Const(constant(t, Some(&t.name))?));
    }
    let mut em = Emitter::new(graph);
    for input in &graph.input {
        if values.contains_key(&input.name) {
            continue;
        }
        let shape = static_shape(input)?;
        let flow = em.input(&input.name, &shape)?;
        values.insert(input.name.clone(), Value::Tensor(flow));
    }
    if em.inputs.is_empty() {
        return Err(ImportError::Model("the graph has no input that is not an initializer".into()));
    }
    let mut absorbed = vec![false; graph.node.len()];
    // Constant arithmetic is folded first, so that a pattern recognised at
    // its first node can read the constants the file defines after it.
    for (index, node) in graph.node.iter().enumerate() {
        let constant_inputs = node
            .input
            .iter()
            .all(|i| i.is_empty() || matches!(values.get(i), Some(Value::Const(_))));
        if constant_inputs && ops::folds_constants(&node.op_type) {
            let ctx = ops::Ctx { node, index, opset, graph };
            ops::map_node(&ctx, &mut values, &mut em, &mut absorbed)?;
            absorbed[index] = true;
        }
    }
    for (index, node) in graph.node.iter().enumerate() {
        if absorbed[index] {
            continue;
        }
        let ctx = ops::Ctx { node, index, opset, graph };
        ops::map_node(&ctx, &mut values, &mut em, &mut absorbed)?;
    }
    let [output] = graph.output.as_slice() else {
        return Err(ImportError::Model(format!(
            "the graph has {} outputs; a network has one",
            graph.output.len()
        )));
    };
    let Some(Value::Tensor(flow)) = values.get(&output.name) else {
        return Err(ImportError::Model(format!(
            "the graph's output `{}` is not computed from its input",
            output.name
        )));
    };
    let flow = flow.clone();
    let source = match loss {
        None => em.finish(network_name, &flow),
        Some(loss) => em.finish_with_loss(network_name, &flow, loss),
    };
    let file_name = format!("{network_name}.net");
    crate::check_source(&file_name, &source)
        .map_err(|d| ImportError::Checker(format!("{d}\n{source}")))?;
    Ok(Imported { source, weights: em.weights })
}

/// A network name from a file stem: `small_cnn` gives `SmallCnn`; a name
/// that would not start with a letter gets `Net` in front.
pub fn network_name(stem: &str) -> String {
    let mut name: String = stem
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "Net");
    }
    name
}

/// The version of the default (`ai.onnx`) operator set.
fn default_opset(model: &proto::Model) -> Result<i64, ImportError> {
    let version = model
        .opset_import
        .iter()
        .find(|(domain, _)| domain.is_empty() || domain == "ai.onnx")
        .map(|&(_, v)| v)
        .ok_or_else(|| ImportError::Model("the model imports no default-domain opset".into()))?;
    if version < MIN_OPSET {
        return Err(ImportError::Model(format!(
            "opset {version} is too old: the importer reads opset {MIN_OPSET} and later"
        )));
    }
    Ok(version)
}

/// A constant from a tensor of a numeric element type.
pub(crate) fn constant(t: &proto::Tensor, name: Option<&str>) -> Result<Const, ImportError> {
    if t.external {
        return Err(ImportError::Model(format!(
            "tensor `{}` keeps its data in an external file, which the importer does not read",
            t.name
        )));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| ImportError::Model(format!("tensor `{}` has a negative dim", t.name)))?;
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(t.values.len()) {
        return Err(ImportError::Model(format!(
            "tensor `{}` of shape {dims:?} holds {} values (element type {})",
            t.name,
            t.values.len(),
            t.data_type
        )));
    }
    Ok(Const { dims, values: t.values.clone(), name: name.map(str::to_string) })
}

/// An input's dims, all of them fixed.
fn static_shape(input: &proto::ValueInfo) -> Result<Vec<usize>, ImportError> {
    let dynamic = || {
        ImportError::Model(format!(
            "input `{}` has no static shape; export with fixed input dims",
            input.name
        ))
    };
    let dims = input.dims.as_ref().ok_or_else(dynamic)?;
    let dims: Vec<usize> = dims
        .iter()
        .map(|d| d.and_then(|d| usize::try_from(d).ok()).filter(|&d| d > 0).ok_or_else(dynamic))
        .collect::<Result<_, _>>()?;
    // The shapes of every layer follow from these dims, and their sizes are
    // multiplied out: a bound here keeps those products from overflowing.
    match dims.iter().try_fold(1usize, |c, &d| c.checked_mul(d)) {
        Some(count) if count <= MAX_INPUT_VALUES => Ok(dims),
        _ => Err(ImportError::Model(format!(
            "input `{}` of shape {dims:?} has more than {MAX_INPUT_VALUES} values",
            input.name
        ))),
    }
}

/// The most values an input may have, batch included.
const MAX_INPUT_VALUES: usize = 1 << 32;
