//! Learning-rate schedules: a decay over the run's epochs, after an
//! optional linear warmup, as a function of the training progress in
//! (fractional) epochs. A schedule holds no state, so a resumed run gets
//! the same rate at the same step.

/// How the rate decays after warmup. Epoch counts are epochs completed.
#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    /// The base rate throughout.
    Constant,
    /// PyTorch's `StepLR`: multiplied by `gamma` every `every` epochs.
    Step { every: f64, gamma: f64 },
    /// PyTorch's `MultiStepLR`: multiplied by `gamma` at each milestone
    /// epoch.
    MultiStep { milestones: Vec<f64>, gamma: f64 },
    /// PyTorch's `CosineAnnealingLR` over the epochs after warmup, from the
    /// base rate down to `min_lr`, updated every step.
    Cosine { min_lr: f64 },
}

/// A decay and a linear warmup of `warmup` epochs (0 for none), during
/// which the rate climbs from nearly 0 to the base rate, step by step.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub decay: Decay,
    pub warmup: f64,
}

impl Schedule {
    /// The base rate throughout.
    pub const CONSTANT: Schedule = Schedule { decay: Decay::Constant, warmup: 0.0 };

    /// The rate for the step that ends at `progress` epochs (the first step
    /// of an epoch of `b` batches ends at `1/b`) of a run of `epochs`.
    pub fn lr(&self, base: f64, progress: f64, epochs: f64) -> f64 {
        if progress < self.warmup {
            return base * progress / self.warmup;
        }
        // Whole epochs completed before this step, for the stepwise decays.
        let done = (progress - 1e-9).max(0.0).floor();
        match &self.decay {
            Decay::Constant => base,
            Decay::Step { every, gamma } => base * gamma.powf((done / every).floor()),
            Decay::MultiStep { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| m <= done).count() as i32)
            }
            Decay::Cosine { min_lr } => {
                let span = (epochs - self.warmup).max(f64::MIN_POSITIVE);
                let t = ((progress - self.warmup) / span).clamp(0.0, 1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &Schedule, progress: f64) -> f64 {
        s.lr(0.1, progress, 10.0)
    }

    #[test]
    fn step_and_multistep_change_at_epoch_boundaries() {
        let step = Schedule { decay: Decay::Step { every: 3.0, gamma: 0.5 }, warmup: 0.0 };
        // The last step of epoch 3 still has the first rate.
        assert_eq!([at(&step, 0.5), at(&step, 3.0), at(&step, 3.01)], [0.1, 0.1, 0.05]);
        assert!((at(&step, 6.5) - 0.025).abs() < 1e-15);
        let multi = Schedule {
            decay: Decay::MultiStep { milestones: vec![2.0, 5.0], gamma: 0.1 },
            warmup: 0.0,
        };
        assert_eq!(at(&multi, 1.5), 0.1);
        assert!((at(&multi, 2.5) - 0.01).abs() < 1e-15);
        assert!((at(&multi, 9.0) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn cosine_follows_pytorch_and_ends_at_its_minimum() {
        let cos = Schedule { decay: Decay::Cosine { min_lr: 0.001 }, warmup: 0.0 };
        assert!((at(&cos, 0.0) - 0.1).abs() < 1e-15);
        // CosineAnnealingLR at T_cur = 5 of T_max = 10: the midpoint.
        assert!((at(&cos, 5.0) - (0.001 + 0.099 * 0.5)).abs() < 1e-12);
        assert!((at(&cos, 10.0) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn warmup_climbs_linearly_then_hands_over() {
        let s = Schedule { decay: Decay::Cosine { min_lr: 0.0 }, warmup: 2.0 };
        assert!((at(&s, 0.5) - 0.025).abs() < 1e-15);
        assert!((at(&s, 1.0) - 0.05).abs() < 1e-15);
        assert!((at(&s, 2.0) - 0.1).abs() < 1e-15);
        assert!(at(&s, 6.0) < 0.1 && at(&s, 6.0) > 0.0);
        assert_eq!(Schedule::CONSTANT.lr(0.3, 7.5, 10.0), 0.3);
    }
}
