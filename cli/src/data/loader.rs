//! Batch assembly for the training loop: a background thread gathers an
//! epoch's samples in the loop's order into batches (augmented when
//! asked), up to two batches ahead of the step, so that the step does not
//! wait for data; the loop reads them in turn and learns how long it
//! waited.

use super::augment::{self, Draw};
use super::Dataset;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches of a training set.
#[derive(Debug)]
pub struct Loader {
    data: Arc<Dataset>,
    batch: usize,
    /// The seed of the augmentation, when there is one.
    augment: Option<u64>,
}

/// One batch's inputs and labels; its buffers go back to the producer for
/// reuse once the loop has moved on.
#[derive(Debug)]
struct Buffers {
    x: Vec<f32>,
    labels: Vec<u32>,
}

impl Loader {
    /// Batches of `batch` samples of `data`; with `augment`, a seed, each
    /// sample is randomly cropped and flipped (images only).
    pub fn new(
        data: Arc<Dataset>,
        batch: usize,
        augment: Option<u64>,
        what: &str,
    ) -> Result<Self, String> {
        if augment.is_some() {
            augment::check(data.shape, what)?;
        }
        Ok(Loader { data, batch: batch.max(1), augment })
    }

    /// Starts gathering epoch `epoch`'s whole batches, the samples taken
    /// in `order` (indices into the data).
    pub fn epoch(&self, order: Vec<usize>, epoch: usize) -> Result<EpochBatches, String> {
        // Capacity 1: one batch waits in the channel while the producer
        // fills the next.
        let (ready, next) = mpsc::sync_channel::<Buffers>(1);
        let (give_back, returned) = mpsc::channel::<Buffers>();
        let (data, batch, augment) = (Arc::clone(&self.data), self.batch, self.augment);
        let worker = std::thread::Builder::new()
            .name("netc-batches".into())
            .spawn(move || {
                produce(&data, &order, batch, augment.map(|s| (s, epoch)), &ready, &returned)
            })
            .map_err(|e| format!("cannot start the batch loader's thread: {e}"))?;
        Ok(EpochBatches {
            next: Some(next),
            give_back,
            current: None,
            waited: Duration::ZERO,
            worker: Some(worker),
        })
    }
}

/// Fills batches in `order` until the order or the receiver ends.
fn produce(
    data: &Dataset,
    order: &[usize],
    batch: usize,
    augment: Option<(u64, usize)>,
    ready: &SyncSender<Buffers>,
    returned: &Receiver<Buffers>,
) {
    let per = data.sample_len();
    for indices in order.chunks_exact(batch) {
        let mut buffers = returned
            .try_recv()
            .unwrap_or_else(|_| Buffers { x: vec![0.0; batch * per], labels: vec![0; batch] });
        for (k, &i) in indices.iter().enumerate() {
            let out = &mut buffers.x[k * per..(k + 1) * per];
            match augment {
                Some((seed, epoch)) => {
                    augment::apply(data, i, Draw::new(seed, epoch as u64, i as u64), out)
                }
                None => out.copy_from_slice(data.image(i)),
            }
            buffers.labels[k] = u32::from(data.labels[i]);
        }
        if ready.send(buffers).is_err() {
            return;
        }
    }
}

/// An epoch's batches, read in turn with [`EpochBatches::next`].
#[derive(Debug)]
pub struct EpochBatches {
    next: Option<Receiver<Buffers>>,
    give_back: Sender<Buffers>,
    current: Option<Buffers>,
    waited: Duration,
    worker: Option<JoinHandle<()>>,
}

impl EpochBatches {
    /// The next batch's inputs and labels, or `None` after the last whole
    /// batch.
    pub fn next(&mut self) -> Option<(&[f32], &[u32])> {
        if let Some(done) = self.current.take() {
            // The producer may have finished; the buffer is then dropped.
            let _ = self.give_back.send(done);
        }
        let start = Instant::now();
        let received = self.next.as_ref()?.recv().ok();
        self.waited += start.elapsed();
        let current = self.current.insert(received?);
        Some((&current.x, &current.labels))
    }

    /// How long [`EpochBatches::next`] has waited for the producer.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        // Closing the channel stops a producer blocked on a full one.
        self.next = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 samples of 1x2x2, sample i holding i in every value, label i % 3.
    fn data() -> Arc<Dataset> {
        let images = (0..10).flat_map(|i| [i as f32; 4]).collect();
        Arc::new(Dataset::new(images, (0..10).map(|i| i % 3).collect(), [1, 2, 2]))
    }

    #[test]
    fn batches_follow_the_order_and_drop_the_partial_one() {
        let loader = Loader::new(data(), 3, None, "x").expect("loader");
        let order = vec![9, 2, 5, 0, 1, 3, 8, 7, 6, 4];
        let mut batches = loader.epoch(order.clone(), 0).expect("epoch");
        let mut seen = Vec::new();
        while let Some((x, labels)) = batches.next() {
            assert_eq!(x.len(), 12);
            for (k, &l) in labels.iter().enumerate() {
                let i = x[k * 4] as usize;
                assert_eq!(&x[k * 4..(k + 1) * 4], [i as f32; 4]);
                assert_eq!(l as usize, i % 3);
                seen.push(i);
            }
        }
        assert_eq!(seen, order[..9]);
        assert!(batches.next().is_none());
    }

    #[test]
    fn augmented_batches_are_reproducible_per_epoch() {
        let images = (0..4 * 64).map(|v| v as f32).collect();
        let d = Arc::new(Dataset::new(images, vec![0, 1, 0, 1], [1, 8, 8]));
        let loader = Loader::new(Arc::clone(&d), 2, Some(5), "x").expect("loader");
        let gather = |epoch: usize| {
            let mut b = loader.epoch(vec![3, 1, 0, 2], epoch).expect("epoch");
            let mut all = Vec::new();
            while let Some((x, _)) = b.next() {
                all.extend_from_slice(x);
            }
            all
        };
        let first = gather(0);
        assert_eq!(first, gather(0));
        assert_ne!(first, gather(1));
        // Each sample is its own draw, whatever its place in the batch.
        let mut one = vec![0.0; 64];
        augment::apply(&d, 1, Draw::new(5, 0, 1), &mut one);
        assert_eq!(&first[64..128], one);
        assert!(Loader::new(data(), 2, Some(1), "the table").is_ok());
        let flat = Arc::new(Dataset::new(vec![0.0; 4], vec![0], [1, 1, 4]));
        assert!(Loader::new(flat, 1, Some(1), "the table").unwrap_err().contains("the table"));
    }

    #[test]
    fn dropping_a_half_read_epoch_stops_its_thread() {
        let loader = Loader::new(data(), 1, None, "x").expect("loader");
        let mut batches = loader.epoch((0..10).collect(), 0).expect("epoch");
        assert!(batches.next().is_some());
        drop(batches);
    }
}
