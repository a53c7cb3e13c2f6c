//! `netc train` and `netc eval`: train a network (a zoo model compiled in,
//! or a `.net` file built on first use) on the data the flags choose;
//! checkpoint it atomically each epoch under `runs/<model>/`, resume from
//! the last completed epoch, and evaluate a saved checkpoint.

use crate::data::{check_fit, load, DataArgs, Dataset};
use crate::network::{choose, Chosen};
use crate::{fail, netfile, pool, Network};
use indicatif::{ProgressBar, ProgressStyle};
use netc_runtime::model::{Model, Targets};
use netc_runtime::nn::Optimizer;
use netc_runtime::optim::{Adam, Sgd};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerChoice {
    /// Plain SGD, learning rate 0.05.
    Sgd,
    /// SGD with momentum 0.9, learning rate 0.05.
    Momentum,
    /// Adam, learning rate 1e-3.
    Adam,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Default: the `.net` file's optimizer, else SGD with momentum.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerChoice>,
    /// Learning rate (overrides the optimizer's).
    #[arg(long)]
    lr: Option<f64>,
    /// Where runs are written: `<out>/<model>/`.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Continue from the last checkpoint in `<out>/<model>/`.
    #[arg(long)]
    resume: bool,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The checkpoint; default `runs/<model>/model.safetensors`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

fn optimizer(args: &TrainArgs, model: &dyn Model) -> Optimizer {
    let sgd = |lr, momentum| {
        Optimizer::Sgd(Sgd { lr, momentum, nesterov: false, weight_decay: 0.0, clip_norm: None })
    };
    let mut opt = match args.optimizer {
        None => model.default_optimizer().unwrap_or(sgd(0.01, 0.9)),
        Some(OptimizerChoice::Sgd) => sgd(0.05, 0.0),
        Some(OptimizerChoice::Momentum) => sgd(0.05, 0.9),
        Some(OptimizerChoice::Adam) => Optimizer::Adam(Adam::new(1e-3)),
    };
    if let Some(lr) = args.lr {
        match &mut opt {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
            Optimizer::AdamW(a) => a.lr = lr,
        }
    }
    opt
}

/// A permutation of `0..n` from `seed` (Fisher–Yates with SplitMix64).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        order.swap(i, ((z ^ (z >> 31)) % (i as u64 + 1)) as usize);
    }
    order
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Accuracy and confusion matrix (`[true][predicted]`) over a dataset.
fn evaluate(
    model: &mut dyn Model,
    data: &Dataset,
    batch: usize,
) -> Result<(f64, Vec<Vec<usize>>), String> {
    let classes = model.output_len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut logits = vec![0.0f32; batch * classes];
    let per = data.sample_len();
    for start in (0..data.len()).step_by(batch) {
        let n = batch.min(data.len() - start);
        let x = &data.images[start * per..(start + n) * per];
        model.predict(x, &mut logits[..n * classes]).map_err(|e| e.to_string())?;
        for (row, &label) in
            logits[..n * classes].chunks(classes).zip(&data.labels[start..start + n])
        {
            confusion[usize::from(label)][argmax(row)] += 1;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Ok((correct as f64 / data.len().max(1) as f64, confusion))
}

fn confusion_table(confusion: &[Vec<usize>]) -> String {
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

/// Writes `text` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The epochs completed by an earlier run, from its `state.txt`.
fn completed_epochs(dir: &Path) -> Result<usize, String> {
    let path = dir.join("state.txt");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot resume: `{}`: {e}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("completed_epochs="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("cannot resume: `{}` has no completed_epochs line", path.display()))
}

/// Restores the optimizer's momentum or moments and the step count saved
/// with the last checkpoint, so that a resumed run continues exactly.
fn restore_optimizer(model: &mut dyn Model, dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("state.txt"))
        .map_err(|e| format!("cannot resume: {e}"))?;
    let field =
        |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok());
    let (Some(kind), Some(step)) = (field("optimizer_kind="), field("step=")) else {
        return Err("cannot resume: state.txt has no optimizer_kind and step".into());
    };
    let path = dir.join("optimizer.safetensors");
    let mut file = netc_runtime::weights::WeightsFile::open(&path)
        .map_err(|e| format!("cannot resume: {e}"))?;
    // The saved state holds 0, 1 or 2 values per parameter; try each.
    let mut restored = None;
    for per in [0, 1, 2] {
        let mut state = vec![0.0f32; per * model.param_count()];
        if file.read_into("state", &[state.len()], &mut state).is_ok() {
            restored = Some(state);
            break;
        }
    }
    let state = restored
        .ok_or_else(|| format!("cannot resume: `{}` does not match the model", path.display()))?;
    file.finish().map_err(|e| format!("cannot resume: {e}"))?;
    model.set_optimizer_state(&state, kind as u8, step).map_err(|e| format!("cannot resume: {e}"))
}

pub fn train(args: &TrainArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.data.file.as_deref(), &args.data.model) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file)) => return netfile::run(&file),
        Err(e) => return fail(e),
    };
    if args.batch == 0 {
        return fail("--batch must be at least 1");
    }
    let pool = match pool(args.data.threads) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match pool.install(|| run_training(args, network)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run_training(args: &TrainArgs, network: Network) -> Result<(), String> {
    let name = network.name;
    let started = Instant::now();
    let mut model = (network.factory)(args.data.seed, args.batch);
    let (train, test, what) = load(&args.data)?;
    check_fit(model.as_ref(), name, (&train, &test), &what)?;
    let dir = args.out.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let opt = optimizer(args, model.as_ref());
    let checkpoint = dir.join("model.safetensors");
    let metrics = dir.join("metrics.csv");
    let mut first_epoch = 0;
    if args.resume {
        first_epoch = completed_epochs(&dir)?;
        model.load(&checkpoint).map_err(|e| format!("cannot resume: {e}"))?;
        restore_optimizer(model.as_mut(), &dir)?;
        println!("resuming {name} after epoch {first_epoch} from {}", checkpoint.display());
    } else {
        std::fs::write(
            &metrics,
            "epoch,train_loss,train_accuracy,test_accuracy,samples_per_second,seconds\n",
        )
        .map_err(|e| format!("cannot write `{}`: {e}", metrics.display()))?;
    }
    println!(
        "training {name} ({} parameters) on {} samples, testing on {}, batch {}, {:?}, {} threads (data ready in {:.1} s)",
        model.param_count(),
        train.len(),
        test.len(),
        args.batch,
        opt,
        rayon::current_num_threads(),
        started.elapsed().as_secs_f64()
    );
    let per = train.sample_len();
    let classes = model.output_len();
    let mut x = vec![0.0f32; args.batch * per];
    let mut labels = vec![0u32; args.batch];
    let mut logits = vec![0.0f32; args.batch * classes];
    let batches = train.len() / args.batch;
    if batches == 0 {
        return Err(format!(
            "{} training samples do not fill one batch of {}",
            train.len(),
            args.batch
        ));
    }
    let mut last_confusion = None;
    for epoch in first_epoch..args.epochs {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let order = shuffled(train.len(), args.data.seed ^ (epoch as u64 + 1));
        let epoch_start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for b in 0..batches {
            for (k, &i) in order[b * args.batch..(b + 1) * args.batch].iter().enumerate() {
                x[k * per..(k + 1) * per].copy_from_slice(train.image(i));
                labels[k] = u32::from(train.labels[i]);
            }
            let loss = model
                .forward_backward(&x, Targets::Labels(&labels), &mut logits)
                .map_err(|e| e.to_string())?;
            model.apply_gradients(&opt).map_err(|e| e.to_string())?;
            if !loss.is_finite() {
                return Err(format!(
                    "the loss diverged ({loss}) at epoch {}, batch {b}: lower --lr",
                    epoch + 1
                ));
            }
            loss_sum += f64::from(loss) * args.batch as f64;
            correct += logits
                .chunks(classes)
                .zip(&labels)
                .filter(|(row, &l)| argmax(row) == l as usize)
                .count();
            seen += args.batch;
            if b % 10 == 0 || b + 1 == batches {
                let rate = seen as f64 / epoch_start.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} samples/s",
                    loss_sum / seen as f64,
                    100.0 * correct as f64 / seen as f64,
                    rate
                ));
            }
            bar.inc(1);
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        let rate = seen as f64 / seconds;
        bar.finish();
        let (test_acc, confusion) = evaluate(model.as_mut(), &test, args.batch)?;
        let (train_loss, train_acc) = (loss_sum / seen as f64, correct as f64 / seen as f64);
        println!(
            "epoch {}: train loss {train_loss:.4}, train accuracy {:.2}%, test accuracy {:.2}%, {rate:.0} samples/s, {seconds:.1} s",
            epoch + 1,
            100.0 * train_acc,
            100.0 * test_acc
        );
        // Checkpoint, then the state that names it: a crash between the two
        // leaves the previous epoch's state, which still matches a whole file.
        model.save(&checkpoint).map_err(|e| e.to_string())?;
        let (opt_state, kind, step) = model.optimizer_state();
        netc_runtime::weights::save(
            &dir.join("optimizer.safetensors"),
            &[("state".to_string(), vec![opt_state.len()], opt_state)],
        )
        .map_err(|e| e.to_string())?;
        write_atomic(
            &dir.join("state.txt"),
            &format!(
                "model={name}\ncompleted_epochs={}\nseed={}\noptimizer_kind={kind}\nstep={step}\n",
                epoch + 1,
                args.data.seed
            ),
        )
        .map_err(|e| format!("cannot write state: {e}"))?;
        let line = format!(
            "{},{train_loss:.6},{train_acc:.6},{test_acc:.6},{rate:.1},{seconds:.2}\n",
            epoch + 1
        );
        let mut old = std::fs::read_to_string(&metrics).unwrap_or_default();
        old.push_str(&line);
        write_atomic(&metrics, &old).map_err(|e| format!("cannot write metrics: {e}"))?;
        let plot_path = dir.join("training.png");
        crate::plot::plot(
            &crate::plot::read_metrics(&old),
            &format!("{name} training"),
            &plot_path,
        )?;
        last_confusion = Some(confusion);
    }
    if let Some(c) = last_confusion {
        print!("{}", confusion_table(&c));
    }
    println!(
        "checkpoint: {}\nmetrics: {}\nplot: {}\ntotal time {:.1} s",
        checkpoint.display(),
        metrics.display(),
        dir.join("training.png").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn eval(args: &EvalArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.data.file.as_deref(), &args.data.model) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file)) => return netfile::run(&file),
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
        let (train, test, what) = load(&args.data)?;
        check_fit(model.as_ref(), name, (&train, &test), &what)?;
        let (acc, confusion) = evaluate(model.as_mut(), &test, 256)?;
        println!("{name} on {} test samples: accuracy {:.2}%", test.len(), 100.0 * acc);
        print!("{}", confusion_table(&confusion));
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
    fn shuffles_are_permutations_and_seeded() {
        let a = shuffled(100, 3);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 3));
        assert_ne!(a, shuffled(100, 4));
    }
}
