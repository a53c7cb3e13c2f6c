//! Any bytes given as a training checkpoint to resume from either load
//! the weights, the optimizer state and the run's progress together, or
//! give an error that leaves the model (weights and optimizer state)
//! unchanged: never a panic or an allocation sized by the header.
//! Run: `cargo +nightly fuzz run checkpoint corpus/checkpoint seeds/checkpoint -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netc::runtime::weights::WeightsFile;
use netc_cli::{readers, Model};

mod net {
    netc::network! {
        // Convolution, batch norm (with its buffers) and dense weights,
        // with an optimizer that keeps state.
        network Small {
            input x: [2, 5, 5]
            y = x -> conv2d(3, kernel: 3) as conv -> batch_norm as bn -> relu
                  -> flatten -> dense(4) as fc
            loss cross_entropy(y)
            optimizer sgd(lr: 0.1, momentum: 0.9)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = WeightsFile::from_bytes(data.into(), "checkpoint") else { return };
    let mut model: Box<dyn Model> = Box::new(net::Small::with_capacity(1, 2));
    let before = snapshot(&*model);
    if readers::checkpoint(file, "checkpoint", "Small", &mut *model).is_err() {
        assert!(snapshot(&*model) == before, "a refused checkpoint changed the model");
    }
});

/// The model's tensors and optimizer state, bit for bit.
fn snapshot(model: &dyn Model) -> (Vec<Vec<u32>>, Vec<u32>, u8, u64) {
    let mut tensors = Vec::new();
    model.visit_params(&mut |_, _, v| tensors.push(v.iter().map(|x| x.to_bits()).collect()));
    let (state, kind, step) = model.optimizer_state();
    (tensors, state.iter().map(|x| x.to_bits()).collect(), kind, step)
}
