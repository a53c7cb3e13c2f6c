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
//! where one draw crossed one). A tensor whose exact value is zero up to
//! rounding is reported as noise (see `Check::rounding_residue`). Only
//! tensors that these do not explain fail the run; a bug moves a gradient
//! by far more.
//!
//! The model is made with seed 0, so its first step's dropout and
//! stochastic-depth masks are those `parity.py` gives PyTorch
//! (`bench/peers/masks.py`).
//!
//! `cargo run --release -p netc-tests --example parity -- MODEL DIR`; with
//! `NETC_PARITY_DUMP` set it also writes netc's logits and gradients to
//! `DIR/MODEL.netc.safetensors`, to look at a failure element by element.

use netc::runtime::nn::Optimizer;
use netc::runtime::optim::Sgd;
use netc::runtime::weights::WeightsFile;
use std::path::Path;

use netc_tests::nets::alexnet;
use netc_tests::nets::autoencoder;
use netc_tests::nets::densenet121;
use netc_tests::nets::efficientnet_b0;
use netc_tests::nets::googlenet;
use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::mobilenet_v2;
use netc_tests::nets::mobilenet_v3_small;
use netc_tests::nets::resnet20;
use netc_tests::nets::resnet50;
use netc_tests::nets::squeezenet1_1;

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

    /// A tensor whose exact value is zero up to rounding (PyTorch's own
    /// float32 result is further from float64 than float64's largest
    /// value), such as the running mean of a batch norm after a bias-free
    /// conv of normalised inputs: two float32 summation orders leave
    /// residues of different size, so netc passes within ten times
    /// PyTorch's.
    fn rounding_residue(&self) -> bool {
        self.vs_exact.is_some_and(|e| e.pytorch > 1.0 && e.netc <= 10.0 * e.pytorch)
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
        } else if c.rounding_residue() {
            "noise"
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
        "{model}: {} tensors compared, worst {worst:.2e}; {over} over tolerance, {} of them at a kink or rounding residue, {failed} failed",
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
    // A classifier: cross-entropy on the labels.
    ($ty:ty, $name:expr, $dir:expr) => {
        parity!(@run $ty, $name, $dir, |model: &mut $ty, _x: &[f32], labels: &[u32]| model.backward(labels))
    };
    // An autoencoder: its loss (mse) against the input itself.
    (reconstruct $ty:ty, $name:expr, $dir:expr) => {
        parity!(@run $ty, $name, $dir, |model: &mut $ty, x: &[f32], _labels: &[u32]| {
            model.backward(x.as_chunks::<{ <$ty>::OUTPUT_LEN }>().0)
        })
    };
    (@run $ty:ty, $name:expr, $dir:expr, $backward:expr) => {{
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
        let loss = ($backward)(&mut model, &x, &labels).expect("backward");
        let mut checks = vec![
            Check::new("logits", &logits, 1e-4, &mut expected),
            Check::new("loss", &[loss], 1e-4, &mut expected),
        ];
        let mut grads = Vec::new();
        model.grads().expect("gradients after a backward pass").visit(|name, _, g| grads.push((format!("grad.{name}"), g.to_vec())));
        if std::env::var_os("NETC_PARITY_DUMP").is_some() {
            let mut all: Vec<(String, Vec<usize>, &[f32])> =
                vec![("logits".into(), vec![logits.len()], &logits[..])];
            all.extend(grads.iter().map(|(k, g)| (k.clone(), vec![g.len()], &g[..])));
            let path = dir.join(format!("{}.netc.safetensors", $name));
            netc::runtime::weights::save(&path, &all).expect("dump");
        }
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
        "alexnet" => parity!(alexnet::AlexNet, "alexnet", dir),
        "resnet50" => parity!(resnet50::ResNet50, "resnet50", dir),
        "densenet121" => parity!(densenet121::DenseNet121, "densenet121", dir),
        "mobilenet_v2" => parity!(mobilenet_v2::MobileNetV2, "mobilenet_v2", dir),
        "mobilenet_v3_small" => {
            parity!(mobilenet_v3_small::MobileNetV3Small, "mobilenet_v3_small", dir)
        }
        "squeezenet1_1" => parity!(squeezenet1_1::SqueezeNet11, "squeezenet1_1", dir),
        "googlenet" => parity!(googlenet::GoogLeNet, "googlenet", dir),
        "autoencoder" => parity!(reconstruct autoencoder::Autoencoder, "autoencoder", dir),
        "efficientnet_b0" => parity!(efficientnet_b0::EfficientNetB0, "efficientnet_b0", dir),
        other => {
            eprintln!("unknown model `{other}`");
            2
        }
    };
    std::process::exit(i32::from(failed > 0));
}
