//! The static shape of one convolution, [`Conv2d`]: its sizes, the lengths
//! of its tensors, and the checks every pass makes on its arguments.

use crate::error::{check_len, ConvError};
use std::fmt;

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
    pub(super) fn patch(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }

    pub(super) fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> u64 {
        (self.n * self.o * self.out_plane()) as u64 * self.patch() as u64
    }

    /// Whether the shape is valid: positive sizes, groups dividing both
    /// channel counts, and the dilated window fitting in the padded input.
    pub fn is_valid(&self) -> bool {
        self.invalid_reason().is_none()
    }

    /// Why the shape is not valid ([`Self::is_valid`]), or `None`.
    pub fn invalid_reason(&self) -> Option<&'static str> {
        let sizes = [self.c, self.h, self.w, self.o, self.kh, self.kw];
        let steps = [self.sh, self.sw, self.dh, self.dw, self.groups];
        if sizes.contains(&0) {
            Some("channels, planes and window must not be empty")
        } else if steps.contains(&0) {
            Some("strides, dilations and groups must be positive")
        } else if !self.c.is_multiple_of(self.groups) || !self.o.is_multiple_of(self.groups) {
            Some("groups must divide both channel counts")
        } else if self.h + 2 * self.ph <= self.dh * (self.kh - 1)
            || self.w + 2 * self.pw <= self.dw * (self.kw - 1)
        {
            Some("the dilated window is larger than the padded input")
        } else {
            None
        }
    }

    /// Checks the shape and the lengths of the input, weight and output (or
    /// of their gradients) of pass `op`.
    pub(super) fn check(
        &self,
        op: &'static str,
        x: usize,
        w: usize,
        y: usize,
    ) -> Result<(), ConvError> {
        if !self.is_valid() {
            return Err(ConvError::InvalidShape { op, shape: Box::new(*self) });
        }
        check_len(op, "input", x, self.input_len())?;
        check_len(op, "weight", w, self.weight_len())?;
        Ok(check_len(op, "output", y, self.output_len())?)
    }

    /// [`Self::check`] for a forward pass, with its optional bias.
    pub(super) fn check_forward(
        &self,
        op: &'static str,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        y: &[f32],
    ) -> Result<(), ConvError> {
        self.check(op, x.len(), weight.len(), y.len())?;
        match bias {
            Some(b) => Ok(check_len(op, "bias", b.len(), self.o)?),
            None => Ok(()),
        }
    }

    /// Row `r` of the im2col matrix as (input channel within the group,
    /// kernel row, kernel column).
    pub(super) fn tap(&self, r: usize) -> (usize, usize, usize) {
        (r / (self.kh * self.kw), r / self.kw % self.kh, r % self.kw)
    }

    /// The row of `plane` that output row `oy` reads through kernel row `i`,
    /// or `None` where that falls in the padding.
    pub(super) fn input_row<'a>(&self, plane: &'a [f32], oy: usize, i: usize) -> Option<&'a [f32]> {
        let ih = (oy * self.sh + i * self.dh).checked_sub(self.ph)?;
        (ih < self.h).then(|| &plane[ih * self.w..][..self.w])
    }
}

/// As errors print it: `n 8, 3x32x32 -> 16, 3x3 window, stride 1x1, ...`.
impl fmt::Display for Conv2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n {}, {}x{}x{} -> {}, {}x{} window, stride {}x{}, padding {}x{}, dilation {}x{}, \
             groups {}",
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
            self.dh,
            self.dw,
            self.groups
        )
    }
}
