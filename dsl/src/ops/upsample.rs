//! `upsample(scale, mode)`: PyTorch's `nn.Upsample(scale_factor=scale,
//! mode=mode)` for an integer factor (or a pair of them), `nearest` (the
//! default) or `bilinear` with `align_corners = false`. `[C, H, W]` becomes
//! `[C, H·sh, W·sw]`.

use super::{expect_image, first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{named, pos, ArgSpec, Kind, Lit};
use crate::export::onnx::{string, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::{Shape, MAX_ELEMENTS};
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry};

const MODES: &[&str] = &["nearest", "bilinear"];

const ARGS: &[ArgSpec] = &[
    pos("scale", Kind::Pair, Lit::Required),
    named("mode", Kind::Word(MODES), Lit::Word("nearest")),
];

pub const DEF: OpDef = OpDef {
    name: "upsample",
    args: ARGS,
    arity: Arity::One,
    build: |a| {
        Op::new(Upsample {
            scale: a.pair("scale").unwrap_or([1, 1]),
            bilinear: a.word("mode") == Some("bilinear"),
        })
    },
};

#[derive(Debug)]
pub struct Upsample {
    /// The factors of the height and the width.
    pub scale: [usize; 2],
    /// Bilinear (`align_corners = false`) rather than nearest.
    pub bilinear: bool,
}

impl Upsample {
    fn geometry(&self, x: &Shape) -> Arg {
        let d = x.dims();
        let [sh, sw] = self.scale;
        Arg::Shape(Geometry::Upsample { c: d[0], h: d[1], w: d[2], sh, sw })
    }

    fn mode(&self) -> &'static str {
        if self.bilinear {
            "bilinear"
        } else {
            "nearest"
        }
    }
}

/// The two inputs that bilinear output `o` blends on an axis of `len`
/// upsampled by `factor`, and their weights: the sample point
/// `(o + ½)/factor − ½`, clamped below at 0, lies between input `⌊·⌋` and
/// the next (the last input standing in past the edge).
fn linear_taps(o: usize, factor: usize, len: usize) -> [(usize, f64); 2] {
    let at = ((o as f64 + 0.5) / factor as f64 - 0.5).max(0.0);
    let i0 = (at.floor() as usize).min(len - 1);
    let frac = (at - i0 as f64).clamp(0.0, 1.0);
    [(i0, 1.0 - frac), ((i0 + 1).min(len - 1), frac)]
}

impl OpKind for Upsample {
    fn name(&self) -> &'static str {
        "upsample"
    }

    fn stem(&self) -> &'static str {
        "up"
    }

    fn detail(&self) -> String {
        format!("x{} {}", super::conv::pair(self.scale), self.mode())
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let (c, h, w) = expect_image("upsample", &x)?;
        let [sh, sw] = self.scale;
        // Saturated extents fail the element count below.
        let (oh, ow) = (h.saturating_mul(sh), w.saturating_mul(sw));
        let elements = c.checked_mul(oh).and_then(|v| v.checked_mul(ow));
        if elements.is_none_or(|e| e > MAX_ELEMENTS) {
            return Err(OpError::new(
                format!("`upsample` by {} makes {x} too large", super::conv::pair(self.scale)),
                format!("more than {MAX_ELEMENTS} elements per sample"),
            )
            .at("scale"));
        }
        Ok(Shape(vec![c, oh, ow]))
    }

    /// Nearest copies; bilinear blends four inputs with 6 multiplies and 3
    /// adds per output.
    fn flops(&self, _: &[&Shape], out: &Shape) -> u64 {
        if self.bilinear {
            (out.elements() as u64).saturating_mul(9)
        } else {
            0
        }
    }

    /// `Resize` with PyTorch's own export settings for each mode.
    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let [sh, sw] = self.scale;
        let scales = cx.floats_const(&[4], vec![1.0, 1.0, sh as f64, sw as f64]);
        let attrs = if self.bilinear {
            vec![string("mode", "linear"), string("coordinate_transformation_mode", "half_pixel")]
        } else {
            vec![
                string("mode", "nearest"),
                string("coordinate_transformation_mode", "asymmetric"),
                string("nearest_mode", "floor"),
            ]
        };
        let x = cx.x(0);
        cx.output("Resize", vec![x, String::new(), scales], attrs);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let shape = self.geometry(cx.x_shape(0));
        let kernel =
            if self.bilinear { "upsample_bilinear_forward" } else { "upsample_nearest_forward" };
        cx.both(kernel, vec![shape, cx.x(0), cx.y()]);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (shape, dy) = (self.geometry(cx.x_shape(0)), cx.dy());
        let kernel =
            if self.bilinear { "upsample_bilinear_backward" } else { "upsample_nearest_backward" };
        cx.grad_into(0, kernel, |dx| vec![shape, dy, dx]);
    }

    /// Nearest reads input `⌊o / factor⌋` on each axis (the runtime's f32
    /// rule, PyTorch's, gives the same for factors up to 40).
    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let (x, xs) = (cx.xs[0], cx.x_shapes[0]);
        let (c, h, w) = (xs[0], xs[1], xs[2]);
        let (oh, ow) = (cx.y_shape[1], cx.y_shape[2]);
        let [sh, sw] = self.scale;
        for plane in 0..cx.n * c {
            let at = |r: usize, col: usize| x[(plane * h + r) * w + col];
            for oy in 0..oh {
                for ox in 0..ow {
                    y[(plane * oh + oy) * ow + ox] = if self.bilinear {
                        let (rows, cols) = (linear_taps(oy, sh, h), linear_taps(ox, sw, w));
                        rows.iter()
                            .flat_map(|&(r, wr)| {
                                cols.iter().map(move |&(col, wc)| (r, col, wr * wc))
                            })
                            .map(|(r, col, weight)| weight * at(r, col))
                            .sum()
                    } else {
                        at(oy / sh, ox / sw)
                    };
                }
            }
        }
        Ok(())
    }
}
