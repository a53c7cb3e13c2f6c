//! bfloat16 numerics as the AVX512_BF16 instructions define them, in
//! portable Rust, so that every machine can check the bf16 paths' results:
//! rounding an f32 to bf16 (`VCVTNEPS2BF16`) and one dot-product step of a
//! bf16 pair (`VDPBF16PS`).

/// The bf16 nearest `x`, ties to even, as `VCVTNEPS2BF16` rounds: a zero or
/// subnormal becomes a zero of its sign, an infinity stays one, and a NaN
/// stays a NaN, made quiet.
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    let exponent = bits & 0x7F80_0000;
    if exponent == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    if x.is_infinite() {
        return (bits >> 16) as u16;
    }
    let lsb = (bits >> 16) & 1;
    (bits.wrapping_add(0x7FFF + lsb) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
pub fn widen(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `x` rounded to bf16 and back: what a bf16 operand carries of it.
pub fn quantize(x: f32) -> f32 {
    widen(round(x))
}

/// `acc` after one `VDPBF16PS` lane step with the pairs `a` and `b`
/// (element 0 low): the odd products first, then the even, each a fused
/// multiply-add rounded to nearest even, with subnormal inputs read as zero
/// and a subnormal result flushed to zero.
pub fn dot_pair(acc: f32, a: [u16; 2], b: [u16; 2]) -> f32 {
    let step = |acc: f32, x: u16, y: u16| {
        let acc = flush(acc);
        flush(flush(widen(x)).mul_add(flush(widen(y)), acc))
    };
    step(step(acc, a[1], b[1]), a[0], b[0])
}

/// A zero of the same sign for a subnormal `x`.
fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}
