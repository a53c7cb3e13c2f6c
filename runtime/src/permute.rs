//! The permutation of a sample's axes, as `x.permute(0, 1 + perm...)` in
//! PyTorch followed by `.contiguous()`: each sample of `[n, dims...]` is
//! copied into the order `perm` gives. Its backward is the same copy with
//! the inverse permutation.
//!
//! The copy first merges axes that stay neighbours (and drops axes of one),
//! so ShuffleNet's channel shuffle, `[g, c/g, h·w] → [c/g, g, h·w]`, is a
//! copy of whole planes. Where the innermost axis moves, the copy is a
//! batch of 2-D transposes done in square tiles, so that both the reads and
//! the writes stay within a few cache lines per tile.

use crate::error::{check_len, check_min_len, LenError};
use rayon::prelude::*;

/// The largest rank of a permuted sample.
pub const MAX_RANK: usize = 8;

/// The shape of a permutation of `[n, dims[..rank]]`: output axis `i` is
/// input axis `perm[i]` (of the sample; the batch stays first). `perm[..rank]`
/// is a permutation of `0..rank`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permute {
    pub n: usize,
    pub rank: usize,
    pub dims: [usize; MAX_RANK],
    pub perm: [usize; MAX_RANK],
}

impl Permute {
    /// Values per sample, in and out.
    pub fn sample_len(&self) -> usize {
        self.dims[..self.rank.min(MAX_RANK)].iter().product()
    }

    /// Elements of `x` and `y`.
    pub fn x_len(&self) -> usize {
        self.n * self.sample_len()
    }

    /// The permutation that undoes this one, over the output's shape: the
    /// shape of the backward.
    pub fn inverse(&self) -> Permute {
        let mut inv = Permute { dims: [1; MAX_RANK], perm: [0; MAX_RANK], ..*self };
        for i in 0..self.rank.min(MAX_RANK) {
            inv.perm[self.perm[i]] = i;
            inv.dims[i] = self.dims[self.perm[i]];
        }
        inv
    }

    /// How many distinct axes of `0..rank` `perm[..rank]` names: `rank`
    /// for a permutation.
    fn distinct_axes(&self) -> usize {
        let mut seen = [false; MAX_RANK];
        let rank = self.rank.min(MAX_RANK);
        for &p in &self.perm[..rank] {
            if p < rank {
                seen[p] = true;
            }
        }
        seen.iter().filter(|&&s| s).count()
    }
}

/// The copy as output axes `(extent, input stride)` with the output
/// contiguous over them, after merging and dropping: at most `MAX_RANK`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    axes: usize,
    extent: [usize; MAX_RANK],
    in_stride: [usize; MAX_RANK],
}

fn plan(p: &Permute) -> Plan {
    let rank = p.rank;
    let mut strides = [0usize; MAX_RANK];
    let mut s = 1;
    for a in (0..rank).rev() {
        strides[a] = s;
        s *= p.dims[a];
    }
    let mut out = Plan { axes: 0, extent: [1; MAX_RANK], in_stride: [0; MAX_RANK] };
    for i in 0..rank {
        let (extent, stride) = (p.dims[p.perm[i]], strides[p.perm[i]]);
        if extent == 1 {
            continue;
        }
        let k = out.axes;
        // The previous output axis steps over this one's whole extent in
        // the input: together they are one axis.
        if k > 0 && out.in_stride[k - 1] == stride * extent {
            out.extent[k - 1] *= extent;
            out.in_stride[k - 1] = stride;
        } else {
            out.extent[k] = extent;
            out.in_stride[k] = stride;
            out.axes += 1;
        }
    }
    out
}

/// Side of the square tiles of a transposing copy.
const TILE: usize = 16;

/// Calls `f(in_offset, out_offset)` for every index of the axes
/// `extent[..axes]` except those in `skip`, with the offsets of each (the
/// output's row-major over all axes).
fn for_each_outer(pl: &Plan, skip: [usize; 2], f: &mut impl FnMut(usize, usize)) {
    let axes = pl.axes;
    let mut out_stride = [0usize; MAX_RANK];
    let mut s = 1;
    for a in (0..axes).rev() {
        out_stride[a] = s;
        s *= pl.extent[a];
    }
    let mut index = [0usize; MAX_RANK];
    let (mut in_off, mut out_off) = (0usize, 0usize);
    loop {
        f(in_off, out_off);
        // Advance the odometer over the axes not skipped, last fastest.
        let mut a = axes;
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            if skip.contains(&a) {
                continue;
            }
            index[a] += 1;
            in_off += pl.in_stride[a];
            out_off += out_stride[a];
            if index[a] < pl.extent[a] {
                break;
            }
            in_off -= pl.in_stride[a] * index[a];
            out_off -= out_stride[a] * index[a];
            index[a] = 0;
        }
    }
}

/// One sample: `y` is `x` with its axes permuted.
fn permute_sample(pl: &Plan, x: &[f32], y: &mut [f32]) {
    let axes = pl.axes;
    if axes == 0 {
        y.copy_from_slice(x);
        return;
    }
    let last = axes - 1;
    if pl.in_stride[last] == 1 {
        // The innermost axis stays innermost: runs copied whole.
        let run = pl.extent[last];
        for_each_outer(pl, [last, MAX_RANK], &mut |i, o| {
            y[o..o + run].copy_from_slice(&x[i..i + run]);
        });
        return;
    }
    // The input's innermost axis (stride 1) is output axis `q`; transpose
    // the `(q, last)` planes tile by tile.
    let q = (0..axes).find(|&a| pl.in_stride[a] == 1).unwrap_or(0);
    let (rows, cols) = (pl.extent[q], pl.extent[last]);
    let row_stride: usize = pl.extent[q + 1..axes].iter().product();
    let col_in_stride = pl.in_stride[last];
    for_each_outer(pl, [q, last], &mut |i, o| {
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    let out_row = o + r * row_stride;
                    let in_row = i + r;
                    for c in c0..(c0 + TILE).min(cols) {
                        y[out_row + c] = x[in_row + c * col_in_stride];
                    }
                }
            }
        }
    });
}

/// `y = x` with each sample's axes permuted by `p.perm`.
pub fn permute(p: Permute, x: &[f32], y: &mut [f32]) -> Result<(), LenError> {
    const OP: &str = "permute";
    // A rank over the limit, or a `perm` that repeats or misses an axis,
    // is a length error of `dims` or `perm`.
    check_min_len(OP, "dims", MAX_RANK, p.rank)?;
    check_len(OP, "perm", p.distinct_axes(), p.rank)?;
    check_len(OP, "x", x.len(), p.x_len())?;
    check_len(OP, "y", y.len(), p.x_len())?;
    let sample = p.sample_len();
    if sample == 0 {
        return Ok(());
    }
    let pl = plan(&p);
    if p.x_len() >= 1 << 15 && crate::par::threads() > 1 {
        let per_task = ((1 << 15) / sample).max(1);
        let samples = y.par_chunks_mut(sample).zip(x.par_chunks(sample)).with_min_len(per_task);
        samples.for_each(|(y, x)| permute_sample(&pl, x, y));
    } else {
        for (y, x) in y.chunks_mut(sample).zip(x.chunks(sample)) {
            permute_sample(&pl, x, y);
        }
    }
    Ok(())
}
