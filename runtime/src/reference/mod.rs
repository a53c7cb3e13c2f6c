//! Naive, obviously correct kernels: the oracle every fast kernel is tested
//! against. They favour clarity over speed, accumulate in f64 where it
//! matters, and follow PyTorch's semantics. One file per op family.

mod act;
pub mod conv;
mod gemm;
mod loss;
mod optim;

pub use act::{activation_backward, activation_forward, bias_add_act, softmax, softmax_backward};
pub use gemm::gemm;
pub use loss::{mse, softmax_cross_entropy};
pub use optim::{adam_step, sgd_step};
