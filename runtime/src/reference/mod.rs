//! Naive, obviously correct kernels: the oracle every fast kernel is tested
//! against. They favour clarity over speed, accumulate in f64 where it
//! matters, and follow PyTorch's semantics. One file per op family.

mod act;
pub mod conv;
mod dropout;
mod gemm;
mod layout;
mod loss;
mod norm;
mod optim;
mod pool;
mod upsample;

pub use act::{
    activation_backward, activation_forward, bias_add_act, erf, erfc, gated, gated_derivative,
    log_softmax, log_softmax_backward, prelu, prelu_backward, softmax, softmax_backward,
};
pub use dropout::stochastic_depth;
pub use gemm::gemm;
pub use layout::{mul_channels, mul_channels_backward, permute};
pub use loss::{
    bce_with_logits, huber, mse, smooth_l1, softmax_cross_entropy, softmax_cross_entropy_with,
};
pub use norm::{
    batch_norm_backward, batch_norm_inference, batch_norm_train, group_norm, group_norm_backward,
    layer_norm, layer_norm_backward, lrn, lrn_backward, lrn_scale, BatchNormTrain,
};
pub use optim::{adam_step, clip_grad_norm, sgd_step};
pub use pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward,
    global_avg_pool, global_avg_pool_backward, max_pool2d, max_pool2d_backward,
};
pub use upsample::{upsample2d, upsample2d_backward};
