//! Per-thread scratch buffers: each kernel keeps a `thread_local!` vector
//! that grows to the largest request and is reused after, so steady-state
//! calls allocate nothing.

use crate::arena::aligned_range;
use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread buffer of floats.
pub(crate) type Buffer = LocalKey<RefCell<Vec<f32>>>;

/// Runs `f` on `len` floats of this thread's `buffer`, grown if needed,
/// starting on a 64-byte boundary ([`aligned_range`]), so that no 64-byte
/// store into it straddles two cache lines.
/// The contents are stale: callers overwrite what they read. If the buffer
/// is already borrowed (this thread re-entered the kernel while waiting in a
/// rayon join), `f` gets a fresh allocation instead.
pub(crate) fn with<R>(buffer: &'static Buffer, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let range = aligned_range(&mut buf, len);
            f(&mut buf[range])
        }
        Err(_) => {
            let mut buf = Vec::new();
            let range = aligned_range(&mut buf, len);
            f(&mut buf[range])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn buffers_start_on_a_cache_line_when_grown_and_reentered() {
        for len in [1, 15, 1000, 1 << 18, 7] {
            with(&TEST, len, |outer| {
                assert_eq!(outer.len(), len);
                assert_eq!(outer.as_ptr() as usize % 64, 0, "len {len}");
                // Re-entered: a fresh allocation, aligned too.
                with(&TEST, len + 3, |inner| {
                    assert_eq!(inner.len(), len + 3);
                    assert_eq!(inner.as_ptr() as usize % 64, 0, "nested len {len}");
                });
            });
        }
    }
}
