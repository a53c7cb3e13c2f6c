//! A counter-based random number generator: Philox4x32-10 (Salmon et al.,
//! "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
//!
//! Every number is a pure function of `(seed, stream, index)`, so dropout can
//! regenerate its mask in the backward pass instead of storing it, threads
//! can draw any slice of a stream without coordination, and a seed gives the
//! same weights on every run and platform.
//!
//! One Philox block gives four 32-bit words: uniforms `4b .. 4b+3` of a stream
//! share block `b`, normals `2b, 2b+1` share it too. The bulk fills compute
//! each block once; the per-element functions give identical values.

/// Multipliers and Weyl key increments from the Philox paper.
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// 2^-24: the spacing of the uniforms, which have 24 random bits so that
/// every value is an exact f32 strictly below 1.
const INV_2_24: f32 = 1.0 / (1u32 << 24) as f32;

/// Philox4x32 with 10 rounds on one 128-bit counter and 64-bit key; matches
/// the Random123 known-answer vectors.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        let p0 = u64::from(M0) * u64::from(c0);
        let p1 = u64::from(M1) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        if round < 9 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
    }
    [c0, c1, c2, c3]
}

/// Block `block` of stream `stream` under `seed`: the counter is
/// `(block, stream)` as 128 bits and the key is the seed.
#[inline]
pub fn block(seed: u64, stream: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [block as u32, (block >> 32) as u32, stream as u32, (stream >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// A 32-bit word as a uniform in [0, 1): its top 24 bits, scaled exactly.
#[inline(always)]
pub fn word_to_uniform(word: u32) -> f32 {
    (word >> 8) as f32 * INV_2_24
}

/// Two words as one standard normal by Box-Muller (the cosine branch).
///
/// Computed in f64 and rounded once to f32: `ln` and `cos` are not
/// correctly rounded in every libm, but an error of an f64 ulp changes the
/// f32 result only when it straddles an f32 rounding boundary, so the
/// normals agree across platforms in all but vanishingly rare cases (the
/// uniforms are bit-exact everywhere).
#[inline]
pub fn words_to_normal(w0: u32, w1: u32) -> f32 {
    // u1 in (0, 1] so the logarithm is finite; 32 bits each because the
    // tail of the normal depends on how close u1 gets to 0.
    let u1 = (f64::from(w0) + 1.0) * (1.0 / 4_294_967_296.0);
    let u2 = f64::from(w1) * (1.0 / 4_294_967_296.0);
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The uniform number `index` of stream `stream` under `seed`, in [0, 1).
#[inline]
pub fn uniform(seed: u64, stream: u64, index: u64) -> f32 {
    word_to_uniform(block(seed, stream, index / 4)[(index % 4) as usize])
}

/// The standard normal number `index` of stream `stream` under `seed`.
/// Normals are a separate sequence from the uniforms of the same stream
/// (they share blocks), so use different streams for the two.
#[inline]
pub fn normal(seed: u64, stream: u64, index: u64) -> f32 {
    let w = block(seed, stream, index / 2);
    if index.is_multiple_of(2) {
        words_to_normal(w[0], w[1])
    } else {
        words_to_normal(w[2], w[3])
    }
}

/// Fills `out` with uniforms `0..out.len()` of the stream, one block per
/// four values; `out[i] == uniform(seed, stream, i)`.
pub fn fill_uniform(seed: u64, stream: u64, out: &mut [f32]) {
    for (b, chunk) in out.chunks_mut(4).enumerate() {
        let w = block(seed, stream, b as u64);
        for (o, &w) in chunk.iter_mut().zip(&w) {
            *o = word_to_uniform(w);
        }
    }
}

/// Fills `out` with normals `0..out.len()` of the stream, one block per two
/// values; `out[i] == normal(seed, stream, i)`.
pub fn fill_normal(seed: u64, stream: u64, out: &mut [f32]) {
    for (b, chunk) in out.chunks_mut(2).enumerate() {
        let w = block(seed, stream, b as u64);
        chunk[0] = words_to_normal(w[0], w[1]);
        if let Some(o) = chunk.get_mut(1) {
            *o = words_to_normal(w[2], w[3]);
        }
    }
}
