//! `netc run`: compiled code on a batch from a safetensors file.
//!
//! - Inference: an ONNX fixture imported with `--loss`, run on the input
//!   saved beside it, gives onnxruntime's saved logits.
//! - Training: one SGD step's change of the weights, `d`, is checked
//!   against the f64 interpreter's loss by central differences along `d`
//!   itself: the step is `-lr` times the gradient exactly when the slope
//!   of the loss along `d` is `-|d|²/lr`. The step's reported loss is the
//!   interpreter's at the starting weights.
//! - Bad input is an error naming the tensor.

mod common;
use common::{netc, root, scratch, tensors};
use netc_dsl::interp::{self, Mode, Weights};
use std::path::Path;

fn ok(args: &[&Path]) -> String {
    let out = netc(args);
    assert!(out.status.success(), "netc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(args: &[&Path]) -> String {
    let out = netc(args);
    assert!(!out.status.success(), "netc {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// `input` (f32) and `labels` (i64) as a safetensors file at `path`.
fn write_inputs(path: &Path, input: (&[usize], &[f32]), labels: Option<&[i64]>) {
    use safetensors::{tensor::TensorView, Dtype};
    let input_bytes: Vec<u8> = input.1.iter().flat_map(|v| v.to_le_bytes()).collect();
    let label_bytes: Vec<u8> = labels.unwrap_or(&[]).iter().flat_map(|l| l.to_le_bytes()).collect();
    let mut views = vec![(
        "input",
        TensorView::new(Dtype::F32, input.0.to_vec(), &input_bytes).expect("a tensor"),
    )];
    if let Some(labels) = labels {
        let view = TensorView::new(Dtype::I64, vec![labels.len()], &label_bytes).expect("a tensor");
        views.push(("labels", view));
    }
    safetensors::serialize_to_file(views, &None, path).expect("write inputs");
}

fn tensor<'a>(all: &'a [(String, Vec<f32>)], name: &str) -> &'a [f32] {
    &all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor `{name}`")).1
}

#[test]
fn an_imported_model_runs_as_onnxruntime_ran_it() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("lenet5.net");
    let fixture = root().join("tests/onnx/lenet5.onnx");
    let said = ok(&[p("import"), &fixture, p("-o"), &net, p("--loss"), p("cross-entropy")]);
    assert!(said.contains("wrote"), "{said}");
    let source = std::fs::read_to_string(&net).expect("the .net file");
    assert!(source.contains("loss cross_entropy("), "{source}");

    let io = tensors(&root().join("tests/onnx/lenet5.io.safetensors"));
    let (x_name, x) = io.iter().find(|(n, _)| n != "output").expect("an input");
    let want = tensor(&io, "output");
    let batch = x.len() / 784;
    let inputs = dir.join("inputs.safetensors");
    write_inputs(&inputs, (&[batch, 1, 28, 28], x), None);
    let out = dir.join("out.safetensors");
    let weights = dir.join("lenet5.safetensors");
    let said =
        ok(&[p("run"), &net, p("--weights"), &weights, p("--inputs"), &inputs, p("-o"), &out]);
    assert!(said.contains(&format!("ran {batch} samples")), "{said}");
    let got = tensors(&out);
    let got = tensor(&got, "output");
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs() / scale).fold(0.0, f32::max);
    assert!(worst < 1e-5, "input `{x_name}`: compiled vs onnxruntime {worst:.1e}");
}

/// A small network with batch norm, so that the step's forward pass runs
/// on batch statistics.
const NET: &str = "network Small {\n    input x: [2, 6, 6]\n    \
    logits = x -> conv2d(4, kernel: 3) -> batch_norm -> relu -> flatten -> dense(3)\n    \
    loss cross_entropy(logits)\n}\n";

fn interpreter_loss(g: &netc_dsl::Graph, w: &Weights, x: &[f64], labels: &[u32]) -> f64 {
    let outputs = interp::run(g, w, &[x], labels.len(), Mode::Train).expect("runs");
    interp::loss(g, &outputs, labels.len(), labels, &[]).expect("a loss")
}

#[test]
fn a_training_step_moves_the_weights_down_the_interpreters_gradient() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("small.net");
    std::fs::write(&net, NET).expect("write");
    let (batch, lr) = (5usize, 0.05f64);
    let x: Vec<f32> = (0..batch * 72).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 3).collect();
    let inputs = dir.join("inputs.safetensors");
    write_inputs(&inputs, (&[batch, 2, 6, 6], &x), Some(&labels));
    let (before, after, out) =
        (dir.join("before.safetensors"), dir.join("after.safetensors"), dir.join("out.st"));
    // Zero steps save the starting weights (the network's own, seed 3).
    ok(&[
        p("run"),
        &net,
        p("--inputs"),
        &inputs,
        p("-o"),
        &out,
        p("--seed"),
        p("3"),
        p("--save"),
        &before,
    ]);
    let lr_text = lr.to_string();
    let said = ok(&[
        p("run"),
        &net,
        p("--weights"),
        &before,
        p("--inputs"),
        &inputs,
        p("-o"),
        &out,
        p("--train-steps"),
        p("1"),
        p("--optimizer"),
        p("sgd"),
        p("--lr"),
        p(&lr_text),
        p("--save"),
        &after,
    ]);
    assert!(said.contains("1 training steps"), "{said}");

    let checked = netc_dsl::check_source("small", NET).expect("checks");
    let g = &checked.graphs[0];
    // Every float tensor (batch norm's step counters are int64).
    let as_f64 = |path: &Path| -> Weights {
        let bytes = std::fs::read(path).expect("a weights file");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        file.tensors()
            .into_iter()
            .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
            .map(|(n, t)| {
                let values = t.data().as_chunks().0.iter().map(|&b| f32::from_le_bytes(b).into());
                (n, values.collect())
            })
            .collect()
    };
    let (w0, w1) = (as_f64(&before), as_f64(&after));
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let classes: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let loss0 = interpreter_loss(g, &w0, &x64, &classes);
    let reported = f64::from(tensor(&tensors(&out), "loss")[0]);
    assert!((reported - loss0).abs() < 1e-5 * loss0.abs(), "loss {reported} vs {loss0}");

    // The learned tensors' change; the running statistics move by their
    // momentum, not by the gradient.
    let learned = |n: &str| !n.contains("running_");
    let d: Weights = w0
        .iter()
        .filter(|(n, _)| learned(n))
        .map(|(n, v)| (n.clone(), v.iter().zip(&w1[n]).map(|(a, b)| b - a).collect()))
        .collect();
    let squared: f64 = d.values().flatten().map(|v| v * v).sum();
    assert!(squared > 0.0, "the step changed nothing");
    let along = |t: f64| -> Weights {
        w0.iter()
            .map(|(n, v)| match d.get(n) {
                Some(dv) => (n.clone(), v.iter().zip(dv).map(|(a, b)| a + t * b).collect()),
                None => (n.clone(), v.clone()),
            })
            .collect()
    };
    let h = 1e-3;
    let slope = (interpreter_loss(g, &along(h), &x64, &classes)
        - interpreter_loss(g, &along(-h), &x64, &classes))
        / (2.0 * h);
    let want = -squared / lr;
    assert!(
        (slope - want).abs() < 2e-3 * want.abs(),
        "the loss's slope along the step is {slope:e}; a step of -lr times the gradient gives {want:e}"
    );
    for name in ["bn1.running_mean", "bn1.running_var"] {
        let moved = w0.get(name).zip(w1.get(name)).is_some_and(|(a, b)| a != b);
        assert!(moved, "`{name}` did not take the batch's statistics");
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_tensor() {
    let folder = scratch();
    let dir = folder.path();
    let net = dir.join("small.net");
    std::fs::write(&net, NET).expect("write");
    let out = dir.join("out.safetensors");
    let run = |inputs: &Path, extra: &[&Path]| {
        err(&[&[p("run"), &net, p("--inputs"), inputs, p("-o"), &out][..], extra].concat())
    };

    let wrong_shape = dir.join("wrong.safetensors");
    write_inputs(&wrong_shape, (&[2, 6, 6, 2], &[0.0; 144]), None);
    let said = run(&wrong_shape, &[]);
    assert!(said.contains("tensor `input`") && said.contains("[batch, 2, 6, 6]"), "{said}");

    let no_labels = dir.join("no-labels.safetensors");
    write_inputs(&no_labels, (&[2, 2, 6, 6], &[0.5; 144]), None);
    let said = run(&no_labels, &[p("--train-steps"), p("1")]);
    assert!(said.contains("no tensor `labels`"), "{said}");

    let out_of_range = dir.join("range.safetensors");
    write_inputs(&out_of_range, (&[2, 2, 6, 6], &[0.5; 144]), Some(&[0, 3]));
    let said = run(&out_of_range, &[p("--train-steps"), p("1")]);
    assert!(said.contains("label 3 of sample 1"), "{said}");

    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\0\0\0\0\0\0\0{not json}").expect("write");
    let said = run(&corrupt, &[]);
    assert!(said.contains("not a valid safetensors file"), "{said}");
    assert!(!out.exists(), "a failed run wrote its output");
}
