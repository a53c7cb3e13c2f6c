//! The static memory plan: every tensor gets an offset in one arena, fixed at
//! compile time from liveness, so that a training step allocates nothing.
//! Offsets are per sample: tensor `t` of a batch of capacity `cap` occupies
//! `[offset·cap, (offset + len)·cap)`, so one plan serves any capacity.
//!
//! Liveness runs over the step sequence: a tensor is live from its first
//! write to its last read. Tensors are placed largest first at the lowest
//! offset that overlaps no tensor live at the same time (first fit).

use crate::program::{Program, Step, TensorId};

/// Floats in a 64-byte cache line, the alignment of the runtime's
/// `arena::Arena`.
const ALIGN_FLOATS: usize = 16;

/// Where each tensor lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Per-sample offset of each tensor, `None` for tensors the steps never touch.
    pub offsets: Vec<Option<usize>>,
    /// Per-sample size of the arena.
    pub size: usize,
}

impl MemoryPlan {
    pub fn offset(&self, t: TensorId) -> usize {
        self.offsets[t.0].unwrap_or_else(|| unreachable!("tensor {} has no offset", t.0))
    }
}

/// Plans the tensors touched by `steps`. `pinned_first` tensors are live from
/// before the first step (the network input); `pinned_last` until after the
/// last (outputs the caller reads).
pub fn plan_memory(
    p: &Program,
    steps: &[&Step],
    pinned_first: &[TensorId],
    pinned_last: &[TensorId],
) -> MemoryPlan {
    let n = p.tensors.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    let mut touch = |t: TensorId, at: usize| {
        first[t.0] = first[t.0].min(at);
        last[t.0] = last[t.0].max(at);
    };
    for (i, s) in steps.iter().enumerate() {
        let at = i + 1;
        for (t, _) in s.tensors() {
            touch(t, at);
        }
    }
    for &t in pinned_first {
        touch(t, 0);
    }
    for &t in pinned_last {
        touch(t, steps.len() + 1);
    }
    let mut order: Vec<usize> = (0..n).filter(|&t| first[t] != usize::MAX).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(p.tensors[t].per_sample()), t));
    let mut offsets: Vec<Option<usize>> = vec![None; n];
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new(); // (offset, len, first, last)
    let mut size = 0;
    for t in order {
        // Whole cache lines: with every block a multiple of 16 floats, every
        // offset is too, and each tensor starts on a line of the 64-byte
        // aligned arena, for any capacity.
        let len = p.tensors[t].per_sample().next_multiple_of(ALIGN_FLOATS);
        // Blocks of tensors live at the same time as `t`, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(_, _, f, l)| f <= last[t] && first[t] <= l)
            .map(|&(o, len, _, _)| (o, o + len))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + len <= start {
                break;
            }
            offset = offset.max(end);
        }
        placed.push((offset, len, first[t], last[t]));
        offsets[t] = Some(offset);
        size = size.max(offset + len);
    }
    MemoryPlan { offsets, size }
}
