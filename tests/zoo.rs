//! The zoo checks cleanly, and its parameter and MAC counts equal the
//! published values (torchvision's for ResNet-18 and VGG-11).

use netc_tests::zoo_path;

fn check(name: &str) -> netc_dsl::Graph {
    let path = zoo_path(name);
    let source = std::fs::read_to_string(&path).expect("zoo file exists");
    match netc_dsl::check_source(&format!("cli/models/{name}.net"), &source) {
        Ok(mut checked) => {
            assert!(checked.warnings.is_empty(), "warnings in {name}: {:?}", checked.warnings);
            assert_eq!(checked.graphs.len(), 1);
            checked.graphs.remove(0)
        }
        Err(diags) => panic!("{diags}"),
    }
}

#[test]
fn lenet5_counts() {
    let g = check("lenet5");
    assert_eq!(g.total_params(), 61_706);
    assert_eq!(g.total_macs(), 416_520);
    assert_eq!(g.node(g.output).shape.dims(), &[10]);
}

#[test]
fn mlp_counts() {
    let g = check("mlp");
    assert_eq!(g.total_params(), 535_818);
    assert_eq!(g.total_macs(), 535_040);
}

#[test]
fn alexnet_counts() {
    let g = check("alexnet");
    assert_eq!(g.total_params(), 62_378_344);
    assert_eq!(g.total_macs(), 1_135_256_096);
    let lrn = g.nodes.iter().filter(|n| n.op.name() == "lrn").count();
    let dropout = g.nodes.iter().filter(|n| n.op.name() == "dropout").count();
    assert_eq!((lrn, dropout), (2, 2));
}

#[test]
fn resnet20_counts() {
    let g = check("resnet20");
    assert_eq!(g.total_params(), 272_474);
    assert_eq!(g.total_macs(), 40_813_184);
    let convs = g.nodes.iter().filter(|n| n.op.name() == "conv2d").count();
    assert_eq!(convs, 19 + 2, "19 3x3 convs plus 2 projections");
}

#[test]
fn resnet18_matches_torchvision() {
    let g = check("resnet18");
    assert_eq!(g.total_params(), 11_689_512);
    // conv1 118,013,952 + layer1 462,422,016 + 3 x 411,041,792 + fc 512,000
    assert_eq!(g.total_macs(), 1_814_073_344);
}

#[test]
fn vgg11_matches_torchvision() {
    let g = check("vgg11");
    assert_eq!(g.total_params(), 132_863_336);
    assert_eq!(g.total_macs(), 7_609_090_048);
}

#[test]
fn layer_names_follow_state_dict_style() {
    let g = check("resnet20");
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert!(names.contains(&"conv1"), "{names:?}");
    assert!(names.contains(&"layer1.0.conv1"), "{names:?}");
    assert!(names.contains(&"layer1.2.bn2"), "{names:?}");
    assert!(names.contains(&"layer3.0.downsample.0"), "{names:?}");
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "layer names are unique");
}

/// Zoo files that follow a torchvision model, by name; each has the
/// model's `state_dict` layout in `tests/torchvision/` (written by
/// `bench/peers/state_dicts.py`).
const TORCHVISION: &[&str] = &[
    "resnet18",
    "resnet50",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "squeezenet1_1",
    "googlenet",
    "efficientnet_b0",
    "vgg11",
];

/// Each model's parameters and buffers have exactly torchvision's
/// `state_dict` names and shapes, less the batch-norm `num_batches_tracked`
/// counters, so its weights load as they are; and its learnable parameters
/// add up to torchvision's count.
#[test]
fn state_dicts_match_torchvision() {
    for name in TORCHVISION {
        let g = check(name);
        let path = format!("{}/torchvision/{name}.txt", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        let count: usize =
            header.split_whitespace().nth(3).and_then(|n| n.parse().ok()).expect(header);
        assert_eq!(g.total_params(), count, "{name}: parameter count");

        let mut want: Vec<(String, Vec<usize>)> = lines
            .filter(|l| !l.contains("num_batches_tracked"))
            .map(|l| {
                let mut words = l.split_whitespace();
                let key = words.next().expect("key").to_string();
                (key, words.filter(|w| *w != "-").map(|w| w.parse().expect(l)).collect())
            })
            .collect();
        let p = netc_dsl::program::lower(&g);
        let mut ours: Vec<(String, Vec<usize>)> =
            p.params.iter().map(|q| (q.name.clone(), q.shape.clone())).collect();
        ours.sort();
        want.sort();
        let missing: Vec<_> = want.iter().filter(|w| !ours.contains(w)).collect();
        let extra: Vec<_> = ours.iter().filter(|o| !want.contains(o)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
    }
}

/// netc's `example_generated` module documents the generated API on a copy
/// of the zoo's LeNet-5 inside the `netc` package (a package cannot read
/// outside itself); the copy must stay the zoo's network.
#[test]
fn the_documented_example_is_the_zoos_lenet5() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netc/src/example_generated/lenet5.net");
    let example = std::fs::read_to_string(example).expect("netc's example file");
    let zoo = std::fs::read_to_string(zoo_path("lenet5")).expect("zoo file");
    assert!(
        example == zoo,
        "netc/src/example_generated/lenet5.net differs from cli/models/lenet5.net: copy one onto the other"
    );
    assert_eq!(netc::example_generated::LeNet5::PARAMS, check("lenet5").total_params());
}
