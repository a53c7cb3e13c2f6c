//! The portable microkernel: plain Rust that the compiler vectorises with
//! whatever the target guarantees (SSE2 on x86_64). It is also the kernel
//! Miri checks.

pub const MR: usize = 4;
pub const NR: usize = 8;

/// # Safety
/// As [`super::MicroKernel`].
pub unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller guarantees `a` holds kc·MR floats and `b` kc·NR.
    let (a, b) =
        unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (v, &bj) in row.iter_mut().zip(bp) {
                // Separate multiply and add: without FMA hardware `mul_add`
                // would call a slow software routine.
                *v += ai * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees MR rows of NR writable floats, rsc apart.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(i * rsc), NR) };
        for (o, &v) in out.iter_mut().zip(row) {
            *o = if accumulate { *o + v } else { v };
        }
    }
}
