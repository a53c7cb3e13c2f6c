//! The bf16 GEMM and bf16 rounding: the portable arithmetic against the
//! instructions on every machine that has AVX512_BF16 (bit for bit), and
//! every kernel, AMX's too where the machine has it, against an f64
//! product of the bf16-rounded operands.

use netc_runtime::bf16::{dot_pair, quantize, round, widen};
use netc_runtime::gemm::bf16::{convert, gemm_bf16, Bf16Kernel};
use netc_runtime::gemm::{MatRef, Par};
use netc_runtime::splitmix::SplitMix64;

#[test]
fn rounding_is_to_nearest_even_with_the_instructions_special_cases() {
    assert_eq!(round(1.0), 0x3F80);
    assert_eq!(round(-2.0), 0xC000);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even one.
    assert_eq!(round(f32::from_bits(0x3F80_8000)), 0x3F80);
    assert_eq!(round(f32::from_bits(0x3F81_8000)), 0x3F82);
    assert_eq!(round(f32::from_bits(0x3F80_8001)), 0x3F81);
    assert_eq!(round(f32::from_bits(0x3F80_7FFF)), 0x3F80);
    // The largest float rounds up to infinity; infinities stay.
    assert_eq!(round(f32::MAX), 0x7F80);
    assert_eq!(round(f32::NEG_INFINITY), 0xFF80);
    // Subnormals become zeros of their sign; NaNs stay NaN, made quiet.
    assert_eq!(round(f32::from_bits(0x0000_0001)), 0x0000);
    assert_eq!(round(f32::from_bits(0x807F_FFFF)), 0x8000);
    assert_eq!(round(-0.0), 0x8000);
    assert_eq!(round(f32::from_bits(0x7F80_0001)), 0x7FC0);
    assert!(widen(round(f32::NAN)).is_nan());
    // The rounding error is at most half a unit of bf16's 8-bit mantissa.
    let mut rng = SplitMix64::new(3);
    for _ in 0..10_000 {
        let x = f32::from_bits(rng.next_u64() as u32);
        if x.is_finite() && x.abs() > f32::MIN_POSITIVE && x.abs() < 1e38 {
            assert!((quantize(x) - x).abs() <= x.abs() * 2f32.powi(-8), "{x}");
        }
    }
}

#[test]
fn the_dot_step_takes_the_odd_products_first() {
    // 2^24 + 1 + (-2^24): adding the odd product (1) to 2^24 first loses it.
    let big = round(16_777_216.0);
    let (one, minus_one) = (round(1.0), round(-1.0));
    assert_eq!(dot_pair(0.0, [big, one], [one, one]), 16_777_216.0);
    assert_eq!(dot_pair(0.0, [one, big], [minus_one, minus_one]), -16_777_216.0);
    assert_eq!(dot_pair(-16_777_216.0, [big, one], [one, one]), 1.0);
    // A subnormal accumulator reads as zero, a subnormal result flushes.
    let tiny = f32::from_bits(1);
    assert_eq!(dot_pair(tiny, [0, 0], [0, 0]), 0.0);
}

/// Random values of mixed scales, with zeros, and a few huge and tiny.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len)
        .map(|_| {
            let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            match rng.next_u64() % 50 {
                0 => 0.0,
                1 => u * 1e15,
                2 => u * 1e-39,
                _ => u,
            }
        })
        .collect()
}

#[test]
fn the_hardware_rounds_as_the_portable_code() {
    let kernels = Bf16Kernel::supported();
    if !kernels.contains(&Bf16Kernel::Avx512Bf16) {
        eprintln!("no AVX512_BF16 here: only the portable rounding ran");
        return;
    }
    let mut rng = SplitMix64::new(7);
    let mut src: Vec<f32> = (0..100_003).map(|_| f32::from_bits(rng.next_u64() as u32)).collect();
    src.extend([0.0, -0.0, f32::MAX, f32::MIN, f32::INFINITY, f32::from_bits(0x3F80_8000)]);
    let (mut hw, mut sw) = (vec![0u16; src.len()], vec![0u16; src.len()]);
    convert(Bf16Kernel::Avx512Bf16, &src, &mut hw);
    convert(Bf16Kernel::Portable, &src, &mut sw);
    for (i, (h, s)) in hw.iter().zip(&sw).enumerate() {
        assert_eq!(h, s, "{:#010x}", src[i].to_bits());
    }
}

/// The f64 product of the bf16-rounded operands, and the bound on an f32
/// sum of k terms: k·2⁻²⁴·Σ|a·b| a cell.
fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut bound) = (vec![0.0f64; m * n], vec![0.0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let x = f64::from(quantize(a[i * k + p])) * f64::from(quantize(b[p * n + j]));
                c[i * n + j] += x;
                bound[i * n + j] += x.abs();
            }
            bound[i * n + j] *= (k as f64 + 2.0) * 2f64.powi(-24);
        }
    }
    (c, bound)
}

#[test]
fn every_kernel_agrees_with_the_f64_product_and_with_each_other() {
    let sizes = [1, 2, 3, 7, 8, 9, 17, 47, 49, 65, 200];
    let ks = [1, 2, 3, 5, 64, 255, 256, 257, 600];
    let mut case = 0u64;
    for &m in &sizes {
        for &n in sizes.iter().rev() {
            let k = ks[case as usize % ks.len()];
            case += 1;
            let a = values(m * k, case);
            let b = values(k * n, case + 1000);
            let (want, bound) = reference(m, n, k, &a, &b);
            let mut results = Vec::new();
            for &kernel in Bf16Kernel::supported() {
                for (accumulate, par) in [(false, Par::Rayon), (true, Par::Seq)] {
                    // Row stride wider than n, and C's padding must not move.
                    let rsc = n + 3;
                    let start = if accumulate { 0.5 } else { f32::NAN };
                    let mut c = vec![start; m * rsc];
                    let (ar, br) = (MatRef::row_major(&a, k), MatRef::row_major(&b, n));
                    gemm_bf16(kernel, m, n, k, ar, br, &mut c, rsc, accumulate, par);
                    let offset = if accumulate { 0.5 } else { 0.0 };
                    // Adding to C rounds once more, at C's magnitude.
                    let slack = |got: f64| offset * (got + offset).abs() * 2f64.powi(-22);
                    for i in 0..m {
                        for j in 0..n {
                            let got = f64::from(c[i * rsc + j]) - offset;
                            let w = want[i * n + j];
                            assert!(
                                (got - w).abs() <= bound[i * n + j] + 1e-30 + slack(got),
                                "{kernel:?} {m}x{n}x{k} [{i},{j}]: {got}, f64 {w}"
                            );
                        }
                        for pad in n..rsc {
                            let v = c[i * rsc + pad];
                            assert!(v == start || (v.is_nan() && start.is_nan()), "padding moved");
                        }
                    }
                    // AMX sums a tile step's 32 products in an order of its
                    // own, which no sequential, pairwise or fused model of
                    // it reproduces: it is held to the bound alone.
                    if !accumulate && kernel != Bf16Kernel::Amx {
                        results.push((kernel, c));
                    }
                }
            }
            for (kernel, c) in &results[1..] {
                let same = c.iter().zip(&results[0].1).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{kernel:?} {m}x{n}x{k}: not the portable kernel's bits");
            }
        }
    }
}

/// A product past every kernel's row, column and k blocks (AMX's are 256,
/// 1024 and 512), on two threads, a row stride wider than C.
#[test]
fn products_past_every_block_size_agree_with_the_f64_product() {
    let (m, n, k) = (290, 1061, 530);
    let (a, b) = (values(m * k, 41), values(k * n, 42));
    let (want, bound) = reference(m, n, k, &a, &b);
    for &kernel in Bf16Kernel::supported() {
        let rsc = n + 1;
        let mut c = vec![f32::NAN; m * rsc];
        let (ar, br) = (MatRef::row_major(&a, k), MatRef::row_major(&b, n));
        gemm_bf16(kernel, m, n, k, ar, br, &mut c, rsc, false, Par::Rayon);
        for i in 0..m {
            for j in 0..n {
                let (got, w) = (f64::from(c[i * rsc + j]), want[i * n + j]);
                assert!(
                    (got - w).abs() <= bound[i * n + j] + 1e-30,
                    "{kernel:?} [{i},{j}]: {got}, {w}"
                );
            }
            assert!(c[i * rsc + n].is_nan(), "{kernel:?}: the padding moved");
        }
    }
}

#[test]
fn a_transposed_a_reads_the_same_matrix() {
    let (m, n, k) = (19, 50, 33);
    let a = values(m * k, 1);
    let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
    let b = values(k * n, 2);
    for &kernel in Bf16Kernel::supported() {
        let (mut c1, mut c2) = (vec![0.0; m * n], vec![0.0; m * n]);
        gemm_bf16(
            kernel,
            m,
            n,
            k,
            MatRef::row_major(&a, k),
            MatRef::row_major(&b, n),
            &mut c1,
            n,
            false,
            Par::Rayon,
        );
        let transposed = MatRef { data: &at, rs: 1, cs: m };
        gemm_bf16(
            kernel,
            m,
            n,
            k,
            transposed,
            MatRef::row_major(&b, n),
            &mut c2,
            n,
            false,
            Par::Seq,
        );
        assert_eq!(c1, c2, "{kernel:?}");
    }
}
