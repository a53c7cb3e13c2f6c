//! A training checkpoint as one safetensors file: the model's tensors, the
//! optimizer's state and the run's progress (in the header's metadata),
//! written to a temporary file and renamed over the last one. A kill at any
//! moment leaves the previous checkpoint or the new one, never the weights
//! of one epoch with the optimizer of another.

use netc_runtime::model::Model;
use netc_runtime::weights::{self, WeightsFile};
use std::path::Path;

/// The file in a run's directory.
pub const FILE: &str = "checkpoint.safetensors";

/// The optimizer state's tensor; netc's keys never clash with PyTorch's
/// parameter names.
const OPTIMIZER_STATE: &str = "netc.optimizer_state";

/// Where a run stands after a completed epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The network's name, checked on resume.
    pub network: String,
    pub completed_epochs: usize,
    pub seed: u64,
    /// The best value of the monitored metric and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best, for early stopping.
    pub stale_epochs: usize,
}

/// Writes `model`, its optimizer state and `progress` to `dir/FILE`.
pub fn write(dir: &Path, model: &dyn Model, progress: &Progress) -> Result<(), String> {
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    model.visit_params(&mut |name, shape, values| {
        owned.push((name.to_string(), shape.to_vec(), values.to_vec()))
    });
    let (state, kind, step) = model.optimizer_state();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
        owned.iter().map(|(n, s, v)| (n.clone(), s.clone(), &v[..])).collect();
    tensors.push((OPTIMIZER_STATE.to_string(), vec![state.len()], state));
    let best = progress.best.map_or(String::new(), |(v, e)| format!("{v:e} {e}"));
    let metadata: Vec<(String, String)> = [
        ("netc.network", progress.network.clone()),
        ("netc.completed_epochs", progress.completed_epochs.to_string()),
        ("netc.seed", progress.seed.to_string()),
        ("netc.optimizer_kind", kind.to_string()),
        ("netc.step", step.to_string()),
        ("netc.best", best),
        ("netc.stale_epochs", progress.stale_epochs.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let path = dir.join(FILE);
    weights::save_with_metadata(&path, &tensors, &metadata)
        .map_err(|e| format!("cannot write the checkpoint `{}`: {e}", path.display()))
}

/// Loads `dir/FILE` into `model` (weights and optimizer state), which must
/// be the network `network`, and returns the progress it records. Any
/// problem is an error naming the file; the file itself is never changed.
pub fn read(dir: &Path, network: &str, model: &mut dyn Model) -> Result<Progress, String> {
    let path = dir.join(FILE);
    let shown = path.display().to_string();
    let file =
        WeightsFile::open(&path).map_err(|e| format!("cannot resume from `{shown}`: {e}"))?;
    read_file(file, &shown, network, model)
}

/// `read` from an open checkpoint that errors call `shown`. On an error
/// `model` is unchanged: its weights and its optimizer state are both
/// replaced or neither is.
pub fn read_file(
    mut file: WeightsFile<'_>,
    shown: &str,
    network: &str,
    model: &mut dyn Model,
) -> Result<Progress, String> {
    let bad = |why: String| format!("cannot resume from `{shown}`: {why}");
    let field = |key: &str| {
        file.metadata(key).ok_or_else(|| bad(format!("it has no `{key}`: not a netc checkpoint")))
    };
    let number = |key: &str| -> Result<u64, String> {
        field(key)?.parse().map_err(|_| bad(format!("`{key}` is not a number")))
    };
    let recorded = field("netc.network")?;
    if recorded != network {
        return Err(bad(format!("it is a checkpoint of `{recorded}`, not of `{network}`")));
    }
    let best = match field("netc.best")?.split_once(' ') {
        None => None,
        Some((v, e)) => Some((
            v.parse().map_err(|_| bad("`netc.best` is malformed".into()))?,
            e.parse().map_err(|_| bad("`netc.best` is malformed".into()))?,
        )),
    };
    let progress = Progress {
        network: recorded,
        completed_epochs: number("netc.completed_epochs")? as usize,
        seed: number("netc.seed")?,
        best,
        stale_epochs: number("netc.stale_epochs")? as usize,
    };
    let (kind, step) = (number("netc.optimizer_kind")?, number("netc.step")?);
    let kind =
        u8::try_from(kind).map_err(|_| bad("`netc.optimizer_kind` is out of range".into()))?;
    let len = match file.shape(OPTIMIZER_STATE).as_deref() {
        Some([len]) => *len,
        _ => return Err(bad(format!("it has no `{OPTIMIZER_STATE}` vector"))),
    };
    // The header's shape was checked against the bytes the file holds.
    let mut state = vec![0.0f32; len];
    file.read_into(OPTIMIZER_STATE, &[len], &mut state).map_err(|e| bad(e.to_string()))?;
    // Every check that can fail comes before the first change, and the
    // optimizer state (set atomically) is put back if the weights fail.
    refuse_unknown_tensors(&file, model).map_err(bad)?;
    let (old_state, old_kind, old_step) = model.optimizer_state();
    let old = (old_state.to_vec(), old_kind, old_step);
    model.set_optimizer_state(&state, kind, step).map_err(|e| bad(e.to_string()))?;
    if let Err(e) = model.load_from(&mut file) {
        model
            .set_optimizer_state(&old.0, old.1, old.2)
            .expect("a model takes back its own optimizer state");
        return Err(bad(e.to_string()));
    }
    file.finish().map_err(|e| bad(e.to_string()))?;
    Ok(progress)
}

/// Fails, as [`WeightsFile::finish`] would after loading, if the file
/// holds a tensor that is neither the model's nor the optimizer state.
fn refuse_unknown_tensors(file: &WeightsFile<'_>, model: &dyn Model) -> Result<(), String> {
    let mut known = std::collections::BTreeSet::new();
    model.visit_params(&mut |name, _, _| {
        known.insert(name.to_string());
    });
    let unknown: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !known.contains(n) && n != OPTIMIZER_STATE && !weights::is_batch_counter(n))
        .collect();
    match unknown.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "it has {} tensor(s) the model does not have, such as `{first}`",
            unknown.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

    fn tensors(model: &dyn Model) -> Tensors {
        let mut all = Vec::new();
        model.visit_params(&mut |name, shape, values| {
            all.push((name.to_string(), shape.to_vec(), values.to_vec()))
        });
        all
    }

    fn optimizer(model: &dyn Model) -> (Vec<f32>, u8, u64) {
        let (state, kind, step) = model.optimizer_state();
        (state.to_vec(), kind, step)
    }

    /// Writes a checkpoint of `tensors` with the optimizer state `state` of
    /// `kind`, as [`write`] lays it out.
    fn checkpoint(dir: &Path, tensors: &Tensors, state: &[f32], kind: u8) {
        let mut all: Vec<(String, Vec<usize>, &[f32])> =
            tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), &v[..])).collect();
        all.push((OPTIMIZER_STATE.to_string(), vec![state.len()], state));
        let metadata: Vec<(String, String)> = [
            ("netc.network", "linear".to_string()),
            ("netc.completed_epochs", "3".into()),
            ("netc.seed", "1".into()),
            ("netc.optimizer_kind", kind.to_string()),
            ("netc.step", "30".into()),
            ("netc.best", String::new()),
            ("netc.stale_epochs", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        weights::save_with_metadata(&dir.join(FILE), &all, &metadata).expect("write");
    }

    /// A checkpoint refused for a tensor the model lacks, for an optimizer
    /// state that does not fit or for a weight of the wrong shape leaves
    /// the model's weights and optimizer state as they were (the weights
    /// used to be replaced before the first two were found).
    #[test]
    fn a_refused_checkpoint_leaves_the_model_unchanged() {
        let linear = crate::zoo::find("linear").expect("zoo model").factory;
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let saved = tensors(&*linear(1, 2));
        let momentum: Vec<f32> = (0..linear(1, 2).param_count()).map(|i| i as f32).collect();
        let mut model = linear(2, 2);
        let (before, state_before) = (tensors(&*model), optimizer(&*model));
        assert_ne!(before, saved);

        let mut extra = saved.clone();
        extra.push(("extra.weight".into(), vec![2], vec![1.0, 2.0]));
        checkpoint(dir, &extra, &momentum, 1);
        let e = read(dir, "linear", &mut *model).unwrap_err();
        assert!(e.contains("1 tensor(s) the model does not have, such as `extra.weight`"), "{e}");
        assert_eq!((tensors(&*model), optimizer(&*model)), (before.clone(), state_before.clone()));

        checkpoint(dir, &saved, &[1.0; 3], 2);
        let e = read(dir, "linear", &mut *model).unwrap_err();
        assert!(e.contains("optimizer state of 3 values and kind 2"), "{e}");
        assert_eq!((tensors(&*model), optimizer(&*model)), (before.clone(), state_before.clone()));

        let mut misshapen = saved.clone();
        let (_, shape, values) = &mut misshapen[0];
        *shape = vec![1, values.len()];
        checkpoint(dir, &misshapen, &momentum, 1);
        assert!(read(dir, "linear", &mut *model).unwrap_err().contains("shape"));
        assert_eq!((tensors(&*model), optimizer(&*model)), (before, state_before));

        checkpoint(dir, &saved, &momentum, 1);
        let progress = read(dir, "linear", &mut *model).expect("a whole checkpoint loads");
        assert_eq!((progress.completed_epochs, progress.seed), (3, 1));
        assert_eq!((tensors(&*model), optimizer(&*model)), (saved, (momentum, 1, 30)));
    }
}
