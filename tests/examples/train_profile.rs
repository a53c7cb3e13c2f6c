//! Runs training steps of one zoo model for profiling:
//! `cargo run --release -p netc-tests --example train_profile -- resnet20 [steps]`.

use netc_tests::nets::lenet5;
use netc_tests::nets::resnet20;

fn main() {
    let model = std::env::args().nth(1).unwrap_or_else(|| "resnet20".into());
    let steps: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let start = std::time::Instant::now();
    match model.as_str() {
        "lenet5" => {
            let mut m = lenet5::LeNet5::with_capacity(1, 64);
            let x: Vec<[f32; 784]> =
                (0..64).map(|s| std::array::from_fn(|i| ((i + s) % 17) as f32 / 17.0)).collect();
            let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
            let opt = lenet5::LeNet5::default_optimizer().expect("optimizer");
            for _ in 0..steps {
                m.train_step(&x, &labels, &opt).expect("step");
            }
        }
        _ => {
            let mut m = resnet20::ResNet20::with_capacity(1, 64);
            let x: Vec<[f32; 3072]> =
                (0..64).map(|s| std::array::from_fn(|i| ((i + s) % 17) as f32 / 17.0)).collect();
            let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
            let opt = resnet20::ResNet20::default_optimizer().expect("optimizer");
            for _ in 0..steps {
                m.train_step(&x, &labels, &opt).expect("step");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{model}: {steps} steps in {secs:.2} s, {:.1} ms/step", 1e3 * secs / steps as f64);
}
