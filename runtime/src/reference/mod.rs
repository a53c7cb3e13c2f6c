//! Naive, obviously correct kernels: the oracle every fast kernel is tested
//! against. They favour clarity over speed, accumulate in f64 where it
//! matters, and follow PyTorch's semantics. One file per op family.

pub mod conv;
mod gemm;

pub use gemm::gemm;
