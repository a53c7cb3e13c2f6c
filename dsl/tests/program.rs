//! Lowering, autodiff and the passes on the zoo: every program verifies, the
//! ReLU masks fuse into backward GEMMs, and the memory plan never overlaps
//! two tensors that are live at once.

use netc_dsl::program::{lower, passes::plan_memory, Arg, Program, Step};

fn zoo(name: &str) -> Program {
    // The zoo, plus the test network that covers every backward rule.
    let dir = if name == "smooth" { "../tests/nets" } else { "../cli/models" };
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(format!("{name}.net"));
    let source = std::fs::read_to_string(path).expect("zoo file");
    let checked = netc_dsl::check_source(name, &source).unwrap_or_else(|d| panic!("{d}"));
    lower(&checked.graphs[0])
}

const ZOO: &[&str] = &["mlp", "lenet5", "alexnet", "resnet20", "resnet18", "vgg11"];

#[test]
fn every_zoo_program_verifies() {
    for name in ZOO {
        let p = zoo(name);
        netc_dsl::program::verify(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.loss.is_some(), "{name} has a loss");
        assert!(!p.backward.is_empty(), "{name} has a backward pass");
    }
}

#[test]
fn lenet5_program_listing() {
    insta::assert_snapshot!(zoo("lenet5").listing());
}

#[test]
fn relu_masks_fuse_into_backward_gemms() {
    let p = zoo("mlp");
    let separate = p.backward.iter().filter(|s| s.kernel == "activation_backward_in_place").count();
    let fused = p
        .backward
        .iter()
        .filter(|s| s.kernel == "dense_backward_data")
        .filter(|s| s.args.iter().any(|a| matches!(a, Arg::ReluMask(Some(_)))))
        .count();
    // fc1 and fc2 carry fused ReLUs whose masks go into fc2's and fc3's
    // backward-data GEMMs.
    assert_eq!((separate, fused), (0, 2), "{}", p.listing());
}

/// No two tensors live at the same step share arena bytes.
fn assert_no_overlap(p: &Program, steps: &[&Step], plan: &netc_dsl::program::passes::MemoryPlan) {
    let live = |t: usize| {
        let uses: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.reads().iter().chain(&s.writes()).any(|x| x.0 == t))
            .map(|(i, _)| i)
            .collect();
        (uses.first().copied(), uses.last().copied())
    };
    for a in 0..p.tensors.len() {
        for b in a + 1..p.tensors.len() {
            let (Some(oa), Some(ob)) = (plan.offsets[a], plan.offsets[b]) else { continue };
            let ((Some(fa), Some(la)), (Some(fb), Some(lb))) = (live(a), live(b)) else { continue };
            let time = fa <= lb && fb <= la;
            let space = oa < ob + p.tensors[b].per_sample() && ob < oa + p.tensors[a].per_sample();
            assert!(
                !(time && space),
                "`{}` and `{}` overlap",
                p.tensors[a].name,
                p.tensors[b].name
            );
        }
    }
}

#[test]
fn memory_plans_are_sound_and_smaller_than_the_sum() {
    for name in ["mlp", "lenet5", "resnet20", "smooth"] {
        let p = zoo(name);
        let loss = p.loss.as_ref().expect("loss");
        let steps: Vec<&Step> = p.train_forward.iter().chain(&p.backward).collect();
        let plan = plan_memory(&p, &steps, &[p.inputs[0].tensor, loss.grad], &[p.train_output]);
        assert_no_overlap(&p, &steps, &plan);
        // Every tensor on a 64-byte line of the runtime's aligned arena.
        assert!(plan.offsets.iter().flatten().all(|o| o % 16 == 0), "{name}: {:?}", plan.offsets);
        assert_eq!(plan.size % 16, 0, "{name}");
        let sum: usize = p.tensors.iter().map(|t| t.per_sample()).sum();
        assert!(plan.size < sum, "{name}: plan {} vs sum {sum}", plan.size);
        let infer: Vec<&Step> = p.infer_forward.iter().collect();
        let iplan = plan_memory(&p, &infer, &[p.inputs[0].tensor], &[p.output]);
        assert_no_overlap(&p, &infer, &iplan);
        assert!(iplan.size < plan.size, "{name}: inference needs less than training");
    }
}
