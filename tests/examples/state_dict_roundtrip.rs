//! Loads a PyTorch `state_dict` (safetensors) into a zoo model strictly and
//! saves it again with netc's `save`, for `bench/peers/strict_load.py` to
//! load back into torchvision with `strict=True`.
//!
//! `cargo run --release -p netc-tests --example state_dict_roundtrip -- MODEL IN OUT`

use netc_tests::nets::{resnet18::ResNet18, vgg11::Vgg11};

macro_rules! roundtrip {
    ($ty:ty, $input:expr, $output:expr) => {{
        let mut model = <$ty>::with_capacity(0, 1);
        model.load($input).unwrap_or_else(|e| panic!("strict load: {e}"));
        model.save($output).unwrap_or_else(|e| panic!("save: {e}"));
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, output] = args.as_slice() else {
        eprintln!("usage: state_dict_roundtrip MODEL IN OUT");
        std::process::exit(2);
    };
    match model.as_str() {
        "resnet18" => roundtrip!(ResNet18, input, output),
        "vgg11" => roundtrip!(Vgg11, input, output),
        other => {
            eprintln!("unknown model `{other}`: resnet18 or vgg11");
            std::process::exit(2);
        }
    }
    println!("{model}: loaded `{input}` strictly, wrote `{output}`");
}
