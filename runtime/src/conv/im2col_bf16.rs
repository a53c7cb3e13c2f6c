//! The im2col algorithm in mixed precision: every pass is a GEMM with bf16
//! operands and f32 sums ([`gemm_bf16`]) over one sample's unrolled
//! windows, on the bf16 kernel this CPU runs best (AMX tiles, or
//! `VDPBF16PS`). Weights, inputs and gradients stay f32 in memory; the GEMM
//! rounds them to bf16 as it packs them. It is the algorithm of the convs
//! of a `precision bf16` network whose products are large enough for it to
//! pay ([`Conv2d::bf16_pays`]); the others keep their f32 algorithm.

use super::im2col::{col2im, im2col};
use super::{pointwise, with_columns, Conv2d, ConvAlgo, ConvAlgorithm, Pass, Scratch};
use crate::act::bias_activate_row;
use crate::gemm::bf16::{gemm_bf16, Bf16Kernel};
use crate::gemm::{Activation, MatRef, Par};

/// [`ConvAlgo::Im2colBf16`].
#[derive(Debug)]
pub(super) struct Im2colBf16;

/// Group `g` of one sample `x` as the GEMM's `[patch, plane]` matrix: the
/// sample itself for a pointwise conv, else its windows unrolled into `col`.
fn columns<'a>(s: &Conv2d, x: &'a [f32], g: usize, col: &'a mut [f32]) -> MatRef<'a> {
    let (patch, plane) = (s.patch(), s.out_plane());
    if pointwise::applies(s) {
        return MatRef::row_major(&x[g * patch * plane..][..patch * plane], plane);
    }
    im2col(s, x, g, col, plane);
    MatRef::row_major(&col[..patch * plane], plane)
}

/// Floats of one thread's column buffer.
fn columns_len(s: &Conv2d) -> usize {
    if pointwise::applies(s) {
        0
    } else {
        s.patch() * s.out_plane()
    }
}

impl ConvAlgorithm for Im2colBf16 {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Im2colBf16
    }

    fn name(&self) -> &'static str {
        "im2col-gemm-bf16"
    }

    fn applies(&self, _s: &Conv2d, _pass: Pass) -> bool {
        true
    }

    /// Never picked by the shape: the network's precision picks it.
    fn picks(&self, _s: &Conv2d, _pass: Pass) -> bool {
        false
    }

    fn scratch(&self, s: &Conv2d, pass: Pass) -> Scratch {
        let sums = if pass == Pass::BackwardWeights { s.weight_len() } else { 0 };
        Scratch { columns: columns_len(s) + sums, ..Scratch::default() }
    }

    fn forward(
        &self,
        s: &Conv2d,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        activation: Activation,
        y: &mut [f32],
        par: Par,
    ) {
        let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
        let kernel = Bf16Kernel::selected();
        super::forward_chunks(s, 1, x, y, par, |x, y, par| {
            with_columns(columns_len(s), |col| {
                for g in 0..s.groups {
                    let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch);
                    let b = columns(s, x, g, col);
                    let out = &mut y[g * og * plane..][..og * plane];
                    gemm_bf16(kernel, og, plane, patch, w, b, out, plane, false, par);
                    for (oc, row) in out.chunks_exact_mut(plane).enumerate() {
                        bias_activate_row(activation, bias.map(|b| b[g * og + oc]), row);
                    }
                }
            })
        });
    }

    fn backward_data(
        &self,
        s: &Conv2d,
        dy: &[f32],
        weight: &[f32],
        relu_mask: Option<&[f32]>,
        dx: &mut [f32],
        par: Par,
    ) {
        let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
        let kernel = Bf16Kernel::selected();
        super::backward_data_chunks(s, 1, dy, dx, relu_mask, par, |dy, dx, par| {
            with_columns(columns_len(s), |col| {
                for g in 0..s.groups {
                    // dcol [patch, plane] = W_gᵀ [patch, og] · dy_g [og, plane]
                    let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch).t();
                    let b = MatRef::row_major(&dy[g * og * plane..][..og * plane], plane);
                    if pointwise::applies(s) {
                        let dx = &mut dx[g * patch * plane..][..patch * plane];
                        gemm_bf16(kernel, patch, plane, og, w, b, dx, plane, false, par);
                    } else {
                        if g == 0 {
                            dx.fill(0.0);
                        }
                        gemm_bf16(kernel, patch, plane, og, w, b, col, plane, false, par);
                        col2im(s, col, g, dx, plane);
                    }
                }
            })
        });
    }

    /// Summed transposed, `dWᵀ [patch, og] += col [patch, plane] ·
    /// dyᵀ [plane, og]`: the unrolled windows are then the GEMM's rows, read
    /// along their length, and only the small `dy` is read across; the
    /// tiles' rows are the patch's, not the few output channels'.
    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
        let (in_len, out_len) = (s.c * s.h * s.w, s.o * plane);
        let kernel = Bf16Kernel::selected();
        super::weight_grad_tasks(s, dweight, par, |samples, dweight, par| {
            if samples.is_empty() {
                return dweight.fill(0.0);
            }
            with_columns(columns_len(s) + s.weight_len(), |scratch| {
                let (col, sums) = scratch.split_at_mut(columns_len(s));
                for (i, n) in samples.clone().enumerate() {
                    let x = &x[n * in_len..][..in_len];
                    for g in 0..s.groups {
                        let a = columns(s, x, g, col);
                        let dy = &dy[n * out_len + g * og * plane..][..og * plane];
                        let b = MatRef::row_major(dy, plane).t();
                        let c = &mut sums[g * og * patch..][..og * patch];
                        gemm_bf16(kernel, patch, og, plane, a, b, c, og, i > 0, par);
                    }
                }
                for (dw, sum) in
                    dweight.chunks_exact_mut(og * patch).zip(sums.chunks_exact(og * patch))
                {
                    for (r, row) in sum.chunks_exact(og).enumerate() {
                        row.iter().enumerate().for_each(|(oc, &v)| dw[oc * patch + r] = v);
                    }
                }
            })
        });
    }
}
