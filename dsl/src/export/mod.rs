//! Exporters of checked networks to other frameworks' formats, the mirror
//! of [`crate::import`].

pub mod onnx;
