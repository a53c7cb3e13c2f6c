//! Elementary functions in `f32` built from `+ − × ÷`, comparisons and bit
//! moves only: `f32::exp` is a scalar libm call, which keeps every loop
//! over it scalar, while these vectorise under whatever instruction set
//! the loop is compiled for, and give the same bits on every path.

/// `e^x` for `x ≤ 88`; 0 where the result would be subnormal
/// (`x < −87.33`), NaN for NaN.
///
/// Cephes' `expf`: `x = n·ln2 + r` with `|r| ≤ ln2/2` (ln 2 in two parts,
/// so `r` is exact), a degree-7 polynomial for `e^r`, and `2^n` built in
/// the exponent bits. `n` is rounded by adding 1.5·2²³, which leaves it in
/// the low mantissa bits; a saturating `as i32` would cost more per lane.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LO: f32 = -87.33;
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // A comparison rather than `max`, which would turn NaN into LO.
    let xc = if x < LO { LO } else { x };
    let k = xc * std::f32::consts::LOG2_E + ROUND;
    let n = k - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // `n` sits in k's low mantissa bits; wrapping, so that the garbage a NaN
    // leaves there cannot trip the overflow checks of a debug build.
    let n_bits = k.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
    if x < LO {
        0.0
    } else {
        er * scale
    }
}

/// `eˣ − 1` for `x ≤ 88`, NaN for NaN, keeping its relative accuracy near
/// 0 where `exp(x) − 1` would cancel: there (`|x| < 0.5`) its Taylor
/// series to `x⁹/9!`, whose remainder is below 3e-10 of the result;
/// elsewhere `exp(x) − 1`, which is at least 0.39 in magnitude.
#[inline(always)]
pub(crate) fn expm1(x: f32) -> f32 {
    let p = 1.0 / 362_880.0;
    let p = p * x + 1.0 / 40_320.0;
    let p = p * x + 1.0 / 5_040.0;
    let p = p * x + 1.0 / 720.0;
    let p = p * x + 1.0 / 120.0;
    let p = p * x + 1.0 / 24.0;
    let p = p * x + 1.0 / 6.0;
    let p = p * x + 0.5;
    let series = p * (x * x) + x;
    if x.abs() < 0.5 {
        series
    } else {
        exp(x) - 1.0
    }
}
