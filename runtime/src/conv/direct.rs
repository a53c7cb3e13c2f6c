//! The direct convolution, for few input channels (LeNet's first layer,
//! one channel): im2col's matrix would be too thin for the GEMM to pay, so
//! the window is applied straight from a zero-padded copy of the sample.
//! Forward and the weight gradient; blocks of output channels share each
//! load of the input, so their independent accumulators hide the FMA
//! latency. AVX-512, AVX2 and portable builds of one generic body.

use super::{with_columns, Conv2d};
use crate::error::LenError;
use crate::gemm::Activation;
use crate::isa::Isa;

/// The direct forward convolution on the kernels of `isa` (the portable
/// ones if the CPU lacks it), one sample after another: what
/// [`super::conv2d_forward`] runs for one input channel, exposed so that tests can
/// run every instruction set's path.
pub fn conv2d_forward_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "conv2d_forward (direct)";
    s.check_forward(OP, x, weight, bias, y)?;
    if !s.fits_direct() {
        return Err(LenError { op: OP, tensor: "shape", expected: 0, found: 0 });
    }
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    if in_len == 0 || out_len == 0 {
        return Ok(());
    }
    for (y, x) in y.chunks_exact_mut(out_len).zip(x.chunks_exact(in_len)) {
        forward_direct(s, isa, x, weight, bias, activation, y);
    }
    Ok(())
}

/// Direct convolution for few input channels (groups = 1, stride 1, no
/// dilation). The sample is first copied into a zero-padded scratch image
/// (with `W` spare columns), so that every tap of the window is a plain
/// multiply-add of `W` contiguous values into a register-sized block of
/// outputs: no bounds checks, no partial sums written back per tap.
pub(super) fn forward_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) {
    with_columns(padded_len(s), |padded| {
        pad_sample(s, x, padded);
        // Blocks of OB output channels share each load of the input: OB
        // independent accumulator rows hide the multiply-add latency.
        #[cfg(target_arch = "x86_64")]
        match isa.if_supported() {
            // SAFETY: `if_supported` keeps only ISAs the CPU has.
            Isa::Avx512 => return unsafe { direct_avx512(s, padded, weight, bias, activation, y) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { direct_avx2(s, padded, weight, bias, activation, y) },
            Isa::Portable => {}
        }
        let _ = isa;
        match s.o {
            4.. => direct_kernel::<false, 4>(s, padded, weight, bias, activation, y),
            _ => direct_kernel::<false, 1>(s, padded, weight, bias, activation, y),
        }
    });
}

/// Outputs computed together by the direct kernel: one register-sized block.
pub(super) const DIRECT_W: usize = 16;

/// Floats of a sample's zero-padded copy: each plane has the padding around
/// it and `DIRECT_W` spare columns, so that a block of outputs never reads
/// past its row.
pub(super) fn padded_len(s: &Conv2d) -> usize {
    s.c * (s.h + 2 * s.ph) * (s.w + 2 * s.pw + DIRECT_W)
}

/// Floats of scratch of the weight gradient: the padded input and `dy` with
/// its rows padded to whole vectors.
pub(super) fn weight_grad_scratch_len(s: &Conv2d) -> usize {
    padded_len(s) + s.o * s.out_h() * s.out_w().div_ceil(DIRECT_W) * DIRECT_W
}

/// Copies one sample into `padded` ([`padded_len`] floats), zero around it.
fn pad_sample(s: &Conv2d, x: &[f32], padded: &mut [f32]) {
    let (ph, pw) = (s.h + 2 * s.ph, s.w + 2 * s.pw + DIRECT_W);
    padded.fill(0.0);
    for c in 0..s.c {
        for iy in 0..s.h {
            let dst = &mut padded[(c * ph + iy + s.ph) * pw + s.pw..][..s.w];
            dst.copy_from_slice(&x[(c * s.h + iy) * s.w..][..s.w]);
        }
    }
}

/// [`direct_kernel`] compiled for AVX-512 (a 16-output row is one register):
/// blocks of 8 channels, or 6 or 4 when there are fewer.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn direct_avx512(
    s: &Conv2d,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    match s.o {
        8.. => direct_kernel::<true, 8>(s, padded, weight, bias, act, y),
        // LeNet-5's conv1: six chains where eight would cover the latency,
        // but no channel computed twice.
        6.. => direct_kernel::<true, 6>(s, padded, weight, bias, act, y),
        4.. => direct_kernel::<true, 4>(s, padded, weight, bias, act, y),
        _ => direct_kernel::<true, 1>(s, padded, weight, bias, act, y),
    }
}

/// [`direct_kernel`] compiled for AVX2 with fused multiply-adds (a
/// 16-output row is two registers): blocks of 4 channels.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn direct_avx2(
    s: &Conv2d,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    match s.o {
        4.. => direct_kernel::<true, 4>(s, padded, weight, bias, act, y),
        _ => direct_kernel::<true, 1>(s, padded, weight, bias, act, y),
    }
}

/// The direct convolution over a padded image, `OB` output channels at a
/// time (`OB ≤ s.o`; the last block overlaps the one before rather than
/// running short, recomputing a few channels to the same values). `FMA`
/// selects `mul_add`, one instruction where FMA is enabled and a slow
/// library call where it is not. No closures inside: a closure would not
/// inherit the caller's target features, and its multiply-adds would not
/// become FMA instructions.
#[inline(always)]
fn direct_kernel<const FMA: bool, const OB: usize>(
    s: &Conv2d,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
) {
    const W: usize = DIRECT_W;
    let (oh, ow) = (s.out_h(), s.out_w());
    let (ph, pw) = (s.h + 2 * s.ph, s.w + 2 * s.pw + W);
    let window = s.c * s.kh * s.kw;
    let mut next = 0;
    while next < s.o {
        let o0 = next.min(s.o - OB);
        let taps: [&[f32]; OB] = std::array::from_fn(|k| &weight[(o0 + k) * window..][..window]);
        let b: [f32; OB] = std::array::from_fn(|k| bias.map_or(0.0, |bias| bias[o0 + k]));
        for oy in 0..oh {
            let mut x0 = 0;
            while x0 < ow {
                let mut acc = b.map(|b| [b; W]);
                for c in 0..s.c {
                    for i in 0..s.kh {
                        let src = &padded[(c * ph + oy + i) * pw + x0..][..s.kw - 1 + W];
                        let t0 = (c * s.kh + i) * s.kw;
                        for j in 0..s.kw {
                            let seg: &[f32; W] = match src[j..j + W].try_into() {
                                Ok(seg) => seg,
                                Err(_) => continue,
                            };
                            for (acc, taps) in acc.iter_mut().zip(&taps) {
                                let wv = taps[t0 + j];
                                for q in 0..W {
                                    acc[q] = if FMA {
                                        wv.mul_add(seg[q], acc[q])
                                    } else {
                                        acc[q] + wv * seg[q]
                                    };
                                }
                            }
                        }
                    }
                }
                let width = W.min(ow - x0);
                for (k, acc) in acc.iter().enumerate() {
                    let row = &mut y[((o0 + k) * oh + oy) * ow + x0..][..width];
                    for (o, &v) in row.iter_mut().zip(acc) {
                        *o = activation.apply(v);
                    }
                }
                x0 += W;
            }
        }
        next = o0 + OB;
    }
}

/// The weight gradient by the direct path, `dweight = Σ_samples dy ⋆ x`
/// (overwritten), on the kernels of `isa` (the portable ones if the CPU
/// lacks it), one sample after another; exposed so that tests can run every
/// instruction set's path. The bias gradient is not computed here.
pub fn conv2d_backward_weights_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
) -> Result<(), LenError> {
    const OP: &str = "conv2d_backward_weights (direct)";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    if !s.fits_direct() {
        return Err(LenError { op: OP, tensor: "shape", expected: 0, found: 0 });
    }
    weight_grad_direct(s, isa, x, dy, 0..s.n, dweight);
    Ok(())
}

/// `dweight = Σ_{n in samples} dy_n ⋆ x_n`, overwriting `dweight`: each
/// sample and its `dy` are copied into scratch, zero-padded (the input as
/// for the forward, `dy`'s rows to whole 16-float blocks), then every
/// weight is a sum of products of whole blocks.
pub(super) fn weight_grad_direct(
    s: &Conv2d,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    samples: std::ops::Range<usize>,
    dweight: &mut [f32],
) {
    dweight.fill(0.0);
    let (oh, ow) = (s.out_h(), s.out_w());
    let row = ow.div_ceil(DIRECT_W) * DIRECT_W;
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * oh * ow);
    with_columns(weight_grad_scratch_len(s), |scratch| {
        let (padded, dyp) = scratch.split_at_mut(padded_len(s));
        dyp.fill(0.0);
        for n in samples {
            pad_sample(s, &x[n * in_len..][..in_len], padded);
            let dy = &dy[n * out_len..][..out_len];
            for (dst, src) in dyp.chunks_exact_mut(row).zip(dy.chunks_exact(ow)) {
                dst[..ow].copy_from_slice(src);
            }
            weight_grad_sample(s, isa, padded, dyp, dweight);
        }
    });
}

/// Adds one padded sample's weight gradient into `dweight`.
fn weight_grad_sample(s: &Conv2d, isa: Isa, padded: &[f32], dyp: &[f32], dweight: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa.if_supported() {
        // SAFETY: `if_supported` keeps only ISAs the CPU has.
        Isa::Avx512 => return unsafe { weight_grad_avx512(s, padded, dyp, dweight) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { weight_grad_avx2(s, padded, dyp, dweight) },
        Isa::Portable => {}
    }
    let _ = isa;
    weight_grad_all::<KIND_PLAIN>(s, padded, dyp, dweight);
}

/// [`weight_grad_taps`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weight_grad_avx512(s: &Conv2d, padded: &[f32], dyp: &[f32], dweight: &mut [f32]) {
    weight_grad_all::<KIND_AVX512>(s, padded, dyp, dweight);
}

/// `weight_grad_all`'s kernel choices: plain loops without or with
/// `mul_add`, or AVX-512 intrinsics, where the compiler vectorised the
/// plain loops across taps instead of along the row and spilled.
const KIND_PLAIN: u8 = 0;
const KIND_FMA: u8 = 1;
const KIND_AVX512: u8 = 2;

/// [`weight_grad_taps`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_avx2(s: &Conv2d, padded: &[f32], dyp: &[f32], dweight: &mut [f32]) {
    weight_grad_all::<KIND_FMA>(s, padded, dyp, dweight);
}

/// Every weight of one sample, for each output channel and kernel row in
/// runs of up to 7 taps along the row (the taps a constant, so that their
/// accumulators stay in registers).
#[inline(always)]
fn weight_grad_all<const KIND: u8>(s: &Conv2d, padded: &[f32], dyp: &[f32], dweight: &mut [f32]) {
    for o in 0..s.o {
        for c in 0..s.c {
            for i in 0..s.kh {
                let mut j0 = 0;
                while j0 < s.kw {
                    let taps = (s.kw - j0).min(7);
                    let args = (s, padded, dyp, Tap { o, c, i, j0 });
                    match taps {
                        1 => weight_grad_taps::<KIND, 1>(args, dweight),
                        2 => weight_grad_taps::<KIND, 2>(args, dweight),
                        3 => weight_grad_taps::<KIND, 3>(args, dweight),
                        4 => weight_grad_taps::<KIND, 4>(args, dweight),
                        5 => weight_grad_taps::<KIND, 5>(args, dweight),
                        6 => weight_grad_taps::<KIND, 6>(args, dweight),
                        _ => weight_grad_taps::<KIND, 7>(args, dweight),
                    }
                    j0 += taps;
                }
            }
        }
    }
}

/// The first of a run of weights: output channel, input channel, kernel
/// row, kernel column.
#[derive(Clone, Copy)]
struct Tap {
    o: usize,
    c: usize,
    i: usize,
    j0: usize,
}

/// Adds one sample's gradient of the `KW` weights `(o, c, i, j0..j0 + KW)`:
/// for each block of 16 outputs of `dy`'s channel `o`, one load of `dy` feeds
/// the `KW` taps, each multiplying it with the input row shifted by the tap.
#[inline(always)]
fn weight_grad_taps<const KIND: u8, const KW: usize>(
    (s, padded, dyp, at): (&Conv2d, &[f32], &[f32], Tap),
    dweight: &mut [f32],
) {
    const W: usize = DIRECT_W;
    let Tap { o, c, i, j0 } = at;
    let (oh, ow) = (s.out_h(), s.out_w());
    let row = ow.div_ceil(W) * W;
    let (ph, pw) = (s.h + 2 * s.ph, s.w + 2 * s.pw + W);
    let dy = &dyp[o * oh * row..][..oh * row];
    // Columns j0.. of input row oy + i, far enough for the last block's last
    // tap: row + KW - 1 ≤ ow + W - 1 + kw - 1 ≤ pw - j0.
    let src = |oy: usize| &padded[(c * ph + oy + i) * pw + j0..][..row + KW - 1];
    let sums: [f32; KW] = if KIND == KIND_AVX512 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: KIND is KIND_AVX512 only inside `weight_grad_avx512`, whose
            // caller checked the CPU.
            unsafe { x86::taps::<KW>(dy, row, ow, src) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AVX-512 kernels exist only on x86_64")
    } else {
        let mut acc = [[0.0f32; W]; KW];
        for (oy, dy_row) in dy.chunks_exact(row).enumerate() {
            let src = src(oy);
            for (b, d) in dy_row.as_chunks::<W>().0.iter().enumerate() {
                let src = &src[b * W..][..W + KW - 1];
                // Outputs past the row (dy's zero padding) meet real input
                // cells; reading those as zero keeps an infinite input
                // from making 0·∞ = NaN in a weight it does not touch.
                let valid = (ow - b * W).min(W);
                for (j, acc) in acc.iter_mut().enumerate() {
                    let Ok(seg) = <&[f32; W]>::try_from(&src[j..j + W]) else { continue };
                    for q in 0..W {
                        let x = if q < valid { seg[q] } else { 0.0 };
                        acc[q] = if KIND == KIND_FMA {
                            d[q].mul_add(x, acc[q])
                        } else {
                            acc[q] + d[q] * x
                        };
                    }
                }
            }
        }
        acc.map(|acc| crate::reduce::sum(&acc))
    };
    let t = ((o * s.c + c) * s.kh + i) * s.kw + j0;
    for (w, sum) in dweight[t..t + KW].iter_mut().zip(sums) {
        *w += sum;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::DIRECT_W;
    use std::arch::x86_64::*;

    /// The `KW` sums of `weight_grad_taps` in zmm registers: for each block
    /// of 16 outputs, one load of `dy` and `KW` of the shifted input row.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn taps<'a, const KW: usize>(
        dy: &[f32],
        row: usize,
        ow: usize,
        src: impl Fn(usize) -> &'a [f32],
    ) -> [f32; KW] {
        let mut acc = [_mm512_setzero_ps(); KW];
        // Whole blocks of outputs, then the row's last, partial one, whose
        // input lanes past the row read as zero, as in the portable kernel
        // (0·∞ would be NaN).
        let (full, tail) = (ow / DIRECT_W, ow % DIRECT_W);
        let tail_mask: __mmask16 = (1 << tail) - 1;
        for (oy, dy_row) in dy.chunks_exact(row).enumerate() {
            let src = src(oy);
            assert!(src.len() >= row + KW - 1 && row == ow.div_ceil(DIRECT_W) * DIRECT_W);
            let mut block = |b: usize, mask: __mmask16| {
                // SAFETY: b < full, or b = full with a tail: b·16 + 16 ≤
                // row = dy_row.len() (asserted above).
                let d = unsafe { _mm512_loadu_ps(dy_row.as_ptr().add(b * DIRECT_W)) };
                for (j, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: b·16 + j + 16 ≤ row + KW - 1 ≤ src.len(),
                    // asserted above; masked-off lanes are not read.
                    let seg =
                        unsafe { _mm512_maskz_loadu_ps(mask, src.as_ptr().add(b * DIRECT_W + j)) };
                    *acc = _mm512_fmadd_ps(d, seg, *acc);
                }
            };
            for b in 0..full {
                block(b, 0xFFFF);
            }
            if tail > 0 {
                block(full, tail_mask);
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }
}
