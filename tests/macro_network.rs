//! `network!` inline and `network!(file = ...)` agree with the checker.

mod inline {
    netc::network! {
        // A comment inside the macro is fine.
        network Mlp {
            input x: [784]
            logits = x -> dense(512) -> relu
                       -> dense(256) -> relu
                       -> dense(10)
            loss cross_entropy(logits)
            optimizer sgd(lr: 0.05, momentum: 0.9)
        }
    }
}

mod from_file {
    netc::network!(file = "../models/lenet5.net");
}

#[test]
fn inline_network_has_the_checked_constants() {
    assert_eq!(inline::Mlp::INPUT, [784]);
    assert_eq!(inline::Mlp::OUTPUT, [10]);
    assert_eq!(inline::Mlp::PARAMS, 535_818);
    assert_eq!(inline::Mlp::MACS_PER_SAMPLE, 535_040);
}

#[test]
fn file_network_matches_the_file_checked_directly() {
    let source = std::fs::read_to_string(netc_tests_zoo()).expect("zoo file");
    let checked = netc_dsl::check_source("lenet5.net", &source).expect("valid");
    let g = &checked.graphs[0];
    assert_eq!(from_file::LeNet5::PARAMS, g.total_params());
    assert_eq!(from_file::LeNet5::MACS_PER_SAMPLE, g.total_macs());
    assert_eq!(from_file::LeNet5::FLOPS_PER_SAMPLE, g.total_flops());
    assert_eq!(from_file::LeNet5::INPUT, [1, 28, 28]);
}

fn netc_tests_zoo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/lenet5.net")
}
