//! Checks netc against PyTorch on one zoo model: loads the initial weights
//! and the batch that `bench/peers/parity.py` wrote, runs one training step
//! (forward, loss, backward, SGD with momentum), and prints, for the logits,
//! the loss, every gradient and every weight after the step, the largest
//! relative error against PyTorch's float32 result (tolerances 1e-4 for
//! logits and loss, 1e-3 for gradients and updated weights).
//!
//! ReLU and max-pool make a gradient jump where an input sits on a kink or
//! a tie, and float32 rounding decides which side a framework lands on. So
//! when `parity.py` also wrote the float64 result (`exact.*`) and how far a
//! 1e-6 perturbation of the batch moves it (`jump.*`), a tensor over its
//! tolerance is reported as a kink when netc's distance from the float64
//! result is within twice the larger of that jump and PyTorch float32's own
//! distance from float64 (twice: another rounding may cross two kinks
//! where one draw crossed one). Only tensors that this does not explain
//! fail the run; a bug moves a gradient by far more.
//!
//! `cargo run --release -p netc-tests --example parity -- MODEL DIR`

use netc::runtime::nn::Optimizer;
use netc::runtime::optim::Sgd;
use netc::runtime::weights::WeightsFile;
use std::path::Path;

use netc_tests::nets::alexnet_nodrop;
use netc_tests::nets::densenet121;
use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::resnet20;
use netc_tests::nets::resnet50;

/// `max |a − b| / max |b|` over a tensor.
fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-12);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs()))) / scale
}

/// One compared tensor.
struct Check {
    key: String,
    tolerance: f64,
    /// Against PyTorch float32.
    vs_pytorch: f64,
    /// Against PyTorch float64, when the file has it.
    vs_exact: Option<AgainstExact>,
}

/// Distances from the float64 step, and how far that step itself moves
/// under a 1e-6 nudge of the batch.
#[derive(Clone, Copy)]
struct AgainstExact {
    netc: f64,
    pytorch: f64,
    jump: f64,
}

impl Check {
    fn new(key: &str, netc: &[f32], tolerance: f64, expected: &mut WeightsFile) -> Check {
        let pytorch = read(expected, key);
        let exact_key = format!("exact.{key}");
        let vs_exact = expected.shape(&exact_key).is_some().then(|| {
            let exact = read(expected, &exact_key);
            AgainstExact {
                netc: rel_error(netc, &exact),
                pytorch: rel_error(&pytorch, &exact),
                jump: f64::from(read(expected, &format!("jump.{key}"))[0]),
            }
        });
        Check { key: key.to_string(), tolerance, vs_pytorch: rel_error(netc, &pytorch), vs_exact }
    }

    fn within_tolerance(&self) -> bool {
        self.vs_pytorch <= self.tolerance
    }

    /// Over tolerance, but no further from float64 than float32 rounding
    /// moves the gradient at a kink (see the module comment).
    fn at_kink(&self) -> bool {
        self.vs_exact.is_some_and(|e| e.netc <= 2.0 * e.pytorch.max(e.jump).max(self.tolerance))
    }
}

/// Prints one line per tensor and a summary; returns how many tensors
/// failed (over tolerance and not explained by a kink).
fn report(model: &str, checks: &[Check]) -> usize {
    let (mut over, mut failed) = (0, 0);
    for c in checks {
        let verdict = if c.within_tolerance() {
            "ok"
        } else if c.at_kink() {
            "kink"
        } else {
            "FAIL"
        };
        over += usize::from(!c.within_tolerance());
        failed += usize::from(verdict == "FAIL");
        let exact = c.vs_exact.map_or(String::new(), |e| {
            format!(
                "; against float64: netc {:.2e}, PyTorch float32 {:.2e}, jump {:.2e}",
                e.netc, e.pytorch, e.jump
            )
        });
        println!(
            "{verdict:<6} {:<44} {:.2e} against PyTorch (tolerance {:.0e}){exact}",
            c.key, c.vs_pytorch, c.tolerance
        );
    }
    let worst = checks.iter().map(|c| c.vs_pytorch).fold(0.0f64, f64::max);
    println!(
        "{model}: {} tensors compared, worst {worst:.2e}; {over} over tolerance, {} of them at a kink, {failed} failed",
        checks.len(),
        over - failed
    );
    failed
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
        let mut checks = vec![
            Check::new("logits", &logits, 1e-4, &mut expected),
            Check::new("loss", &[loss], 1e-4, &mut expected),
        ];
        let mut grads = Vec::new();
        model.grads.visit(|name, _, g| grads.push((format!("grad.{name}"), g.to_vec())));
        for (key, g) in &grads {
            if expected.shape(key).is_some() {
                checks.push(Check::new(key, g, 1e-3, &mut expected));
            }
        }
        let opt = Optimizer::Sgd(Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: None,
        });
        model.apply_gradients(&opt).expect("update");
        let mut after = Vec::new();
        model.params().visit(|name, _, v| after.push((format!("after.{name}"), v.to_vec())));
        for (key, v) in &after {
            checks.push(Check::new(key, v, 1e-3, &mut expected));
        }
        report($name, &checks)
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
        "resnet50" => parity!(resnet50::ResNet50, "resnet50", dir),
        "densenet121" => parity!(densenet121::DenseNet121, "densenet121", dir),
        other => {
            eprintln!("unknown model `{other}`");
            2
        }
    };
    std::process::exit(i32::from(failed > 0));
}
