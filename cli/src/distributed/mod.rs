//! Data-parallel training: the ranks that train one model together (MPI
//! processes, or threads of one process), how a global batch is shared
//! among them, and the collectives the trainer needs. Every collective
//! adds in a fixed order and hands every rank the same bits, so the ranks'
//! models never drift apart, and a run depends only on its seed and its
//! global batch.

mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
mod ring;
mod step;

pub use local::run_local;
pub use ring::all_reduce_sum;
pub use step::Step;

use netc_runtime::model::Model;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process stopped on a failure every rank knows of (a
/// collective found a difference or a failure, or the reduced loss
/// diverged): every rank then stops by itself, rank 0 explains, and a rank
/// whose own failure it was gives its reason.
static SHARED_FAILURE: AtomicBool = AtomicBool::new(false);
static OWN_FAILURE: AtomicBool = AtomicBool::new(false);

/// `message`, an error every rank reaches alike.
pub fn shared_failure(message: String) -> String {
    SHARED_FAILURE.store(true, Ordering::Relaxed);
    message
}

/// How the failure this process stops on is known: `(shared, own)`,
/// whether every rank knows of it and whether it is this rank's own.
/// Only MPI ranks, each a process of its own, ask.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn failure_known() -> (bool, bool) {
    (SHARED_FAILURE.load(Ordering::Relaxed), OWN_FAILURE.load(Ordering::Relaxed))
}

/// The ranks training one model together, and the two ways they talk.
pub trait Group: Sync {
    /// This rank, from 0.
    fn rank(&self) -> usize;
    /// How many ranks there are.
    fn size(&self) -> usize;
    /// Sends `send` to rank `to` while receiving `recv.len()` values from
    /// rank `from`.
    fn exchange(
        &self,
        send: &[f32],
        to: usize,
        recv: &mut [f32],
        from: usize,
    ) -> Result<(), String>;
    /// Every rank's `values` (of one length on all ranks), rank after rank.
    fn gather(&self, values: &[u64]) -> Result<Vec<u64>, String>;
}

/// A process training alone.
#[derive(Debug)]
pub struct Alone;

impl Group for Alone {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn exchange(&self, _: &[f32], to: usize, _: &mut [f32], _: usize) -> Result<(), String> {
        Err(format!("a process training alone has no rank {to} to exchange with"))
    }

    fn gather(&self, values: &[u64]) -> Result<Vec<u64>, String> {
        Ok(values.to_vec())
    }
}

/// The samples of a global batch of `global` that `rank` of `size` trains
/// on: the share a sharded step's thread `rank` would take.
pub fn shard(global: usize, rank: usize, size: usize) -> Range<usize> {
    netc_runtime::shard::share(global, rank, size)
}

/// Checks that every rank has the same `value` of `what`.
pub fn agree(group: &dyn Group, value: u64, what: &str) -> Result<(), String> {
    let all = group.gather(&[value])?;
    let differ: Vec<String> =
        (1..all.len()).filter(|&r| all[r] != all[0]).map(|r| r.to_string()).collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(shared_failure(format!("{what} of rank {} differ from rank 0's", differ.join(", "))))
}

/// Whether every rank succeeded at `what`: this rank's own error, or on
/// the others an error naming the ranks that failed (each prints its own
/// reason), so that all stop together before any step.
pub fn all_succeed<T>(
    group: &dyn Group,
    result: Result<T, String>,
    what: &str,
) -> Result<T, String> {
    let failed = group.gather(&[u64::from(result.is_err())])?;
    let ranks: Vec<String> =
        (0..failed.len()).filter(|&r| failed[r] != 0).map(|r| r.to_string()).collect();
    match result {
        Err(e) => {
            OWN_FAILURE.store(true, Ordering::Relaxed);
            Err(shared_failure(e))
        }
        Ok(_) if !ranks.is_empty() => {
            Err(shared_failure(format!("rank {} could not {what}", ranks.join(", "))))
        }
        Ok(value) => Ok(value),
    }
}

/// The sums over ranks of `values`, added in rank order.
pub fn sum_f64(group: &dyn Group, values: &[f64]) -> Result<Vec<f64>, String> {
    let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    let all = group.gather(&bits)?;
    let mut sums = vec![0.0f64; values.len()];
    for rank in all.chunks(values.len().max(1)) {
        for (s, &b) in sums.iter_mut().zip(rank) {
            *s += f64::from_bits(b);
        }
    }
    Ok(sums)
}

/// FNV-1a over bytes: a stable fingerprint to compare across ranks.
pub fn fingerprint(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A fingerprint of every parameter and buffer's bits.
pub fn fingerprint_params(model: &dyn Model) -> u64 {
    let mut bytes = Vec::new();
    model.visit_params(&mut |_, _, values| {
        bytes.extend(values.iter().flat_map(|v| v.to_bits().to_le_bytes()))
    });
    fingerprint(bytes)
}

/// Averages the buffers (batch norm's running statistics, which each rank
/// updates from its own shard) across ranks, so that every rank evaluates
/// and saves the same model.
pub fn average_buffers(model: &mut dyn Model, group: &dyn Group) -> Result<(), String> {
    if group.size() == 1 {
        return Ok(());
    }
    let mut flat: Vec<f32> = model.buffers_mut().iter().flat_map(|b| b.iter().copied()).collect();
    if flat.is_empty() {
        return Ok(());
    }
    all_reduce_sum(group, &mut flat, &mut Vec::new())?;
    let inverse = 1.0 / group.size() as f32;
    let mut values = flat.iter();
    for buffer in model.buffers_mut() {
        for (b, &sum) in buffer.iter_mut().zip(&mut values) {
            *b = sum * inverse;
        }
    }
    Ok(())
}

/// Whether this process was started by `mpirun` (Open MPI, MPICH or any
/// PMIx launcher), which then expects it to join the job.
pub fn launched_by_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|k| std::env::var_os(k).is_some())
}

/// Threads per rank when `--threads` is not given: the cores shared among
/// the ranks on this machine.
pub fn default_threads(ranks_here: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / ranks_here.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_a_batch_in_rank_order() {
        for (global, size) in [(64, 2), (7, 3), (5, 5), (100, 7)] {
            let shards: Vec<_> = (0..size).map(|r| shard(global, r, size)).collect();
            assert_eq!(shards[0].start, 0);
            assert_eq!(shards[size - 1].end, global);
            for w in shards.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let lens: Vec<usize> = shards.iter().map(|s| s.len()).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
        }
    }

    #[test]
    fn collectives_agree_and_report_the_ranks_that_differ() {
        let results = run_local(3, |g| {
            let same = agree(g, 7, "the networks");
            let differ = agree(g, if g.rank() == 2 { 8 } else { 7 }, "the networks");
            let sums = sum_f64(g, &[g.rank() as f64, 0.5]);
            let loaded = all_succeed(
                g,
                if g.rank() == 1 { Err("no file".into()) } else { Ok(()) },
                "load its data",
            );
            (same, differ, sums, loaded)
        })
        .expect("threads");
        for (rank, (same, differ, sums, loaded)) in results.into_iter().enumerate() {
            assert_eq!(same, Ok(()));
            assert_eq!(differ.unwrap_err(), "the networks of rank 2 differ from rank 0's");
            assert_eq!(sums.unwrap(), vec![3.0, 1.5]);
            let expected = if rank == 1 { "no file" } else { "rank 1 could not load its data" };
            assert_eq!(loaded.unwrap_err(), expected);
        }
    }
}
