//! The schedule: every decision about the generated code, made before any
//! token is built. The emitters only print it.
//!
//! - the memory plans of the training and the inference pass;
//! - which dense weight gradients take their SGD step as they are computed;
//! - whether a training step shards the batch across threads;
//! - which buffers each pass reads, so that its function asks for those.

use crate::ir::{Graph, NodeId};
use crate::program::passes::{plan_memory, MemoryPlan};
use crate::program::{Arg, Geometry, ParamId, Program, Step};

/// Forward multiply-adds per sample per learnable weight from which a
/// model gets a data-parallel training step: each thread reads all the
/// weights for its own samples, which pays only where a weight serves many
/// multiply-adds (convs), not one (a dense layer).
pub const WEIGHT_REUSE_TO_SHARD: u64 = 4;

#[derive(Debug)]
pub struct Schedule {
    /// The plan of the training pass (forward, loss, backward).
    pub train: MemoryPlan,
    /// The plan of the inference pass.
    pub infer: MemoryPlan,
    /// The dense weights whose SGD step is fused into their gradient's GEMM.
    pub fused_sgd: Vec<ParamId>,
    /// Whether `train_step` can split a batch between threads.
    pub shards: bool,
    /// Floats per sample of the arena that both passes share.
    pub arena_per_sample: usize,
    pub argmax_per_sample: usize,
    /// The index of each inference step's prepared-weights cache, if it
    /// keeps one.
    pub caches: Vec<Option<usize>>,
    /// Each distinct kernel shape of a layer, with the name of the
    /// constant that holds it.
    pub shapes: Vec<LayerShape>,
    /// What each pass's function takes.
    pub infer_uses: Uses,
    pub forward_uses: Uses,
    pub backward_uses: Uses,
}

/// The buffers and values a sequence of steps uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    pub n: bool,
    pub arena: bool,
    pub argmax: bool,
    /// Whether the argmax indices are written (not only read).
    pub argmax_mut: bool,
    pub stats: bool,
    /// Whether the pass draws dropout masks.
    pub masks: bool,
    pub params: bool,
    /// Buffers the pass updates (batch-norm running statistics).
    pub params_mut: bool,
    pub grads: bool,
    pub caches: bool,
    /// Whether the pass marks the end of each layer's steps on its
    /// profiler (the training passes do).
    pub laps: bool,
}

impl Uses {
    pub fn of(steps: &[Step]) -> Uses {
        let mut u = Uses::default();
        for s in steps {
            for a in &s.args {
                u.add(a);
            }
        }
        u
    }

    fn add(&mut self, a: &Arg) {
        match a {
            Arg::Batch | Arg::Shape(_) => self.n = true,
            Arg::In(..) | Arg::Out(..) | Arg::InOut(..) | Arg::Parts { .. } => self.arena = true,
            Arg::ReluMask(Some(_)) | Arg::Through(Some(_)) => self.arena = true,
            Arg::Param(_) => self.params = true,
            Arg::Buffer(_) => self.params_mut = true,
            Arg::Grad(_) => self.grads = true,
            Arg::Argmax { write, .. } => {
                self.argmax = true;
                self.argmax_mut |= *write;
            }
            Arg::Stats { .. } => self.stats = true,
            Arg::Masks => self.masks = true,
            Arg::Cache => self.caches = true,
            Arg::Optional(Some(inner)) => self.add(inner),
            Arg::Optional(None)
            | Arg::ReluMask(None)
            | Arg::Through(None)
            | Arg::Usize(_)
            | Arg::F32(_)
            | Arg::U16(_)
            | Arg::Act(_)
            | Arg::Layer(_) => {}
        }
    }
}

pub fn schedule(g: &Graph, p: &Program) -> Schedule {
    let inputs: Vec<_> = p.inputs.iter().map(|i| i.tensor).collect();
    // The loss runs between the passes: a step of its own in the plan,
    // reading its input and writing its gradient, so that no later forward
    // step takes the input's memory before the loss has read it.
    let loss_step = p.loss.as_ref().map(|l| {
        let len = p.tensor(l.input).per_sample();
        Step::new(l.node, "loss", vec![Arg::In(l.input, len), Arg::Out(l.grad, len)])
    });
    let train_steps: Vec<&Step> =
        p.train_forward.iter().chain(loss_step.as_ref()).chain(&p.backward).collect();
    let train = plan_memory(p, &train_steps, &inputs, &[p.train_output]);
    let infer_steps: Vec<&Step> = p.infer_forward.iter().collect();
    let infer = plan_memory(p, &infer_steps, &inputs, &[p.output]);
    let fused_sgd = fusable_weights(p);
    let mut forward_uses = Uses::of(&p.train_forward);
    forward_uses.laps = !p.train_forward.is_empty();
    let mut backward_uses = Uses::of(&p.backward);
    backward_uses.n = p.loss.is_some();
    backward_uses.arena = p.loss.is_some();
    backward_uses.laps = p.loss.is_some();
    Schedule {
        arena_per_sample: train.size.max(infer.size),
        argmax_per_sample: p.argmax_slots.iter().sum(),
        shards: shards(g, p, &forward_uses),
        caches: infer_caches(p),
        shapes: shapes(g, p),
        train,
        infer,
        fused_sgd,
        infer_uses: Uses::of(&p.infer_forward),
        forward_uses,
        backward_uses,
    }
}

/// The dense weights whose gradient step an SGD step can be fused into:
/// no later backward step reads those weights, so stepping them in place
/// cannot change a gradient still to be computed; and their layer has no
/// multipliers, since the fused step is the optimizer's own.
fn fusable_weights(p: &Program) -> Vec<ParamId> {
    let read_after =
        |i: usize, q: ParamId| p.backward[i + 1..].iter().any(|s| s.param_reads().contains(&q));
    p.backward
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kernel == "dense_backward_weights")
        .filter_map(|(i, s)| s.grads().first().copied().filter(|&q| !read_after(i, q)))
        .filter(|&q| p.param(q).multipliers == crate::ir::Multipliers::ONE)
        .collect()
}

/// A data-parallel step needs passes that treat the samples independently:
/// batch norm's statistics span the batch, dropout numbers its mask across
/// it, and class weights divide the loss by the whole batch's weight. It
/// must pay too: see [`WEIGHT_REUSE_TO_SHARD`].
fn shards(g: &Graph, p: &Program, forward: &Uses) -> bool {
    let independent = !forward.stats && !forward.masks && !forward.params_mut;
    let macs = g.total_macs();
    let reuses_weights = (p.learnable_count() as u64).saturating_mul(WEIGHT_REUSE_TO_SHARD) <= macs;
    let sample_mean = p.loss.as_ref().is_some_and(|l| l.kind.is_sample_mean());
    sample_mean && independent && reuses_weights && macs > 0
}

/// Numbers the inference steps that keep prepared weights.
fn infer_caches(p: &Program) -> Vec<Option<usize>> {
    let mut next = 0;
    p.infer_forward
        .iter()
        .map(|s| {
            s.args.contains(&Arg::Cache).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// A kernel shape of a layer, kept in a constant of the generated model.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerShape {
    pub node: NodeId,
    pub geometry: Geometry,
    /// `layer1.0.conv1` → `LAYER1_0_CONV1_SHAPE` (then `_2`, ... should a
    /// layer's steps ever differ in shape).
    pub name: String,
}

impl Schedule {
    /// The constant holding `g` for `node`'s steps.
    pub fn shape(&self, node: NodeId, g: &Geometry) -> &LayerShape {
        let found = self.shapes.iter().find(|s| s.node == node && s.geometry == *g);
        found.unwrap_or_else(|| unreachable!("the schedule names every step's shape"))
    }
}

fn shapes(g: &Graph, p: &Program) -> Vec<LayerShape> {
    let mut out: Vec<LayerShape> = Vec::new();
    for s in p.infer_forward.iter().chain(&p.train_forward).chain(&p.backward) {
        for a in &s.args {
            let Arg::Shape(geometry) = a else { continue };
            if out.iter().any(|l| l.node == s.node && l.geometry == *geometry) {
                continue;
            }
            let field = super::names::field(&g.node(s.node).name).to_string();
            let base = format!("{}_SHAPE", field.to_uppercase());
            let k = out.iter().filter(|l| l.node == s.node).count();
            let name = if k == 0 { base } else { format!("{base}_{}", k + 1) };
            out.push(LayerShape { node: s.node, geometry: *geometry, name });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule_of(src: &str) -> (Program, Schedule) {
        let checked = crate::check_source("t.net", src).expect("valid");
        let g = &checked.graphs[0];
        let p = crate::program::lower(g);
        let s = schedule(g, &p);
        (p, s)
    }

    const CONVNET: &str = "network C {
        input x: [1, 12, 12]
        x -> conv2d(8, kernel: 3) -> relu -> conv2d(8, kernel: 3) -> relu -> max_pool(2)
          -> flatten -> dense(16) -> relu -> dense(4) as logits
        loss cross_entropy(logits)
    }";

    #[test]
    fn convnet_shards_and_fuses_its_dense_weights() {
        let (p, s) = schedule_of(CONVNET);
        assert!(s.shards, "convs reuse their weights enough to shard");
        let names: Vec<&str> = s.fused_sgd.iter().map(|&q| p.param(q).name.as_str()).collect();
        assert_eq!(names, ["logits.weight", "fc1.weight"]);
        assert_eq!(s.caches.iter().flatten().count(), 2);
        assert_eq!(s.shapes.len(), 5, "two convs, a pool and two dense layers");
        assert_eq!(s.shapes[0].name, "CONV1_SHAPE");
        assert!(s.forward_uses.argmax && !s.forward_uses.stats && !s.forward_uses.masks);
    }

    #[test]
    fn mlp_does_not_shard_and_batch_norm_blocks_sharding() {
        let (_, s) = schedule_of(
            "network M { input x: [64]\n x -> dense(64) -> relu -> dense(3) as y\n loss cross_entropy(y) }",
        );
        assert!(!s.shards, "a dense layer's weight serves one multiply-add per sample");
        let (_, s) = schedule_of(
            "network B { input x: [1, 8, 8]\n x -> conv2d(4, kernel: 3) -> batch_norm -> relu -> flatten -> dense(3) as y\n loss cross_entropy(y) }",
        );
        assert!(!s.shards && s.forward_uses.params_mut && s.forward_uses.stats);
    }

    #[test]
    fn multipliers_keep_their_weights_unfused_and_frozen_layers_skip_backward() {
        let (p, s) = schedule_of(&CONVNET.replace(
            "loss cross_entropy(logits)",
            "loss cross_entropy(logits)\n train fc1(lr_mult: 2)\n train conv1(frozen: true)",
        ));
        let names: Vec<&str> = s.fused_sgd.iter().map(|&q| p.param(q).name.as_str()).collect();
        assert_eq!(names, ["logits.weight"], "fc1 has a multiplier");
        let weight_grads =
            p.backward.iter().filter(|st| st.kernel == "conv2d_backward_weights").count();
        assert_eq!(weight_grads, 1, "only conv2 computes its weights' gradient");
        // conv1 is the first layer and frozen: nothing flows into its
        // output, so conv2 computes no input gradient either.
        assert!(!p.backward.iter().any(|st| st.kernel == "conv2d_backward_data"));
    }

    #[test]
    fn class_weights_keep_the_batch_whole() {
        let weighted = CONVNET.replace(
            "cross_entropy(logits)",
            "cross_entropy(logits, label_smoothing: 0.1, weight: [1, 2, 1, 0.5])",
        );
        assert!(!schedule_of(&weighted).1.shards, "the divisor spans the batch");
        let smoothed =
            CONVNET.replace("cross_entropy(logits)", "cross_entropy(logits, label_smoothing: 0.1)");
        assert!(schedule_of(&smoothed).1.shards, "smoothing alone is a mean over samples");
    }

    #[test]
    fn inputs_are_planned_apart_and_live_from_the_start() {
        let (p, s) = schedule_of(
            "network T { input a: [8]\n input b: [8]\n ha = a -> dense(4)\n hb = b -> dense(4)\n y = concat(ha, hb) -> dense(3)\n loss cross_entropy(y) }",
        );
        let [a, b] = [p.inputs[0].tensor, p.inputs[1].tensor];
        for plan in [&s.train, &s.infer] {
            let (oa, ob) = (plan.offset(a), plan.offset(b));
            assert!(oa + 8 <= ob || ob + 8 <= oa, "inputs overlap: {oa} and {ob}");
        }
    }
}
