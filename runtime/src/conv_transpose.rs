//! The transposed 2-D convolution over NCHW f32 tensors, PyTorch's
//! `nn.ConvTranspose2d`: weight `[C, O/groups, kh, kw]`, output
//! `(h − 1)·s − 2·p + d·(k − 1) + output_pad + 1`.
//!
//! It is a convolution's passes with their roles swapped, so it runs on the
//! convolution's kernels ([`crate::conv`]) and whatever algorithm they pick:
//! its forward pass is the backward-data pass of the conv [`ConvTranspose2d::conv`]
//! from `O` channels of the output's size to `C` of the input's, whose
//! weight has exactly this layout; its backward-data pass is that conv's
//! forward pass; its weight gradient is that conv's weight gradient with
//! the output's gradient as the conv's input and the input as the conv's
//! output gradient. The bias and the activation are applied to each
//! sample's planes after its forward pass, and the bias gradient is summed
//! here, per output channel.
//!
//! Where `output_pad` is not below the stride (allowed when the dilation is
//! larger), the conv's output has rows or columns beyond the input: the
//! input is then laid out zero-extended to that size in scratch, and the
//! backward-data output cropped from it.

use crate::act::{activate, per_activation};
use crate::conv::{conv2d_backward_data, conv2d_backward_weights, conv2d_forward, Conv2d};
use crate::error::{check_len, ConvError};
use crate::gemm::{Activation, Par};
use rayon::prelude::*;
use std::cell::RefCell;
use std::fmt;

/// The static shape of one transposed convolution: `c` input channels of
/// `h × w` to `o` output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2d {
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
    /// Rows and columns added to one side of the output.
    pub oph: usize,
    pub opw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
}

thread_local! {
    /// The zero-extended input or backward-data output of shapes whose
    /// conv reaches beyond the input, reused across calls.
    static EXTENDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl ConvTranspose2d {
    /// The output's extent along one axis, or `None` if it is not positive.
    fn extent(input: usize, k: usize, s: usize, p: usize, d: usize, op: usize) -> Option<usize> {
        let full = (input.checked_sub(1)?)
            .checked_mul(s)?
            .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
            .checked_add(op + 1)?;
        full.checked_sub(2 * p).filter(|&e| e > 0)
    }

    pub fn out_h(&self) -> usize {
        Self::extent(self.h, self.kh, self.sh, self.ph, self.dh, self.oph).unwrap_or(0)
    }

    pub fn out_w(&self) -> usize {
        Self::extent(self.w, self.kw, self.sw, self.pw, self.dw, self.opw).unwrap_or(0)
    }

    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn output_len(&self) -> usize {
        self.n * self.o * self.out_h() * self.out_w()
    }

    pub fn weight_len(&self) -> usize {
        self.c * (self.o / self.groups) * self.kh * self.kw
    }

    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> u64 {
        self.input_len() as u64 * (self.o / self.groups * self.kh * self.kw) as u64
    }

    /// The convolution whose passes these are: from the output's `o`
    /// channels to the input's `c`, through the same weights.
    pub fn conv(&self) -> Conv2d {
        Conv2d {
            n: self.n,
            c: self.o,
            h: self.out_h(),
            w: self.out_w(),
            o: self.c,
            kh: self.kh,
            kw: self.kw,
            sh: self.sh,
            sw: self.sw,
            ph: self.ph,
            pw: self.pw,
            dh: self.dh,
            dw: self.dw,
            groups: self.groups,
        }
    }

    /// Why the shape is not valid, or `None`: positive sizes, groups
    /// dividing both channel counts, output padding below the stride or the
    /// dilation, and a positive output.
    pub fn invalid_reason(&self) -> Option<&'static str> {
        let sizes = [self.c, self.h, self.w, self.o, self.kh, self.kw];
        let steps = [self.sh, self.sw, self.dh, self.dw, self.groups];
        if sizes.contains(&0) {
            Some("channels, planes and window must not be empty")
        } else if steps.contains(&0) {
            Some("strides, dilations and groups must be positive")
        } else if !self.c.is_multiple_of(self.groups) || !self.o.is_multiple_of(self.groups) {
            Some("groups must divide both channel counts")
        } else if self.oph >= self.sh.max(self.dh) || self.opw >= self.sw.max(self.dw) {
            Some("the output padding must be smaller than the stride or the dilation")
        } else if self.out_h() == 0 || self.out_w() == 0 {
            Some("the padding leaves no output")
        } else {
            None
        }
    }

    pub fn is_valid(&self) -> bool {
        self.invalid_reason().is_none()
    }

    /// The conv's output plane, which is the input plane extended where
    /// the output padding reaches past the stride.
    fn conv_plane(&self) -> (usize, usize) {
        let conv = self.conv();
        (conv.out_h(), conv.out_w())
    }

    fn extended(&self) -> bool {
        self.conv_plane() != (self.h, self.w)
    }

    /// Checks the shape and the lengths of the input, weight and output (or
    /// of their gradients) of pass `op`.
    fn check(&self, op: &'static str, x: usize, w: usize, y: usize) -> Result<(), ConvError> {
        if !self.is_valid() {
            return Err(ConvError::InvalidTranspose { op, shape: Box::new(*self) });
        }
        check_len(op, "input", x, self.input_len())?;
        check_len(op, "weight", w, self.weight_len())?;
        Ok(check_len(op, "output", y, self.output_len())?)
    }

    /// Runs `f` on the input zero-extended to the conv's output plane, in
    /// scratch (`x` itself when the two are the same size).
    fn with_extended<R>(&self, x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
        if !self.extended() {
            return f(x);
        }
        let (eh, ew) = self.conv_plane();
        crate::scratch::with(&EXTENDED, self.n * self.c * eh * ew, |ext| {
            ext.fill(0.0);
            for (src, dst) in x.chunks_exact(self.h * self.w).zip(ext.chunks_exact_mut(eh * ew)) {
                for (src, dst) in src.chunks_exact(self.w).zip(dst.chunks_exact_mut(ew)) {
                    dst[..self.w].copy_from_slice(src);
                }
            }
            f(ext)
        })
    }
}

/// As errors print it: `n 8, 16x7x7 -> 8, 3x3 window, stride 2x2, ...`.
impl fmt::Display for ConvTranspose2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n {}, {}x{}x{} -> {}, {}x{} window, stride {}x{}, padding {}x{}, output padding \
             {}x{}, dilation {}x{}, groups {}",
            self.n,
            self.c,
            self.h,
            self.w,
            self.o,
            self.kh,
            self.kw,
            self.sh,
            self.sw,
            self.ph,
            self.pw,
            self.oph,
            self.opw,
            self.dh,
            self.dw,
            self.groups
        )
    }
}

/// `y = act(conv_transpose(x, weight) + bias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward(
    s: &ConvTranspose2d,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv_transpose2d_forward";
    s.check(OP, x.len(), weight.len(), y.len())?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), s.o)?;
    }
    if s.n == 0 {
        return Ok(());
    }
    let conv = s.conv();
    s.with_extended(x, |x| conv2d_backward_data(&conv, x, weight, None, y, par))?;
    if bias.is_some() || activation != Activation::Identity {
        bias_and_activation(s, bias, activation, y, par);
    }
    Ok(())
}

/// `y = act(y + bias)` plane by plane, each output channel its bias.
fn bias_and_activation(
    s: &ConvTranspose2d,
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Par,
) {
    let plane = s.out_h() * s.out_w();
    per_activation!(activation, activate, |f| {
        let one = |(p, y): (usize, &mut [f32])| {
            let b = bias.map_or(0.0, |b| b[p % s.o]);
            for v in y {
                *v = f(*v + b);
            }
        };
        if par.threads() > 1 {
            y.par_chunks_mut(plane).enumerate().for_each(one);
        } else {
            y.chunks_mut(plane).enumerate().for_each(one);
        }
    });
}

/// `dx`, the gradient of the input, from `dy`: the conv's forward pass.
pub fn conv_transpose2d_backward_data(
    s: &ConvTranspose2d,
    dy: &[f32],
    weight: &[f32],
    dx: &mut [f32],
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv_transpose2d_backward_data";
    s.check(OP, dx.len(), weight.len(), dy.len())?;
    if s.n == 0 {
        return Ok(());
    }
    let conv = s.conv();
    if !s.extended() {
        return conv2d_forward(&conv, dy, weight, None, Activation::Identity, dx, par);
    }
    let (eh, ew) = s.conv_plane();
    crate::scratch::with(&EXTENDED, conv.output_len(), |ext| {
        conv2d_forward(&conv, dy, weight, None, Activation::Identity, ext, par)?;
        for (src, dst) in ext.chunks_exact(eh * ew).zip(dx.chunks_exact_mut(s.h * s.w)) {
            for (src, dst) in src.chunks_exact(ew).zip(dst.chunks_exact_mut(s.w)) {
                dst.copy_from_slice(&src[..s.w]);
            }
        }
        Ok(())
    })
}

/// `dweight` and `dbias` (overwritten) from the input and `dy`: the conv's
/// weight gradient with `dy` as its input and `x` as its output's
/// gradient, and `dbias` summed over samples and positions.
pub fn conv_transpose2d_backward_weights(
    s: &ConvTranspose2d,
    x: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    par: Par,
) -> Result<(), ConvError> {
    const OP: &str = "conv_transpose2d_backward_weights";
    s.check(OP, x.len(), dweight.len(), dy.len())?;
    let plane = s.out_h() * s.out_w();
    if let Some(db) = dbias {
        check_len(OP, "dbias", db.len(), s.o)?;
        db.fill(0.0);
        for dy in dy.chunks(s.o * plane) {
            for (d, row) in db.iter_mut().zip(dy.chunks_exact(plane)) {
                *d += crate::reduce::sum(row);
            }
        }
    }
    let conv = s.conv();
    s.with_extended(x, |x| conv2d_backward_weights(&conv, dy, x, dweight, None, par))
}
