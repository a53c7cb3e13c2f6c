//! The data flow of a Caffe net before any layer is mapped: each write of
//! a blob becomes a value of its own (so in-place layers, whose `top` is
//! their `bottom`, read the version before them), and each value's uses
//! are counted, which the emitter needs to chain or bind it. A Split's
//! tops are the tensor of its bottom under new names: a read of one is a
//! read of that tensor.

use super::proto::{Layer, Msg};
use super::CaffeError;
use crate::import::onnx::emit::sanitise;
use std::collections::{HashMap, HashSet};

/// Layer types with parameters, named in the `.net` after their layer.
const WITH_PARAMETERS: &[&str] =
    &["Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "PReLU"];

/// Layers that are dropped: they score the network, nothing reads them.
pub(crate) const DROPPED: &[&str] = &["Accuracy"];

#[derive(Debug)]
pub(crate) struct Plan {
    /// The net's own inputs (`input` with `input_shape` or `input_dim`):
    /// value and shape, batch first.
    pub net_inputs: Vec<(String, Vec<usize>)>,
    /// Per layer, the values it reads and writes. A bottom that is a
    /// Split's top is the Split's bottom.
    pub bottoms: Vec<Vec<String>>,
    pub tops: Vec<Vec<String>>,
    /// Reads of each value, those through Splits included.
    pub uses: HashMap<String, usize>,
    /// Values written and never read, in the order written.
    pub unread: Vec<String>,
    reserved: Vec<String>,
}

impl Plan {
    pub fn new(net: &Msg<'_>, layers: &[Layer<'_>]) -> Result<Plan, CaffeError> {
        let net_inputs = net_inputs(net)?;
        let mut current: HashMap<String, String> = HashMap::new();
        let mut writes: HashMap<String, usize> = HashMap::new();
        let mut written = Vec::new();
        // A Split's tops and the value each stands for; the values read.
        let mut split_of: HashMap<String, String> = HashMap::new();
        let mut read: HashSet<String> = HashSet::new();
        // Values whose memory a Split shares: its bottom and its tops.
        let mut shared: HashSet<String> = HashSet::new();
        for (name, _) in &net_inputs {
            current.insert(name.clone(), name.clone());
            writes.insert(name.clone(), 1);
            written.push(name.clone());
        }
        let mut plan = Plan {
            net_inputs,
            bottoms: Vec::new(),
            tops: Vec::new(),
            uses: HashMap::new(),
            unread: Vec::new(),
            reserved: Vec::new(),
        };
        for layer in layers {
            let dropped = DROPPED.contains(&layer.kind.as_str());
            let splits = layer.kind == "Split" && layer.bottoms.len() == 1;
            let mut bottoms = Vec::new();
            for blob in &layer.bottoms {
                let read_key = current.get(blob).cloned().ok_or_else(|| {
                    CaffeError::Net(format!(
                        "layer `{}` reads blob `{blob}`, which no layer before it writes",
                        layer.name
                    ))
                })?;
                let key = split_of.get(&read_key).cloned().unwrap_or_else(|| read_key.clone());
                if !dropped {
                    read.insert(read_key);
                    // The Split's own read is counted as the reads of its tops.
                    if !splits {
                        *plan.uses.entry(key.clone()).or_default() += 1;
                    }
                }
                bottoms.push(key);
            }
            if splits {
                shared.insert(bottoms[0].clone());
            }
            let mut tops = Vec::new();
            for blob in &layer.tops {
                // A Split's first top may be its bottom: the same memory.
                let in_place =
                    current.get(blob).filter(|_| !splits && layer.bottoms.contains(blob));
                if in_place.is_some_and(|key| shared.contains(key)) {
                    return Err(CaffeError::Unsupported {
                        layer: layer.name.clone(),
                        kind: layer.kind.clone(),
                        reason: format!(
                            "it writes in place to `{blob}`, which shares its memory with a \
                             Split's bottom and tops (Caffe would change them all)"
                        ),
                    });
                }
                let count = writes.entry(blob.clone()).or_default();
                let key = if *count == 0 { blob.clone() } else { format!("{blob}#{count}") };
                *count += 1;
                current.insert(blob.clone(), key.clone());
                if splits {
                    split_of.insert(key.clone(), bottoms[0].clone());
                    shared.insert(key.clone());
                }
                if !dropped && layer.kind != "SoftmaxWithLoss" {
                    written.push(key.clone());
                }
                tops.push(key);
            }
            if WITH_PARAMETERS.contains(&layer.kind.as_str()) {
                plan.reserved.push(sanitise(&layer.name));
            }
            plan.bottoms.push(bottoms);
            plan.tops.push(tops);
        }
        plan.unread = written.into_iter().filter(|k| !read.contains(k)).collect();
        Ok(plan)
    }

    /// The names the `.net` layers with parameters will take.
    pub fn reserved_names(&self) -> Vec<String> {
        self.reserved.clone()
    }

    /// The Caffe blob a value is a version of.
    pub fn blob_name<'a>(&self, key: &'a str) -> &'a str {
        key.split_once('#').map_or(key, |(blob, _)| blob)
    }

    pub fn uses_of(&self, key: &str) -> usize {
        self.uses.get(key).copied().unwrap_or(0)
    }
}

/// The inputs declared by the net itself rather than by an Input layer.
fn net_inputs(net: &Msg<'_>) -> Result<Vec<(String, Vec<usize>)>, CaffeError> {
    let names = net.strings("input");
    let shapes: Vec<Vec<i64>> = net.msgs("input_shape").iter().map(|s| s.i64s("dim")).collect();
    let dims: Vec<i64> = net.i64s("input_dim");
    let shapes = if !shapes.is_empty() {
        shapes
    } else if !names.is_empty() && dims.len() == 4 * names.len() {
        dims.chunks(4).map(<[i64]>::to_vec).collect()
    } else if names.is_empty() {
        Vec::new()
    } else {
        return Err(CaffeError::Net(format!(
            "the net's inputs `{}` need one `input_shape` each, or four `input_dim` each",
            names.join("`, `")
        )));
    };
    if shapes.len() != names.len() {
        return Err(CaffeError::Net(format!(
            "the net declares {} inputs and {} input shapes",
            names.len(),
            shapes.len()
        )));
    }
    names
        .into_iter()
        .zip(shapes)
        .map(|(name, dims)| Ok((name.clone(), positive_dims(&name, &dims)?)))
        .collect()
}

/// Dims that are all positive, or an error naming the input.
pub(crate) fn positive_dims(input: &str, dims: &[i64]) -> Result<Vec<usize>, CaffeError> {
    dims.iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<usize>>>()
        .filter(|d| d.len() >= 2)
        .ok_or_else(|| {
            CaffeError::Net(format!(
                "input `{input}` has the shape {dims:?}; an input needs a batch and positive dims"
            ))
        })
}
