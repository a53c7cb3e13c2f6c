//! Per-layer timing of a generated model's training passes. The generated
//! training forward and backward passes mark the end of each layer's
//! steps on the pass's [`Profiler`]; with no [`Profile`] attached a mark is
//! one branch, and with one it adds the time since the previous mark to
//! that layer. Kernels that run in parallel do so inside a step, so marks
//! between steps time them whole.

use std::time::{Duration, Instant};

/// The time each layer took, by the layer's node number in its network:
/// the training forward pass, the backward pass, and the loss (with its
/// gradient, computed at the start of the backward pass).
#[derive(Clone, Debug)]
pub struct Profile {
    last: Instant,
    pub forward: Vec<Duration>,
    pub backward: Vec<Duration>,
    pub loss: Duration,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            last: Instant::now(),
            forward: Vec::new(),
            backward: Vec::new(),
            loss: Duration::ZERO,
        }
    }
}

impl Profile {
    /// Starts the clock of a pass: the first mark times from here.
    pub fn restart(&mut self) {
        self.last = Instant::now();
    }

    /// The time since the last mark; restarts the clock.
    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        elapsed
    }

    #[cold]
    #[inline(never)]
    fn mark(&mut self, layer: Option<usize>, backward: bool) {
        let elapsed = self.lap();
        let Some(layer) = layer else {
            self.loss += elapsed;
            return;
        };
        let table = if backward { &mut self.backward } else { &mut self.forward };
        if table.len() <= layer {
            table.resize(layer + 1, Duration::ZERO);
        }
        table[layer] += elapsed;
    }
}

/// A pass's view of the profile a caller attached, if any.
#[derive(Debug, Default)]
pub struct Profiler<'a>(Option<&'a mut Profile>);

impl<'a> Profiler<'a> {
    /// Times a pass into `profile` from now, or not at all with `None`.
    pub fn new(profile: Option<&'a mut Profile>) -> Self {
        let mut profiler = Profiler(profile);
        if let Some(p) = &mut profiler.0 {
            p.restart();
        }
        profiler
    }

    /// The training forward steps of node `layer` have ended.
    #[inline(always)]
    pub fn forward(&mut self, layer: usize) {
        if let Some(p) = &mut self.0 {
            p.mark(Some(layer), false);
        }
    }

    /// The backward steps of node `layer` have ended.
    #[inline(always)]
    pub fn backward(&mut self, layer: usize) {
        if let Some(p) = &mut self.0 {
            p.mark(Some(layer), true);
        }
    }

    /// The loss and its gradient have been computed.
    #[inline(always)]
    pub fn loss(&mut self) {
        if let Some(p) = &mut self.0 {
            p.mark(None, true);
        }
    }
}

/// Where a model keeps the profile of its next passes, and the names of
/// its layers by node number, separated by spaces (layer names are
/// identifiers).
#[derive(Debug)]
pub struct Slot<'a> {
    pub layers: &'static str,
    pub profile: &'a mut Option<Profile>,
}

/// One layer's times in a profiled training step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTime {
    /// The layer's name in its `.net` file.
    pub name: &'static str,
    /// Its steps in the training forward pass.
    pub forward: Duration,
    /// Its steps in the backward pass: the gradients of its inputs and of
    /// its parameters.
    pub backward: Duration,
}

/// A profiled training forward and backward pass.
#[derive(Clone, Debug)]
pub struct StepProfile {
    /// The batch's mean loss.
    pub loss: f32,
    /// Every node of the network once, in the order of its `.net` file; a
    /// layer fused into another's kernel (or with no kernel, such as
    /// `flatten`) takes no time of its own.
    pub layers: Vec<LayerTime>,
    /// The loss and its gradient, and what the step does between the two
    /// passes (copying the outputs).
    pub loss_time: Duration,
}

impl StepProfile {
    /// The layers' times from `profile`, named by `layers` (as a [`Slot`]
    /// gives them).
    pub fn new(loss: f32, layers: &'static str, profile: &Profile) -> Self {
        let at = |table: &[Duration], i: usize| table.get(i).copied().unwrap_or_default();
        let layers = layers
            .split(' ')
            .enumerate()
            .map(|(i, name)| LayerTime {
                name,
                forward: at(&profile.forward, i),
                backward: at(&profile.backward, i),
            })
            .collect();
        StepProfile { loss, layers, loss_time: profile.loss }
    }

    /// Every layer's forward and backward time, and the loss's.
    pub fn total(&self) -> Duration {
        self.layers.iter().map(|l| l.forward + l.backward).sum::<Duration>() + self.loss_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_add_to_their_layer_and_nothing_without_a_profile() {
        let mut profile = Profile::default();
        let mut profiler = Profiler::new(Some(&mut profile));
        std::thread::sleep(Duration::from_millis(2));
        profiler.forward(2);
        profiler.backward(2);
        profiler.loss();
        profiler.backward(0);
        assert_eq!(profile.forward.len(), 3);
        assert!(profile.forward[2] >= Duration::from_millis(2));
        assert_eq!(profile.forward[0], Duration::ZERO);
        assert_eq!(profile.backward.len(), 3);
        let step = StepProfile::new(1.5, "x conv fc", &profile);
        let names: Vec<&str> = step.layers.iter().map(|l| l.name).collect();
        assert_eq!(names, ["x", "conv", "fc"]);
        assert_eq!(step.layers[2].forward, profile.forward[2]);
        assert_eq!(step.total(), profile.forward[2] + profile.backward.iter().sum() + profile.loss);
        let mut off = Profiler::new(None);
        off.forward(5);
        off.loss();
    }
}
