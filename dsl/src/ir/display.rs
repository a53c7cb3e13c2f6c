//! The layer table printed by `netc check`: one row per node with its op,
//! output shape, parameters and cost.

use super::Graph;
use std::fmt::Write as _;

/// One row of the layer table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerRow {
    pub name: String,
    pub op: &'static str,
    /// The op's settings in short form, such as `6@5x5 s1 p2`.
    pub detail: String,
    pub inputs: Vec<String>,
    pub shape: Vec<usize>,
    pub params: usize,
    pub macs: u64,
    pub flops: u64,
}

/// The rows of the layer table, in topological order.
pub fn layer_rows(g: &Graph) -> Vec<LayerRow> {
    g.nodes
        .iter()
        .map(|n| LayerRow {
            name: n.name.clone(),
            op: n.op.name(),
            detail: n.op.detail(),
            inputs: n.inputs.iter().map(|&i| g.node(i).name.clone()).collect(),
            shape: n.shape.0.clone(),
            params: g.param_count_of(n),
            macs: g.macs_of(n),
            flops: g.flops_of(n),
        })
        .collect()
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Graph {
    /// The layer table and totals, as `netc check` prints them.
    pub fn table(&self) -> String {
        let rows = layer_rows(self);
        let header = ["layer", "op", "output", "params", "MACs", "FLOPs"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                let op = if r.detail.is_empty() {
                    r.op.to_string()
                } else {
                    format!("{} {}", r.op, r.detail)
                };
                [
                    r.name.clone(),
                    op,
                    super::Shape(r.shape.clone()).to_string(),
                    thousands(r.params as u64),
                    thousands(r.macs),
                    thousands(r.flops),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: [&str; 6]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5]
            );
        };
        let _ = writeln!(out, "network {}", self.name);
        line(&mut out, header);
        for row in &cells {
            line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
        }
        let _ = writeln!(out, "total parameters:        {}", thousands(self.total_params() as u64));
        let _ = writeln!(out, "total MACs per sample:   {}", thousands(self.total_macs()));
        let _ = writeln!(out, "total FLOPs per sample:  {}", thousands(self.total_flops()));
        let _ = writeln!(
            out,
            "activations per sample:  {} bytes (f32, before memory planning)",
            thousands(self.activation_bytes() as u64)
        );
        if let Some(loss) = &self.loss {
            let _ = writeln!(
                out,
                "loss:                    {} on `{}`",
                loss.kind,
                self.node(loss.input).name
            );
        }
        if let Some(opt) = &self.optimizer {
            let _ = writeln!(out, "optimizer:               {opt:?}");
        }
        if let Some(schedule) = &self.schedule {
            let _ = writeln!(out, "schedule:                {schedule:?}");
        }
        // Only a network that asks for it: f32 is what every table assumes.
        if self.precision == super::Precision::Bf16 {
            let _ =
                writeln!(out, "precision:               bf16 operands, f32 sums (convs, dense)");
        }
        out
    }
}
