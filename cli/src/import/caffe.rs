//! `netc import deploy.prototxt [--weights model.caffemodel]`: a Caffe net
//! to a `.net` source, and its trained weights to a safetensors file beside
//! it when a caffemodel is given. Without one, only the `.net` file is
//! written: the network then starts from its own initialisation, as a net
//! trained from scratch in Caffe does. On any error nothing is written.

use super::{network_name, Args};
use crate::fail;
use netc_dsl::import::caffe;
use std::path::Path;
use std::process::ExitCode;

/// A `.prototxt` (or `.pbtxt`) by name; otherwise, a file of text is taken
/// for Caffe's text format and anything else for ONNX's binary one.
pub(super) fn is_prototxt(file: &Path, bytes: &[u8]) -> bool {
    match file.extension().and_then(|e| e.to_str()) {
        Some("prototxt" | "pbtxt") => true,
        Some("onnx") => false,
        _ => std::str::from_utf8(bytes).is_ok(),
    }
}

pub(super) fn run(args: &Args, bytes: &[u8], net_path: &Path) -> ExitCode {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return fail(format!(
            "{}: a prototxt is text, and this file is not UTF-8",
            args.file.display()
        ));
    };
    // A prototxt names its net (`LeNet`), where its file is often `deploy`.
    let name = args.name.clone().unwrap_or_else(|| {
        let from_net = caffe::net_name(text).map(|n| network_name(Path::new(&n)));
        from_net.unwrap_or_else(|| network_name(&args.file))
    });
    let name = name.as_str();
    let model = match &args.weights {
        Some(path) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
        },
        None => None,
    };
    let options = caffe::Options { input_shape: args.input_shape.clone() };
    let imported = match caffe::import(text, model.as_deref(), name, &options) {
        Ok(i) => i,
        Err(caffe::CaffeError::Malformed(e)) => {
            let path = args.weights.as_deref().unwrap_or(&args.file);
            return fail(format!("{}: {e}", path.display()));
        }
        Err(e @ caffe::CaffeError::Syntax(_)) => {
            return fail(format!("{}:{e}", args.file.display()))
        }
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    super::write(&imported, name, net_path, model.is_some())
}
