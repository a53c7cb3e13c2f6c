//! `network!` inline, `network!(file = ...)` and `build.rs` compile the same
//! source to models that give identical outputs and gradients.

mod inline {
    netc::network! {
        // The text of cli/models/mlp.net, inline.
        network Mlp {
            input x: [784]
            logits = x -> dense(512) -> relu
                       -> dense(256) -> relu
                       -> dense(10)
            loss cross_entropy(logits)
            optimizer sgd(lr: 0.05, momentum: 0.9)
        }
    }
}

mod from_file {
    netc::network!(file = "../cli/models/mlp.net");
}

use netc_tests::nets::mlp as from_build;

fn batch(n: usize) -> Vec<[f32; 784]> {
    (0..n).map(|s| std::array::from_fn(|i| ((i * 31 + s * 17) % 97) as f32 / 97.0)).collect()
}

/// Outputs and every gradient of one training step, flattened.
macro_rules! outputs_and_grads {
    ($ty:ty) => {{
        let mut model = <$ty>::with_capacity(42, 4);
        let x = batch(4);
        let logits: Vec<f32> = model.forward_train(&x).expect("forward").as_flattened().to_vec();
        let loss = model.backward(&[1, 3, 5, 7]).expect("backward");
        let mut grads = Vec::new();
        model
            .grads()
            .expect("gradients after a backward pass")
            .visit(|_, _, g| grads.extend_from_slice(g));
        (logits, loss, grads)
    }};
}

#[test]
fn inline_network_has_the_checked_constants() {
    assert_eq!(inline::Mlp::INPUT, [784]);
    assert_eq!(inline::Mlp::OUTPUT, [10]);
    assert_eq!(inline::Mlp::PARAMS, 535_818);
    assert_eq!(inline::Mlp::MACS_PER_SAMPLE, 535_040);
}

#[test]
fn the_three_front_doors_give_identical_models() {
    let a = outputs_and_grads!(inline::Mlp);
    let b = outputs_and_grads!(from_file::Mlp);
    let c = outputs_and_grads!(from_build::Mlp);
    assert_eq!(a, b, "inline and file");
    assert_eq!(b, c, "file and build.rs");
    assert!(a.2.iter().any(|g| *g != 0.0), "gradients are not trivially zero");
}
