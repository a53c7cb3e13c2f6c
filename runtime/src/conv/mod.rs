//! 2-D convolution over NCHW f32 tensors, forward and both backward passes,
//! with PyTorch's semantics (`nn.Conv2d`: weight `[O, C/groups, kh, kw]`,
//! cross-correlation, zero padding, floor output size, dilation, groups).
//!
//! Each pass has a few algorithms; [`Conv2d::forward_algo`] picks one from the
//! shape alone, so the code generator can call the chosen one directly:
//! - `Pointwise`: a 1x1, stride-1, unpadded conv is a plain GEMM per sample;
//! - `Direct`: stride-1 convs with few channels (LeNet-5's, ResNet-20's
//!   first): the window applied straight from the padded input, with no
//!   im2col matrix, whose copies cost such shapes more than their
//!   multiplies (`direct.rs`);
//! - `Winograd`: 3x3 stride-1 convs, by F(4x4, 3x3) ([`winograd`]), which
//!   does a quarter of the multiplies; also their backward-data pass;
//! - `WinogradSplit`: 5x5 stride-1 convs by the same F(4x4, 3x3), the
//!   kernel split into four 3x3 pieces ([`winograd_split`]): 9 multiplies
//!   per output against 25 (their backward-data pass runs so too when
//!   asked, [`conv2d_backward_data_using`], but is not picked: see
//!   [`winograd_split`]);
//! - `Im2col`: the general case, one GEMM per sample and group with the bias
//!   and activation fused into the GEMM's store, the window unrolled into
//!   the GEMM's packed B panels straight from the input (zero-padded first
//!   into a per-thread scratch buffer, so that every run is a plain copy);
//!   small convs (output planes under 256, under 32 output channels
//!   per group, batches that give each thread more than one sample) put
//!   several samples' matrices side by side in one GEMM instead
//!   ([`im2col_gemm`]).

mod direct;
mod im2col_gemm;
mod prepared;
pub mod winograd;
pub mod winograd_split;

pub use direct::{
    conv2d_backward_data_direct, conv2d_backward_weights_direct, conv2d_forward_direct,
};
pub use prepared::{conv2d_forward_cached, ForwardCache};

use crate::error::{check_len, LenError};
use crate::gemm::{
    sgemm, sgemm_packed_b, sgemm_prepacked, Activation, Bias, Epilogue, MatMut, MatRef, PackB,
    PackedA, Par,
};
use crate::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;

/// The static shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Batch.
    pub n: usize,
    /// Input channels, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
}

/// How a pass is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    Pointwise,
    Direct,
    Winograd,
    WinogradSplit,
    Im2col,
}

impl ConvAlgo {
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Pointwise => "pointwise-gemm",
            ConvAlgo::Direct => "direct",
            ConvAlgo::Winograd => "winograd-f4x4",
            ConvAlgo::WinogradSplit => "winograd-f4x4-split5x5",
            ConvAlgo::Im2col => "im2col-gemm",
        }
    }
}

impl Conv2d {
    /// A square convolution with no dilation and one group.
    #[allow(clippy::too_many_arguments)]
    pub fn square(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Conv2d {
            n,
            c,
            h,
            w,
            o,
            kh: k,
            kw: k,
            sh: stride,
            sw: stride,
            ph: pad,
            pw: pad,
            dh: 1,
            dw: 1,
            groups: 1,
        }
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.ph - self.dh * (self.kh - 1) - 1) / self.sh + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pw - self.dw * (self.kw - 1) - 1) / self.sw + 1
    }

    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn output_len(&self) -> usize {
        self.n * self.o * self.out_h() * self.out_w()
    }

    pub fn weight_len(&self) -> usize {
        self.o * self.c / self.groups * self.kh * self.kw
    }

    /// Input channels per group times the window: the GEMM's inner dimension.
    fn patch(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }

    fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> u64 {
        (self.n * self.o * self.out_plane()) as u64 * self.patch() as u64
    }

    /// Whether the shape is valid: positive sizes, groups dividing both
    /// channel counts, and the dilated window fitting in the padded input.
    pub fn is_valid(&self) -> bool {
        let positive = [
            self.c,
            self.h,
            self.w,
            self.o,
            self.kh,
            self.kw,
            self.sh,
            self.sw,
            self.dh,
            self.dw,
            self.groups,
        ]
        .iter()
        .all(|&v| v > 0);
        positive
            && self.c.is_multiple_of(self.groups)
            && self.o.is_multiple_of(self.groups)
            && self.h + 2 * self.ph > self.dh * (self.kh - 1)
            && self.w + 2 * self.pw > self.dw * (self.kw - 1)
    }

    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.groups == 1
    }

    /// Whether the direct kernel can compute this shape.
    fn fits_direct(&self) -> bool {
        self.groups == 1 && self.sh == 1 && self.sw == 1 && self.dh == 1 && self.dw == 1
    }

    /// The forward algorithm for this shape.
    ///
    /// Direct against im2col, measured (`conv_one`, 2 threads, batch 64):
    /// LeNet-5's conv2 (6 -> 16, 5x5, 14x14) 0.31 against 0.52 ms; 3 -> 16
    /// 3x3 at 32x32 0.33 against 0.51; 16 -> 32 5x5 at 14x14 0.79 against
    /// 1.40; 64 -> 64 3x3 at 8x8 1.52 against 1.66. AlexNet's conv2 (96 ->
    /// 256) runs 13% slower direct, so many output channels keep im2col.
    /// So do single samples with more than a few channels, whose im2col
    /// GEMMs split between the threads and use weights packed once
    /// ([`ForwardCache`]): ResNet-20's batch-1 inference took 0.62 ms with
    /// them, 0.68-0.71 with its 16- to 64-channel convs direct.
    pub fn forward_algo(&self) -> ConvAlgo {
        if self.is_pointwise() {
            ConvAlgo::Pointwise
        } else if winograd::enabled()
            && self.c >= 8
            && winograd::applies(self)
            && winograd::pays(self)
        {
            // Measured (conv_one, 2 threads, 32x32 into 16 channels at batch
            // 64), Winograd against im2col since im2col fills its panels
            // from a padded input: 3 channels 0.66-0.71 against 0.43-0.47
            // ms (batch 1: 0.019 against 0.012), 4 channels 0.75 against
            // 0.60, 8 channels 0.94 against 1.07.
            ConvAlgo::Winograd
        } else if winograd::enabled() && self.c >= 32 && winograd_split::pays(self) {
            // Measured (conv_one, 2 threads, batch 64), split against direct
            // and im2col: 32 -> 64 at 16x16 6.1 against 10.0 and 9.5 ms; but
            // 16 -> 32 at 14x14 1.25 against 1.09 and 1.55, 8 -> 16 at 28x28
            // 2.5 against 1.8 and 2.6. AlexNet's conv2 (batch 8): 24.3 ms
            // against 35.7 by im2col.
            ConvAlgo::WinogradSplit
        } else if self.fits_direct() && self.o <= 64 && (self.n > 1 || self.c * self.o <= 128) {
            ConvAlgo::Direct
        } else {
            ConvAlgo::Im2col
        }
    }

    /// The forward algorithm when the weights are prepared once for many
    /// calls ([`conv2d_forward_cached`]): Winograd also where making its
    /// transformed weights on every call would not pay
    /// ([`winograd::pays_prepared`], [`winograd_split::pays_prepared`]).
    pub fn prepared_forward_algo(&self) -> ConvAlgo {
        let algo = self.forward_algo();
        if algo != ConvAlgo::Im2col || !winograd::enabled() || self.c < 8 {
            algo
        } else if winograd::pays_prepared(self) {
            ConvAlgo::Winograd
        } else if self.c >= 32 && winograd_split::pays_prepared(self) {
            ConvAlgo::WinogradSplit
        } else {
            algo
        }
    }

    /// The algorithm of the backward-data pass for this shape.
    pub fn backward_data_algo(&self) -> ConvAlgo {
        if self.is_pointwise() {
            ConvAlgo::Pointwise
        } else if winograd::enabled()
            && self.c >= 4
            && winograd::applies_backward_data(self)
            && winograd::pays_backward_data(self)
        {
            // Measured (conv_bench): with 3 input channels, so 3 output
            // channels of this pass, im2col wins (0.48 ms against 0.72 ms
            // on ResNet-20's first conv); forward, Winograd wins even there.
            ConvAlgo::Winograd
        } else if self.fits_direct()
            && (4..=64).contains(&self.c)
            && self.o <= 64
            && (self.o <= 16 || self.kh * self.kw <= 9)
            && (self.n > 1 || self.c * self.o <= 128)
        {
            // Direct runs the full correlation of `dy`, padded by the window:
            // taps on the padding are wasted work, a larger share for wide
            // windows on small planes. Measured against im2col (`conv_one`,
            // batch 64): 8 -> 8 3x3 at 16x16 0.09 against 0.26 ms, 64 -> 64
            // 3x3 at 8x8 1.66 against 2.18, LeNet-5's conv2 (5x5 into 6
            // channels) 0.53 against 0.59 on one thread; but 16 -> 32 5x5 at
            // 14x14 1.61 against 1.40, and into 3 channels 0.57 against 0.52.
            // One sample runs on one thread, as in the forward pass.
            ConvAlgo::Direct
        } else {
            ConvAlgo::Im2col
        }
    }

    /// The algorithm of the backward-weights pass for this shape.
    pub fn backward_weights_algo(&self) -> ConvAlgo {
        if self.is_pointwise() {
            ConvAlgo::Pointwise
        } else if winograd::enabled() && winograd::applies(self) && winograd::pays_weight_grad(self)
        {
            ConvAlgo::Winograd
        } else if self.fits_direct() && self.c * self.o <= 256 {
            // Measured against im2col (`conv_one`, batch 64): LeNet-5's conv2
            // (6 x 16 channels) 0.44 against 0.69 ms on one thread, 3 -> 16
            // 3x3 at 32x32 0.67 against 0.90, 8 -> 8 3x3 at 16x16 0.18
            // against 0.43; but 32 -> 32 3x3 at 16x16 2.66 against 2.28, and
            // 16 -> 32 5x5 at 14x14 1.62 against 1.23: with more channels,
            // the samples' planes no longer fit in L1.
            ConvAlgo::Direct
        } else {
            ConvAlgo::Im2col
        }
    }

    fn check(&self, op: &'static str, x: usize, w: usize, y: usize) -> Result<(), LenError> {
        if !self.is_valid() {
            // Not a length problem, but the same kind of caller error; the
            // zero lengths make `LenError` print it as an invalid shape.
            return Err(LenError { op, tensor: "shape", expected: 0, found: 0 });
        }
        check_len(op, "input", x, self.input_len())?;
        check_len(op, "weight", w, self.weight_len())?;
        check_len(op, "output", y, self.output_len())
    }

    /// [`Self::check`] for a forward pass, with its optional bias.
    fn check_forward(
        &self,
        op: &'static str,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        y: &[f32],
    ) -> Result<(), LenError> {
        self.check(op, x.len(), weight.len(), y.len())?;
        match bias {
            Some(b) => check_len(op, "bias", b.len(), self.o),
            None => Ok(()),
        }
    }
}

/// Partial weight gradients of the parallel tasks of
/// [`conv2d_backward_weights`], reused across calls.
static PARTIALS: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Per-thread scratch of the convolutions, reused across calls: the
    /// im2col matrix of one sample and group, or of several samples side by
    /// side with their `[og, cols]` block ([`im2col_gemm`]), or the padded
    /// buffers of the direct and Winograd paths.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Conv2d {
    /// Floats of per-thread scratch that the passes of this conv use, each
    /// with the algorithm it picks. Reserving for algorithms a pass does not
    /// pick would make that memory resident for nothing (AlexNet's training
    /// process held 86 MB of Winograd chunks sized for 16 samples, for
    /// passes that run im2col on batches of 8).
    pub fn scratch_len(&self) -> usize {
        let per_gemm = im2col_gemm::samples_per_gemm(self);
        let im2col = im2col_gemm::scratch_len(self, per_gemm);
        // Training and inference (weights prepared) may pick differently.
        let forward = [self.forward_algo(), self.prepared_forward_algo()].map(|algo| match algo {
            ConvAlgo::Pointwise => 0,
            ConvAlgo::Direct => direct::forward_scratch_len(self),
            ConvAlgo::Winograd => winograd::forward_scratch_len(self),
            ConvAlgo::WinogradSplit => {
                winograd::forward_scratch_len(&winograd_split::stacked(self))
            }
            // The padded inputs of a chunk (im2col_gemm::scratch_len).
            ConvAlgo::Im2col => im2col,
        });
        let backward_data = match self.backward_data_algo() {
            ConvAlgo::Pointwise => 0,
            ConvAlgo::Winograd => winograd::backward_data_scratch_len(self),
            ConvAlgo::WinogradSplit => {
                winograd::forward_scratch_len(&winograd_split::backward_data_stacked(self))
            }
            ConvAlgo::Direct => direct::backward_data_scratch_len(self),
            ConvAlgo::Im2col => im2col,
        };
        let weight_grad = match self.backward_weights_algo() {
            ConvAlgo::Pointwise => 0,
            ConvAlgo::Direct => direct::weight_grad_scratch_len(self),
            ConvAlgo::Winograd => winograd::weight_grad_scratch_len(self),
            ConvAlgo::WinogradSplit | ConvAlgo::Im2col => im2col,
        };
        forward[0].max(forward[1]).max(backward_data).max(weight_grad)
    }

    /// Floats of Winograd-transformed weights its passes keep on the calling
    /// thread: none unless the forward or backward-data pass picks Winograd.
    fn winograd_weights_len(&self) -> usize {
        let picked = [self.forward_algo(), self.backward_data_algo()];
        let split = ConvAlgo::WinogradSplit;
        let mut len = 0;
        if picked.contains(&ConvAlgo::Winograd) {
            len = winograd::weights_len(self);
        }
        for (backward_data, algo) in [false, true].into_iter().zip(picked) {
            if algo == split {
                len = len.max(winograd_split::weights_len(self, backward_data));
            }
        }
        len
    }

    /// Floats of stacked inputs and weights the split 5x5 passes keep on
    /// the calling thread: for the passes that pick them, in training or
    /// inference.
    fn split_scratch_len(&self) -> usize {
        let split = ConvAlgo::WinogradSplit;
        let forward = [self.forward_algo(), self.prepared_forward_algo()].contains(&split);
        let backward_data = self.backward_data_algo() == split;
        [(forward, false), (backward_data, true)]
            .into_iter()
            .filter(|&(picked, _)| picked)
            .map(|(_, backward_data)| winograd_split::scratch_len(self, backward_data))
            .max()
            .unwrap_or(0)
    }
}

/// Grows every thread's scratch buffers (on the current rayon pool and the
/// calling thread) to what the largest of `convs` needs, so that later
/// convolutions of these shapes allocate nothing, whichever thread runs them.
pub fn reserve_scratch(convs: &[&Conv2d]) {
    let len = convs.iter().map(|s| s.scratch_len()).max().unwrap_or(0);
    let weights = convs.iter().map(|s| s.winograd_weights_len()).max().unwrap_or(0);
    let stacked = convs.iter().map(|s| s.split_scratch_len()).max().unwrap_or(0);
    let lanes = convs
        .iter()
        .filter(|s| s.forward_algo() == ConvAlgo::Direct)
        .map(|s| direct::lanes_weights_len(s))
        .max()
        .unwrap_or(0);
    let reserve = || {
        with_columns(len, |_| ());
        direct::reserve_lanes_weights(lanes);
    };
    reserve();
    winograd::reserve_weights(weights);
    winograd_split::reserve(stacked);
    // Any thread of the pool may run a whole conv call: one shard of a
    // data-parallel step lays out its conv's weights itself.
    rayon::broadcast(|_| reserve());
}

/// Runs `f` with this thread's column buffer of `len` floats.
fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    crate::scratch::with(&COLUMNS, len, f)
}

/// Unrolls the windows of one sample's group `g` into `col`, a row-major
/// `[C/groups·kh·kw, out_h·out_w]` matrix with rows `ld` floats apart;
/// padding reads as zero.
fn im2col(s: &Conv2d, x: &[f32], g: usize, col: &mut [f32], ld: usize) {
    let plane = s.out_plane();
    for r in 0..s.patch() {
        fill_col_row(s, x, g, r, &mut col[r * ld..][..plane]);
    }
}

/// Row `r` of the im2col matrix of one sample's group `g`: the input values
/// that weight `r = (channel, i, j)` multiplies, one per output position.
fn fill_col_row(s: &Conv2d, x: &[f32], g: usize, r: usize, row: &mut [f32]) {
    let (cg, ow) = (s.c / s.groups, s.out_w());
    let (ci, i, j) = s.tap(r);
    let plane = &x[(g * cg + ci) * s.h * s.w..][..s.h * s.w];
    // Stride 1 with this tap's columns inside the input: every output row
    // is one plain run, without fill_row's clipping (which, per run of 10
    // floats in LeNet-5's conv2, cost more than the copy).
    let start = (j * s.dw).checked_sub(s.pw).filter(|&c| s.sw == 1 && c + ow <= s.w);
    for (y, out) in row.chunks_exact_mut(ow).enumerate() {
        match (s.input_row(plane, y, i), start) {
            (Some(src), Some(c)) => copy_run(out, &src[c..c + ow]),
            (Some(src), None) => fill_row(out, src, j * s.dw, s.pw, s.sw),
            (None, _) => out.fill(0.0),
        }
    }
}

impl Conv2d {
    /// Row `r` of the im2col matrix as (input channel within the group,
    /// kernel row, kernel column).
    fn tap(&self, r: usize) -> (usize, usize, usize) {
        (r / (self.kh * self.kw), r / self.kw % self.kh, r % self.kw)
    }

    /// The row of `plane` that output row `oy` reads through kernel row `i`,
    /// or `None` where that falls in the padding.
    fn input_row<'a>(&self, plane: &'a [f32], oy: usize, i: usize) -> Option<&'a [f32]> {
        let ih = (oy * self.sh + i * self.dh).checked_sub(self.ph)?;
        (ih < self.h).then(|| &plane[ih * self.w..][..self.w])
    }
}

/// `out[x] = src[x·stride + offset − pad]`, zero outside `src`. Kept out
/// of line: inlined into [`im2col`], it slowed that function's plain-run
/// loop by a sixth (LeNet-5's conv2, which never clips).
#[inline(never)]
fn fill_row(out: &mut [f32], src: &[f32], offset: usize, pad: usize, stride: usize) {
    let first = offset as isize - pad as isize;
    if stride == 1 {
        // The valid outputs form one contiguous run: copy it in one go.
        let lo = (-first).clamp(0, out.len() as isize) as usize;
        let hi = (src.len() as isize - first).clamp(lo as isize, out.len() as isize) as usize;
        out[..lo].fill(0.0);
        if hi > lo {
            let start = (lo as isize + first) as usize;
            copy_run(&mut out[lo..hi], &src[start..start + (hi - lo)]);
        }
        out[hi..].fill(0.0);
        return;
    }
    for (x, o) in out.iter_mut().enumerate() {
        let i = (x * stride) as isize + first;
        *o = if i >= 0 && (i as usize) < src.len() { src[i as usize] } else { 0.0 };
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row:
/// 10 floats in LeNet-5's conv2), where the call into libc's memmove cost
/// more than the copy (half of that conv's forward). Runs of 8 or more go
/// as 8-float blocks, the last one overlapping the one before.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    let len = dst.len();
    if len >= 64 {
        dst.copy_from_slice(src);
    } else if len >= COPY_BLOCK {
        for at in (0..len - COPY_BLOCK).step_by(COPY_BLOCK) {
            copy_block(dst, src, at);
        }
        copy_block(dst, src, len - COPY_BLOCK);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

const COPY_BLOCK: usize = 8;

/// Zeroes `row` outside `left..left + width`. Where each edge fits in
/// 8 floats, the row's first and last 8 are zeroed as whole blocks, for the
/// copy of the run to overwrite: filling the one or two padding floats of
/// each edge called into libc's memset, 7% of ResNet-20's batch-1
/// inference (its 8x8 convs' padded rows).
#[inline(always)]
fn zero_edges(row: &mut [f32], left: usize, width: usize) {
    let (len, right) = (row.len(), row.len() - left - width);
    if len >= COPY_BLOCK && left <= COPY_BLOCK && right <= COPY_BLOCK {
        let head: &mut [f32; COPY_BLOCK] = (&mut row[..COPY_BLOCK]).try_into().expect("8 floats");
        *head = [0.0; COPY_BLOCK];
        let tail: &mut [f32; COPY_BLOCK] =
            (&mut row[len - COPY_BLOCK..]).try_into().expect("8 floats");
        *tail = [0.0; COPY_BLOCK];
    } else {
        row[..left].fill(0.0);
        row[left + width..].fill(0.0);
    }
}

/// `dst[at..at + 8] = src[at..at + 8]` as one array move.
#[inline(always)]
fn copy_block(dst: &mut [f32], src: &[f32], at: usize) {
    let from: &[f32; COPY_BLOCK] = src[at..at + COPY_BLOCK].try_into().expect("8 floats");
    let to: &mut [f32; COPY_BLOCK] = (&mut dst[at..at + COPY_BLOCK]).try_into().expect("8 floats");
    *to = *from;
}

/// The reverse of [`im2col`]: adds every column entry back into the input
/// position it was read from (padding entries are dropped).
fn col2im(s: &Conv2d, col: &[f32], g: usize, dx: &mut [f32], ld: usize) {
    let plane = s.out_plane();
    for r in 0..s.patch() {
        add_col_row(s, &col[r * ld..][..plane], g, r, dx);
    }
}

/// Adds row `r` of an im2col-shaped gradient back into one sample's `dx`.
fn add_col_row(s: &Conv2d, row: &[f32], g: usize, r: usize, dx: &mut [f32]) {
    let (cg, ow) = (s.c / s.groups, s.out_w());
    let (ci, i, j) = (r / (s.kh * s.kw), r / s.kw % s.kh, r % s.kw);
    let plane = &mut dx[(g * cg + ci) * s.h * s.w..][..s.h * s.w];
    // As in `fill_col_row`: an interior tap of a stride-1 conv adds plain runs.
    let start = (j * s.dw).checked_sub(s.pw).filter(|&c| s.sw == 1 && c + ow <= s.w);
    for (y, vals) in row.chunks_exact(ow).enumerate() {
        let ih = (y * s.sh + i * s.dh) as isize - s.ph as isize;
        if ih < 0 || ih >= s.h as isize {
            continue;
        }
        let dst = &mut plane[ih as usize * s.w..][..s.w];
        match start {
            Some(c) => add_run(&mut dst[c..c + ow], vals),
            None => add_row(dst, vals, j * s.dw, s.pw, s.sw),
        }
    }
}

/// `dst += vals`.
#[inline(always)]
fn add_run(dst: &mut [f32], vals: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(vals) {
        *d += v;
    }
}

/// `dst[x·stride + offset − pad] += vals[x]` where that index is inside
/// `dst`: the reverse of [`fill_row`].
fn add_row(dst: &mut [f32], vals: &[f32], offset: usize, pad: usize, stride: usize) {
    let first = offset as isize - pad as isize;
    if stride == 1 {
        // The valid outputs form one contiguous run: a plain vector add.
        let lo = (-first).clamp(0, vals.len() as isize) as usize;
        let hi = (dst.len() as isize - first).clamp(lo as isize, vals.len() as isize) as usize;
        if hi > lo {
            let start = (lo as isize + first) as usize;
            for (d, &v) in dst[start..start + (hi - lo)].iter_mut().zip(&vals[lo..hi]) {
                *d += v;
            }
        }
        return;
    }
    for (x, &v) in vals.iter().enumerate() {
        let i = (x * stride) as isize + first;
        if i >= 0 && (i as usize) < dst.len() {
            dst[i as usize] += v;
        }
    }
}

/// `y = act(conv(x, weight) + bias)`.
///
/// Samples run in parallel on the rayon pool when `par` is `Rayon` and the
/// batch has more than one sample; a single sample parallelises its GEMMs.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    conv2d_forward_using(s.forward_algo(), s, x, weight, bias, activation, y, par)
}

/// [`conv2d_forward`] by `algo` rather than the one the shape picks, to
/// compare them; an `algo` that cannot compute this shape is an error.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_using(
    algo: ConvAlgo,
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    const OP: &str = "conv2d_forward";
    s.check_forward(OP, x, weight, bias, y)?;
    let fits = match algo {
        ConvAlgo::Pointwise => s.is_pointwise(),
        ConvAlgo::Direct => s.fits_direct(),
        ConvAlgo::Winograd => winograd::applies(s),
        ConvAlgo::WinogradSplit => winograd_split::applies(s),
        ConvAlgo::Im2col => true,
    };
    if !fits {
        return Err(LenError { op: OP, tensor: "shape", expected: 0, found: 0 });
    }
    if s.n == 0 {
        return Ok(());
    }
    if algo == ConvAlgo::Winograd {
        return winograd::forward(s, winograd::Isa::best(), x, weight, bias, activation, y, par);
    }
    if algo == ConvAlgo::WinogradSplit {
        winograd_split::forward(s, x, weight, bias, activation, y, par);
        return Ok(());
    }
    forward_samples(algo, s, x, weight, None, bias, activation, y, par);
    Ok(())
}

/// A checked forward pass by `algo` (not Winograd), its samples shared out
/// between the threads. `packed`: each group's weights packed once
/// ([`ForwardCache`]), for the im2col GEMMs that take one sample.
#[allow(clippy::too_many_arguments)]
fn forward_samples(
    algo: ConvAlgo,
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    let threads = par.threads();
    // A chunk of samples per task: one, except for the im2col shapes whose
    // samples share a GEMM ([`im2col_gemm::samples_per_gemm`]).
    let chunk = match algo {
        ConvAlgo::Im2col => im2col_gemm::chunk_samples(s, threads),
        _ => 1,
    };
    let mut run = |lanes_w: Option<&[f32]>| {
        let one = |x: &[f32], y: &mut [f32], par: Par| match algo {
            ConvAlgo::Pointwise => forward_pointwise(s, x, weight, bias, activation, y, par),
            ConvAlgo::Direct => {
                direct::forward_direct(s, Isa::best(), x, weight, lanes_w, bias, activation, y)
            }
            ConvAlgo::Im2col | ConvAlgo::Winograd | ConvAlgo::WinogradSplit => {
                forward_im2col(s, x, weight, packed, bias, activation, y, par)
            }
        };
        if threads > 1 && s.n > chunk {
            let chunks = y.par_chunks_mut(chunk * out_len).zip(x.par_chunks(chunk * in_len));
            chunks.for_each(|(y, x)| one(x, y, Par::Seq));
        } else {
            for (y, x) in y.chunks_mut(chunk * out_len).zip(x.chunks(chunk * in_len)) {
                one(x, y, par);
            }
        }
    };
    match algo {
        ConvAlgo::Direct => direct::with_channel_lanes_weights(s, Isa::best(), weight, run),
        _ => run(None),
    }
}

fn epilogue(bias: Option<&[f32]>, activation: Activation) -> Epilogue<'_> {
    Epilogue { bias: bias.map_or(Bias::None, Bias::PerRow), activation, relu_mask: None, sgd: None }
}

fn forward_pointwise(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let hw = s.h * s.w;
    let r = sgemm(
        s.o,
        hw,
        s.c,
        1.0,
        MatRef::row_major(weight, s.c),
        MatRef::row_major(x, hw),
        0.0,
        MatMut::row_major(y, hw),
        &epilogue(bias, activation),
        par,
    );
    crate::gemm::expect_valid(r);
}

/// The im2col forward of a chunk of samples (see [`im2col_gemm`]); one
/// sample fills the GEMM's panels from its (padded) input instead.
#[allow(clippy::too_many_arguments)]
fn forward_im2col(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    if y.len() > s.o * s.out_plane() {
        return im2col_gemm::forward(s, x, weight, bias, activation, y, par);
    }
    forward_one_sample(s, x, weight, packed, bias, activation, y, par);
}

/// One sample's im2col forward: the im2col matrix is never written out, the
/// GEMM asks for its panels, which are filled from the input, zero-padded
/// first so that every run is a plain copy. The weights are `packed` when
/// given, else packed by each GEMM from `weight`.
#[allow(clippy::too_many_arguments)]
fn forward_one_sample(
    s: &Conv2d,
    x: &[f32],
    weight: &[f32],
    packed: Option<&[PackedA]>,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let (og, patch, plane) = (s.o / s.groups, s.patch(), s.out_plane());
    with_columns(s.padded_group_len(), |buf| {
        for g in 0..s.groups {
            let y = MatMut::row_major(&mut y[g * og * plane..][..og * plane], plane);
            let epi = epilogue(bias.map(|b| &b[g * og..][..og]), activation);
            let (padded, sample_stride) = s.pad_samples(x, 1, g, buf);
            let b = Im2colPanels { s, padded, sample_stride };
            let r = match packed {
                Some(packed) => sgemm_prepacked(&packed[g], plane, &b, 0.0, y, &epi, par),
                None => {
                    let w = MatRef::row_major(&weight[g * og * patch..][..og * patch], patch);
                    sgemm_packed_b(og, plane, patch, 1.0, w, &b, 0.0, y, &epi, par)
                }
            };
            crate::gemm::expect_valid(r);
        }
    });
}

impl Conv2d {
    /// Height and width of an input plane with its zero padding.
    fn padded_dims(&self) -> (usize, usize) {
        (self.h + 2 * self.ph, self.w + 2 * self.pw)
    }

    /// Floats of one group's padded input, which [`Self::pad_samples`] writes
    /// into scratch: none without padding, where the input serves as it is.
    fn padded_group_len(&self) -> usize {
        if self.ph == 0 && self.pw == 0 {
            return 0;
        }
        let (hp, wp) = self.padded_dims();
        self.c / self.groups * hp * wp
    }

    /// Group `g` of the first `cnt` samples of `x`, each zero-padded on
    /// every side into `buf` (`cnt` times [`Self::padded_group_len`]
    /// floats), or `x`'s own planes when there is no padding; with the
    /// floats from one sample's planes to the next.
    fn pad_samples<'a>(
        &self,
        x: &'a [f32],
        cnt: usize,
        g: usize,
        buf: &'a mut [f32],
    ) -> (&'a [f32], usize) {
        let (cg, in_len, plane) = (self.c / self.groups, self.c * self.h * self.w, self.h * self.w);
        let len = self.padded_group_len();
        if len == 0 {
            return (&x[g * cg * plane..], in_len);
        }
        let (hp, wp) = self.padded_dims();
        let buf = &mut buf[..cnt * len];
        for (dst, x) in buf.chunks_exact_mut(len).zip(x.chunks_exact(in_len)) {
            let planes = &x[g * cg * plane..][..cg * plane];
            for (dst, src) in dst.chunks_exact_mut(hp * wp).zip(planes.chunks_exact(plane)) {
                dst[..self.ph * wp].fill(0.0);
                let rows = dst[self.ph * wp..].chunks_exact_mut(wp).zip(src.chunks_exact(self.w));
                for (row, src) in rows {
                    zero_edges(row, self.pw, self.w);
                    copy_run(&mut row[self.pw..self.pw + self.w], src);
                }
                dst[(self.ph + self.h) * wp..].fill(0.0);
            }
        }
        (buf, len)
    }
}

/// The im2col matrix of one sample's group (as [`im2col`] writes it) as a
/// source of the GEMM's packed B panels, read from the group's input with
/// its padding written out ([`Conv2d::pad_samples`]): every tap of every
/// output then lies inside it, so a panel row is a few plain runs.
///
/// Several samples side by side ([`im2col_gemm`]) are `sample_stride`
/// floats apart in `padded`; their columns follow each other.
struct Im2colPanels<'a> {
    s: &'a Conv2d,
    padded: &'a [f32],
    sample_stride: usize,
}

impl PackB for Im2colPanels<'_> {
    fn pack_b(&self, dst: &mut [f32], p0: usize, kc: usize, j0: usize, nc: usize, nr: usize) {
        /// Runs per panel: at most one per column.
        const MAX_RUNS: usize = 64;
        assert!(nr <= MAX_RUNS, "panels of {nr} columns");
        let s = self.s;
        let (ow, plane) = (s.out_w(), s.out_plane());
        let (hp, wp) = s.padded_dims();
        let panels = dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr));
        for (panel, chunk) in panels.enumerate() {
            let first = j0 + panel * nr;
            let cols = nr.min(j0 + nc - first);
            // The panel's columns as runs along output rows: (offset in the
            // panel row, offset of the run's first input in a padded plane,
            // length).
            let mut runs = [(0usize, 0usize, 0usize); MAX_RUNS];
            let (mut count, mut done) = (0, 0);
            while done < cols {
                let (sample, at) = ((first + done) / plane, (first + done) % plane);
                let (oy, ox) = (at / ow, at % ow);
                let len = (ow - ox).min(cols - done);
                let from = sample * self.sample_stride + oy * s.sh * wp + ox * s.sw;
                runs[count] = (done, from, len);
                (count, done) = (count + 1, done + len);
            }
            // The taps of rows p0.. in order, stepped rather than divided
            // out of the row index: three divisions a row cost more than
            // copying the row's runs of 8 (ResNet-20's 64-channel 8x8 convs).
            let (mut ci, mut i, mut j) = s.tap(p0);
            for out in chunk.chunks_exact_mut(nr).take(kc) {
                out[cols..].fill(0.0);
                let tap = &self.padded[ci * hp * wp + i * s.dh * wp + j * s.dw..];
                j += 1;
                if j == s.kw {
                    j = 0;
                    i += 1;
                    if i == s.kh {
                        i = 0;
                        ci += 1;
                    }
                }
                for &(at, from, len) in &runs[..count] {
                    let out = &mut out[at..at + len];
                    if s.sw == 1 {
                        copy_run(out, &tap[from..from + len]);
                    } else {
                        let src = tap[from..].iter().step_by(s.sw);
                        out.iter_mut().zip(src).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
    }
}

/// `dx = conv_transpose(dy, weight)`: the gradient of the input. With
/// `relu_mask` (the forward output of a ReLU that fed this conv), `dx` is
/// zeroed where the mask is `≤ 0`, fusing that ReLU's backward.
pub fn conv2d_backward_data(
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    conv2d_backward_data_using(s.backward_data_algo(), s, dy, weight, relu_mask, dx, par)
}

/// [`conv2d_backward_data`] by `algo` rather than the one the shape picks:
/// `Winograd`, or any other for the GEMM path (pointwise when the shape is).
pub fn conv2d_backward_data_using(
    algo: ConvAlgo,
    s: &Conv2d,
    dy: &[f32],
    weight: &[f32],
    relu_mask: Option<&[f32]>,
    dx: &mut [f32],
    par: Par,
) -> Result<(), LenError> {
    const OP: &str = "conv2d_backward_data";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if let Some(m) = relu_mask {
        check_len(OP, "relu_mask", m.len(), s.input_len())?;
    }
    if algo == ConvAlgo::Winograd && !winograd::applies_backward_data(s)
        || algo == ConvAlgo::WinogradSplit && !winograd_split::applies_backward_data(s)
        || algo == ConvAlgo::Direct && !s.fits_direct()
    {
        return Err(LenError { op: OP, tensor: "shape", expected: 0, found: 0 });
    }
    if s.n == 0 {
        return Ok(());
    }
    if algo == ConvAlgo::Winograd {
        return winograd::backward_data(s, winograd::Isa::best(), dy, weight, relu_mask, dx, par);
    }
    if algo == ConvAlgo::WinogradSplit {
        winograd_split::backward_data(s, dy, weight, relu_mask, dx, par);
        return Ok(());
    }
    let (in_len, out_len) = (s.c * s.h * s.w, s.o * s.out_plane());
    let apply_mask = |dx: &mut [f32], mask: Option<&[f32]>| {
        if let Some(mask) = mask {
            for (d, &m) in dx.iter_mut().zip(mask) {
                if m <= 0.0 {
                    *d = 0.0;
                }
            }
        }
    };
    let threads = par.threads();
    let chunk = match algo {
        ConvAlgo::Direct => 1,
        _ => im2col_gemm::chunk_samples(s, threads),
    };
    let one = |i: usize, dy: &[f32], dx: &mut [f32], par: Par| {
        match algo {
            ConvAlgo::Direct => direct::backward_data_direct(s, Isa::best(), dy, weight, dx),
            _ => backward_data_chunk(s, dy, weight, dx, par),
        }
        apply_mask(dx, relu_mask.map(|m| &m[i * chunk * in_len..][..dx.len()]));
    };
    if threads > 1 && s.n > chunk {
        let chunks = dx.par_chunks_mut(chunk * in_len).zip(dy.par_chunks(chunk * out_len));
        chunks.enumerate().for_each(|(i, (dx, dy))| one(i, dy, dx, Par::Seq));
    } else {
        let chunks = dx.chunks_mut(chunk * in_len).zip(dy.chunks(chunk * out_len));
        for (i, (dx, dy)) in chunks.enumerate() {
            one(i, dy, dx, par);
        }
    }
    Ok(())
}

/// The backward-data pass of a chunk of samples (one, if pointwise).
fn backward_data_chunk(s: &Conv2d, dy: &[f32], weight: &[f32], dx: &mut [f32], par: Par) {
    let plane = s.out_plane();
    if s.is_pointwise() {
        // dx [C, HW] = Wᵀ [C, O] · dy [O, HW]
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
        return;
    }
    im2col_gemm::backward_data(s, dy, weight, dx, par);
}

/// `dweight = Σ_samples dy · im2col(x)ᵀ`, and `dbias = Σ dy` over samples
/// and positions. Both are overwritten, not accumulated into.
pub fn conv2d_backward_weights(
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), LenError> {
    conv2d_backward_weights_using(s.backward_weights_algo(), s, x, dy, dweight, dbias, par)
}

/// [`conv2d_backward_weights`] by `algo` rather than the one the shape
/// picks: `Winograd`, or any other for the GEMM path.
pub fn conv2d_backward_weights_using(
    algo: ConvAlgo,
    s: &Conv2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), LenError> {
    const OP: &str = "conv2d_backward_weights";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    if algo == ConvAlgo::Winograd && !winograd::applies(s)
        || algo == ConvAlgo::Direct && !s.fits_direct()
    {
        return Err(LenError { op: OP, tensor: "shape", expected: 0, found: 0 });
    }
    let plane = s.out_plane();
    let out_len = s.o * plane;
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), s.o)?;
        db.fill(0.0);
        for dy in dy.chunks(out_len) {
            for (d, row) in db.iter_mut().zip(dy.chunks_exact(plane)) {
                *d += crate::reduce::sum(row);
            }
        }
    }
    if s.n == 0 {
        dweight.fill(0.0);
        return Ok(());
    }
    if algo == ConvAlgo::Winograd {
        winograd::weight_grad(s, winograd::Isa::best(), x, dy, dweight, par);
        return Ok(());
    }
    let samples = |range, dweight: &mut [f32], par| match algo {
        ConvAlgo::Direct => direct::weight_grad_direct(s, Isa::best(), x, dy, range, dweight),
        _ => weight_grad_samples(s, x, dy, range, dweight, par),
    };
    let tasks = par.threads().min(s.n);
    if tasks <= 1 {
        samples(0..s.n, dweight, par);
        return Ok(());
    }
    // Samples split among tasks: the first accumulates into `dweight`, the
    // others into partial sums, added in at the end.
    let wlen = s.weight_len();
    let range = |t: usize| t * s.n / tasks..(t + 1) * s.n / tasks;
    with_partials((tasks - 1) * wlen, |partials| {
        rayon::join(
            || samples(range(0), dweight, Par::Seq),
            || {
                partials.par_chunks_mut(wlen).enumerate().for_each(|(t, part)| {
                    samples(range(t + 1), part, Par::Seq);
                })
            },
        );
        for part in partials.chunks_exact(wlen) {
            for (d, &p) in dweight.iter_mut().zip(part) {
                *d += p;
            }
        }
    });
    Ok(())
}

/// Runs `f` on `len` floats of space for the partial sums of parallel
/// tasks, from a pool that persists across calls (no allocation once it has
/// grown). The contents are stale: tasks overwrite their share.
fn with_partials<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    // `try_lock`, not `lock`: while this thread waits in `rayon::join` it may
    // run another caller's convolution, which must not wait for a lock its
    // own thread holds. That rare caller allocates its partials instead.
    let mut fresh = Vec::new();
    let mut guard = match PARTIALS.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    let pool = guard.as_deref_mut().unwrap_or(&mut fresh);
    if pool.len() < len {
        pool.resize(len, 0.0);
    }
    f(&mut pool[..len])
}

/// `dweight = Σ_{n in samples} dy_n · im2col(x_n)ᵀ`, overwriting `dweight`.
fn weight_grad_samples(
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
    if !s.is_pointwise() {
        return im2col_gemm::weight_grad(s, x, dy, samples, dweight, par);
    }
    // A pointwise conv (one group) is its own im2col matrix.
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
