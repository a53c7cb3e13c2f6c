//! Importers of models made by other frameworks, each writing a `.net`
//! source and the weights under the names that source's layers give them.

pub mod caffe;
pub mod onnx;
