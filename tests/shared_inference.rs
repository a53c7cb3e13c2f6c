//! Inference on one model shared between threads: `forward` takes `&self`,
//! each thread runs in buffers of its own, and the outputs are bit for bit
//! those of one thread alone.

use std::sync::Arc;

use netc_tests::batch;
use netc_tests::nets::{lenet5::LeNet5, resnet20::ResNet20, two_inputs::Two};
use rayon::prelude::*;

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn generated_models_are_send_and_sync() {
    assert_send_sync::<LeNet5>();
    assert_send_sync::<ResNet20>();
    assert_send_sync::<Two>();
    assert_send_sync::<Box<dyn netc::runtime::Model>>();
}

/// Outputs of `model` at each batch in `batches`, computed on this thread.
fn outputs<const I: usize, const O: usize>(
    forward: impl Fn(&[[f32; I]], &mut [[f32; O]]),
    x: &[[f32; I]],
    batches: &[usize],
) -> Vec<Vec<[f32; O]>> {
    batches
        .iter()
        .map(|&n| {
            let mut out = vec![[f32::NAN; O]; n];
            forward(&x[..n], &mut out);
            out
        })
        .collect()
}

/// Four threads share one ResNet-20 (batch norm, Winograd and packed conv
/// weights prepared by whichever thread gets there first) and one LeNet-5
/// (max pooling) through an `Arc`, from their very first call, at batches
/// that pick different conv algorithms.
#[test]
fn four_threads_share_one_model_bit_for_bit() {
    let batches = [1, 3, 8, 1, 5];
    let x = batch::<3072>(8, 21);
    let want = outputs(|x, out| ResNet20::new(4).forward(x, out).unwrap(), &x, &batches);
    let digits = batch::<784>(8, 22);
    let want_digits = outputs(|x, out| LeNet5::new(5).forward(x, out).unwrap(), &digits, &batches);

    let (resnet, lenet) = (Arc::new(ResNet20::new(4)), Arc::new(LeNet5::new(5)));
    let (x, digits) = (Arc::new(x), Arc::new(digits));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (resnet, lenet, x, digits) =
                (Arc::clone(&resnet), Arc::clone(&lenet), Arc::clone(&x), Arc::clone(&digits));
            std::thread::spawn(move || {
                // Each thread starts at another batch, so the threads'
                // first calls prepare different forms of the weights.
                let mine: Vec<usize> =
                    (0..batches.len()).map(|i| batches[(i + t) % batches.len()]).collect();
                let got = outputs(|x, out| resnet.forward(x, out).unwrap(), &x, &mine);
                let got_digits = outputs(|x, out| lenet.forward(x, out).unwrap(), &digits, &mine);
                (mine, got, got_digits)
            })
        })
        .collect();
    for handle in threads {
        let (mine, got, got_digits) = handle.join().expect("an inference thread panicked");
        for ((n, got), got_digits) in mine.iter().zip(got).zip(got_digits) {
            let i = batches.iter().position(|b| b == n).expect("a batch of the list");
            assert!(got == want[i], "ResNet-20 at batch {n} on a shared model differs");
            assert!(got_digits == want_digits[i], "LeNet-5 at batch {n} on a shared model differs");
        }
    }
}

/// Inference called from inside the pool its kernels run on (a caller's
/// `par_iter`): a pool thread waiting for its own pass may pick up another
/// sample's pass, which must neither wait on the first nor share its
/// buffers.
#[test]
fn inference_inside_the_pool_it_runs_on() {
    let model = ResNet20::new(6);
    let x = batch::<3072>(12, 23);
    let want: Vec<[f32; 10]> = x
        .iter()
        .map(|s| {
            let mut out = [[0.0; 10]];
            model.forward(std::slice::from_ref(s), &mut out).unwrap();
            out[0]
        })
        .collect();
    let fresh = ResNet20::new(6);
    let got: Vec<[f32; 10]> = x
        .par_iter()
        .map(|s| {
            let mut out = [[0.0; 10]];
            fresh.forward(std::slice::from_ref(s), &mut out).unwrap();
            out[0]
        })
        .collect();
    assert!(got == want, "per-sample inference inside the pool differs");
}

/// A model used only for inference never allocates gradients, optimizer
/// state or training buffers; its first training step does.
#[test]
fn inference_allocates_no_training_state() {
    let mut model = ResNet20::with_capacity(7, 4);
    let x = batch::<3072>(4, 24);
    let mut out = vec![[0.0f32; 10]; 4];
    model.forward(&x, &mut out).unwrap();
    let usage = model.memory_usage();
    assert_eq!(
        usage.params,
        4 * netc_tests::nets::resnet20::ResNet20Params::TENSORS
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>()
    );
    assert_eq!((usage.grads, usage.optimizer, usage.training), (0, 0, 0), "{usage:?}");
    assert!(usage.prepared > 0, "the convs' prepared weights: {usage:?}");
    assert!(model.grads().is_none());

    let opt = ResNet20::default_optimizer().expect("optimizer");
    model.train_step(&x, &[1, 2, 3, 4], &opt).unwrap();
    let usage = model.memory_usage();
    assert_eq!(usage.grads, usage.params, "{usage:?}");
    assert!(usage.optimizer > 0 && usage.training > 0, "{usage:?}");
    // The update changed the weights: the prepared forms are gone.
    assert_eq!(usage.prepared, 0, "{usage:?}");
}

/// Without kept prepared weights, inference holds nothing beyond the
/// parameters and gives the same outputs to rounding (im2col in place of
/// Winograd), at batches that pick Winograd and one-sample GEMMs.
#[test]
fn lean_inference_gives_the_same_outputs() {
    let x = batch::<3072>(8, 25);
    let kept = ResNet20::new(8);
    let mut lean = ResNet20::new(8);
    lean.keep_prepared_weights(false);
    for n in [1, 2, 8] {
        let (mut want, mut got) = (vec![[0.0f32; 10]; n], vec![[0.0f32; 10]; n]);
        kept.forward(&x[..n], &mut want).unwrap();
        lean.forward(&x[..n], &mut got).unwrap();
        for (g, w) in got.as_flattened().iter().zip(want.as_flattened()) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "batch {n}: {got:?} != {want:?}");
        }
    }
    assert!(kept.memory_usage().prepared > 0);
    assert_eq!(lean.memory_usage().prepared, 0);
}
