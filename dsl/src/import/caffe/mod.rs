//! Caffe import: a `.prototxt` net (and optionally the `.caffemodel` of
//! its trained weights) to a readable `.net` source and its weights.
//!
//! The layers of Caffe's training phase are walked in file order. A blob
//! written again by an in-place layer (`top` equal to `bottom`, as Caffe's
//! ReLUs are) is a new value, so each version of a blob is used where the
//! file uses it. Layers with parameters are named after their Caffe layer
//! (`conv1` gives `as conv1`, so the weights are `conv1.weight` and
//! `conv1.bias`). The source is checked before it is returned.

mod layers;
mod plan;
mod proto;
mod schema;

pub use proto::{MalformedModel, SyntaxError};

use super::onnx::emit::Emitter;
use super::onnx::{Flow, Imported};
use layers::Value;
use plan::Plan;
use std::collections::HashMap;
use std::fmt;

/// The Caffe layer types the importer maps, in the order of the docs.
pub const SUPPORTED_LAYERS: &[&str] = &[
    "Input",
    "Data",
    "ImageData",
    "HDF5Data",
    "MemoryData",
    "Convolution",
    "Deconvolution",
    "Pooling",
    "InnerProduct",
    "ReLU",
    "PReLU",
    "Sigmoid",
    "TanH",
    "LRN",
    "Dropout",
    "Softmax",
    "SoftmaxWithLoss",
    "Concat",
    "Eltwise",
    "Split",
    "Flatten",
    "BatchNorm",
    "Scale",
    "Accuracy",
];

/// What the prototxt cannot say.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The per-sample shape of a data layer that reads a database
    /// (`Data`, `ImageData`, `HDF5Data`), such as `[1, 28, 28]`.
    pub input_shape: Option<Vec<usize>>,
}

/// Why a net cannot be imported.
#[derive(Clone, Debug)]
pub enum CaffeError {
    /// The prototxt is not well-formed text format.
    Syntax(SyntaxError),
    /// The caffemodel is not a well-formed `NetParameter`.
    Malformed(MalformedModel),
    /// A layer the importer cannot map.
    Unsupported { layer: String, kind: String, reason: String },
    /// A blob of the caffemodel that does not fit its layer.
    Blob { layer: String, message: String },
    /// The net as a whole: no input, several outputs, a blob read before
    /// it is written, and the like.
    Net(String),
    /// The generated source did not check: a bug of the importer, reported
    /// with the checker's diagnostics and the source.
    Checker(String),
}

impl fmt::Display for CaffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaffeError::Syntax(e) => e.fmt(f),
            CaffeError::Malformed(e) => e.fmt(f),
            CaffeError::Unsupported { layer, kind, reason } => write!(
                f,
                "layer `{layer}` (type `{kind}`) cannot be imported: {reason}\n\
                 supported layers: {}",
                SUPPORTED_LAYERS.join(", ")
            ),
            CaffeError::Blob { layer, message } => {
                write!(f, "caffemodel: layer `{layer}`: {message}")
            }
            CaffeError::Net(m) => f.write_str(m),
            CaffeError::Checker(m) => write!(f, "the imported network does not check:\n{m}"),
        }
    }
}

impl std::error::Error for CaffeError {}

/// The `name` a `.prototxt` gives its net, if it parses and has one.
pub fn net_name(prototxt: &str) -> Option<String> {
    let net = proto::parse_prototxt(prototxt).ok()?;
    Some(net.msg().string("name")).filter(|n| !n.is_empty())
}

/// Imports the text of a `.prototxt` as the network `network_name`, with
/// the weights of `caffemodel` when given (without it, `weights` is empty
/// and the network starts from its own initialisation).
pub fn import(
    prototxt: &str,
    caffemodel: Option<&[u8]>,
    network_name: &str,
    options: &Options,
) -> Result<Imported, CaffeError> {
    let net = proto::parse_prototxt(prototxt).map_err(CaffeError::Syntax)?;
    let model =
        caffemodel.map(proto::decode_caffemodel).transpose().map_err(CaffeError::Malformed)?;
    let blobs = model.as_ref().map(proto::blobs_by_layer);
    if blobs.as_ref().is_some_and(HashMap::is_empty) {
        return Err(CaffeError::Net("the caffemodel holds no layer with weights".into()));
    }
    let layers: Vec<_> = net.layers().into_iter().filter(proto::in_train_phase).collect();
    let plan = Plan::new(&net.msg(), &layers)?;
    let mut em = Emitter::with_uses("Caffe", plan.uses.clone(), plan.reserved_names());
    let mut values: HashMap<String, Value> = HashMap::new();
    for (key, shape) in &plan.net_inputs {
        let flow = em.input(key, shape).map_err(|e| CaffeError::Net(e.to_string()))?;
        values.insert(key.clone(), Value::Tensor(flow));
    }
    let mut absorbed = vec![false; layers.len()];
    let mut loss: Option<Flow> = None;
    for index in 0..layers.len() {
        if absorbed[index] {
            continue;
        }
        let ctx =
            layers::Ctx { layers: &layers, index, plan: &plan, blobs: blobs.as_ref(), options };
        if let Some(scored) = layers::map_layer(&ctx, &mut values, &mut em, &mut absorbed)? {
            if loss.replace(scored).is_some() {
                return Err(CaffeError::Net(
                    "the net has more than one SoftmaxWithLoss layer; a network has one loss"
                        .into(),
                ));
            }
        }
    }
    let source = finish(&plan, &values, &mut em, network_name, loss)?;
    let file_name = format!("{network_name}.net");
    crate::check_source(&file_name, &source)
        .map_err(|d| CaffeError::Checker(format!("{d}\n{source}")))?;
    Ok(Imported { source, weights: em.weights })
}

/// The source, its output the one blob no layer reads, or the loss's
/// input when the net has a loss.
fn finish(
    plan: &Plan,
    values: &HashMap<String, Value>,
    em: &mut Emitter,
    network_name: &str,
    loss: Option<Flow>,
) -> Result<String, CaffeError> {
    let outputs: Vec<(&String, &Flow)> = plan
        .unread
        .iter()
        .filter_map(|key| match values.get(key) {
            Some(Value::Tensor(flow)) => Some((key, flow)),
            Some(Value::Label) | None => None,
        })
        .collect();
    let names = || outputs.iter().map(|(k, _)| plan.blob_name(k)).collect::<Vec<_>>().join("`, `");
    match (loss, outputs.as_slice()) {
        (Some(scored), []) => Ok(em.finish_with_loss(network_name, &scored, "cross_entropy")),
        (None, [(_, flow)]) => {
            let flow = (*flow).clone();
            Ok(em.finish(network_name, &flow))
        }
        (None, []) => Err(CaffeError::Net("the net computes nothing from its input".into())),
        (Some(_), _) | (None, _) => Err(CaffeError::Net(format!(
            "the blobs `{}` are computed but never read; a network has one output",
            names()
        ))),
    }
}
