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
    let bad = |why: String| format!("cannot resume from `{shown}`: {why}");
    let mut file = WeightsFile::open(&path).map_err(|e| bad(e.to_string()))?;
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
    let mut state = vec![0.0f32; len];
    file.read_into(OPTIMIZER_STATE, &[len], &mut state).map_err(|e| bad(e.to_string()))?;
    model.load_from(&mut file).map_err(|e| bad(e.to_string()))?;
    file.finish().map_err(|e| bad(e.to_string()))?;
    model.set_optimizer_state(&state, kind, step).map_err(|e| bad(e.to_string()))?;
    Ok(progress)
}
