//! The pointwise algorithm: a 1x1, stride-1, unpadded, ungrouped conv is its
//! own im2col matrix, so each pass is a plain GEMM per sample.

use super::{epilogue, Conv2d, ConvAlgo, ConvAlgorithm, Pass, Scratch};
use crate::gemm::{sgemm, sgemm_prepacked, Activation, Epilogue, MatMut, MatRef, PackedA, Par};

/// [`ConvAlgo::Pointwise`].
#[derive(Debug)]
pub(super) struct Pointwise;

/// Whether `s` is a pointwise conv.
pub(super) fn applies(s: &Conv2d) -> bool {
    s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.groups == 1
}

impl ConvAlgorithm for Pointwise {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::Pointwise
    }

    fn name(&self) -> &'static str {
        "pointwise-gemm"
    }

    fn applies(&self, s: &Conv2d, _pass: Pass) -> bool {
        applies(s)
    }

    fn picks(&self, s: &Conv2d, _pass: Pass) -> bool {
        applies(s)
    }

    fn scratch(&self, _s: &Conv2d, _pass: Pass) -> Scratch {
        Scratch::default()
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
        forward_samples(s, x, weight, None, bias, activation, y, par);
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
        super::backward_data_chunks(s, 1, dy, dx, relu_mask, par, |dy, dx, par| {
            backward_data(s, dy, weight, dx, par)
        });
    }

    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        super::weight_grad_tasks(s, dweight, par, |samples, dweight, par| {
            weight_grad(s, x, dy, samples, dweight, par)
        });
    }
}

/// Each sample's `y [O, HW] = act(W [O, C] · x [C, HW] + bias)`, with the
/// weights `packed` beforehand when given ([`super::ForwardCache`]), else
/// packed by each GEMM from `weight`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_samples(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&PackedA>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let hw = s.h * s.w;
    super::forward_chunks(s, 1, x, y, par, |x, y, par| {
        let (x, y, epi) =
            (MatRef::row_major(x, hw), MatMut::row_major(y, hw), epilogue(bias, activation));
        let r = match packed {
            Some(w) => sgemm_prepacked(w, hw, &x, 0.0, y, &epi, par),
            None => sgemm(s.o, hw, s.c, 1.0, MatRef::row_major(weight, s.c), x, 0.0, y, &epi, par),
        };
        crate::gemm::expect_valid(r);
    });
}

/// One sample's `dx [C, HW] = Wᵀ [C, O] · dy [O, HW]`.
pub(super) fn backward_data(s: &Conv2d, dy: &[f32], weight: &[f32], dx: &mut [f32], par: Par) {
    let plane = s.out_plane();
    let r = sgemm(
        s.c,
        plane,
        s.o,
        1.0,
        MatRef::row_major(weight, s.c).t(),
        MatRef::row_major(dy, plane),
        0.0,
        MatMut::row_major(dx, plane),
        &Epilogue::NONE,
        par,
    );
    crate::gemm::expect_valid(r);
}

/// `dweight = Σ_{n in samples} dy_n · x_nᵀ`, overwriting `dweight`.
pub(super) fn weight_grad(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    samples: std::ops::Range<usize>,
    dweight: &mut [f32],
    par: Par,
) {
    let plane = s.out_plane();
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * plane);
    if samples.is_empty() {
        dweight.fill(0.0);
        return;
    }
    for (i, n) in samples.enumerate() {
        let (x, dy) = (&x[n * in_len..][..in_len], &dy[n * out_len..][..out_len]);
        // The first sample overwrites dweight; later ones accumulate.
        let beta = if i == 0 { 0.0 } else { 1.0 };
        // dW [o, c] += dy [o, plane] · xᵀ [plane, c]
        let r = sgemm(
            s.o,
            s.c,
            plane,
            1.0,
            MatRef::row_major(dy, plane),
            MatRef::row_major(x, plane).t(),
            beta,
            MatMut::row_major(dweight, s.c),
            &Epilogue::NONE,
            par,
        );
        crate::gemm::expect_valid(r);
    }
}
