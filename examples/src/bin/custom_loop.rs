//! A training loop of one's own, around the generated LeNet-5: the forward
//! and backward passes, then the update, with a learning rate decayed by
//! hand and the gradients' norm watched; held-out accuracy after each
//! epoch; the weights saved at the end.
//!
//! `cargo run --release --bin custom_loop -- [out.safetensors]`

use netc::runtime::nn::Optimizer;
use netc::runtime::optim::Sgd;
use netc_examples::lenet5::LeNet5;
use netc_examples::{argmax, digits};

const BATCH: usize = 32;

fn main() -> Result<(), netc::runtime::Error> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "lenet5.safetensors".into());
    let (train_x, train_y) = digits(1024, 10, 1);
    let (test_x, test_y) = digits(256, 10, 2);
    let mut model = LeNet5::with_capacity(7, BATCH);
    let mut opt = Optimizer::Sgd(Sgd { momentum: 0.9, ..Sgd::new(0.05) });
    for epoch in 0..3 {
        let (mut loss_sum, mut norm_sum) = (0.0, 0.0);
        for (x, y) in train_x.chunks(BATCH).zip(train_y.chunks(BATCH)) {
            model.forward_train(x)?;
            loss_sum += model.backward(y)?;
            // Between backward and the update, the gradients are there to
            // inspect (or change, through a clipping of one's own).
            let grads = model.grads().expect("a backward pass ran");
            norm_sum +=
                grads.tensors().iter().flat_map(|t| t.iter()).map(|g| g * g).sum::<f32>().sqrt();
            model.apply_gradients(&opt)?;
        }
        let batches = train_x.len().div_ceil(BATCH) as f32;
        println!(
            "epoch {epoch}: lr {}, loss {:.4}, mean gradient norm {:.3}, held-out accuracy {:.1}%",
            opt.lr(),
            loss_sum / batches,
            norm_sum / batches,
            100.0 * accuracy(&model, &test_x, &test_y)?
        );
        opt.set_lr(opt.lr() * 0.5);
    }
    model.save(&out)?;
    println!("saved {out}");
    Ok(())
}

/// The share of `x` whose largest output is its label.
fn accuracy(model: &LeNet5, x: &[[f32; 784]], y: &[u32]) -> Result<f32, netc::runtime::Error> {
    let mut out = vec![[0.0f32; 10]; x.len()];
    model.forward(x, &mut out)?;
    let right = out.iter().zip(y).filter(|(o, &l)| argmax(&o[..]) == l as usize).count();
    Ok(right as f32 / x.len() as f32)
}
