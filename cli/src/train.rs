//! `netc train`, `netc eval` and `netc predict`: train a zoo model compiled
//! at build time on the embedded synthetic digits (no download), on MNIST
//! IDX files or on CIFAR-10; checkpoint it atomically each epoch under
//! `runs/<model>/`, resume from the last completed epoch, and evaluate or
//! classify with a saved checkpoint.

use crate::data::{cifar, idx, synth, DataError, Dataset};
use crate::models::{self, Classifier};
use indicatif::{ProgressBar, ProgressStyle};
use netc_runtime::nn::Optimizer;
use netc_runtime::optim::{Adam, Sgd};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// The model: lenet5, mlp or linear (digits) or resnet20 (CIFAR-10).
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// A directory with MNIST or Fashion-MNIST IDX files (raw or .gz);
    /// without it, digits models use the embedded synthetic digits.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A directory with the CIFAR-10 binary files (for resnet20).
    #[arg(long)]
    cifar: Option<PathBuf>,
    /// Use only the first N training samples.
    #[arg(long)]
    train_size: Option<usize>,
    /// Use only the first N test samples.
    #[arg(long)]
    test_size: Option<usize>,
    /// Seed of the synthetic data, the initial weights and the shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// sgd, momentum or adam; default: the `.net` file's optimizer.
    #[arg(long)]
    optimizer: Option<String>,
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

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A PGM (P2 or P5) or PNG image, any size: it is converted to
    /// grayscale and resized to 28x28. Digits are light on dark, as MNIST.
    image: PathBuf,
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// The checkpoint; default `runs/<model>/model.safetensors`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool, String> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        b = b.num_threads(t.max(1));
    }
    b.build().map_err(|e| format!("cannot start threads: {e}"))
}

/// The train and test splits the model expects.
fn load(args: &DataArgs) -> Result<(Dataset, Dataset), String> {
    let wrap = |e: DataError| e.to_string();
    let (mut train, mut test) = if models::wants_cifar(&args.model) {
        let dir = args
            .cifar
            .as_ref()
            .ok_or("resnet20 trains on CIFAR-10: give its directory with --cifar DIR")?;
        cifar::load_dir(dir).map_err(wrap)?
    } else if let Some(dir) = &args.data {
        idx::load_dir(dir).map_err(wrap)?
    } else {
        let n_train = args.train_size.unwrap_or(synth::TRAIN_SIZE);
        let n_test = args.test_size.unwrap_or(synth::TEST_SIZE);
        (synth::generate(args.seed, true, n_train), synth::generate(args.seed, false, n_test))
    };
    if let Some(n) = args.train_size {
        train.truncate(n);
    }
    if let Some(n) = args.test_size {
        test.truncate(n);
    }
    Ok((train, test))
}

fn optimizer(args: &TrainArgs, model: &dyn Classifier) -> Result<Optimizer, String> {
    let mut opt = match args.optimizer.as_deref() {
        None => model.default_optimizer().unwrap_or(Optimizer::Sgd(Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: None,
        })),
        Some("sgd") => Optimizer::Sgd(Sgd {
            lr: 0.05,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: None,
        }),
        Some("momentum") => Optimizer::Sgd(Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: None,
        }),
        Some("adam") => Optimizer::Adam(Adam::new(1e-3)),
        Some(other) => {
            return Err(format!("unknown optimizer `{other}`: use sgd, momentum or adam"))
        }
    };
    if let Some(lr) = args.lr {
        match &mut opt {
            Optimizer::Sgd(s) => s.lr = lr,
            Optimizer::Adam(a) => a.lr = lr,
            Optimizer::AdamW(a) => a.lr = lr,
        }
    }
    Ok(opt)
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

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Accuracy and confusion matrix (`[true][predicted]`) over a dataset.
fn evaluate(
    model: &mut dyn Classifier,
    data: &Dataset,
    batch: usize,
) -> Result<(f64, Vec<Vec<usize>>), String> {
    let classes = model.classes();
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
fn restore_optimizer(model: &mut dyn Classifier, dir: &Path) -> Result<(), String> {
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
        let mut state = vec![0.0f32; per * model.params()];
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

pub fn train(args: &TrainArgs) -> ExitCode {
    if !models::NAMES.contains(&args.data.model.as_str()) {
        return fail(format!(
            "unknown model `{}`: choose one of {}",
            args.data.model,
            models::NAMES.join(", ")
        ));
    }
    if args.batch == 0 {
        return fail("--batch must be at least 1");
    }
    let pool = match pool(args.data.threads) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match pool.install(|| run_training(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run_training(args: &TrainArgs) -> Result<(), String> {
    let name = args.data.model.as_str();
    let dir = args.out.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let started = Instant::now();
    let (train, test) = load(&args.data)?;
    let mut model = models::create(name, args.data.seed, args.batch).ok_or("unknown model")?;
    if train.sample_len() != model.input_len() {
        return Err(format!(
            "{name} takes {} values per sample; the data has {}",
            model.input_len(),
            train.sample_len()
        ));
    }
    let opt = optimizer(args, model.as_ref())?;
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
        model.params(),
        train.len(),
        test.len(),
        args.batch,
        opt,
        rayon::current_num_threads(),
        started.elapsed().as_secs_f64()
    );
    let per = train.sample_len();
    let classes = model.classes();
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
            let loss =
                model.forward_backward(&x, &labels, &mut logits).map_err(|e| e.to_string())?;
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

pub fn eval(args: &EvalArgs) -> ExitCode {
    let pool = match pool(args.data.threads) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let result = pool.install(|| -> Result<(), String> {
        let name = args.data.model.as_str();
        let mut model = models::create(name, 0, 256).ok_or(format!("unknown model `{name}`"))?;
        let checkpoint = args
            .checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name).join("model.safetensors"));
        model.load(&checkpoint).map_err(|e| e.to_string())?;
        let (_, test) = load(&args.data)?;
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

/// Reads a binary (P5) or text (P2) PGM into values in `[0, 1]`.
pub fn read_pgm(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let bad = |why: &str| format!("`{}` is not a PGM image: {why}", path.display());
    // Header tokens, skipping `#` comments.
    let mut pos = 0;
    let mut tokens = Vec::new();
    while tokens.len() < 4 && pos < bytes.len() {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if bytes.get(pos) == Some(&b'#') {
            while pos < bytes.len() && bytes[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        tokens.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
    }
    let [magic, w, h, max] = tokens.as_slice() else { return Err(bad("incomplete header")) };
    let (w, h, max): (usize, usize, usize) = match (w.parse(), h.parse(), max.parse()) {
        (Ok(w), Ok(h), Ok(m)) if w > 0 && h > 0 && (1..=255).contains(&m) => (w, h, m),
        _ => return Err(bad("bad width, height or maximum (8-bit only)")),
    };
    let pixels: Vec<f32> = match magic.as_str() {
        "P5" => {
            let data =
                bytes.get(pos + 1..pos + 1 + w * h).ok_or_else(|| bad("truncated pixel data"))?;
            data.iter().map(|&p| f32::from(p) / max as f32).collect()
        }
        "P2" => {
            let text = String::from_utf8_lossy(&bytes[pos..]);
            let values: Result<Vec<f32>, _> =
                text.split_whitespace().take(w * h).map(|t| t.parse::<f32>()).collect();
            let values = values.map_err(|_| bad("non-numeric pixel"))?;
            if values.len() != w * h {
                return Err(bad("truncated pixel data"));
            }
            values.into_iter().map(|v| v / max as f32).collect()
        }
        _ => return Err(bad("magic is not P2 or P5")),
    };
    Ok((w, h, pixels))
}

/// Reads a PNG (any colour type) as grayscale values in `[0, 1]`.
pub fn read_png(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let img = image::open(path)
        .map_err(|e| format!("`{}` is not a readable PNG image: {e}", path.display()))?;
    let gray = img.to_luma8();
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    Ok((w, h, gray.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect()))
}

/// Reads a PGM or PNG image, chosen by the file's first bytes.
pub fn read_image(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let head = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if head.starts_with(b"\x89PNG") {
        read_png(path)
    } else {
        read_pgm(path)
    }
}

/// Nearest-neighbour resize to 28x28.
fn resize28(w: usize, h: usize, pixels: &[f32]) -> Vec<f32> {
    (0..28 * 28).map(|i| pixels[(i / 28) * h / 28 * w + (i % 28) * w / 28]).collect()
}

pub fn predict(args: &PredictArgs) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let name = args.model.as_str();
        if models::wants_cifar(name) {
            return Err(format!(
                "`netc predict` classifies digit images; {name} takes CIFAR images"
            ));
        }
        let mut model = models::create(name, 0, 1).ok_or(format!("unknown model `{name}`"))?;
        let checkpoint = args
            .checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name).join("model.safetensors"));
        model.load(&checkpoint).map_err(|e| e.to_string())?;
        let (w, h, pixels) = read_image(&args.image)?;
        let x = resize28(w, h, &pixels);
        let mut logits = vec![0.0f32; model.classes()];
        model.predict(&x, &mut logits).map_err(|e| e.to_string())?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let best = argmax(&logits);
        println!("{}: digit {best} (probability {:.3})", args.image.display(), exp[best] / sum);
        Ok(())
    })();
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

    #[test]
    fn reads_pgm_and_rejects_bad_ones() {
        let dir = std::env::temp_dir().join(format!("netc-pgm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p5 = dir.join("a.pgm");
        let mut bytes = b"P5\n# comment\n2 2\n255\n".to_vec();
        bytes.extend([0, 255, 128, 64]);
        std::fs::write(&p5, &bytes).expect("write");
        let (w, h, px) = read_pgm(&p5).expect("valid");
        assert_eq!((w, h, px[1]), (2, 2, 1.0));
        let p2 = dir.join("b.pgm");
        std::fs::write(&p2, "P2 2 1 15 0 15").expect("write");
        assert_eq!(read_pgm(&p2).expect("valid").2, [0.0, 1.0]);
        std::fs::write(&p2, "P5 2 2 255 ab").expect("write");
        assert!(read_pgm(&p2).unwrap_err().contains("truncated"));
        std::fs::write(&p2, "P6 2 2 255").expect("write");
        assert!(read_pgm(&p2).unwrap_err().contains("P2 or P5"));
    }

    #[test]
    fn reads_png_as_grayscale() {
        let path = std::env::temp_dir().join(format!("netc-png-{}.png", std::process::id()));
        let img = image::RgbImage::from_fn(3, 2, |x, _| {
            image::Rgb(if x == 0 { [255, 255, 255] } else { [0, 0, 0] })
        });
        img.save(&path).expect("save png");
        let (w, h, px) = read_image(&path).expect("png");
        assert_eq!((w, h), (3, 2));
        assert_eq!((px[0], px[1]), (1.0, 0.0));
        std::fs::write(&path, b"\x89PNG broken").expect("write");
        assert!(read_image(&path).unwrap_err().contains("PNG"));
    }
}
