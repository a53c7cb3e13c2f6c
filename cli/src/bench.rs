//! `netc bench`: times a network (a zoo model compiled in, or a `.net`
//! file built on first use) on random inputs, as `caffe time` does: each
//! layer's forward and backward time in the training step, then the whole
//! training step and inference at batch 1 and at the batch, each the median
//! of repeated runs after warm-up, against the FMA peak measured here for
//! the threads used.

use crate::network::{choose, Chosen};
use crate::{fail, netfile, pool, Network};
use netc_dsl::ir::{layer_rows, LayerRow};
use netc_runtime::model::{Model, TargetKind, Targets};
use netc_runtime::nn::Optimizer;
use netc_runtime::optim::Sgd;
use netc_runtime::profile::StepProfile;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A `.net` file to time; netc builds it once (cached) and runs it.
    /// Without it, `--model` names a zoo model.
    file: Option<PathBuf>,
    /// A zoo model: lenet5, mlp, linear, resnet20, alexnet, vgg11, resnet18.
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// The number format of the convs' and dense layers' products, as
    /// `netc train --precision` takes it.
    #[arg(long, value_parser = crate::network::parse_precision)]
    precision: Option<netc_dsl::Precision>,
    /// Samples per training step and per batched inference.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs of each measurement, at least (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Each measurement repeats until this many seconds have passed too.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Print one JSON object per layer and per total instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn bench(args: &BenchArgs, built: Option<Network>) -> ExitCode {
    let network = match choose(built, args.file.as_deref(), &args.model, args.precision) {
        Ok(Chosen::Built(n)) => n,
        Ok(Chosen::File(file, precision)) => return netfile::run(&file, precision),
        Err(e) => return fail(e),
    };
    if args.batch == 0 || args.runs == 0 {
        return fail("--batch and --runs must be at least 1");
    }
    let pool = match pool(args.threads) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match pool.install(|| measure(args, network)) {
        Ok(report) => {
            report.print(args.json);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// One layer's times (medians over the profiled steps) and FLOPs.
#[derive(Serialize)]
struct Layer {
    name: String,
    op: String,
    /// The checker's forward FLOPs per sample.
    flops_per_sample: u64,
    forward_ns: u64,
    backward_ns: u64,
    /// Forward plus backward, over the median training step.
    share_of_step: f64,
    /// FLOPs of the forward pass over its time.
    forward_gflops: Option<f64>,
    /// Three times the forward FLOPs over forward plus backward time.
    train_gflops: Option<f64>,
}

/// A whole-network measurement.
#[derive(Serialize)]
struct Total {
    what: &'static str,
    batch: usize,
    median_ns: u64,
    runs: usize,
    samples_per_second: f64,
    /// The training step counts three times the forward FLOPs.
    gflops: f64,
    peak_gflops: f64,
    share_of_peak: f64,
}

/// What one JSON line holds.
#[derive(Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record<'a> {
    Layer(&'a Layer),
    /// The loss and its gradient, at the start of the backward pass.
    Loss {
        median_ns: u64,
        share_of_step: f64,
        /// The last profiled step's loss: a diverged (non-finite) one
        /// would make the times those of another computation.
        last_value: f32,
    },
    Total(&'a Total),
}

struct Report {
    network: &'static str,
    threads: usize,
    batch: usize,
    isa: &'static str,
    peak: f64,
    layers: Vec<Layer>,
    loss_ns: u64,
    last_loss: f32,
    totals: Vec<Total>,
}

/// The inputs and targets of a batch of `n`: values in `[-1, 1)` and
/// labels spread over the classes, reproducible.
fn random_batch(model: &dyn Model, n: usize) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let x = (0..n * model.input_len()).map(|_| next()).collect();
    match model.target_kind() {
        TargetKind::Labels { classes } => {
            let labels = (0..n).map(|i| (i * 7 % classes.max(1)) as u32).collect();
            (x, labels, Vec::new())
        }
        TargetKind::Values { len } => (x, Vec::new(), (0..n * len).map(|_| next()).collect()),
    }
}

/// `opt` at learning rate 0: its update does the same work but leaves the
/// weights as they are, so every timed step computes the same values and
/// the times do not drift as the network memorises the batch (its
/// gradients shrinking toward subnormal values, which x86 computes slowly).
fn at_rest(mut opt: Optimizer) -> Optimizer {
    opt.set_lr(0.0);
    opt
}

/// The median time of `f` over at least `args.runs` runs and
/// `args.seconds`, after two warm-up runs; and the number of runs.
fn median_time(
    args: &BenchArgs,
    mut f: impl FnMut() -> Result<Duration, String>,
) -> Result<(Duration, usize), String> {
    for _ in 0..2 {
        f()?;
    }
    let budget = Duration::from_secs_f64(args.seconds.max(0.0));
    let (start, mut times) = (Instant::now(), Vec::new());
    while times.len() < args.runs || (start.elapsed() < budget && times.len() < 100_000) {
        times.push(f()?);
    }
    Ok((median(&mut times), times.len()))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn timed(f: impl FnOnce() -> Result<(), netc_runtime::Error>) -> Result<Duration, String> {
    let t = Instant::now();
    f().map_err(|e| e.to_string())?;
    Ok(t.elapsed())
}

/// The FP32 FMA peak of the pool's threads, each running the FMA loop at
/// once: their sum, and the instruction set.
fn fma_peak() -> (&'static str, f64) {
    let each = rayon::broadcast(|_| netc_runtime::gemm::peak::fma_peak(Duration::from_millis(300)));
    let isa = each.first().map_or("scalar", |(isa, _)| *isa);
    (isa, each.iter().map(|(_, flops)| flops).sum())
}

/// The checker's row of each layer the model names, in the model's order.
fn rows_of(network: &Network, model: &dyn Model) -> Result<Vec<LayerRow>, String> {
    let checked = netc_dsl::check_source(network.name, network.source)
        .map_err(|_| format!("the source of `{}` no longer checks", network.name))?;
    let g = checked
        .graphs
        .iter()
        .find(|g| g.name == model.name())
        .ok_or_else(|| format!("no network `{}` in its source", model.name()))?;
    Ok(layer_rows(g))
}

fn measure(args: &BenchArgs, network: Network) -> Result<Report, String> {
    let (isa, peak) = fma_peak();
    let n = args.batch;
    let mut model = (network.factory)(1, n);
    let rows = rows_of(&network, model.as_ref())?;
    let (x, labels, values) = random_batch(model.as_ref(), n);
    let targets =
        if values.is_empty() { Targets::Labels(&labels) } else { Targets::Values(&values) };
    let sgd = Sgd { lr: 0.0, momentum: 0.9, nesterov: false, weight_decay: 0.0, clip_norm: None };
    let opt = at_rest(model.default_optimizer().unwrap_or(Optimizer::Sgd(sgd)));
    let mut out = vec![0.0f32; n * model.output_len()];
    // Plain and profiled steps alternate, so that whatever else the
    // machine runs falls on both alike.
    let mut profiles: Vec<StepProfile> = Vec::new();
    let (step, step_runs) = median_time(args, || {
        let plain = timed(|| {
            model.forward_backward(&x, targets, &mut out)?;
            model.apply_gradients(&opt)
        })?;
        let profile = model
            .profile_forward_backward(&x, targets, &mut out)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("`{}` does not time its layers", model.name()))?;
        model.apply_gradients(&opt).map_err(|e| e.to_string())?;
        profiles.push(profile);
        Ok(plain)
    })?;
    // What `netc train` runs: data-parallel shards or SGD fused into the
    // backward pass where the network allows them.
    let (fast, fast_runs) =
        median_time(args, || timed(|| model.train_step(&x, targets, &opt).map(|_| ())))?;
    // The warm-up runs' profiles are not part of the medians.
    let profiles = &profiles[2..];
    let (layers, loss) = layer_medians(&rows, profiles, n, step)?;
    let in_len = model.input_len();
    let infer = |batch: usize| {
        let mut out = vec![0.0f32; batch * model.output_len()];
        median_time(args, || timed(|| model.predict(&x[..batch * in_len], &mut out)))
    };
    let (one, one_runs) = infer(1)?;
    let (full, full_runs) = infer(n)?;
    let flops = rows.iter().map(|r| r.flops).sum::<u64>() as f64;
    let total = |what, batch: usize, t: Duration, runs, flops: f64| {
        let gflops = flops * batch as f64 / t.as_secs_f64().max(1e-12) / 1e9;
        Total {
            what,
            batch,
            median_ns: t.as_nanos() as u64,
            runs,
            samples_per_second: batch as f64 / t.as_secs_f64().max(1e-12),
            gflops,
            peak_gflops: peak / 1e9,
            share_of_peak: gflops * 1e9 / peak,
        }
    };
    let totals = vec![
        total("training step, kernel by kernel", n, step, step_runs, 3.0 * flops),
        total("training step, train_step (as netc train)", n, fast, fast_runs, 3.0 * flops),
        total("inference", 1, one, one_runs, flops),
        total("inference", n, full, full_runs, flops),
    ];
    Ok(Report {
        network: network.name,
        threads: rayon::current_num_threads(),
        batch: n,
        isa,
        peak,
        layers,
        loss_ns: loss.as_nanos() as u64,
        last_loss: profiles.last().map_or(f32::NAN, |p| p.loss),
        totals,
    })
}

/// Each layer's median forward and backward time over `profiles`, with its
/// FLOPs and rates, and the loss's median time.
fn layer_medians(
    rows: &[LayerRow],
    profiles: &[StepProfile],
    batch: usize,
    step: Duration,
) -> Result<(Vec<Layer>, Duration), String> {
    let first = profiles.first().ok_or("no profiled step ran")?;
    if first.layers.len() != rows.len()
        || first.layers.iter().zip(rows).any(|(layer, row)| layer.name != row.name)
    {
        return Err("the model's layers are not those of its source".into());
    }
    let step_s = step.as_secs_f64().max(1e-12);
    let rate =
        |flops: f64, t: Duration| (t > Duration::ZERO).then(|| flops / t.as_secs_f64() / 1e9);
    let layers = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let forward =
                median(&mut profiles.iter().map(|p| p.layers[i].forward).collect::<Vec<_>>());
            let backward =
                median(&mut profiles.iter().map(|p| p.layers[i].backward).collect::<Vec<_>>());
            let flops = (row.flops * batch as u64) as f64;
            Layer {
                name: row.name.clone(),
                op: if row.detail.is_empty() {
                    row.op.to_string()
                } else {
                    format!("{} {}", row.op, row.detail)
                },
                flops_per_sample: row.flops,
                forward_ns: forward.as_nanos() as u64,
                backward_ns: backward.as_nanos() as u64,
                share_of_step: (forward + backward).as_secs_f64() / step_s,
                forward_gflops: rate(flops, forward),
                train_gflops: rate(3.0 * flops, forward + backward),
            }
        })
        .collect();
    let loss = median(&mut profiles.iter().map(|p| p.loss_time).collect::<Vec<_>>());
    Ok((layers, loss))
}

impl Report {
    /// The kernel-by-kernel training step, which the profiled steps time
    /// layer by layer.
    fn step_ns(&self) -> u64 {
        self.totals.first().map_or(0, |t| t.median_ns)
    }

    fn print(&self, json: bool) {
        if json {
            let loss_share = self.loss_ns as f64 / self.step_ns().max(1) as f64;
            let records = self
                .layers
                .iter()
                .map(Record::Layer)
                .chain([Record::Loss {
                    median_ns: self.loss_ns,
                    share_of_step: loss_share,
                    last_value: self.last_loss,
                }])
                .chain(self.totals.iter().map(Record::Total));
            for record in records {
                match serde_json::to_string(&record) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("error: cannot serialise a record: {e}"),
                }
            }
        } else {
            print!("{}", self.table());
        }
    }

    fn table(&self) -> String {
        let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
        let rate = |g: Option<f64>| g.map_or_else(|| "-".to_string(), |g| format!("{g:.1}"));
        let mut rows = vec![[
            "layer",
            "op",
            "forward ms",
            "backward ms",
            "% of step",
            "fwd GFLOP/s",
            "train GFLOP/s",
        ]
        .map(String::from)];
        for l in &self.layers {
            rows.push([
                l.name.clone(),
                l.op.clone(),
                ms(l.forward_ns),
                ms(l.backward_ns),
                format!("{:.1}", 100.0 * l.share_of_step),
                rate(l.forward_gflops),
                rate(l.train_gflops),
            ]);
        }
        let (fwd, bwd) =
            self.layers.iter().fold((0, 0), |(f, b), l| (f + l.forward_ns, b + l.backward_ns));
        let share = |ns: u64| format!("{:.1}", 100.0 * ns as f64 / self.step_ns().max(1) as f64);
        let dash = || "-".to_string();
        rows.push([
            "(loss)".into(),
            "loss and its gradient".into(),
            dash(),
            ms(self.loss_ns),
            share(self.loss_ns),
            dash(),
            dash(),
        ]);
        rows.push([
            "(sum)".into(),
            String::new(),
            ms(fwd),
            ms(bwd + self.loss_ns),
            share(fwd + bwd + self.loss_ns),
            dash(),
            dash(),
        ]);
        let mut out = format!(
            "{}: batch {}, {} threads, random inputs and targets (last loss {:.4}), \
             the update at learning rate 0, \
             medians of timed runs after 2 warm-up runs\n\
             % of step: over the kernel-by-kernel training step (forward_backward, \
             apply_gradients), whose passes the layers' times come from\n\
             GFLOP/s count the checker's forward FLOPs (`netc check`) times the batch: \
             fwd over the forward time, train three times them over forward plus backward\n\n",
            self.network, self.batch, self.threads, self.last_loss
        );
        out.push_str(&columns(&rows));
        out.push('\n');
        for t in &self.totals {
            out.push_str(&format!(
                "{:<41} batch {:>4}: {:>10} ms  {:>9.0} samples/s  {:>7.1} GFLOP/s  {:>5.1}% of peak  ({} runs)\n",
                t.what,
                t.batch,
                ms(t.median_ns),
                t.samples_per_second,
                t.gflops,
                100.0 * t.share_of_peak,
                t.runs
            ));
        }
        out.push_str(&format!(
            "FP32 FMA peak of {} threads, measured now ({}): {:.1} GFLOP/s; \
             the training step counts three times the forward FLOPs\n",
            self.threads,
            self.isa,
            self.peak / 1e9
        ));
        out
    }
}

/// Rows as columns: the first two left-aligned, the numbers right-aligned.
fn columns(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i < 2 {
                line.push_str(&format!("{cell:<w$}  "));
            } else {
                line.push_str(&format!("{cell:>w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
