//! Compiles every zoo model with the `build.rs` API, as a user would.

fn main() {
    let models = [
        "mlp",
        "lenet5",
        "alexnet",
        "resnet20",
        "resnet18",
        "vgg11",
        "resnet50",
        "densenet121",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "squeezenet1_1",
        "googlenet",
        "efficientnet_b0",
        "autoencoder",
    ];
    let mut files: Vec<String> = models.iter().map(|m| format!("../cli/models/{m}.net")).collect();
    // Test networks that exercise every op's backward rule.
    files.extend([
        "nets/smooth.net".to_string(),
        "nets/regression.net".to_string(),
        "nets/pooling.net".to_string(),
        "nets/lenet5_leaky.net".to_string(),
        "nets/alexnet_nodrop.net".to_string(),
        "nets/two_inputs.net".to_string(),
        "nets/gated.net".to_string(),
        "nets/gated_infer.net".to_string(),
        "nets/no_params.net".to_string(),
        "nets/branch.net".to_string(),
        "nets/names.net".to_string(),
        "nets/dense_bn.net".to_string(),
        "nets/dense_block.net".to_string(),
        "nets/modern.net".to_string(),
        "nets/depth.net".to_string(),
        "nets/resample.net".to_string(),
        "nets/decoder.net".to_string(),
        "nets/norms.net".to_string(),
        "nets/shuffle_se.net".to_string(),
        "nets/losses.net".to_string(),
        "nets/train_controls.net".to_string(),
        "../examples/models/lenet5_five.net".to_string(),
    ]);
    // A network with weights in its code, as a user ships a trained model.
    let embedded = netc_dsl::Builder::new()
        .embed_weights("nets/two_inputs.net", "weights/two_inputs.safetensors")
        .compile(&files);
    if let Err(e) = embedded {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
