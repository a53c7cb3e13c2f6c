//! Graphviz DOT of a checked network: one box per layer with its op and
//! output shape, edges along the data flow, parameter counts on layers that
//! have them. `netc graph` writes it (and SVG when `dot` is installed).

use super::Graph;
use std::fmt::Write as _;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Graph {
    /// The network as a DOT digraph, top to bottom.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", escape(&self.name));
        let _ = writeln!(
            out,
            "  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];"
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let params = self.param_count_of(n);
            let extra = if params > 0 { format!("\\n{params} params") } else { String::new() };
            let label = format!("{}\\n{} {}{extra}", escape(&n.name), n.op.name(), n.shape);
            let style = if n.op.is_input() {
                ", style=\"rounded,filled\", fillcolor=\"#e8f0fe\""
            } else {
                ""
            };
            let _ = writeln!(out, "  n{i} [label=\"{label}\"{style}];");
            for input in &n.inputs {
                let _ = writeln!(out, "  n{} -> n{i};", input.0);
            }
        }
        if let Some(loss) = &self.loss {
            let _ = writeln!(out, "  loss [label=\"loss: {:?}\", shape=ellipse];", loss.kind);
            let _ = writeln!(out, "  n{} -> loss;", loss.input.0);
        }
        out.push_str("}\n");
        out
    }
}
