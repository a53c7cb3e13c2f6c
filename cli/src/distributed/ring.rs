//! The sum of a vector over ranks, by the ring algorithm: the vector is cut
//! into one chunk per rank; each chunk travels once around the ring
//! gathering every rank's values, then its total travels around again to
//! be copied. Each rank sends and receives about twice the vector's size
//! whatever the number of ranks, and the additions happen in a fixed order
//! (chunk `c` starts from rank `c`'s values and adds ranks `c + 1`,
//! `c + 2`, … in turn), so every run of the same ranks gives the same
//! bits, and every rank gets them.

use super::Group;
use std::ops::Range;

/// The values of chunk `c` of `len` values cut in `size`.
fn chunk(len: usize, c: usize, size: usize) -> Range<usize> {
    c * len / size..(c + 1) * len / size
}

/// Replaces `values` on every rank with their sum over the ranks;
/// `scratch` holds the chunk being received.
pub fn all_reduce_sum(
    group: &dyn Group,
    values: &mut [f32],
    scratch: &mut Vec<f32>,
) -> Result<(), String> {
    let (rank, size, len) = (group.rank(), group.size(), values.len());
    if size == 1 {
        return Ok(());
    }
    let (next, previous) = ((rank + 1) % size, (rank + size - 1) % size);
    let at = |step: usize, ahead: usize| chunk(len, (rank + 2 * size - step - ahead) % size, size);
    // Step k: pass on the partial sum of chunk `rank − k` and add this
    // rank's values to the partial sum of chunk `rank − k − 1`. After
    // `size − 1` steps this rank holds the total of chunk `rank + 1`.
    for step in 0..size - 1 {
        let (send, receive) = (at(step, 0), at(step, 1));
        scratch.resize(receive.len(), 0.0);
        group.exchange(&values[send], next, scratch, previous)?;
        for (own, &partial) in values[receive].iter_mut().zip(scratch.iter()) {
            *own += partial;
        }
    }
    // Then pass the totals on: step k sends chunk `rank + 1 − k`.
    for step in 0..size - 1 {
        let (send, receive) = (at(step, size - 1), at(step, 0));
        scratch.resize(receive.len(), 0.0);
        group.exchange(&values[send], next, scratch, previous)?;
        values[receive].copy_from_slice(scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::run_local;
    use super::*;

    /// Values whose sums round differently in different orders.
    fn values(rank: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 31 + rank * 17) % 23) as f32 * 0.1 + 1e7 * (rank % 2) as f32)
            .collect()
    }

    /// Every rank ends with the same bits, the sum of all ranks' values to
    /// rounding, whatever the number of ranks and the length (shorter than
    /// the ring too).
    #[test]
    fn every_rank_gets_the_same_sum() {
        for size in [2, 3, 4, 7] {
            for len in [0, 1, 2, 5, 64, 1001] {
                let out = run_local(size, |g| {
                    let mut v = values(g.rank(), len);
                    all_reduce_sum(g, &mut v, &mut Vec::new()).map(|()| v)
                })
                .expect("threads");
                let first = out[0].as_ref().expect("reduced").clone();
                for other in &out {
                    let other = other.as_ref().expect("reduced");
                    assert!(first.iter().zip(other).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
                for (i, &got) in first.iter().enumerate() {
                    let exact: f64 = (0..size).map(|r| f64::from(values(r, len)[i])).sum();
                    assert!(
                        (f64::from(got) - exact).abs() <= 1e-6 * exact.abs().max(1.0) * size as f64
                    );
                }
            }
        }
    }

    /// Two ranks add `a + b` in one order; floating-point addition commutes,
    /// so the result is the single sum, bit for bit.
    #[test]
    fn two_ranks_give_the_plain_sum() {
        let out = run_local(2, |g| {
            let mut v = values(g.rank(), 9);
            all_reduce_sum(g, &mut v, &mut Vec::new()).map(|()| v)
        })
        .expect("threads");
        let plain: Vec<f32> = values(0, 9).iter().zip(values(1, 9)).map(|(a, b)| a + b).collect();
        assert_eq!(out[0].as_ref().unwrap(), &plain);
        assert_eq!(out[1].as_ref().unwrap(), &plain);
    }

    /// A rank that stops makes the others' reduction an error, not a hang.
    #[test]
    fn a_stopped_rank_is_an_error() {
        let out = run_local(3, |g| {
            if g.rank() == 1 {
                return Ok(());
            }
            all_reduce_sum(g, &mut [1.0; 10], &mut Vec::new())
        })
        .expect("threads");
        assert!(out[0].as_ref().unwrap_err().contains("rank"), "{:?}", out[0]);
        assert!(out[2].is_err());
    }
}
