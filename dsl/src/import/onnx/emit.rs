//! Writing the `.net` source: chains of stages, bound to names only where
//! a value is used more than once or by a layer of several inputs, so that
//! a sequential model reads as one chain.

use super::{Flow, ImportError, NamedTensor};
use crate::import::onnx::proto;
use std::collections::{HashMap, HashSet};

/// The words of the language that cannot be names.
const KEYWORDS: &[&str] = &[
    "network",
    "block",
    "input",
    "output",
    "out",
    "loss",
    "optimizer",
    "schedule",
    "train",
    "repeat",
    "as",
    "true",
    "false",
];

/// A value's text so far: a bound name, or a chain not yet bound.
struct Text {
    head: String,
    stages: Vec<String>,
    /// Uses left by ONNX nodes and graph outputs.
    uses: usize,
}

pub(crate) struct Emitter {
    /// The framework the model comes from, named in the header.
    origin: &'static str,
    texts: Vec<Text>,
    lines: Vec<String>,
    pub inputs: Vec<String>,
    /// Names taken by values and layers, and reserved for layers named
    /// after initializers.
    taken: HashSet<String>,
    /// Names given to layers.
    layers: HashSet<String>,
    uses: HashMap<String, usize>,
    next_value: usize,
    pub weights: Vec<NamedTensor>,
}

impl Emitter {
    pub fn new(graph: &proto::Graph) -> Emitter {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for name in
            graph.node.iter().flat_map(|n| &n.input).chain(graph.output.iter().map(|o| &o.name))
        {
            *uses.entry(name.clone()).or_default() += 1;
        }
        let reserved = graph.initializer.iter().map(|t| layer_path(&t.name));
        Emitter::with_uses("ONNX", uses, reserved)
    }

    /// An emitter for a model from `origin` (a framework's name, for the
    /// header), given the uses of each of its values by name and the layer
    /// names to keep free for its layers.
    pub fn with_uses(
        origin: &'static str,
        uses: HashMap<String, usize>,
        reserved: impl IntoIterator<Item = String>,
    ) -> Emitter {
        let mut taken: HashSet<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
        taken.extend(reserved);
        Emitter {
            origin,
            texts: Vec::new(),
            lines: Vec::new(),
            inputs: Vec::new(),
            taken,
            layers: HashSet::new(),
            uses,
            next_value: 0,
            weights: Vec::new(),
        }
    }

    /// How many nodes (and graph outputs) use the ONNX value `name`.
    pub fn uses_of(&self, name: &str) -> usize {
        self.uses.get(name).copied().unwrap_or(0)
    }

    /// Declares a network input of ONNX shape `shape` (batch first).
    pub fn input(&mut self, onnx_name: &str, shape: &[usize]) -> Result<Flow, ImportError> {
        if shape.len() < 2 {
            return Err(ImportError::Model(format!(
                "input `{onnx_name}` of shape {shape:?} has no dims besides the batch"
            )));
        }
        let name = self.fresh(&sanitise(onnx_name));
        let dims: Vec<String> = shape[1..].iter().map(usize::to_string).collect();
        self.inputs.push(format!("input {name}: [{}]", dims.join(", ")));
        let uses = self.uses_of(onnx_name);
        Ok(self.new_flow(name, uses, shape.to_vec(), shape[1..].to_vec()))
    }

    fn new_flow(&mut self, head: String, uses: usize, onnx: Vec<usize>, net: Vec<usize>) -> Flow {
        self.texts.push(Text { head, stages: Vec::new(), uses });
        Flow { id: self.texts.len() - 1, onnx, net }
    }

    /// A fresh name based on `base`, unused so far.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        while self.taken.contains(&name) {
            self.next_value += 1;
            name = format!("{base}{}", self.next_value);
        }
        self.taken.insert(name.clone());
        name
    }

    /// Extends `from`'s chain with `stage` when nothing else uses it, or
    /// starts a chain at its bound name; the result has `uses` uses.
    pub fn pipe(
        &mut self,
        from: &Flow,
        stage: String,
        uses: usize,
        onnx: Vec<usize>,
        net: Vec<usize>,
    ) -> Flow {
        let text = &mut self.texts[from.id];
        if text.uses == 1 {
            text.stages.push(stage);
            text.uses = uses;
            return Flow { id: from.id, onnx, net };
        }
        let head = self.bind(from);
        self.texts[from.id].uses -= 1;
        let flow = self.new_flow(head, uses, onnx, net);
        self.texts[flow.id].stages.push(stage);
        flow
    }

    /// A layer of several inputs: `call(a, b, ...)` starting a new chain.
    pub fn join(
        &mut self,
        call: &str,
        from: &[Flow],
        uses: usize,
        onnx: Vec<usize>,
        net: Vec<usize>,
    ) -> Flow {
        let names: Vec<String> = from
            .iter()
            .map(|f| {
                let name = self.bind(f);
                self.texts[f.id].uses = self.texts[f.id].uses.saturating_sub(1);
                name
            })
            .collect();
        self.new_flow(format!("{call}({})", names.join(", ")), uses, onnx, net)
    }

    /// Forgets `n` uses of `flow` by nodes folded into another's stage.
    pub fn drop_uses(&mut self, flow: &Flow, n: usize) {
        let text = &mut self.texts[flow.id];
        text.uses = text.uses.saturating_sub(n);
    }

    /// Another ONNX name for the same value (Identity, an inference Dropout).
    pub fn alias(&mut self, flow: &Flow, output: &str) -> Flow {
        let text = &mut self.texts[flow.id];
        text.uses = text.uses.saturating_sub(1) + self.uses.get(output).copied().unwrap_or(0);
        flow.clone()
    }

    /// The name `flow`'s value is bound to, binding it first if needed.
    fn bind(&mut self, flow: &Flow) -> String {
        let text = &self.texts[flow.id];
        if text.stages.is_empty() && is_name(&text.head) {
            return text.head.clone();
        }
        let name = self.fresh("t");
        let text = &mut self.texts[flow.id];
        self.lines.push(format!("{name} = {}", render(&text.head, &text.stages)));
        text.head = name.clone();
        text.stages.clear();
        name
    }

    /// A name for a layer with parameters, from the initializer `onnx_name`
    /// (its `.weight` suffix dropped), unique in the network.
    pub fn layer_name(&mut self, onnx_name: &str) -> String {
        let path = layer_path(onnx_name);
        let name = if self.layers.contains(&path) { self.fresh(&path) } else { path };
        self.layers.insert(name.clone());
        name
    }

    /// A `//` comment among the statements, after the inputs.
    pub fn comment(&mut self, text: &str) {
        self.lines.push(format!("// {text}"));
    }

    pub fn weight(&mut self, layer: &str, suffix: &str, shape: Vec<usize>, values: &[f64]) {
        let values = values.iter().map(|&v| v as f32).collect();
        self.weights.push(NamedTensor { name: format!("{layer}.{suffix}"), shape, values });
    }

    /// The whole source, its output `flow`.
    pub fn finish(&mut self, network_name: &str, flow: &Flow) -> String {
        let text = &self.texts[flow.id];
        let output = format!("output {}", render(&text.head, &text.stages));
        self.network(network_name, &[output])
    }

    /// The whole source, with `loss(flow)` as its last statement: the
    /// loss's input is the network's output.
    pub fn finish_with_loss(&mut self, network_name: &str, flow: &Flow, loss: &str) -> String {
        let scored = self.bind(flow);
        self.network(network_name, &[format!("loss {loss}({scored})")])
    }

    fn network(&self, network_name: &str, last: &[String]) -> String {
        let origin = self.origin;
        let mut out =
            format!("// Imported from {origin} by `netc import`.\nnetwork {network_name} {{\n");
        for line in self.inputs.iter().chain(&self.lines).chain(last) {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str("}\n");
        out
    }
}

/// A number as `.net` writes it: the shortest text that reads back as the
/// same f32, always with a fraction or an exponent.
pub(crate) fn num(v: f32) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// An integer or, when the two differ, an `[h, w]` pair.
pub(crate) fn pair(h: i64, w: i64) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("[{h}, {w}]")
    }
}

fn render(head: &str, stages: &[String]) -> String {
    let mut s = head.to_string();
    for stage in stages {
        s.push_str("\n        -> ");
        s.push_str(stage);
    }
    s
}

fn is_name(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `.net` name from any string: other characters become `_`, and a
/// leading digit or a keyword gets a `_`.
pub(crate) fn sanitise(s: &str) -> String {
    let mut name: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// The layer path of the parameter `onnx_name`: `features.0.weight` is
/// layer `features.0`; segments are sanitised, but all-digit segments after
/// the first stay, as `nn.Sequential` indices.
pub(crate) fn layer_path(onnx_name: &str) -> String {
    let base = onnx_name.strip_suffix(".weight").unwrap_or(onnx_name);
    let segments: Vec<String> = base
        .split('.')
        .enumerate()
        .map(|(i, seg)| {
            if i > 0 && !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                seg.to_string()
            } else if i > 0 && KEYWORDS.contains(&seg) {
                // A keyword is a name after a dot (torchvision's `features.3.block.0`).
                seg.to_string()
            } else {
                sanitise(seg)
            }
        })
        .collect();
    segments.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_keep_state_dict_names() {
        assert_eq!(layer_path("features.0.weight"), "features.0");
        assert_eq!(layer_path("layer1.0.bn1.weight"), "layer1.0.bn1");
        assert_eq!(layer_path("fc"), "fc");
        assert_eq!(layer_path("onnx::Conv_193"), "onnx__Conv_193");
        assert_eq!(layer_path("input"), "input_");
        assert_eq!(layer_path("0.weight"), "_0");
        assert_eq!(layer_path("features.3.block.0.1.weight"), "features.3.block.0.1");
    }
}
