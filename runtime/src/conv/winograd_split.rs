//! 5x5 stride-1 convolutions by Winograd F(4x4, 3x3), the kernel split into
//! four 3x3 pieces.
//!
//! Padded with zeros to 6x6, a 5x5 kernel is four 3x3 pieces at row and
//! column offsets `a, b ∈ {0, 3}`, and the conv is the sum of the pieces'
//! 3x3 convs, each over the zero-padded input shifted by its offset.
//! Stacked as channels, the four shifted inputs
//! `x'[q·c + ci](i, j) = x_pad[ci](i + a_q, j + b_q)`, each
//! `(oh + 2) x (ow + 2)`, make that sum one unpadded 3x3 conv with `4·c`
//! input channels, which [`winograd`] computes: 4 · 36 multiplies per 4x4
//! tile and channel pair, 9 per output against the direct 25. That is as
//! few as a dedicated F(2x2, 5x5) does, on transforms already tuned, for
//! the price of copying the input four times and of a `U` four times the
//! size (7 of the 36 stacked taps are zero).
//!
//! The backward-data pass of such a conv is itself one: of `dy` padded by
//! `4 − pad`, with the kernel rotated by 180° and its channel axes swapped,
//! split the same way, the ReLU mask applied after. It runs when asked but
//! no shape picks it: alone it beats im2col, but in a training step, where
//! nothing of its large stacked `dy` is still in cache, it does not. There
//! is no split weight gradient.

use super::im2col::{copy_run, zero_edges};
use super::tuning::SPLIT_MIN_CHANNELS;
use super::{winograd, Conv2d, ConvAlgo, ConvAlgorithm, Pass, Scratch};
use crate::gemm::{Activation, Par};
use crate::isa::Isa;
use std::cell::RefCell;

/// [`ConvAlgo::WinogradSplit`].
#[derive(Debug)]
pub(super) struct WinogradSplit;

impl ConvAlgorithm for WinogradSplit {
    fn algo(&self) -> ConvAlgo {
        ConvAlgo::WinogradSplit
    }

    fn name(&self) -> &'static str {
        "winograd-f4x4-split5x5"
    }

    fn applies(&self, s: &Conv2d, pass: Pass) -> bool {
        match pass {
            Pass::Forward => applies(s),
            Pass::BackwardData => applies_backward_data(s),
            Pass::BackwardWeights => false,
        }
    }

    fn picks(&self, s: &Conv2d, pass: Pass) -> bool {
        pass == Pass::Forward && winograd::enabled() && s.c >= SPLIT_MIN_CHANNELS && pays(s)
    }

    fn picks_prepared(&self, s: &Conv2d) -> bool {
        winograd::enabled() && s.c >= SPLIT_MIN_CHANNELS && pays_prepared(s)
    }

    fn scratch(&self, s: &Conv2d, pass: Pass) -> Scratch {
        let backward_data = match pass {
            Pass::Forward => false,
            Pass::BackwardData => true,
            Pass::BackwardWeights => return Scratch::default(),
        };
        Scratch {
            columns: winograd::forward_scratch_len(&stacked_pass(s, backward_data)),
            winograd_weights: weights_len(s, backward_data),
            stacked: scratch_len(s, backward_data),
            ..Scratch::default()
        }
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
        forward(s, x, weight, bias, activation, y, par);
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
        backward_data(s, dy, weight, relu_mask, dx, par);
    }

    /// Never called ([`ConvAlgorithm::applies`] says no); im2col's, were it.
    fn backward_weights(&self, s: &Conv2d, x: &[f32], dy: &[f32], dweight: &mut [f32], par: Par) {
        ConvAlgo::Im2col.algorithm().backward_weights(s, x, dy, dweight, par);
    }
}

/// The pieces' offsets `(a, b)` into the 6x6 kernel, in channel-block order.
const OFFSETS: [(usize, usize); 4] = [(0, 0), (0, 3), (3, 0), (3, 3)];

thread_local! {
    /// Per-thread scratch of the calling thread: the stacked inputs, then
    /// (when not prepared) the stacked weights.
    static STACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether the forward pass of `s` can run here.
pub fn applies(s: &Conv2d) -> bool {
    s.is_valid() && (s.kh, s.kw, s.sh, s.sw, s.dh, s.dw, s.groups) == (5, 5, 1, 1, 1, 1, 1)
}

/// Whether the backward-data pass of `s` can run here: its padding,
/// `4 − pad`, must not be negative.
pub fn applies_backward_data(s: &Conv2d) -> bool {
    applies(s) && s.ph <= 4 && s.pw <= 4
}

/// Whether this beats im2col on the forward pass of `s`, where it applies:
/// as for 3x3 convs ([`winograd::pays`]), judged on the stacked conv.
pub fn pays(s: &Conv2d) -> bool {
    applies(s) && winograd::pays(&stacked(s))
}

/// [`pays`] with the transformed weights made once for many calls
/// ([`winograd::pays_prepared`]).
pub fn pays_prepared(s: &Conv2d) -> bool {
    applies(s) && winograd::pays_prepared(&stacked(s))
}

/// The unpadded 3x3 conv over the stacked inputs that computes `s`.
fn stacked(s: &Conv2d) -> Conv2d {
    let (h, w) = (s.out_h() + 2, s.out_w() + 2);
    Conv2d { c: 4 * s.c, h, w, kh: 3, kw: 3, ph: 0, pw: 0, ..*s }
}

/// The 5x5 conv whose forward pass is the backward-data pass of `s`: from
/// `dy`'s `o` channels to `c`, padded by `4 − pad`.
fn transposed(s: &Conv2d) -> Conv2d {
    let (h, w) = (s.out_h(), s.out_w());
    Conv2d { c: s.o, h, w, o: s.c, ph: 4 - s.ph, pw: 4 - s.pw, ..*s }
}

/// [`stacked`] of the backward-data pass of `s`.
fn backward_data_stacked(s: &Conv2d) -> Conv2d {
    stacked(&transposed(s))
}

/// The stacked conv of the forward pass of `s`, or of its backward-data
/// pass.
fn stacked_pass(s: &Conv2d, backward_data: bool) -> Conv2d {
    if backward_data {
        backward_data_stacked(s)
    } else {
        stacked(s)
    }
}

/// Floats of the calling thread's scratch that one pass of `s` uses: the
/// stacked inputs and weights.
fn scratch_len(s: &Conv2d, backward_data: bool) -> usize {
    let st = stacked_pass(s, backward_data);
    st.input_len() + st.weight_len()
}

/// Floats of `U` one pass of `s` makes on the calling thread.
fn weights_len(s: &Conv2d, backward_data: bool) -> usize {
    winograd::weights_len(&stacked_pass(s, backward_data))
}

/// Grows the calling thread's scratch to `len` floats.
pub(super) fn reserve(len: usize) {
    crate::scratch::with(&STACKED, len, |_| ());
}

/// `y = act(conv(x, weight) + bias)`; the caller checked the lengths.
fn forward(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    run(s, x, forward_taps(s, weight), bias, activation, y, par);
}

/// Tap `(u, v)` from input channel `c` to output channel `o` of the
/// forward pass, in `weight` (`[o][c][5][5]`).
fn forward_taps<'w>(
    s: &Conv2d,
    weight: &'w [f32],
) -> impl Fn(usize, usize, usize, usize) -> f32 + 'w {
    let c_in = s.c;
    move |o, c, u, v| weight[((o * c_in + c) * 5 + u) * 5 + v]
}

/// `dx = conv_transpose(dy, weight)`, zeroed where `relu_mask` is `≤ 0`;
/// the caller checked the lengths and [`applies_backward_data`].
fn backward_data(
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) {
    // Tap (u, v) from input channel c to output channel o of the
    // transposed conv is the forward conv's (4 − u, 4 − v) from o to c.
    let tap =
        |c: usize, o: usize, u: usize, v: usize| weight[((o * s.c + c) * 5 + 4 - u) * 5 + 4 - v];
    run(&transposed(s), dy, tap, None, Activation::Identity, dx, par);
    if let Some(mask) = relu_mask {
        for (d, &m) in dx.iter_mut().zip(mask) {
            if m <= 0.0 {
                *d = 0.0;
            }
        }
    }
}

/// The forward pass of the 5x5 conv `s` whose tap `(u, v)` from input
/// channel `c` to output channel `o` is `tap(o, c, u, v)`.
fn run(
    s: &Conv2d,
    x: &[f32],
    tap: impl Fn(usize, usize, usize, usize) -> f32,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let st = stacked(s);
    crate::scratch::with(&STACKED, st.input_len() + st.weight_len(), |scratch| {
        let (xs, ws) = scratch.split_at_mut(st.input_len());
        stack_inputs(s, x, xs);
        stack_weights(s, tap, ws);
        winograd::forward(&st, Isa::best(), xs, ws, bias, activation, y, par)
            .expect("the stacked conv is a valid unpadded 3x3 conv of the checked lengths");
    });
}

/// Writes into `u` the transformed weights [`forward_transformed`] takes.
pub(super) fn transform_forward_weights(s: &Conv2d, weight: &[f32], u: &mut Vec<f32>, par: Par) {
    let st = stacked(s);
    let mut ws = vec![0.0; st.weight_len()];
    stack_weights(s, forward_taps(s, weight), &mut ws);
    winograd::transform_forward_weights(&st, &ws, u, par);
}

/// The forward pass on weights made by [`transform_forward_weights`]; the
/// caller checked the lengths.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_transformed(
    s: &Conv2d,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let st = stacked(s);
    crate::scratch::with(&STACKED, st.input_len(), |xs| {
        stack_inputs(s, x, xs);
        winograd::forward_transformed(&st, Isa::best(), xs, u, bias, activation, y, par);
    });
}

/// The stacked inputs of `s`'s samples `x` into `out`
/// (`stacked(s).input_len()` floats): channel `q·c + ci` is channel `ci`,
/// zero-padded, from row `a_q` and column `b_q` on.
fn stack_inputs(s: &Conv2d, x: &[f32], out: &mut [f32]) {
    let st = stacked(s);
    let (plane, stacked_plane) = (s.h * s.w, st.h * st.w);
    for (xs, os) in x.chunks_exact(s.c * plane).zip(out.chunks_exact_mut(st.c * stacked_plane)) {
        for (q, &(a, b)) in OFFSETS.iter().enumerate() {
            let shift = b as isize - s.pw as isize;
            // Columns j of a stacked row read input column j + shift: the
            // ones inside the input are j0..j1.
            let j0 = (-shift).clamp(0, st.w as isize) as usize;
            let j1 = (s.w as isize - shift).clamp(j0 as isize, st.w as isize) as usize;
            for ci in 0..s.c {
                let src = &xs[ci * plane..][..plane];
                let dst = &mut os[(q * s.c + ci) * stacked_plane..][..stacked_plane];
                for (i, row) in dst.chunks_exact_mut(st.w).enumerate() {
                    let iy = (i + a) as isize - s.ph as isize;
                    if !(0..s.h as isize).contains(&iy) {
                        row.fill(0.0);
                        continue;
                    }
                    let srow = &src[iy as usize * s.w..][..s.w];
                    let from = (j0 as isize + shift) as usize;
                    zero_edges(row, j0, j1 - j0);
                    copy_run(&mut row[j0..j1], &srow[from..][..j1 - j0]);
                }
            }
        }
    }
}

/// The stacked conv's `[o][4·c][3][3]` weights into `out`: piece `q`'s tap
/// `(u, v)` is the 5x5 tap `(a_q + u, b_q + v)`, zero past the kernel.
fn stack_weights(s: &Conv2d, tap: impl Fn(usize, usize, usize, usize) -> f32, out: &mut [f32]) {
    for (o, wo) in out.chunks_exact_mut(4 * s.c * 9).enumerate() {
        for (q, &(a, b)) in OFFSETS.iter().enumerate() {
            for c in 0..s.c {
                let piece = &mut wo[(q * s.c + c) * 9..][..9];
                for (k, w) in piece.iter_mut().enumerate() {
                    let (u, v) = (a + k / 3, b + k % 3);
                    *w = if u < 5 && v < 5 { tap(o, c, u, v) } else { 0.0 };
                }
            }
        }
    }
}
