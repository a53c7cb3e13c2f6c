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
}

impl Events {
    pub fn new(json: bool) -> Events {
        Events { json, bar: None }
    }

    pub fn resumed(&self, name: &str, epochs: usize, checkpoint: &Path) {
        if !self.json {
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
        let threads = rayon::current_num_threads();
        let ready = started.elapsed().as_secs_f64();
        if self.json {
            let line = json!({
                "event": "start", "network": name, "parameters": params,
                "train_samples": train, "eval_samples": eval, "data": data, "batch": batch,
                "optimizer": format!("{opt:?}"), "schedule": format!("{schedule:?}"),
                "threads": threads, "seconds": ready,
            });
            println!("{line}");
        } else {
            println!(
                "training {name} ({params} parameters) on {train} samples of {data}, evaluating \
                 on {eval}, batch {batch}, {opt:?}, {schedule:?}, {threads} threads (data ready in {ready:.1} s)"
            );
        }
    }

    pub fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.json {
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

    pub fn epoch(&mut self, e: &Epoch, improved: bool) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if self.json {
            let line = json!({
                "event": "epoch", "epoch": e.epoch, "train_loss": e.train_loss,
                "train_accuracy": e.train_accuracy, "val_loss": e.val_loss,
                "val_accuracy": e.val_accuracy, "lr": e.lr,
                "samples_per_second": e.samples_per_second, "seconds": e.seconds,
                "data_seconds": e.data_seconds, "best": improved,
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
