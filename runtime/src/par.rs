//! Elementwise kernels split across the rayon pool.
//!
//! Elementwise passes are memory-bound, but each core streams through its
//! own caches, so two threads move about twice the bytes of one on a big
//! tensor. Small tensors stay on the calling thread: a fork-join costs a few
//! microseconds.

use rayon::prelude::*;

/// Floats per parallel block (128 KB): big enough to amortise a task,
/// small enough to balance.
const BLOCK: usize = 1 << 15;

fn split(len: usize) -> bool {
    len >= 2 * BLOCK && rayon::current_num_threads() > 1
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
