//! Elementwise kernels split across the rayon pool.
//!
//! Elementwise passes are memory-bound, but each core streams through its
//! own caches, so two threads move about twice the bytes of one on a big
//! tensor. Small tensors stay on the calling thread: a fork-join costs a few
//! microseconds.

use rayon::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

thread_local! {
    /// Set while this thread runs one shard of a data-parallel step.
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Threads a kernel may split its work between: the current pool's, or
/// one inside [`alone`].
pub(crate) fn threads() -> usize {
    if ALONE.get() {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Runs `f` with every kernel it calls kept on this thread: one shard of a
/// data-parallel training step, while the pool's other threads run the
/// others ([`crate::shard`]).
pub(crate) fn alone<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALONE.set(self.0);
        }
    }
    let _restore = Restore(ALONE.replace(true));
    f()
}

/// Floats per parallel block (128 KB): big enough to amortise a task,
/// small enough to balance.
const BLOCK: usize = 1 << 15;

fn split(len: usize) -> bool {
    len >= 2 * BLOCK && threads() > 1
}

/// `f(y_block, x_block)` over matching blocks of `y` and `x`.
pub(crate) fn zip2(y: &mut [f32], x: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if split(y.len()) {
        y.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK)).for_each(|(y, x)| f(y, x));
    } else {
        f(y, x);
    }
}

/// `f(y_block, a_block, b_block)` over matching blocks.
pub(crate) fn zip3(
    y: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) {
    if split(y.len()) {
        y.par_chunks_mut(BLOCK)
            .zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)))
            .for_each(|(y, (a, b))| f(y, a, b));
    } else {
        f(y, a, b);
    }
}

/// `f(block)` over blocks of `y`.
pub(crate) fn each(y: &mut [f32], f: impl Fn(&mut [f32]) + Sync) {
    if split(y.len()) {
        y.par_chunks_mut(BLOCK).for_each(&f);
    } else {
        f(y);
    }
}

/// `f(p_block, s_block, g_block)` over matching blocks of two updated
/// buffers and one input: an optimizer step with one state buffer.
pub(crate) fn update2(
    p: &mut [f32],
    s: &mut [f32],
    g: &[f32],
    f: impl Fn(&mut [f32], &mut [f32], &[f32]) + Sync,
) {
    if split(p.len()) {
        p.par_chunks_mut(BLOCK)
            .zip(s.par_chunks_mut(BLOCK).zip(g.par_chunks(BLOCK)))
            .for_each(|(p, (s, g))| f(p, s, g));
    } else {
        f(p, s, g);
    }
}

/// `f(p_block, m_block, v_block, g_block)`: an optimizer step with two
/// state buffers.
pub(crate) fn update3(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    f: impl Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Sync,
) {
    if split(p.len()) {
        p.par_chunks_mut(BLOCK)
            .zip(m.par_chunks_mut(BLOCK).zip(v.par_chunks_mut(BLOCK)))
            .zip(g.par_chunks(BLOCK))
            .for_each(|((p, (m, v)), g)| f(p, m, v, g));
    } else {
        f(p, m, v, g);
    }
}

/// Runs `f` on this thread while one other thread of the pool polls for the
/// parallel work `f` starts, instead of going to sleep between `f`'s
/// parallel sections and being woken for each. A training step is dozens of
/// short parallel kernels with serial gaps between them; a sleeping worker
/// takes tens of microseconds to wake on a virtual machine, which cost the
/// MLP's step most of what its second core gave. The poller runs any pool work it finds (`rayon::yield_now`), so it never
/// holds work up; it stops when `f` returns or panics.
pub(crate) fn awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() <= 1 {
        return f();
    }
    /// Marks `f` done when dropped, so that a panic in `f` stops the poller
    /// too (`join` waits for both sides before it unwinds).
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    let origin = AtomicUsize::new(usize::MAX);
    let thread = || rayon::current_thread_index().unwrap_or(usize::MAX - 1);
    let (r, ()) = rayon::join(
        || {
            origin.store(thread(), Ordering::Release);
            let _done = Done(&done);
            f()
        },
        || {
            // Taken back by `f`'s own thread (while `f` waits on its own
            // parallel work, or after `f`): nothing to poll for, and spinning
            // there would never let `f` finish.
            if thread() == origin.load(Ordering::Acquire) {
                return;
            }
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
        },
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `awake` returns what `f` returns, with `f`'s parallel work done, on
    /// pools of one to three threads and from outside any pool.
    #[test]
    fn awake_runs_f_and_its_parallel_work() {
        let work = || {
            let mut v = vec![1.0f32; 1 << 18];
            each(&mut v, |b| b.iter_mut().for_each(|x| *x *= 2.0));
            let (a, b) = rayon::join(|| v.iter().sum::<f32>(), || v.len());
            (a, b)
        };
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for _ in 0..20 {
                assert_eq!(pool.install(|| awake(work)), (2.0 * (1 << 18) as f32, 1 << 18));
            }
        }
        assert_eq!(awake(work).1, 1 << 18);
    }

    /// A panic in `f` reaches the caller instead of leaving the poller
    /// spinning (and the call hanging).
    #[test]
    fn a_panic_in_f_stops_the_poller() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| awake(|| -> u32 { panic!("f failed") }))
        }));
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(pool.install(|| awake(|| 7)), 7);
    }
}
