//! Packing of A and B blocks into contiguous micro-panels, the layout the
//! microkernels stream through: A in panels of `mr` rows (for each p, `mr`
//! values), B in panels of `nr` columns (for each p, `nr` values). Edges are
//! padded with zeros so the microkernels always see full panels.

use super::MatRef;

/// The largest `mr` of any microkernel.
const MAX_MR: usize = 16;

/// Packs rows `i0..i0+mc` and columns `p0..p0+kc` of A, scaled by `alpha`,
/// into `dst` as `ceil(mc / mr)` panels of `kc * mr` values.
#[allow(clippy::too_many_arguments)]
pub fn pack_a(
    dst: &mut [f32],
    a: &MatRef<'_>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    alpha: f32,
) {
    for (panel, chunk) in dst.chunks_exact_mut(kc * mr).take(mc.div_ceil(mr)).enumerate() {
        pack_a_panel(chunk, a, i0 + panel * mr, mr.min(mc - panel * mr), p0, kc, mr, alpha);
    }
}

/// Packs one A panel of `rows` rows (padded to `mr`) starting at `row0`.
#[allow(clippy::too_many_arguments)]
pub fn pack_a_panel(
    chunk: &mut [f32],
    a: &MatRef<'_>,
    row0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    alpha: f32,
) {
    if rows < mr {
        chunk.fill(0.0);
    }
    if a.cs == 1 && mr <= MAX_MR {
        // Rows of A are contiguous: read the panel's rows as parallel
        // streams and write the packed panel sequentially.
        let mut srcs: [&[f32]; MAX_MR] = [&[]; MAX_MR];
        for (r, src) in srcs.iter_mut().enumerate().take(rows) {
            let start = (row0 + r) * a.rs + p0;
            *src = &a.data[start..start + kc];
        }
        for (p, out) in chunk.chunks_exact_mut(mr).enumerate() {
            for (o, src) in out.iter_mut().zip(&srcs[..rows]) {
                *o = alpha * src[p];
            }
        }
    } else if a.rs == 1 {
        // Columns of A are contiguous: copy `rows` values per p.
        for p in 0..kc {
            let start = (p0 + p) * a.cs + row0;
            for (o, &v) in chunk[p * mr..p * mr + rows].iter_mut().zip(&a.data[start..start + rows])
            {
                *o = alpha * v;
            }
        }
    } else {
        for p in 0..kc {
            for r in 0..rows {
                chunk[p * mr + r] = alpha * a.at(row0 + r, p0 + p);
            }
        }
    }
}

/// Packs rows `p0..p0+kc` and columns `j0..j0+nc` of B into `dst` as
/// `ceil(nc / nr)` panels of `kc * nr` values.
pub fn pack_b(
    dst: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
) {
    for (panel, chunk) in dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
        pack_b_panel(chunk, b, p0, kc, j0 + panel * nr, nr.min(nc - panel * nr), nr);
    }
}

/// Packs one B panel of `cols` columns (padded to `nr`) starting at `j`.
pub fn pack_b_panel(
    chunk: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j: usize,
    cols: usize,
    nr: usize,
) {
    if b.cs == 1 && cols == nr {
        // Rows of B are contiguous: copy them as slices.
        for p in 0..kc {
            let start = (p0 + p) * b.rs + j;
            chunk[p * nr..(p + 1) * nr].copy_from_slice(&b.data[start..start + nr]);
        }
        return;
    }
    for p in 0..kc {
        let out = &mut chunk[p * nr..(p + 1) * nr];
        for (c, o) in out.iter_mut().enumerate() {
            *o = if c < cols { b.at(p0 + p, j + c) } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panels_are_padded_with_zeros() {
        // A is 3x2 row-major: [[1,2],[3,4],[5,6]]; mr = 2 gives 2 panels.
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let a = MatRef { data: &data, rs: 2, cs: 1 };
        let mut dst = vec![f32::NAN; 2 * 2 * 2];
        pack_a(&mut dst, &a, 0, 3, 0, 2, 2, 1.0);
        assert_eq!(dst, [1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn b_panels_are_padded_with_zeros() {
        // B is 2x3 column-major.
        let data = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = MatRef { data: &data, rs: 1, cs: 2 };
        let mut dst = vec![f32::NAN; 2 * 2 * 2];
        pack_b(&mut dst, &b, 0, 2, 0, 3, 2);
        assert_eq!(dst, [1.0, 2.0, 4.0, 5.0, 3.0, 0.0, 6.0, 0.0]);
    }
}
