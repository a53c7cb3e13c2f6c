//! The zoo models `netc train` knows, compiled at build time by build.rs,
//! behind one object-safe interface over flat slices.

use netc_runtime::nn::Optimizer;
use netc_runtime::Error;
use std::path::Path;

mod generated {
    #![allow(clippy::all)]
    pub mod lenet5 {
        include!(concat!(env!("OUT_DIR"), "/lenet5.rs"));
    }
    pub mod mlp {
        include!(concat!(env!("OUT_DIR"), "/mlp.rs"));
    }
    pub mod linear {
        include!(concat!(env!("OUT_DIR"), "/linear.rs"));
    }
    pub mod resnet20 {
        include!(concat!(env!("OUT_DIR"), "/resnet20.rs"));
    }
}

/// A classifier trained on batches of flat samples.
pub trait Classifier {
    fn input_len(&self) -> usize;
    fn classes(&self) -> usize;
    fn params(&self) -> usize;
    fn default_optimizer(&self) -> Option<Optimizer>;
    /// Runs forward and backward, writing the batch's logits into `logits`;
    /// returns the mean loss. The update is a separate call.
    fn forward_backward(
        &mut self,
        x: &[f32],
        labels: &[u32],
        logits: &mut [f32],
    ) -> Result<f32, Error>;
    fn apply_gradients(&mut self, opt: &Optimizer) -> Result<(), Error>;
    fn predict(&mut self, x: &[f32], logits: &mut [f32]) -> Result<(), Error>;
    fn save(&self, path: &Path) -> Result<(), Error>;
    fn load(&mut self, path: &Path) -> Result<(), Error>;
    fn optimizer_state(&self) -> (&[f32], u8, u64);
    fn set_optimizer_state(&mut self, state: &[f32], kind: u8, step: u64) -> Result<(), Error>;
}

macro_rules! classifier {
    ($ty:ty) => {
        impl Classifier for $ty {
            fn input_len(&self) -> usize {
                <$ty>::INPUT_LEN
            }
            fn classes(&self) -> usize {
                <$ty>::OUTPUT_LEN
            }
            fn params(&self) -> usize {
                <$ty>::PARAMS
            }
            fn default_optimizer(&self) -> Option<Optimizer> {
                <$ty>::default_optimizer()
            }
            fn forward_backward(
                &mut self,
                x: &[f32],
                labels: &[u32],
                logits: &mut [f32],
            ) -> Result<f32, Error> {
                let (chunks, rest) = x.as_chunks::<{ <$ty>::INPUT_LEN }>();
                if !rest.is_empty() {
                    return Err(Error::Len(netc_runtime::LenError {
                        op: "train",
                        tensor: "x",
                        expected: x.len() - rest.len(),
                        found: x.len(),
                    }));
                }
                // The pool's other thread stays awake for both passes.
                netc_runtime::nn::awake(move || {
                    let out = self.forward_train(chunks)?;
                    let flat = out.as_flattened();
                    if logits.len() != flat.len() {
                        return Err(Error::Len(netc_runtime::LenError {
                            op: "train",
                            tensor: "logits",
                            expected: flat.len(),
                            found: logits.len(),
                        }));
                    }
                    logits.copy_from_slice(flat);
                    self.backward(labels)
                })
            }
            fn apply_gradients(&mut self, opt: &Optimizer) -> Result<(), Error> {
                <$ty>::apply_gradients(self, opt)
            }
            fn predict(&mut self, x: &[f32], logits: &mut [f32]) -> Result<(), Error> {
                self.forward_flat(x, logits)
            }
            fn save(&self, path: &Path) -> Result<(), Error> {
                <$ty>::save(self, path)
            }
            fn load(&mut self, path: &Path) -> Result<(), Error> {
                <$ty>::load(self, path)
            }
            fn optimizer_state(&self) -> (&[f32], u8, u64) {
                <$ty>::optimizer_state(self)
            }
            fn set_optimizer_state(
                &mut self,
                state: &[f32],
                kind: u8,
                step: u64,
            ) -> Result<(), Error> {
                <$ty>::set_optimizer_state(self, state, kind, step)
            }
        }
    };
}

classifier!(generated::lenet5::LeNet5);
classifier!(generated::mlp::Mlp);
classifier!(generated::linear::Linear);
classifier!(generated::resnet20::ResNet20);

/// The models `netc train` offers, and the data each expects.
pub const NAMES: &[&str] = &["lenet5", "mlp", "linear", "resnet20"];

/// Whether the model takes 3x32x32 CIFAR images (else 28x28 digits).
pub fn wants_cifar(name: &str) -> bool {
    name == "resnet20"
}

/// A new model by name, for batches of up to `capacity` samples.
pub fn create(name: &str, seed: u64, capacity: usize) -> Option<Box<dyn Classifier>> {
    Some(match name {
        "lenet5" => Box::new(generated::lenet5::LeNet5::with_capacity(seed, capacity)),
        "mlp" => Box::new(generated::mlp::Mlp::with_capacity(seed, capacity)),
        "linear" => Box::new(generated::linear::Linear::with_capacity(seed, capacity)),
        "resnet20" => Box::new(generated::resnet20::ResNet20::with_capacity(seed, capacity)),
        _ => return None,
    })
}
