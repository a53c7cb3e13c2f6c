//! `permute([a0, a1, ...])`: the axes of each sample reordered, output axis
//! `i` being input axis `a_i`, as `x.permute(0, 1 + a0, 1 + a1, ...)` in
//! PyTorch (then made contiguous). The batch is not written and stays
//! first. The values are copied; the backward is the same copy with the
//! inverse permutation.

use super::{first, Arity, Op, OpDef, OpError, OpKind};
use crate::check::args::{pos, ArgSpec, Kind, Lit};
use crate::export::onnx::{ints, OnnxCx};
use crate::interp::{EvalCx, InterpError};
use crate::ir::Shape;
use crate::program::autodiff::VjpCx;
use crate::program::lower::LowerCx;
use crate::program::{Arg, Geometry, MAX_PERMUTE_RANK};

const ARGS: &[ArgSpec] = &[pos("dims", Kind::Ints, Lit::Required)];

pub const DEF: OpDef = OpDef {
    name: "permute",
    args: ARGS,
    arity: Arity::One,
    build: |a| Op::new(Permute { dims: a.ints("dims").unwrap_or_default() }),
};

#[derive(Debug)]
pub struct Permute {
    /// As written.
    pub dims: Vec<i64>,
}

impl Permute {
    fn written(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }

    /// The permutation, checked against an input of `rank` dims.
    fn order(&self, x: &Shape) -> Result<Vec<usize>, OpError> {
        let rank = x.rank();
        let error = |message: String| OpError::new(message, format!("input is {x}")).at("dims");
        if self.dims.len() != rank {
            return Err(error(format!(
                "`dims` of `permute` has {} axes, the input has {rank}",
                self.dims.len()
            ))
            .help("name every axis of the sample once; the batch is not written"));
        }
        if rank > MAX_PERMUTE_RANK {
            return Err(error(format!(
                "`permute` takes at most {MAX_PERMUTE_RANK} axes, the input has {rank}"
            )));
        }
        let mut seen = vec![false; rank];
        for &d in &self.dims {
            let axis = usize::try_from(d).ok().filter(|&a| a < rank);
            match axis {
                Some(a) if !seen[a] => seen[a] = true,
                _ => {
                    return Err(error(format!(
                        "`dims` {} of `permute` is not a permutation of the axes 0..{rank}",
                        self.written()
                    ))
                    .help(format!("each of 0..{rank} appears once")))
                }
            }
        }
        Ok(self.dims.iter().map(|&d| d as usize).collect())
    }

    /// The kernel's shape over input `x`, and that of its inverse over
    /// the output.
    fn geometries(&self, x: &Shape) -> (Arg, Arg) {
        let order = self.order(x).unwrap_or_default();
        let rank = order.len();
        let (mut dims, mut perm) = ([1; MAX_PERMUTE_RANK], [0; MAX_PERMUTE_RANK]);
        let (mut out_dims, mut inverse) = ([1; MAX_PERMUTE_RANK], [0; MAX_PERMUTE_RANK]);
        for (i, &a) in order.iter().enumerate() {
            dims[i] = x.dims()[i];
            perm[i] = a;
            out_dims[i] = x.dims()[a];
            inverse[a] = i;
        }
        (
            Arg::Shape(Geometry::Permute { rank, dims, perm }),
            Arg::Shape(Geometry::Permute { rank, dims: out_dims, perm: inverse }),
        )
    }
}

impl OpKind for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn detail(&self) -> String {
        self.written()
    }

    fn infer(&self, inputs: &[&Shape]) -> Result<Shape, OpError> {
        let x = first(inputs);
        let order = self.order(&x)?;
        Ok(Shape(order.iter().map(|&a| x.dims()[a]).collect()))
    }

    fn flops(&self, _: &[&Shape], _: &Shape) -> u64 {
        0
    }

    fn onnx(&self, cx: &mut OnnxCx<'_>) -> Result<(), OpError> {
        let order = self.order(cx.x_shape(0))?;
        let perm: Vec<usize> = std::iter::once(0).chain(order.iter().map(|a| a + 1)).collect();
        let x = cx.x(0);
        cx.output("Transpose", vec![x], vec![ints("perm", &perm)]);
        Ok(())
    }

    fn lower(&self, cx: &mut LowerCx<'_>) {
        let (shape, _) = self.geometries(cx.x_shape(0));
        let args = vec![shape, cx.x(0), cx.y()];
        cx.both("permute", args);
    }

    fn vjp(&self, cx: &mut VjpCx<'_>) {
        let (_, inverse) = self.geometries(cx.x_shape(0));
        let dy = cx.dy();
        cx.grad_into(0, "permute", |dx| vec![inverse, dy, dx]);
    }

    fn eval(&self, cx: &EvalCx<'_>, y: &mut [f64]) -> Result<(), InterpError> {
        let dims = cx.x_shapes[0];
        let order = self.order(&Shape(dims.to_vec())).map_err(|e| InterpError(e.message))?;
        let out_dims: Vec<usize> = order.iter().map(|&a| dims[a]).collect();
        let sample: usize = dims.iter().product();
        for s in 0..cx.n {
            for o in 0..sample {
                // Unravel the output index; input axis `order[k]` takes
                // output coordinate `k`.
                let (mut rest, mut index) = (o, vec![0; dims.len()]);
                for k in (0..out_dims.len()).rev() {
                    index[order[k]] = rest % out_dims[k];
                    rest /= out_dims[k];
                }
                let i = index.iter().zip(dims).fold(0, |acc, (&j, &d)| acc * d + j);
                y[s * sample + o] = cx.xs[0][s * sample + i];
            }
        }
        Ok(())
    }
}
