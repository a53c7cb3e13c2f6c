//! The zoo checks cleanly, and its parameter and MAC counts equal the
//! published values (torchvision's for ResNet-18 and VGG-11).

use netc_tests::zoo_path;

fn check(name: &str) -> netc_dsl::Graph {
    let path = zoo_path(name);
    let source = std::fs::read_to_string(&path).expect("zoo file exists");
    match netc_dsl::check_source(&format!("models/{name}.net"), &source) {
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

/// ResNet-18's parameters and buffers have exactly torchvision's
/// `state_dict` names and shapes (less the `num_batches_tracked` counters),
/// so its weights load as they are.
#[test]
fn resnet18_state_dict_matches_torchvision() {
    let g = check("resnet18");
    let p = netc_dsl::program::lower(&g);
    let ours: Vec<(String, Vec<usize>)> =
        p.params.iter().map(|q| (q.name.clone(), q.shape.clone())).collect();
    let bn = |name: &str, c: usize| -> Vec<(String, Vec<usize>)> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|s| (format!("{name}.{s}"), vec![c]))
            .collect()
    };
    let mut want = vec![("conv1.weight".to_string(), vec![64, 3, 7, 7])];
    want.extend(bn("bn1", 64));
    let mut c_in = 64;
    for (l, c) in [(1, 64), (2, 128), (3, 256), (4, 512)] {
        for b in 0..2 {
            let p = format!("layer{l}.{b}");
            let first_in = if b == 0 { c_in } else { c };
            want.push((format!("{p}.conv1.weight"), vec![c, first_in, 3, 3]));
            want.extend(bn(&format!("{p}.bn1"), c));
            want.push((format!("{p}.conv2.weight"), vec![c, c, 3, 3]));
            want.extend(bn(&format!("{p}.bn2"), c));
            if b == 0 && l > 1 {
                want.push((format!("{p}.downsample.0.weight"), vec![c, c_in, 1, 1]));
                want.extend(bn(&format!("{p}.downsample.1"), c));
            }
        }
        c_in = c;
    }
    want.push(("fc.weight".to_string(), vec![1000, 512]));
    want.push(("fc.bias".to_string(), vec![1000]));
    let mut ours_sorted = ours.clone();
    ours_sorted.sort();
    want.sort();
    assert_eq!(ours_sorted, want);
}
