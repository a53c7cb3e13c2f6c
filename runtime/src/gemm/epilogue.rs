//! What happens to each element of C as it is stored after the last kc
//! block: bias, activation, and the ReLU backward mask. Fusing these into the
//! store saves a pass over C while the tile is still in L1.

use super::MatRef;

/// An activation applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// `x` if `x > 0`, else `slope · x`.
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
}

impl Activation {
    /// The unfused kernels' scalar functions ([`crate::act::activate`]), so
    /// that ReLU passes NaN through in both; except sigmoid, kept in its
    /// short form here: the overflow-safe branch of the unfused one made
    /// every fused epilogue 3–8% slower (it stops the activation `match`
    /// from being hoisted out of the tile loop), and the two differ only
    /// below x ≈ −87, where sigmoid is under 1e-38.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => crate::act::relu_scalar(x),
            Activation::LeakyRelu(slope) => crate::act::leaky_relu_scalar(slope, x),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// A bias added to every element of a row or of a column of C.
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// `bias[i]` is added to row `i` (conv output channels in NCHW).
    PerRow(&'a [f32]),
    /// `bias[j]` is added to column `j` (dense layers with samples as rows).
    PerCol(&'a [f32]),
}

/// `C = act(alpha·A·B + beta·C + bias)`, then zeroed where `relu_mask ≤ 0`.
///
/// The mask is the output of a forward ReLU (same shape as C): the backward
/// pass of `y = relu(z)` passes gradients only where `y > 0`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub activation: Activation,
    pub relu_mask: Option<MatRef<'a>>,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue { bias: Bias::None, activation: Activation::Identity, relu_mask: None }
    }
}

impl<'a> Epilogue<'a> {
    /// Plain `C = alpha·A·B + beta·C`.
    pub const NONE: Epilogue<'static> =
        Epilogue { bias: Bias::None, activation: Activation::Identity, relu_mask: None };

    /// The same epilogue for the transposed product `Cᵀ`.
    pub fn t(&self) -> Epilogue<'a> {
        Epilogue {
            bias: match self.bias {
                Bias::None => Bias::None,
                Bias::PerRow(b) => Bias::PerCol(b),
                Bias::PerCol(b) => Bias::PerRow(b),
            },
            activation: self.activation,
            relu_mask: self.relu_mask.map(MatRef::t),
        }
    }

    /// The epilogue of the block of C that starts at `(i0, j0)`.
    pub fn offset(&self, i0: usize, j0: usize) -> Epilogue<'a> {
        Epilogue {
            bias: match self.bias {
                Bias::None => Bias::None,
                Bias::PerRow(b) => Bias::PerRow(&b[i0.min(b.len())..]),
                Bias::PerCol(b) => Bias::PerCol(&b[j0.min(b.len())..]),
            },
            activation: self.activation,
            relu_mask: self.relu_mask.map(|m| {
                let start = (i0 * m.rs + j0 * m.cs).min(m.data.len());
                MatRef { data: &m.data[start..], ..m }
            }),
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None)
            && self.activation == Activation::Identity
            && self.relu_mask.is_none()
    }

    /// Applies the epilogue to `row`, the elements `(i, j0..j0 + row.len())`
    /// of C, in one pass per stage with the stage's `match` outside the loop,
    /// so each loop vectorises. Element for element the same as [`apply`].
    ///
    /// [`apply`]: Epilogue::apply
    #[inline]
    pub fn apply_row(&self, row: &mut [f32], i: usize, j0: usize) {
        let len = row.len();
        match self.bias {
            Bias::None => {}
            Bias::PerRow(b) => {
                let bi = b[i];
                row.iter_mut().for_each(|v| *v += bi);
            }
            Bias::PerCol(b) => row.iter_mut().zip(&b[j0..j0 + len]).for_each(|(v, &bj)| *v += bj),
        }
        match self.activation {
            Activation::Identity => {}
            Activation::Relu => row.iter_mut().for_each(|v| *v = crate::act::relu_scalar(*v)),
            Activation::LeakyRelu(slope) => {
                row.iter_mut().for_each(|v| *v = crate::act::leaky_relu_scalar(slope, *v))
            }
            act => row.iter_mut().for_each(|v| *v = act.apply(*v)),
        }
        if let Some(mask) = &self.relu_mask {
            if mask.cs == 1 {
                let start = i * mask.rs + j0;
                let mask = &mask.data[start..start + len];
                row.iter_mut().zip(mask).for_each(|(v, &m)| *v = if m <= 0.0 { 0.0 } else { *v });
            } else {
                for (j, v) in row.iter_mut().enumerate() {
                    if mask.at(i, j0 + j) <= 0.0 {
                        *v = 0.0;
                    }
                }
            }
        }
    }

    /// The final value of element `(i, j)` of C, given `v = alpha·A·B + beta·C`.
    #[inline(always)]
    pub fn apply(&self, v: f32, i: usize, j: usize) -> f32 {
        let v = match self.bias {
            Bias::None => v,
            Bias::PerRow(b) => v + b[i],
            Bias::PerCol(b) => v + b[j],
        };
        let v = self.activation.apply(v);
        match &self.relu_mask {
            Some(mask) if mask.at(i, j) <= 0.0 => 0.0,
            _ => v,
        }
    }
}
