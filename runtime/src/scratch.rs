//! Per-thread scratch buffers: each kernel keeps a `thread_local!` vector
//! that grows to the largest request and is reused after, so steady-state
//! calls allocate nothing.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread buffer of floats.
pub(crate) type Buffer = LocalKey<RefCell<Vec<f32>>>;

/// Runs `f` on the first `len` floats of this thread's `buffer`, grown if
/// needed. The contents are stale: callers overwrite what they read. If the
/// buffer is already borrowed (this thread re-entered the kernel while
/// waiting in a rayon join), `f` gets a fresh allocation instead.
pub(crate) fn with<R>(buffer: &'static Buffer, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
