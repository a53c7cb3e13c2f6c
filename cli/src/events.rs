//! What `netc train` prints as it goes: text with a progress bar, or with
//! `--json` one JSON object per line for each event (`start`, `step`,
//! `epoch`, `end`), for scripts and dashboards.

use crate::metrics::Epoch;
use indicatif::{ProgressBar, ProgressStyle};
use netc_runtime::nn::Optimizer;
use netc_runtime::schedule::Schedule;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The run's output: text or JSON lines.
pub struct Events {
    json: bool,
    bar: Option<ProgressBar>,
    /// Nothing is printed: a data-parallel run's ranks other than 0.
    silent: bool,
    /// The data-parallel ranks training together.
    ranks: usize,
}

impl Events {
    /// Events printed by a run of `ranks` ranks (1 for a plain run).
    pub fn new(json: bool, ranks: usize) -> Events {
        Events { json, bar: None, silent: false, ranks }
    }

    /// A rank that prints nothing, rank 0 speaking for the job.
    pub fn silent() -> Events {
        Events { json: false, bar: None, silent: true, ranks: 1 }
    }

    pub fn resumed(&self, name: &str, epochs: usize, checkpoint: &Path) {
        if !self.json && !self.silent {
            println!("resuming {name} after epoch {epochs} from {}", checkpoint.display());
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        name: &str,
        params: usize,
        (train, eval): (usize, usize),
        data: &str,
        batch: usize,
        opt: &Optimizer,
        schedule: &Schedule,
        started: Instant,
    ) {
        if self.silent {
            return;
        }
        let (threads, ranks) = (rayon::current_num_threads(), self.ranks);
        let ready = started.elapsed().as_secs_f64();
        if self.json {
            let line = json!({
                "event": "start", "network": name, "parameters": params,
                "train_samples": train, "eval_samples": eval, "data": data, "batch": batch,
                "optimizer": format!("{opt:?}"), "schedule": format!("{schedule:?}"),
                "ranks": ranks, "threads": threads, "seconds": ready,
            });
            println!("{line}");
        } else {
            let workers = if ranks > 1 {
                format!("{ranks} ranks of {threads} threads")
            } else {
                format!("{threads} threads")
            };
            println!(
                "training {name} ({params} parameters) on {train} samples of {data}, evaluating \
                 on {eval}, batch {batch}, {opt:?}, {schedule:?}, {workers} (data ready in {ready:.1} s)"
            );
        }
    }

    pub fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.json || self.silent {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{epochs}", epoch + 1));
        self.bar = Some(bar);
    }

    pub fn step(&mut self, step: u64, progress: f64, loss: f64, smoothed: f64, lr: f64) {
        if self.json {
            let line = json!({
                "event": "step", "step": step, "epoch": progress, "loss": loss,
                "smoothed_loss": smoothed, "lr": lr,
            });
            println!("{line}");
        } else if let Some(bar) = &self.bar {
            if step.is_multiple_of(10) {
                bar.set_message(format!("loss {smoothed:.4} lr {lr:.3e}"));
            }
            bar.inc(1);
        }
    }

    /// The end of an epoch; `communicating` is, in a data-parallel run,
    /// the time its steps spent summing gradients across ranks, and of
    /// that the time they waited for after their backward passes.
    pub fn epoch(&mut self, e: &Epoch, improved: bool, communicating: Option<(f64, f64)>) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if self.silent {
            return;
        }
        if self.json {
            let line = json!({
                "event": "epoch", "epoch": e.epoch, "train_loss": e.train_loss,
                "train_accuracy": e.train_accuracy, "val_loss": e.val_loss,
                "val_accuracy": e.val_accuracy, "lr": e.lr,
                "samples_per_second": e.samples_per_second, "seconds": e.seconds,
                "data_seconds": e.data_seconds,
                "communication_seconds": communicating.map(|c| c.0),
                "communication_exposed_seconds": communicating.map(|c| c.1),
                "best": improved,
            });
            println!("{line}");
        } else {
            println!(
                "epoch {}: train loss {:.4}, train accuracy {:.2}%, val loss {:.4}, val accuracy \
                 {:.2}%{}, lr {:.3e}, {:.0} samples/s, {:.1} s (data wait {:.2} s)",
                e.epoch,
                e.train_loss,
                100.0 * e.train_accuracy,
                e.val_loss,
                100.0 * e.val_accuracy,
                if improved { " (best)" } else { "" },
                e.lr,
                e.samples_per_second,
                e.seconds,
                e.data_seconds
            );
            if let Some((summing, waited)) = communicating {
                println!(
                    "  summing gradients across ranks: {summing:.2} s, of which {waited:.2} s \
                     after the backward passes (the rest beside them), in the epoch's {:.1} s",
                    e.seconds
                );
            }
        }
    }

    pub fn finish(
        &self,
        dir: &Path,
        best: Option<(f64, usize)>,
        stopped_early: bool,
        confusion: Option<String>,
        started: Instant,
    ) {
        if self.silent {
            return;
        }
        let seconds = started.elapsed().as_secs_f64();
        if self.json {
            let line = json!({
                "event": "end", "directory": dir.display().to_string(),
                "best_epoch": best.map(|b| b.1), "best_value": best.map(|b| b.0),
                "stopped_early": stopped_early, "seconds": seconds,
            });
            println!("{line}");
            return;
        }
        if stopped_early {
            println!("stopped early: no improvement for the patience given");
        }
        if let Some(table) = confusion {
            print!("{table}");
        }
        if let Some((value, epoch)) = best {
            println!(
                "best: epoch {epoch} ({value:.4}), {}",
                dir.join("best.safetensors").display()
            );
        }
        println!(
            "checkpoint: {}\nweights: {}\nmetrics: {}\nplot: {}\ntotal time {seconds:.1} s",
            dir.join(crate::checkpoint::FILE).display(),
            dir.join("model.safetensors").display(),
            dir.join("metrics.csv").display(),
            dir.join("training.png").display(),
        );
    }
}
