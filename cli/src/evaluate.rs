//! Evaluation: a model's loss, accuracy and confusion matrix on a dataset,
//! and `netc eval`, which reports them for a saved checkpoint.

use crate::data::{check_fit, load, DataArgs, Dataset};
use crate::network::{choose, Chosen};
use crate::{fail, netfile, pool, Network};
use netc_runtime::model::Model;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The weights; default `runs/<model>/model.safetensors`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// A model's results on a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy of the logits.
    pub loss: f64,
    pub accuracy: f64,
    /// `[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// The cross-entropy of one row of logits at `label`, in f64.
fn cross_entropy(row: &[f32], label: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
    sum.ln() - f64::from(row[label] - max)
}

/// Loss, accuracy and confusion matrix of `model` on `data`, by batches of
/// up to `batch`.
pub fn evaluate(model: &mut dyn Model, data: &Dataset, batch: usize) -> Result<Evaluation, String> {
    Ok(tally(model, data, 0..data.len(), batch)?.finish())
}

/// What an evaluation adds up, over some of the samples: the sums that
/// ranks evaluating their own shares of a test set add together.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    /// The cross-entropies' sum.
    pub loss: f64,
    /// `[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Tally {
    /// The tally as numbers, to be summed across ranks.
    pub fn to_numbers(&self) -> Vec<f64> {
        let counts = self.confusion.iter().flatten().map(|&c| c as f64);
        std::iter::once(self.loss).chain(counts).collect()
    }

    /// The tally [`Tally::to_numbers`] gave (or a sum of such).
    pub fn from_numbers(numbers: &[f64], classes: usize) -> Tally {
        let confusion = (0..classes)
            .map(|t| (0..classes).map(|p| numbers[1 + t * classes + p] as usize).collect())
            .collect();
        Tally { loss: numbers[0], confusion }
    }

    /// The mean loss, accuracy and confusion matrix.
    pub fn finish(self) -> Evaluation {
        let classes = self.confusion.len();
        let count: usize = self.confusion.iter().flatten().sum();
        let correct: usize = (0..classes).map(|c| self.confusion[c][c]).sum();
        let count = count.max(1) as f64;
        Evaluation {
            loss: self.loss / count,
            accuracy: correct as f64 / count,
            confusion: self.confusion,
        }
    }
}

/// The tally of `model` on `samples` of `data`, by batches of up to
/// `batch`.
pub fn tally(
    model: &mut dyn Model,
    data: &Dataset,
    samples: std::ops::Range<usize>,
    batch: usize,
) -> Result<Tally, String> {
    let classes = model.output_len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut logits = vec![0.0f32; batch * classes];
    let per = data.sample_len();
    let mut loss = 0.0;
    for start in samples.clone().step_by(batch) {
        let n = batch.min(samples.end - start);
        let x = &data.images[start * per..(start + n) * per];
        model.predict(x, &mut logits[..n * classes]).map_err(|e| e.to_string())?;
        for (row, &label) in
            logits[..n * classes].chunks(classes).zip(&data.labels[start..start + n])
        {
            loss += cross_entropy(row, usize::from(label));
            confusion[usize::from(label)][argmax(row)] += 1;
        }
    }
    Ok(Tally { loss, confusion })
}

pub fn confusion_table(confusion: &[Vec<usize>]) -> String {
    let mut s = String::from("confusion matrix (rows: true class, columns: predicted)\n      ");
    for c in 0..confusion.len() {
        let _ = write!(s, "{c:>6}");
    }
    s.push('\n');
    for (t, row) in confusion.iter().enumerate() {
        let _ = write!(s, "{t:>6}");
        for v in row {
            let _ = write!(s, "{v:>6}");
        }
        s.push('\n');
    }
    s
}

pub fn eval(args: &EvalArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.data.file.as_deref(), &args.data.model, None) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file, precision)) => return netfile::run(&file, precision),
        Err(e) => return fail(e),
    };
    let pool = match pool(args.data.threads) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let result = pool.install(|| -> Result<(), String> {
        let name = network.name;
        let mut model = (network.factory)(0, 256);
        let checkpoint = args
            .checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name).join("model.safetensors"));
        model.load(&checkpoint).map_err(|e| e.to_string())?;
        let (train, test, what) = load(&args.data, model.input_shape())?;
        check_fit(model.as_ref(), name, (&train, &test), &what)?;
        let result = evaluate(model.as_mut(), &test, 256)?;
        println!(
            "{name} on {} test samples: loss {:.4}, accuracy {:.2}%",
            test.len(),
            result.loss,
            100.0 * result.accuracy
        );
        print!("{}", confusion_table(&result.confusion));
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_is_stable_and_exact() {
        let uniform = cross_entropy(&[0.0; 4], 2);
        assert!((uniform - 4f64.ln()).abs() < 1e-12);
        // Large logits do not overflow.
        assert!(cross_entropy(&[1000.0, 0.0], 0) < 1e-12);
        assert!((cross_entropy(&[1000.0, 0.0], 1) - 1000.0).abs() < 1e-9);
    }
}
