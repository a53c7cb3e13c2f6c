//! Traces a parity difference: for the worst element of one gradient tensor,
//! prints netc's value, PyTorch's, and the f64 interpreter's central, right
//! and left differences of the loss on the same weights and batch.
//!
//! `cargo run --release -p netc-tests --example fd_probe -- MODEL TENSOR DIR`
//! after `bench/peers/parity.py MODEL DIR`.

use netc::runtime::weights::WeightsFile;
use netc_dsl::interp::{self, Mode, Weights};

use netc_tests::nets::alexnet_nodrop;
use netc_tests::nets::resnet20;

fn read(f: &mut WeightsFile, name: &str) -> Vec<f32> {
    let shape = f.shape(name).unwrap_or_else(|| panic!("no `{name}`"));
    let mut v = vec![0.0; shape.iter().product()];
    f.read_into(name, &shape, &mut v).expect("read");
    v
}

macro_rules! probe {
    ($ty:ty, $model:expr, $file:expr, $tensor:expr, $dir:expr) => {{
        let dir = std::path::Path::new($dir);
        let mut exp = WeightsFile::open(&dir.join(format!("{}.expected.safetensors", $model)))
            .expect("expected");
        let x = read(&mut exp, "x");
        let labels: Vec<u32> = read(&mut exp, "labels").iter().map(|&l| l as u32).collect();
        let n = labels.len();
        let init = dir.join(format!("{}.init.safetensors", $model));
        let mut model = <$ty>::with_capacity(0, n);
        model.load(&init).expect("init");
        model.forward_train(x.as_chunks::<{ <$ty>::INPUT_LEN }>().0).expect("forward");
        model.backward(&labels).expect("backward");
        let mut ours = Vec::new();
        model.grads().expect("gradients after a backward pass").visit(|name, _, g| {
            if name == $tensor {
                ours = g.to_vec();
            }
        });
        let theirs = read(&mut exp, &format!("grad.{}", $tensor));
        let worst = (0..ours.len())
            .max_by(|&a, &b| (ours[a] - theirs[a]).abs().total_cmp(&(ours[b] - theirs[b]).abs()))
            .unwrap_or(0);
        let source = std::fs::read_to_string($file).expect("network file");
        let g = netc_dsl::check_source($file, &source).expect("valid").graphs.remove(0);
        let mut file = WeightsFile::open(&init).expect("init");
        let mut w = Weights::new();
        let mut names = Vec::new();
        model.params().visit(|name, _, _| names.push(name.to_string()));
        for name in &names {
            w.insert(name.clone(), read(&mut file, name).iter().map(|&v| f64::from(v)).collect());
        }
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let loss = |w: &Weights| {
            interp::loss(
                &g,
                &interp::run(&g, w, &[&x64], n, Mode::Train).expect("run"),
                n,
                &labels,
                &[],
            )
            .expect("loss")
        };
        let eps = 1e-5;
        let centre = loss(&w);
        let mut wp = w.clone();
        wp.get_mut($tensor).expect("tensor")[worst] += eps;
        let plus = loss(&wp);
        wp.get_mut($tensor).expect("tensor")[worst] -= 2.0 * eps;
        let minus = loss(&wp);
        println!(
            "{}[{worst}]: netc {:.6e}  pytorch {:.6e}  central {:.6e}  right {:.6e}  left {:.6e}",
            $tensor,
            ours[worst],
            theirs[worst],
            (plus - minus) / (2.0 * eps),
            (plus - centre) / eps,
            (centre - minus) / eps
        );
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, tensor, dir) = (args[1].as_str(), args[2].as_str(), args[3].as_str());
    match model {
        "resnet20" => {
            probe!(resnet20::ResNet20, "resnet20", "cli/models/resnet20.net", tensor, dir)
        }
        _ => probe!(
            alexnet_nodrop::AlexNetNoDrop,
            "alexnet",
            "tests/nets/alexnet_nodrop.net",
            tensor,
            dir
        ),
    }
}
