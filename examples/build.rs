//! Compiles the networks the examples use. LeNet-5 carries weights trained
//! on the digits the examples draw, embedded in its code, so that `serve`
//! needs no file at run time; ResNet-18 and AlexNet are for
//! `inference_memory`.

fn main() {
    let built = netc_dsl::Builder::new()
        .embed_weights("../cli/models/lenet5.net", "weights/lenet5.safetensors")
        .compile(&[
            "../cli/models/lenet5.net",
            "models/lenet5_five.net",
            "../cli/models/resnet18.net",
            "../cli/models/alexnet.net",
        ]);
    if let Err(e) = built {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
