//! Helpers shared by the integration tests of this folder.

use std::path::PathBuf;

/// The path of a zoo model, `cli/models/<name>.net`, from the workspace root.
pub fn zoo_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cli/models").join(format!("{name}.net"))
}

/// `n` samples of `N` values in `[-1, 1)`, reproducible from `seed`
/// (xorshift), for tests that need inputs but not particular ones.
pub fn batch<const N: usize>(n: usize, seed: u64) -> Vec<[f32; N]> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            std::array::from_fn(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
        })
        .collect()
}

/// The generated code of the networks that `build.rs` compiles, built once
/// here rather than again in every test, bench and example that runs them.
pub mod nets {
    pub mod gated {
        netc::include_network!("gated");
    }
    pub mod gated_infer {
        netc::include_network!("gated_infer");
    }
    pub mod no_params {
        netc::include_network!("no_params");
    }
    pub mod branch {
        netc::include_network!("branch");
    }
    pub mod names {
        netc::include_network!("names");
    }
    pub mod dense_bn {
        netc::include_network!("dense_bn");
    }
    pub mod dense_block {
        netc::include_network!("dense_block");
    }
    pub mod modern {
        netc::include_network!("modern");
    }
    pub mod depth {
        netc::include_network!("depth");
    }
    pub mod resample {
        netc::include_network!("resample");
    }
    pub mod decoder {
        netc::include_network!("decoder");
    }
    pub mod norms {
        netc::include_network!("norms");
    }
    pub mod shuffle_se {
        netc::include_network!("shuffle_se");
    }
    pub mod losses {
        netc::include_network!("losses");
    }
    pub mod train_controls {
        netc::include_network!("train_controls");
    }
    pub mod small_cnn {
        netc::include_network!("small_cnn");
    }
    pub mod breadth {
        netc::include_network!("breadth");
    }
    pub mod resnet20_cifar {
        netc::include_network!("resnet20_cifar");
    }
    pub mod lrn_cnn {
        netc::include_network!("lrn_cnn");
    }
    pub mod lenet5_five {
        netc::include_network!("lenet5_five");
    }
    pub mod two_inputs {
        netc::include_network!("two_inputs");
    }
    pub mod mlp {
        netc::include_network!("mlp");
    }
    pub mod lenet5 {
        netc::include_network!("lenet5");
    }
    pub mod alexnet {
        netc::include_network!("alexnet");
    }
    pub mod alexnet_nodrop {
        netc::include_network!("alexnet_nodrop");
    }
    pub mod resnet20 {
        netc::include_network!("resnet20");
    }
    /// The same zoo models compiled with bf16 operands.
    pub mod bf16 {
        pub mod mlp {
            netc::include_network!("bf16/mlp");
        }
        pub mod lenet5 {
            netc::include_network!("bf16/lenet5");
        }
        pub mod resnet20 {
            netc::include_network!("bf16/resnet20");
        }
        pub mod alexnet {
            netc::include_network!("bf16/alexnet");
        }
    }
    pub mod smooth {
        netc::include_network!("smooth");
    }
    pub mod regression {
        netc::include_network!("regression");
    }
    pub mod pooling {
        netc::include_network!("pooling");
    }
    pub mod lenet5_leaky {
        netc::include_network!("lenet5_leaky");
    }
    pub mod resnet18 {
        netc::include_network!("resnet18");
    }
    pub mod vgg11 {
        netc::include_network!("vgg11");
    }
    pub mod resnet50 {
        netc::include_network!("resnet50");
    }
    pub mod densenet121 {
        netc::include_network!("densenet121");
    }
    pub mod mobilenet_v2 {
        netc::include_network!("mobilenet_v2");
    }
    pub mod mobilenet_v3_small {
        netc::include_network!("mobilenet_v3_small");
    }
    pub mod squeezenet1_1 {
        netc::include_network!("squeezenet1_1");
    }
    pub mod googlenet {
        netc::include_network!("googlenet");
    }
    pub mod efficientnet_b0 {
        netc::include_network!("efficientnet_b0");
    }
    pub mod autoencoder {
        netc::include_network!("autoencoder");
    }
}
