//! Fine-tuning: a five-class head on LeNet-5 weights saved earlier (by
//! `custom_loop`, or the weights embedded in this crate). Every tensor but
//! the head's loads; the head, whose shape differs, keeps its fresh
//! initialisation; then the whole network trains on the new task.
//!
//! `cargo run --release --bin fine_tune -- [lenet5.safetensors]`

use netc::runtime::weights::LoadOptions;
use netc_examples::lenet5::LeNet5;
use netc_examples::lenet5_five::LeNet5Five;
use netc_examples::{argmax, digits};

fn main() -> Result<(), netc::runtime::Error> {
    let mut model = LeNet5Five::new(11);
    let options = LoadOptions::strict().skip_mismatched();
    let report = match std::env::args().nth(1) {
        Some(path) => model.load_with(&path, &options)?,
        None => model.load_bytes_with(LeNet5::EMBEDDED_WEIGHTS, &options)?,
    };
    println!("loaded: {report}");

    let (x, y) = digits(512, 5, 3);
    let (test_x, test_y) = digits(256, 5, 4);
    let opt = LeNet5Five::default_optimizer().expect("the file names an optimizer");
    println!("before: held-out accuracy {:.1}%", 100.0 * accuracy(&model, &test_x, &test_y)?);
    for epoch in 0..2 {
        let mut loss = 0.0;
        for (x, y) in x.chunks(32).zip(y.chunks(32)) {
            loss += model.train_step(x, y, &opt)?;
        }
        println!(
            "epoch {epoch}: loss {:.4}, held-out accuracy {:.1}%",
            loss / 16.0,
            100.0 * accuracy(&model, &test_x, &test_y)?
        );
    }
    Ok(())
}

fn accuracy(model: &LeNet5Five, x: &[[f32; 784]], y: &[u32]) -> Result<f32, netc::runtime::Error> {
    let mut out = vec![[0.0f32; 5]; x.len()];
    model.forward(x, &mut out)?;
    let right = out.iter().zip(y).filter(|(o, &l)| argmax(&o[..]) == l as usize).count();
    Ok(right as f32 / x.len() as f32)
}
