//! ONNX export: a network exported and imported back is the same network
//! (up to names and the rewrites that ONNX forces, listed in
//! `docs/import.md`) and computes the same outputs in the f64
//! interpreter; a layer with no ONNX form is a diagnostic naming it.

use netc_dsl::export::onnx::{export, to_model, ExportError, Weights};
use netc_dsl::import::onnx::import;
use netc_dsl::interp::{self, Mode};
use netc_dsl::ir::Graph;
use std::path::PathBuf;

fn read(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn graph(name: &str, source: &str) -> Graph {
    let checked = netc_dsl::check_source(name, source).unwrap_or_else(|d| panic!("{d}\n{source}"));
    checked.graphs.into_iter().next().expect("a network")
}

/// Reproducible weights in [-0.5, 0.5), variances in [0.5, 1.5).
fn weights(g: &Graph) -> Weights {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut w = Weights::new();
    for node in &g.nodes {
        for p in g.params_of(node) {
            let shift = if p.name == "running_var" { 1.0 } else { 0.0 };
            let values = (0..p.shape.elements()).map(|_| next() + shift).collect();
            w.insert(format!("{}.{}", node.name, p.name), values);
        }
    }
    w
}

fn input(g: &Graph, batch: usize) -> Vec<f64> {
    let len = batch * g.node(g.inputs[0]).shape.elements();
    (0..len).map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * 1.5).collect()
}

/// The ops of a graph as the round trip should give them back: the
/// identity ops ONNX has no node for dropped, adaptive pooling of even
/// bins as the average pooling it exports as, `pad: same` as its number.
fn layers(g: &Graph) -> Vec<(String, Vec<usize>)> {
    g.nodes
        .iter()
        .filter(|n| !matches!(n.op.name(), "stochastic_depth" | "input"))
        .filter(|n| !(n.op.is_alias() && g.node(n.inputs[0]).shape == n.shape))
        .map(|n| {
            let op = match n.op.name() {
                "adaptive_avg_pool" => "avg_pool".to_string(),
                "avg_pool" => "avg_pool".to_string(),
                "conv2d" => format!("{:?}", n.op).replace("same: true", "same: false"),
                // Normalising over the whole sample, written or not.
                "layer_norm" => format!("{:?}", n.op)
                    .replace(&format!("Some({:?})", g.node(n.inputs[0]).shape.dims()), "None"),
                _ => format!("{:?}", n.op),
            };
            (op, n.shape.dims().to_vec())
        })
        .collect()
}

/// Exports `source`, imports the file back, and checks the two networks.
fn round_trip(name: &str, source: &str) {
    let g = graph(name, source);
    let w = weights(&g);
    let batch = 2;
    let bytes = export(&g, &w, batch).unwrap_or_else(|e| panic!("{name}: {e}"));
    let imported = import(&bytes, &g.name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = graph("imported.net", &imported.source);
    // Independent branches may come back in another order.
    let (mut want, mut got) = (layers(&g), layers(&back));
    want.sort();
    got.sort();
    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
        assert_eq!(a, b, "{name}: layer {i} differs\n{}", imported.source);
    }
    assert_eq!(want.len(), got.len(), "{name}: layer count\n{}", imported.source);
    let x = input(&g, batch);
    let wide = |w: &Weights| -> interp::Weights {
        w.iter().map(|(k, v)| (k.clone(), v.iter().map(|&x| f64::from(x)).collect())).collect()
    };
    let run = |g: &Graph, w: &interp::Weights| {
        let outs =
            interp::run(g, w, &[&x], batch, Mode::Infer).unwrap_or_else(|e| panic!("{name}: {e}"));
        interp::output(g, &outs).to_vec()
    };
    let (y0, y1) = (run(&g, &wide(&w)), run(&back, &imported.interp_weights()));
    assert_eq!(y0.len(), y1.len());
    let scale = y0.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    let worst = y0.iter().zip(&y1).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f64::max);
    eprintln!("{name}: round trip worst difference {worst:.1e}");
    assert!(worst < 1e-9, "{name}: outputs differ by {worst:e}");
    // Every parameter comes back under its own name.
    for (k, v) in &w {
        let t = imported.weights.iter().find(|t| &t.name == k);
        assert_eq!(t.map(|t| &t.values), Some(v), "{name}: parameter `{k}`\n{}", imported.source);
    }
}

#[test]
fn every_op_round_trips() {
    round_trip("every_op", &read("tests/onnx/export/every_op.net"));
}

#[test]
fn zoo_models_round_trip() {
    for model in ["lenet5", "mlp", "resnet20", "autoencoder", "mobilenet_v3_small"] {
        round_trip(model, &read(&format!("cli/models/{model}.net")));
    }
}

#[test]
fn the_graph_has_static_shapes_and_state_dict_initializers() {
    let g = graph("lenet5", &read("cli/models/lenet5.net"));
    let model = to_model(&g, &weights(&g), 4).expect("export");
    assert_eq!(model.opset_import, vec![(String::new(), 17)]);
    let gr = &model.graph;
    assert_eq!(gr.input[0].dims, Some(vec![Some(4), Some(1), Some(28), Some(28)]));
    assert_eq!(gr.output[0].dims, Some(vec![Some(4), Some(10)]));
    let conv1 = gr.value_info.iter().find(|v| v.name == "conv1").expect("conv1's shape");
    assert_eq!(conv1.dims, Some(vec![Some(4), Some(6), Some(28), Some(28)]));
    let names: Vec<&str> = gr.initializer.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[..2], ["conv1.weight", "conv1.bias"]);
    assert_eq!(names.len(), 10);
}

#[test]
fn layers_without_an_onnx_form_are_diagnostics_naming_them() {
    let source = "network Odd {\n    input x: [4, 9, 9]\n    \
                  output x -> lrn(4) -> adaptive_avg_pool(2) -> flatten -> dense(3)\n}\n";
    let g = graph("odd.net", source);
    let err = export(&g, &weights(&g), 1).expect_err("no ONNX form");
    let ExportError::Layers(diags) = &err else { panic!("{err:?}") };
    assert_eq!(diags.len(), 2, "{err}");
    let text = netc_dsl::diag::render_all(diags, "odd.net", source);
    for part in [
        "layer `lrn1` (`lrn`)",
        "even size (4)",
        "layer `pool1` (`adaptive_avg_pool`)",
        "uneven",
        "odd.net:3",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
}

#[test]
fn weights_that_do_not_fit_are_an_error() {
    let g = graph("lenet5", &read("cli/models/lenet5.net"));
    let mut w = weights(&g);
    w.remove("fc3.bias");
    w.insert("conv1.weight".into(), vec![0.0; 3]);
    let err = export(&g, &w, 1).expect_err("bad weights").to_string();
    assert!(
        err.contains("`fc3.bias` is missing") && err.contains("`conv1.weight` holds 3 values"),
        "{err}"
    );
}
