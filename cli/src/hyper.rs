//! The optimizer and learning-rate schedule of a run: the `.net` file's,
//! overridden by the command line's flags.

use netc_runtime::model::Model;
use netc_runtime::nn::Optimizer;
use netc_runtime::optim::{Adam, Sgd};
use netc_runtime::schedule::{Decay, Schedule};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerChoice {
    /// Plain SGD, learning rate 0.05.
    Sgd,
    /// SGD with momentum 0.9, learning rate 0.05.
    Momentum,
    /// Adam, learning rate 1e-3.
    Adam,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleChoice {
    /// The base rate throughout.
    Constant,
    /// Multiplied by --gamma every --step-size epochs.
    Step,
    /// Multiplied by --gamma at each of --milestones.
    Multistep,
    /// Cosine annealing to --min-lr over the run's epochs.
    Cosine,
}

/// The optimizer flags, which every command that trains takes.
#[derive(clap::Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// Default: the `.net` file's optimizer, else SGD with momentum 0.9 at 0.01.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Learning rate (overrides the optimizer's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay (overrides the optimizer's).
    #[arg(long)]
    pub weight_decay: Option<f64>,
}

/// The optimizer and schedule flags of `netc train`.
#[derive(clap::Args, Debug, Clone)]
pub struct HyperArgs {
    #[command(flatten)]
    pub step: OptimizerArgs,
    /// Learning-rate schedule; default the `.net` file's, else constant.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleChoice>,
    /// Epochs between decays of `--schedule step`.
    #[arg(long)]
    pub step_size: Option<f64>,
    /// Decay factor of `step` and `multistep`.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Epochs at which `multistep` decays, such as `30,60,90`.
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<f64>,
    /// The rate `cosine` ends at.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    /// Epochs of linear warmup (fractions allowed); overrides the file's.
    #[arg(long)]
    pub warmup: Option<f64>,
}

/// The run's optimizer at its base learning rate.
pub fn optimizer(args: &OptimizerArgs, model: &dyn Model) -> Result<Optimizer, String> {
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
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, not {lr}"));
        }
        opt.set_lr(lr);
    }
    if let Some(decay) = args.weight_decay {
        if !(decay >= 0.0 && decay.is_finite()) {
            return Err(format!("--weight-decay must be 0 or more, not {decay}"));
        }
        opt.set_weight_decay(decay);
    }
    Ok(opt)
}

/// The run's schedule.
pub fn schedule(args: &HyperArgs, model: &dyn Model) -> Result<Schedule, String> {
    let mut schedule = model.default_schedule().unwrap_or(Schedule::CONSTANT);
    if !(args.gamma > 0.0 && args.gamma.is_finite()) {
        return Err(format!("--gamma must be a positive number, not {}", args.gamma));
    }
    if let Some(choice) = args.schedule {
        schedule.decay = match choice {
            ScheduleChoice::Constant => Decay::Constant,
            ScheduleChoice::Step => match args.step_size {
                Some(every) if every > 0.0 => Decay::Step { every, gamma: args.gamma },
                _ => return Err("--schedule step needs --step-size EPOCHS above 0".into()),
            },
            ScheduleChoice::Multistep => {
                let m = &args.milestones;
                if m.is_empty() || m.windows(2).any(|w| w[0] >= w[1]) || m[0] <= 0.0 {
                    return Err("--schedule multistep needs --milestones in increasing order, \
                                each above 0, such as 30,60,90"
                        .into());
                }
                Decay::MultiStep { milestones: m.clone(), gamma: args.gamma }
            }
            ScheduleChoice::Cosine => Decay::Cosine { min_lr: args.min_lr },
        };
    }
    if let Some(warmup) = args.warmup {
        if !(warmup >= 0.0 && warmup.is_finite()) {
            return Err(format!("--warmup must be 0 or more epochs, not {warmup}"));
        }
        schedule.warmup = warmup;
    }
    Ok(schedule)
}
