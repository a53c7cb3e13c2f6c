//! A run's records: one per epoch (`metrics.csv`) and one per training
//! step (`steps.csv`), kept in memory, rewritten whole at each epoch's end
//! beside the checkpoint, and read back on resume (records after the
//! checkpoint's epoch are dropped, so the files always match it).

use std::path::Path;

/// One epoch: training loss and accuracy over its batches, the evaluation
/// split's, its last learning rate and its speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub lr: f64,
    pub samples_per_second: f64,
    pub seconds: f64,
    /// Seconds the step waited for its batch.
    pub data_seconds: f64,
}

/// One training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub step: u64,
    /// Epochs of training done after this step (fractional).
    pub progress: f64,
    pub loss: f64,
    /// The bias-corrected exponential moving average of the loss.
    pub smoothed: f64,
    pub lr: f64,
}

const EPOCH_HEADER: &str = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,samples_per_second,seconds,data_seconds";
const STEP_HEADER: &str = "step,progress,loss,smoothed_loss,lr";

/// How much of the previous average each step keeps.
const SMOOTHING: f64 = 0.98;

/// The run's records, with the moving average's state.
#[derive(Clone, Debug, Default)]
pub struct Records {
    pub epochs: Vec<Epoch>,
    pub steps: Vec<Step>,
    average: f64,
    weight: f64,
}

impl Records {
    /// Records a step's loss, returning the smoothed loss.
    pub fn step(&mut self, step: u64, progress: f64, loss: f64, lr: f64) -> f64 {
        self.average = SMOOTHING * self.average + (1.0 - SMOOTHING) * loss;
        self.weight = SMOOTHING * self.weight + (1.0 - SMOOTHING);
        let smoothed = self.average / self.weight;
        self.steps.push(Step { step, progress, loss, smoothed, lr });
        smoothed
    }

    /// Writes both files into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let mut epochs = format!("{EPOCH_HEADER}\n");
        for e in &self.epochs {
            epochs.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:e},{:.1},{:.3},{:.3}\n",
                e.epoch,
                e.train_loss,
                e.train_accuracy,
                e.val_loss,
                e.val_accuracy,
                e.lr,
                e.samples_per_second,
                e.seconds,
                e.data_seconds
            ));
        }
        let mut steps = format!("{STEP_HEADER}\n");
        for s in &self.steps {
            steps.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:e}\n",
                s.step, s.progress, s.loss, s.smoothed, s.lr
            ));
        }
        write_atomic(&dir.join("metrics.csv"), &epochs)?;
        write_atomic(&dir.join("steps.csv"), &steps)
    }

    /// Reads the files a run left in `dir`, keeping the first
    /// `completed_epochs` epochs and their steps.
    pub fn read(dir: &Path, completed_epochs: usize) -> Result<Records, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok((path, text)),
                Err(e) => Err(format!("cannot resume: `{}`: {e}", path.display())),
            }
        };
        let (epochs, steps) = (read("metrics.csv")?, read("steps.csv")?);
        Self::parse((&epochs.0, &epochs.1), (&steps.0, &steps.1), completed_epochs)
    }

    /// [`Records::read`] from the `(path, text)` of each file.
    pub fn parse(
        epochs: (&Path, &str),
        steps: (&Path, &str),
        completed_epochs: usize,
    ) -> Result<Records, String> {
        let rows = |(path, text): (&Path, &str), width: usize| -> Result<Vec<Vec<f64>>, String> {
            text.lines()
                .skip(1)
                .enumerate()
                .map(|(i, line)| {
                    let v: Option<Vec<f64>> = line.split(',').map(|f| f.parse().ok()).collect();
                    v.filter(|v| v.len() == width).ok_or_else(|| {
                        format!("cannot resume: `{}` line {} is malformed", path.display(), i + 2)
                    })
                })
                .collect()
        };
        let epochs: Vec<Epoch> = rows(epochs, 9)?
            .into_iter()
            .map(|v| Epoch {
                epoch: v[0] as usize,
                train_loss: v[1],
                train_accuracy: v[2],
                val_loss: v[3],
                val_accuracy: v[4],
                lr: v[5],
                samples_per_second: v[6],
                seconds: v[7],
                data_seconds: v[8],
            })
            .filter(|e| e.epoch <= completed_epochs)
            .collect();
        let mut records = Records { epochs, ..Records::default() };
        for v in rows(steps, 5)? {
            if v[1] <= completed_epochs as f64 + 1e-9 {
                records.step(v[0] as u64, v[1], v[2], v[4]);
            }
        }
        Ok(records)
    }
}

/// Writes `text` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_resume_drops_later_epochs() {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path();
        let mut r = Records::default();
        for s in 0..6u64 {
            let smoothed = r.step(s + 1, (s + 1) as f64 / 3.0, 1.0 / (s + 1) as f64, 0.1);
            if s == 0 {
                assert!((smoothed - 1.0).abs() < 1e-12, "bias-corrected from the first step");
            }
        }
        for epoch in 1..=2 {
            r.epochs.push(Epoch {
                epoch,
                train_loss: 0.5,
                train_accuracy: 0.8,
                val_loss: 0.4,
                val_accuracy: 0.85,
                lr: 0.1,
                samples_per_second: 1000.0,
                seconds: 1.0,
                data_seconds: 0.1,
            });
        }
        r.write(dir).expect("write");
        let all = Records::read(dir, 2).expect("read");
        assert_eq!((all.epochs.len(), all.steps.len()), (2, 6));
        assert!((all.steps[5].smoothed - r.steps[5].smoothed).abs() < 1e-5);
        let first = Records::read(dir, 1).expect("read");
        assert_eq!((first.epochs.len(), first.steps.len()), (1, 3));
        std::fs::write(dir.join("steps.csv"), "step\n1,2\n").expect("write");
        assert!(Records::read(dir, 1).unwrap_err().contains("line 2"));
    }
}
