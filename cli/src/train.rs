//! `netc train`: trains a network (a zoo model compiled in, or a `.net`
//! file built on first use) on the data the flags choose, with the
//! optimizer and learning-rate schedule of the file or the flags; after
//! each epoch it evaluates, keeps the best weights, writes the metrics, the
//! plot and one consistent checkpoint, and stops early when the monitored
//! metric stops improving. `--resume` continues from the checkpoint exactly.

use crate::checkpoint::{self, Progress};
use crate::data::loader::Loader;
use crate::data::{check_fit, load, DataArgs, Dataset};
use crate::distributed::{self, Alone, Group};
use crate::evaluate::{confusion_table, tally, Evaluation, Tally};
use crate::events::Events;
use crate::hyper::{self, HyperArgs};
use crate::metrics::{Epoch, Records};
use crate::network::{choose, Chosen};
use crate::{fail, netfile, pool, Network};
use netc_runtime::model::{Model, Targets};
use netc_runtime::nn::Optimizer;
use netc_runtime::schedule::Schedule;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The metric early stopping and the best checkpoint follow.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// The evaluation loss (lower is better).
    Loss,
    /// The evaluation accuracy (higher is better).
    Accuracy,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    hyper: HyperArgs,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// The number format of the convs' and dense layers' products: f32,
    /// or bf16 operands with f32 sums (fastest where the CPU has AMX).
    /// Over the network's own `precision` statement; a zoo model in
    /// another precision than its own is built from its `.net` file.
    #[arg(long, value_parser = crate::network::parse_precision)]
    precision: Option<netc_dsl::Precision>,
    /// Samples per training step. The last partial batch of each epoch
    /// is dropped (its samples come back in later epochs' orders), so no
    /// step sees a smaller batch than this.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Stop after this many epochs without improvement of --monitor.
    #[arg(long)]
    patience: Option<usize>,
    /// What --patience and `best.safetensors` follow.
    #[arg(long, value_enum, default_value_t = Monitor::Loss)]
    monitor: Monitor,
    /// One JSON object per line for each step, epoch and the end, instead
    /// of text.
    #[arg(long)]
    json: bool,
    /// Where runs are written: `<out>/<model>/`.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Continue from the checkpoint in `<out>/<model>/`.
    #[arg(long)]
    resume: bool,
    /// Start from these weights (safetensors under PyTorch's names, such as
    /// `netc import` writes) instead of the network's initialisation; every
    /// tensor must match.
    #[arg(long, conflicts_with = "resume")]
    weights: Option<PathBuf>,
    /// Augment the training images each epoch: a random crop of the image
    /// padded by 4 pixels, and a horizontal flip half the time.
    #[arg(long)]
    augment: bool,
    /// Train as N data-parallel ranks that are threads of this process,
    /// each with its share of every batch: what `mpirun -np N netc train`
    /// does across processes, bit for bit.
    #[arg(long, value_name = "N")]
    local_ranks: Option<usize>,
    /// After every epoch, compare a fingerprint of the parameters across
    /// the data-parallel ranks, and stop if they differ.
    #[arg(long)]
    check_replicas: bool,
    /// In a data-parallel run, the megabytes of gradients gathered into a
    /// bucket before it is summed across the ranks, beside the backward
    /// pass that goes on computing the rest.
    #[arg(long, default_value_t = 4.0)]
    bucket_mb: f64,
    /// Sum all the gradients after the backward pass instead (the same
    /// bits on two ranks), to measure what summing beside it hides.
    #[arg(long)]
    sum_after_backward: bool,
}

pub fn train(args: &TrainArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.data.file.as_deref(), &args.data.model, args.precision) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file, precision)) => return netfile::run(&file, precision),
        Err(e) => return fail(e),
    };
    if args.batch == 0 {
        return fail("--batch must be at least 1");
    }
    if !(args.bucket_mb > 0.0 && args.bucket_mb.is_finite()) {
        return fail(format!("--bucket-mb must be a positive number, not {}", args.bucket_mb));
    }
    match launch(args, network) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Trains on the ranks that `--local-ranks` or the MPI launcher give, or
/// alone.
fn launch(args: &TrainArgs, network: Network) -> Result<(), String> {
    let mpirun = distributed::launched_by_mpirun();
    match args.local_ranks {
        Some(_) if mpirun => Err("--local-ranks runs ranks as threads of one process; under \
                                  mpirun, its -np gives the ranks"
            .into()),
        Some(0) => Err("--local-ranks must be at least 1".into()),
        Some(n) => {
            let results = distributed::run_local(n, |group| train_as(args, network, group, n))?;
            let failed: Vec<(usize, String)> =
                results.into_iter().enumerate().filter_map(|(r, e)| Some((r, e.err()?))).collect();
            match failed.as_slice() {
                [] => Ok(()),
                // One error, or the same on every rank: said once.
                [(_, e), ..] if failed.iter().all(|(_, other)| other == e) => Err(e.clone()),
                _ => {
                    let each: Vec<String> =
                        failed.iter().map(|(r, e)| format!("rank {r}: {e}")).collect();
                    Err(each.join("\nerror: "))
                }
            }
        }
        None if mpirun => over_mpi(args, network),
        None => train_as(args, network, &Alone, 1),
    }
}

/// Trains as this process's MPI rank. An error every rank reached alike
/// is told by rank 0 and ends each rank by itself; an error on one rank
/// ends the whole job, since the others would wait for it forever.
#[cfg(feature = "mpi")]
fn over_mpi(args: &TrainArgs, network: Network) -> Result<(), String> {
    let (universe, group) = distributed::mpi::init().ok_or("MPI did not start")?;
    let here = distributed::mpi::ranks_on_this_machine();
    match train_as(args, network, &group, here) {
        Err(e) if group.size() > 1 && distributed::failure_known().0 => {
            if group.rank() == 0 {
                eprintln!("error: {e}");
            } else if distributed::failure_known().1 {
                eprintln!("error: rank {}: {e}", group.rank());
            }
            // Every rank stops here: once all have spoken, none of their
            // exits can make the launcher kill a rank before it has.
            distributed::mpi::barrier();
            // Finalised before the exit, which skips destructors.
            drop(universe);
            std::process::exit(1)
        }
        Err(e) if group.size() > 1 => {
            eprintln!("error: rank {}: {e}", group.rank());
            distributed::mpi::abort()
        }
        result => result,
    }
}

/// Under mpirun without MPI built in: one rank is a plain run; several
/// would each train alone and overwrite each other's files.
#[cfg(not(feature = "mpi"))]
fn over_mpi(args: &TrainArgs, network: Network) -> Result<(), String> {
    let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
        .unwrap_or(1);
    if size <= 1 {
        return train_as(args, network, &Alone, 1);
    }
    Err("this netc was built without MPI, so its ranks cannot train together: build netc-cli \
         with `--features mpi`, or use --local-ranks on one machine"
        .into())
}

/// Trains as `group`'s rank, one of `ranks_here` on this machine, in a
/// pool of `--threads` threads (default: this rank's share of the cores).
fn train_as(
    args: &TrainArgs,
    network: Network,
    group: &dyn Group,
    ranks_here: usize,
) -> Result<(), String> {
    let threads = match (args.data.threads, ranks_here) {
        (None, 1) => None,
        (threads, _) => Some(threads.unwrap_or_else(|| distributed::default_threads(ranks_here))),
    };
    pool(threads)?.install(|| run_training(args, network, group))
}

/// A permutation of `0..n` from `seed` (Fisher–Yates with SplitMix64).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        netc_runtime::splitmix::SplitMix64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// What one run trains with, fixed for all its epochs.
struct Run<'a> {
    args: &'a TrainArgs,
    train: &'a Dataset,
    loader: Loader,
    base: Optimizer,
    schedule: Schedule,
    batches: usize,
    /// The ranks training together, and this rank's samples of each batch.
    group: &'a dyn Group,
    share: Range<usize>,
}

/// An epoch's training figures.
struct EpochTotals {
    loss: f64,
    accuracy: f64,
    lr: f64,
    seconds: f64,
    data_seconds: f64,
    samples: usize,
    /// Seconds spent summing gradients across ranks, and of those the
    /// seconds the steps waited for after their backward passes.
    communicating: Option<(f64, f64)>,
}

impl Run<'_> {
    /// One epoch of steps, in the order the seed and the epoch give.
    fn epoch(
        &self,
        model: &mut dyn Model,
        epoch: usize,
        records: &mut Records,
        events: &mut Events,
    ) -> Result<EpochTotals, String> {
        let (args, train, batch) = (self.args, self.train, self.args.batch);
        // The order is the whole job's, whatever the ranks: each trains on
        // its share of every batch.
        let mut order = shuffled(train.len(), args.data.seed ^ (epoch as u64 + 1));
        if self.group.size() > 1 {
            order =
                order.chunks_exact(batch).flat_map(|b| b[self.share.clone()].to_vec()).collect();
        }
        let bucket_values = (args.bucket_mb * (1 << 20) as f64 / 4.0) as usize;
        let mut parallel =
            distributed::Step::new((!args.sum_after_backward).then_some(bucket_values));
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut opt = self.base;
        let mut lr = opt.lr();
        events.epoch_start(epoch, args.epochs, self.batches);
        let mut batches = self.loader.epoch(order, epoch)?;
        for b in 0..self.batches {
            let (x, labels) = batches.next().ok_or("the batch loader stopped early")?;
            let progress = (epoch * self.batches + b + 1) as f64 / self.batches as f64;
            lr = self.schedule.lr(self.base.lr(), progress, args.epochs as f64);
            opt.set_lr(lr);
            let (loss, right) = if self.group.size() == 1 {
                // The generated step: sharded across threads and with SGD
                // fused into the backward pass where the network allows.
                model.train_step(x, Targets::Labels(labels), &opt).map_err(|e| e.to_string())?
            } else {
                parallel.run(model, self.group, (x, labels), batch, &opt)?
            };
            if !loss.is_finite() {
                return Err(distributed::shared_failure(format!(
                    "the loss diverged ({loss}) at epoch {}, batch {b}: lower --lr",
                    epoch + 1
                )));
            }
            let step = (epoch * self.batches + b + 1) as u64;
            let smoothed = records.step(step, progress, f64::from(loss), lr);
            loss_sum += f64::from(loss);
            correct += right as usize;
            events.step(step, progress, f64::from(loss), smoothed, lr);
        }
        let samples = self.batches * batch;
        Ok(EpochTotals {
            loss: loss_sum / self.batches as f64,
            accuracy: correct as f64 / samples as f64,
            lr,
            seconds: started.elapsed().as_secs_f64(),
            data_seconds: batches.waited().as_secs_f64(),
            samples,
            communicating: (self.group.size() > 1)
                .then_some((parallel.summing.as_secs_f64(), parallel.communicating.as_secs_f64())),
        })
    }
}

/// Whether `value` of the monitored metric beats `best`.
fn improves(monitor: Monitor, value: f64, best: Option<(f64, usize)>) -> bool {
    match (monitor, best) {
        (_, None) => true,
        (Monitor::Loss, Some((b, _))) => value < b,
        (Monitor::Accuracy, Some((b, _))) => value > b,
    }
}

/// The progress and records to start from: the checkpoint's with
/// `--resume`, else fresh ones.
fn start(
    args: &TrainArgs,
    name: &str,
    dir: &Path,
    model: &mut dyn Model,
) -> Result<(Progress, Records), String> {
    if !args.resume {
        let fresh = Progress {
            network: name.to_string(),
            completed_epochs: 0,
            seed: args.data.seed,
            best: None,
            stale_epochs: 0,
        };
        return Ok((fresh, Records::default()));
    }
    let progress = checkpoint::read(dir, name, model)?;
    if progress.seed != args.data.seed {
        return Err(format!(
            "cannot resume: the checkpoint was trained with --seed {}, which fixes its data \
             order; give the same seed",
            progress.seed
        ));
    }
    let records = Records::read(dir, progress.completed_epochs)?;
    Ok((progress, records))
}

/// The whole job's loss, accuracy and confusion matrix on `test`, each
/// rank evaluating its share of the samples.
fn evaluate_together(
    model: &mut dyn Model,
    group: &dyn Group,
    test: &Dataset,
    batch: usize,
) -> Result<Evaluation, String> {
    let (rank, size) = (group.rank(), group.size());
    let own = tally(model, test, distributed::shard(test.len(), rank, size), batch)?;
    if size == 1 {
        return Ok(own.finish());
    }
    let sums = distributed::sum_f64(group, &own.to_numbers())?;
    Ok(Tally::from_numbers(&sums, model.output_len()).finish())
}

/// The model this rank trains, with the data it trains on, every rank
/// agreeing that all of them could start.
fn prepare(
    args: &TrainArgs,
    network: Network,
    group: &dyn Group,
    share: &Range<usize>,
) -> Result<(Box<dyn Model>, Dataset, Dataset, String), String> {
    let source = distributed::fingerprint(network.name.bytes().chain(network.source.bytes()));
    distributed::agree(group, source, "the network (its name and .net source)")
        .map_err(|e| format!("{e}: every rank must train the same network"))?;
    if args.batch < group.size() {
        return Err(distributed::shared_failure(format!(
            "--batch {} is smaller than the {} ranks, each of which trains on a share of every \
             batch: give a batch of at least {}",
            args.batch,
            group.size(),
            group.size()
        )));
    }
    let mut model = (network.factory)(args.data.seed, share.len().max(1));
    if let Some(path) = &args.weights {
        let read = model.load(path).map_err(|e| e.to_string());
        distributed::all_succeed(group, read, "read its --weights")?;
    }
    let loaded = load(&args.data, model.input_shape()).and_then(|(train, test, what)| {
        check_fit(model.as_ref(), network.name, (&train, &test), &what)?;
        Ok((train, test, what))
    });
    let (train, test, what) = distributed::all_succeed(group, loaded, "load its data")?;
    // The smallest share, which every rank computes alike.
    let fewest = args.batch / group.size();
    if let (1, Some(layer)) = (fewest, model.single_value_batch_norm()) {
        return Err(format!(
            "a shard of one sample gives batch norm `{layer}` one value per channel, which it \
             cannot train on: use a batch of at least {}",
            2 * group.size()
        ));
    }
    Ok((model, train, test, what))
}

fn run_training(args: &TrainArgs, network: Network, group: &dyn Group) -> Result<(), String> {
    let (name, leader) = (network.name, group.rank() == 0);
    let started = Instant::now();
    let share = distributed::shard(args.batch, group.rank(), group.size());
    let (mut model, train, test, what) = prepare(args, network, group, &share)?;
    // Dropout masks follow the samples' places in the whole batch.
    model.set_first_sample(share.start as u64);
    let train = Arc::new(train);
    let augment = args.augment.then_some(args.data.seed);
    let loader = Loader::new(Arc::clone(&train), share.len(), augment, &what)?;
    let base = hyper::optimizer(&args.hyper.step, model.as_ref())?;
    let schedule = hyper::schedule(&args.hyper, model.as_ref())?;
    // The last partial batch of an epoch is dropped, never trained on: it
    // could be a single sample, which batch norm refuses.
    let batches = train.len() / args.batch;
    if batches == 0 {
        return Err(format!(
            "{} training samples do not fill one batch of {}",
            train.len(),
            args.batch
        ));
    }
    let dir = args.out.join(name);
    if leader {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let resumed = start(args, name, &dir, model.as_mut());
    let (mut progress, mut records) = distributed::all_succeed(group, resumed, "resume")?;
    let mut events = if leader { Events::new(args.json, group.size()) } else { Events::silent() };
    if args.resume {
        events.resumed(name, progress.completed_epochs, &dir.join(checkpoint::FILE));
    }
    events.start(
        name,
        model.param_count(),
        (train.len(), test.len()),
        &what,
        args.batch,
        &base,
        &schedule,
        started,
    );
    let run = Run { args, train: &train, loader, base, schedule, batches, group, share };
    let mut last: Option<Evaluation> = None;
    let patience_spent = |p: &Progress| args.patience.is_some_and(|n| p.stale_epochs >= n);
    for epoch in progress.completed_epochs..args.epochs {
        if patience_spent(&progress) {
            break;
        }
        let totals = run.epoch(model.as_mut(), epoch, &mut records, &mut events)?;
        distributed::average_buffers(model.as_mut(), group)?;
        if args.check_replicas {
            let params = distributed::fingerprint_params(model.as_ref());
            distributed::agree(group, params, "the parameters")
                .map_err(|e| format!("after epoch {}, {e}: the replicas diverged", epoch + 1))?;
        }
        let result = evaluate_together(model.as_mut(), group, &test, args.batch)?;
        let value = match args.monitor {
            Monitor::Loss => result.loss,
            Monitor::Accuracy => result.accuracy,
        };
        let improved = improves(args.monitor, value, progress.best);
        if improved {
            progress.best = Some((value, epoch + 1));
            progress.stale_epochs = 0;
        } else {
            progress.stale_epochs += 1;
        }
        progress.completed_epochs = epoch + 1;
        let row = Epoch {
            epoch: epoch + 1,
            train_loss: totals.loss,
            train_accuracy: totals.accuracy,
            val_loss: result.loss,
            val_accuracy: result.accuracy,
            lr: totals.lr,
            samples_per_second: totals.samples as f64 / totals.seconds,
            seconds: totals.seconds,
            data_seconds: totals.data_seconds,
        };
        records.epochs.push(row);
        if leader {
            write_epoch(&dir, model.as_ref(), (&progress, &records), improved)?;
        }
        events.epoch(&row, improved, totals.communicating);
        last = Some(result);
    }
    let stopped_early = patience_spent(&progress) && progress.completed_epochs < args.epochs;
    events.finish(
        &dir,
        progress.best,
        stopped_early,
        last.as_ref().map(|r| confusion_table(&r.confusion)),
        started,
    );
    Ok(())
}

/// What an epoch leaves in the run's directory: the best weights when they
/// improved, the records, the plot, the weights and the checkpoint.
fn write_epoch(
    dir: &Path,
    model: &dyn Model,
    (progress, records): (&Progress, &Records),
    improved: bool,
) -> Result<(), String> {
    if improved {
        model.save(&dir.join("best.safetensors")).map_err(|e| e.to_string())?;
    }
    // The records first: on resume they are cut back to the checkpoint,
    // which is written last and so decides where the run stands.
    records.write(dir)?;
    let title = format!("{} training", progress.network);
    crate::plot::plot(records, &title, &dir.join("training.png"))?;
    model.save(&dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    checkpoint::write(dir, model, progress)
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

    #[test]
    fn improvement_follows_the_monitor() {
        assert!(improves(Monitor::Loss, 1.0, None));
        assert!(improves(Monitor::Loss, 0.5, Some((0.6, 1))));
        assert!(!improves(Monitor::Loss, 0.6, Some((0.6, 1))));
        assert!(improves(Monitor::Accuracy, 0.9, Some((0.8, 2))));
        assert!(!improves(Monitor::Accuracy, 0.7, Some((0.8, 2))));
    }
}
