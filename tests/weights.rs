//! Loading weights as a user fine-tuning or shipping a model does: strict
//! by default, non-strict with a report, remapped names, tensors of another
//! shape skipped, from bytes, and embedded in the code at build time.

use netc::runtime::weights::{self, LoadOptions, Mismatch};
use netc_tests::batch;
use netc_tests::nets::{
    lenet5::{LeNet5, LeNet5Params},
    lenet5_five::LeNet5Five,
    two_inputs::Two,
};
use std::path::PathBuf;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/two_inputs.safetensors")
}

/// Every tensor's name and values, from a `visit` of some parameters.
fn tensors(visit: impl FnOnce(&mut dyn FnMut(&str, &[usize], &[f32]))) -> Vec<(String, Vec<f32>)> {
    let mut all = Vec::new();
    visit(&mut |name, _, values| all.push((name.to_string(), values.to_vec())));
    all
}

/// The weights `tests/build.rs` embedded are the file's, upcast from f16
/// where the file stores that, and the same through every constructor.
#[test]
fn embedded_weights_are_the_files() {
    let embedded = Two::embedded().expect("embedded weights load");
    let from_file = Two::from_file(fixture()).expect("from_file");
    let bytes = std::fs::read(fixture()).expect("fixture");
    let from_bytes = Two::from_bytes(&bytes).expect("from_bytes");
    assert_eq!(Two::EMBEDDED_WEIGHTS, &bytes[..]);
    let params = |m: &Two| tensors(|f| m.params().visit(f));
    assert_eq!(params(&embedded), params(&from_file));
    assert_eq!(params(&embedded), params(&from_bytes));
    // Value i of tensor k is sin(i + k) / 4; fc2.weight (k = 2) went
    // through float16.
    let p = embedded.params();
    assert_eq!(p.fc1_bias[3], ((3.0f64 + 1.0).sin() / 4.0) as f32);
    let half = p.fc2_weight[5];
    let exact = ((5.0f64 + 2.0).sin() / 4.0) as f32;
    assert!(half != exact && (half - exact).abs() < 2e-4, "{half} from f16 for {exact}");
}

/// A strict load of another network's weights fails, naming the tensor and
/// both shapes, and leaves the model as it was.
#[test]
fn strict_load_refuses_another_head_and_changes_nothing() {
    let folder = dir();
    let path = folder.path().join("lenet5.safetensors");
    LeNet5::new(1).save(&path).expect("save");
    let mut five = LeNet5Five::new(2);
    let before = tensors(|f| five.params().visit(f));
    let err = five.load(&path).unwrap_err().to_string();
    assert!(
        err.contains("fc3.weight") && err.contains("[10, 84]") && err.contains("[5, 84]"),
        "{err}"
    );
    assert_eq!(tensors(|f| five.params().visit(f)), before);
    let err = LeNet5Five::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("fc3"), "{err}");
}

/// Fine-tuning a new five-class head onto saved LeNet-5 weights: every
/// tensor but the head's loads, the head keeps its fresh initialisation,
/// and the model then trains.
#[test]
fn fine_tune_a_new_head_from_saved_weights() {
    let folder = dir();
    let path = folder.path().join("lenet5.safetensors");
    let trained = LeNet5::new(3);
    trained.save(&path).expect("save");
    let mut five = LeNet5Five::new(4);
    let fresh_head = five.params().fc3_weight.to_vec();
    let report = five.load_with(&path, &LoadOptions::strict().skip_mismatched()).expect("load");
    assert_eq!(
        report.mismatched,
        [
            Mismatch { name: "fc3.weight".into(), file: vec![10, 84], model: vec![5, 84] },
            Mismatch { name: "fc3.bias".into(), file: vec![10], model: vec![5] },
        ]
    );
    assert_eq!(report.loaded.len(), 8, "{report}");
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report}");
    assert_eq!(five.params().conv1_weight[..], trained.params().conv1_weight[..]);
    assert_eq!(five.params().fc2_bias[..], trained.params().fc2_bias[..]);
    assert_eq!(five.params().fc3_weight.to_vec(), fresh_head);

    let x = batch::<784>(20, 5);
    let labels: Vec<u32> = (0..20).map(|i| i % 5).collect();
    let opt = LeNet5Five::default_optimizer().expect("optimizer");
    let first = five.train_step(&x, &labels, &opt).expect("step");
    let mut last = first;
    for _ in 0..40 {
        last = five.train_step(&x, &labels, &opt).expect("step");
    }
    assert!(last < 0.5 * first, "the fine-tuned model does not learn: {first} -> {last}");
}

/// Names remapped (a DDP checkpoint's `module.` prefix stripped, one
/// tensor left out), and a non-strict load reporting what it skipped.
#[test]
fn remapped_and_non_strict_loads_report_what_they_did() {
    let folder = dir();
    let d = folder.path();
    let source = LeNet5::new(6);
    let prefixed: Vec<(String, Vec<usize>, &[f32])> = LeNet5Params::TENSORS
        .iter()
        .zip(source.params().tensors())
        .map(|((name, shape), values)| (format!("module.{name}"), shape.to_vec(), values))
        .collect();
    let path = d.join("ddp.safetensors");
    weights::save(&path, &prefixed).expect("save");

    let mut model = LeNet5::new(7);
    let err = model.load(&path).unwrap_err().to_string();
    assert!(err.contains("lacks 10 tensor(s)"), "{err}");
    let strip = |name: &str| name.strip_prefix("module.").map(str::to_string);
    model.load_with(&path, &LoadOptions::strict().remap(strip)).expect("remapped load");
    assert_eq!(model.params().fc1_weight[..], source.params().fc1_weight[..]);

    // Leave fc3 out: missing in the model, dropped from the file.
    let mut partial = LeNet5::new(8);
    let fresh_fc3 = partial.params().fc3_bias.to_vec();
    let drop_fc3 = |name: &str| {
        name.strip_prefix("module.").filter(|n| !n.starts_with("fc3")).map(str::to_string)
    };
    let err = partial.load_with(&path, &LoadOptions::strict().remap(drop_fc3)).unwrap_err();
    assert!(err.to_string().contains("fc3.bias"), "{err}");
    let report =
        partial.load_with(&path, &LoadOptions::non_strict().remap(drop_fc3)).expect("non-strict");
    assert_eq!(report.missing, ["fc3.weight", "fc3.bias"]);
    assert_eq!(report.dropped, ["module.fc3.bias", "module.fc3.weight"]);
    assert_eq!(partial.params().fc3_bias.to_vec(), fresh_fc3);
    assert_eq!(partial.params().conv2_weight[..], source.params().conv2_weight[..]);

    // Without the remapping, every tensor is unexpected and every one missing.
    let report = LeNet5::new(9).load_with(&path, &LoadOptions::non_strict()).expect("non-strict");
    assert_eq!((report.loaded.len(), report.missing.len(), report.unexpected.len()), (0, 10, 10));

    // Two file tensors onto one model tensor is an error.
    let everything_to_one = |_: &str| Some("fc1.bias".to_string());
    let err = LeNet5::new(9).load_with(&path, &LoadOptions::non_strict().remap(everything_to_one));
    assert!(err.unwrap_err().to_string().contains("both map to `fc1.bias`"));
}

/// Bytes that are not a safetensors file are an error; the model keeps its
/// weights.
#[test]
fn corrupt_bytes_are_an_error() {
    let mut model = Two::embedded().expect("embedded");
    let before = tensors(|f| model.params().visit(f));
    let mut bytes = Two::EMBEDDED_WEIGHTS.to_vec();
    for cut in [0, 7, 8, 100, bytes.len() - 1] {
        assert!(model.load_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A header length beyond the bytes.
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(model.load_bytes(&bytes).is_err());
    assert!(Two::from_bytes(&bytes).is_err());
    assert_eq!(tensors(|f| model.params().visit(f)), before);
}
