//! Disjoint views into a model's arena. The generated code keeps every
//! activation and gradient in one `Vec<f32>` at offsets fixed at compile
//! time; each kernel call needs some of those regions shared and others
//! mutable at once. [`split`] hands them out with safe code, checking that no
//! written region overlaps any other region.

use std::ops::{Deref, DerefMut, Range};

/// Floats in 64 bytes: a cache line, and one 512-bit vector.
pub const ALIGN_FLOATS: usize = 64 / std::mem::size_of::<f32>();

/// Grows `buf` to hold `len` floats starting on a 64-byte boundary, and
/// returns where they are. The allocator aligns large blocks to 16 bytes
/// only, and then every 512-bit access straddles two cache lines.
pub(crate) fn aligned_range(buf: &mut Vec<f32>, len: usize) -> Range<usize> {
    if buf.len() < len + ALIGN_FLOATS {
        buf.resize(len + ALIGN_FLOATS, 0.0);
    }
    let start = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
    start..start + len
}

/// A model's arena: zeroed floats starting on a 64-byte boundary. The memory
/// plan puts every tensor at a multiple of [`ALIGN_FLOATS`] per sample, so
/// every tensor starts on a cache line, and no vector load of a kernel
/// straddles two lines where a tensor's own layout does not make it.
pub struct Arena {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Arena {
    /// `len` zeroed floats.
    pub fn zeros(len: usize) -> Arena {
        let mut buf = Vec::new();
        let start = aligned_range(&mut buf, len).start;
        Arena { buf, start, len }
    }
}

impl Deref for Arena {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DerefMut for Arena {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arena({} floats)", self.len)
    }
}

/// A region that is out of bounds or overlaps another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaError(pub String);

impl std::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "arena: {}", self.0)
    }
}

impl std::error::Error for ArenaError {}

impl From<ArenaError> for crate::error::Error {
    fn from(e: ArenaError) -> Self {
        crate::error::Error::Arena(e)
    }
}

/// `R` shared views and `W` mutable views into one arena.
pub type Views<'a, const R: usize, const W: usize> = ([&'a [f32]; R], [&'a mut [f32]; W]);

/// Splits `buf` into `R` shared regions (which may overlap one another) and
/// `W` mutable regions (which overlap nothing). Regions are `(start, len)`.
pub fn split<const R: usize, const W: usize>(
    buf: &mut [f32],
    reads: [(usize, usize); R],
    writes: [(usize, usize); W],
) -> Result<Views<'_, R, W>, ArenaError> {
    let reads: [Range<usize>; R] = reads.map(|(s, l)| s..s.saturating_add(l));
    let writes: [Range<usize>; W] = writes.map(|(s, l)| s..s.saturating_add(l));
    for r in reads.iter().chain(&writes) {
        if r.start > r.end || r.end > buf.len() {
            return Err(ArenaError(format!("region {r:?} outside an arena of {}", buf.len())));
        }
    }
    // Cut the arena at the write regions, in address order: the pieces
    // between them hold the reads.
    let mut order: [usize; W] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| writes[i].start);
    for pair in order.windows(2) {
        if writes[pair[0]].end > writes[pair[1]].start {
            return Err(ArenaError(format!(
                "write regions {:?} and {:?} overlap",
                writes[pair[0]], writes[pair[1]]
            )));
        }
    }
    // No heap allocation: this runs once per kernel call of a training step.
    let mut write_slices: [Option<&mut [f32]>; W] = std::array::from_fn(|_| None);
    let mut gaps: [(usize, &[f32]); W] = [(0, &[]); W];
    let mut rest = buf;
    let mut base = 0;
    for (k, &i) in order.iter().enumerate() {
        let w = &writes[i];
        let (gap, tail) = std::mem::take(&mut rest).split_at_mut(w.start - base);
        let (region, tail) = tail.split_at_mut(w.end - w.start);
        gaps[k] = (base, gap);
        write_slices[i] = Some(region);
        base = w.end;
        rest = tail;
    }
    let last: (usize, &[f32]) = (base, rest);
    let mut read_slices: [&[f32]; R] = [&[]; R];
    for (slot, r) in read_slices.iter_mut().zip(&reads) {
        let gap = gaps
            .iter()
            .chain(std::iter::once(&last))
            .find(|(start, gap)| r.start >= *start && r.end <= start + gap.len());
        match gap {
            Some((start, gap)) => *slot = &gap[r.start - start..r.end - start],
            None => return Err(ArenaError(format!("read region {r:?} overlaps a write region"))),
        }
    }
    let write_slices = write_slices.map(|s| s.unwrap_or_default());
    Ok((read_slices, write_slices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_is_zeroed_and_starts_on_a_cache_line() {
        for len in [0, 1, 17, 100_000] {
            let mut a = Arena::zeros(len);
            assert_eq!(a.len(), len);
            assert_eq!(a.as_ptr() as usize % 64, 0);
            assert!(a.iter().all(|&v| v == 0.0));
            a.iter_mut().for_each(|v| *v = 1.0);
            assert_eq!(a.iter().sum::<f32>(), len as f32);
        }
    }

    #[test]
    fn hands_out_disjoint_views() {
        let mut buf: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let ([a, b], [w]) = split(&mut buf, [(0, 2), (1, 2)], [(5, 3)]).expect("disjoint");
        assert_eq!((a, b), (&[0.0, 1.0][..], &[1.0, 2.0][..]));
        w.fill(-1.0);
        assert_eq!(buf[5..8], [-1.0; 3]);
    }

    #[test]
    fn writes_in_any_order() {
        let mut buf = vec![0.0f32; 10];
        let ([r], [w1, w2]) = split(&mut buf, [(4, 2)], [(7, 2), (0, 3)]).expect("disjoint");
        assert_eq!(r.len(), 2);
        w1[0] = 1.0;
        w2[0] = 2.0;
        assert_eq!((buf[7], buf[0]), (1.0, 2.0));
    }

    #[test]
    fn overlaps_and_bounds_are_errors() {
        let mut buf = vec![0.0f32; 10];
        assert!(split(&mut buf, [(0, 4)], [(3, 2)]).is_err());
        assert!(split::<0, 2>(&mut buf, [], [(0, 4), (3, 2)]).is_err());
        assert!(split::<1, 0>(&mut buf, [(8, 3)], []).is_err());
    }
}
