//! Packing of A and B blocks into contiguous micro-panels, the layout the
//! microkernels stream through: A in panels of `mr` rows (for each p, `mr`
//! values), B in panels of `nr` columns (for each p, `nr` values). Edges are
//! padded with zeros so the microkernels always see full panels.

use super::MatRef;

/// The largest `mr` or `nr` of any microkernel.
const MAX_STREAMS: usize = 48;

/// Writes `srcs[s][p]·scale` to `dst[p·width + s]` for `p < len`: a transpose
/// of up to `width` contiguous streams into the packed panel layout, done in
/// blocks of 16 so the reads are vector loads.
fn interleave(dst: &mut [f32], srcs: &[&[f32]], len: usize, width: usize, scale: f32) {
    const W: usize = 16;
    let mut block = [[0.0f32; W]; MAX_STREAMS];
    let mut p = 0;
    while p < len {
        let w = W.min(len - p);
        for (row, src) in block.iter_mut().zip(srcs) {
            // A fixed-size copy compiles to vector moves; a variable-length
            // one to a call to memcpy.
            match <&[f32; W]>::try_from(&src[p..p + w]) {
                Ok(full) => *row = *full,
                Err(_) => row[..w].copy_from_slice(&src[p..p + w]),
            }
        }
        for (q, out) in dst[p * width..(p + w) * width].chunks_exact_mut(width).enumerate() {
            for (o, row) in out.iter_mut().zip(&block[..srcs.len()]) {
                *o = scale * row[q];
            }
        }
        p += w;
    }
}

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
    if a.cs == 1 && mr <= MAX_STREAMS {
        // Rows of A are contiguous: transpose them into the panel.
        let mut srcs: [&[f32]; MAX_STREAMS] = [&[]; MAX_STREAMS];
        for (r, src) in srcs.iter_mut().enumerate().take(rows) {
            let start = (row0 + r) * a.rs + p0;
            *src = &a.data[start..start + kc];
        }
        interleave(chunk, &srcs[..rows], kc, mr, alpha);
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
        // Rows of B are contiguous: copy them, with fixed-size copies for
        // the kernels' widths (a variable-length copy calls memcpy).
        match nr {
            16 => copy_rows::<16>(chunk, b, p0, kc, j),
            32 => copy_rows::<32>(chunk, b, p0, kc, j),
            48 => copy_rows::<48>(chunk, b, p0, kc, j),
            _ => {
                for p in 0..kc {
                    let start = (p0 + p) * b.rs + j;
                    chunk[p * nr..(p + 1) * nr].copy_from_slice(&b.data[start..start + nr]);
                }
            }
        }
        return;
    }
    if cols < nr {
        chunk.fill(0.0);
    }
    if b.rs == 1 && nr <= MAX_STREAMS {
        // Columns of B are contiguous (B is a transposed row-major matrix):
        // transpose them into the panel.
        let mut srcs: [&[f32]; MAX_STREAMS] = [&[]; MAX_STREAMS];
        for (c, src) in srcs.iter_mut().enumerate().take(cols) {
            let start = (j + c) * b.cs + p0;
            *src = &b.data[start..start + kc];
        }
        interleave(chunk, &srcs[..cols], kc, nr, 1.0);
        return;
    }
    for p in 0..kc {
        for c in 0..cols {
            chunk[p * nr + c] = b.at(p0 + p, j + c);
        }
    }
}

/// Copies `kc` rows of `N` contiguous values of B into a packed panel.
fn copy_rows<const N: usize>(chunk: &mut [f32], b: &MatRef<'_>, p0: usize, kc: usize, j: usize) {
    for (p, out) in chunk.chunks_exact_mut(N).take(kc).enumerate() {
        let start = (p0 + p) * b.rs + j;
        if let (Ok(out), Ok(src)) =
            (<&mut [f32; N]>::try_from(out), <&[f32; N]>::try_from(&b.data[start..start + N]))
        {
            *out = *src;
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
