//! Checks netc against PyTorch on one zoo model: loads the initial weights
//! and the batch that `bench/peers/parity.py` wrote, runs one training step
//! (forward, loss, backward, SGD with momentum), and prints the largest
//! relative error of the logits, the loss, every gradient and every weight
//! after the step. Exits non-zero past the tolerances (1e-4 for logits and
//! loss, 1e-3 for gradients and updated weights).
//!
//! `cargo run --release -p netc-tests --example parity -- MODEL DIR`

use netc::runtime::nn::Optimizer;
use netc::runtime::optim::Sgd;
use netc::runtime::weights::WeightsFile;
use std::path::Path;

use netc_tests::nets::alexnet_nodrop;
use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::resnet20;

/// `max |a − b| / max |b|` over a tensor.
fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-12);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs()))) / scale
}

fn read(file: &mut WeightsFile, name: &str) -> Vec<f32> {
    let shape = file.shape(name).unwrap_or_else(|| panic!("expected file has no `{name}`"));
    let mut v = vec![0.0; shape.iter().product()];
    file.read_into(name, &shape, &mut v).unwrap_or_else(|e| panic!("{e}"));
    v
}

macro_rules! parity {
    ($ty:ty, $name:expr, $dir:expr) => {{
        let dir = Path::new($dir);
        let mut expected = WeightsFile::open(&dir.join(format!("{}.expected.safetensors", $name)))
            .expect("expected file");
        let x = read(&mut expected, "x");
        let labels: Vec<u32> = read(&mut expected, "labels").iter().map(|&l| l as u32).collect();
        let n = labels.len();
        let mut model = <$ty>::with_capacity(0, n);
        model.load(dir.join(format!("{}.init.safetensors", $name))).expect("initial weights");
        let logits = model
            .forward_train(x.as_chunks::<{ <$ty>::INPUT_LEN }>().0)
            .expect("forward")
            .as_flattened()
            .to_vec();
        let loss = model.backward(&labels).expect("backward");
        let mut rows =
            vec![("logits".to_string(), rel_error(&logits, &read(&mut expected, "logits")), 1e-4)];
        rows.push(("loss".to_string(), rel_error(&[loss], &read(&mut expected, "loss")), 1e-4));
        let mut grads = Vec::new();
        model.grads.visit(|name, _, g| grads.push((name.to_string(), g.to_vec())));
        for (name, g) in &grads {
            let key = format!("grad.{name}");
            if expected.shape(&key).is_some() {
                rows.push((key.clone(), rel_error(g, &read(&mut expected, &key)), 1e-3));
            }
        }
        let opt =
            Optimizer::Sgd(Sgd { lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0.0 });
        model.apply_gradients(&opt).expect("update");
        let mut after = Vec::new();
        model.params().visit(|name, _, v| after.push((name.to_string(), v.to_vec())));
        for (name, v) in &after {
            let key = format!("after.{name}");
            rows.push((key.clone(), rel_error(v, &read(&mut expected, &key)), 1e-3));
        }
        let mut failed = 0;
        for (what, err, tol) in &rows {
            let ok = err <= tol;
            failed += usize::from(!ok);
            println!(
                "{:<6} {:<48} max relative error {:.2e} (tolerance {:.0e})",
                if ok { "ok" } else { "FAIL" },
                what,
                err,
                tol
            );
        }
        let worst = rows.iter().map(|r| r.1).fold(0.0f64, f64::max);
        println!(
            "{}: {} tensors compared, {} over tolerance, worst {:.2e}",
            $name,
            rows.len(),
            failed,
            worst
        );
        failed
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, dir) = (
        args.get(1).map(String::as_str).unwrap_or("lenet5"),
        args.get(2).map(String::as_str).unwrap_or("."),
    );
    let failed = match model {
        "mlp" => parity!(mlp::Mlp, "mlp", dir),
        "lenet5" => parity!(lenet5::LeNet5, "lenet5", dir),
        "resnet20" => parity!(resnet20::ResNet20, "resnet20", dir),
        "alexnet" => parity!(alexnet_nodrop::AlexNetNoDrop, "alexnet", dir),
        other => {
            eprintln!("unknown model `{other}`");
            2
        }
    };
    std::process::exit(i32::from(failed > 0));
}
