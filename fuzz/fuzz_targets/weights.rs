//! Any bytes given as a safetensors checkpoint to a generated model either
//! load whole or give an error that leaves the model unchanged: never a
//! panic, a hang or an allocation sized by the header.
//! Run: `cargo +nightly fuzz run weights -- -max_total_time=600`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod net {
    netc::network! {
        // Convolution, batch norm (with its buffers) and dense weights.
        network Small {
            input x: [2, 5, 5]
            y = x -> conv2d(3, kernel: 3) -> batch_norm -> relu -> flatten -> dense(4)
            loss cross_entropy(y)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut model = net::Small::with_capacity(1, 2);
    let before = snapshot(&model);
    if model.load_bytes(data).is_err() {
        assert!(snapshot(&model) == before, "a refused checkpoint changed the model");
    }
    let _ = net::Small::from_bytes(data);
});

fn snapshot(model: &net::Small) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    model.params().visit(|_, _, v| all.push(v.iter().map(|x| x.to_bits()).collect()));
    all
}
