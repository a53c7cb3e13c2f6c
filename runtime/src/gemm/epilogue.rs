//! What happens to each element of C as it is stored after the last kc
//! block: bias, activation, the ReLU backward mask, and a momentum-SGD step
//! on the weights whose gradient C is. Fusing these into the store saves a
//! pass over C while the tile is still in L1.

use std::marker::PhantomData;

use super::MatRef;
use crate::act::Gated;

/// An activation applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// `x` if `x > 0`, else `slope · x`.
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    /// `x` clamped to `[min, max]`: PyTorch's `hardtanh(min_val, max_val)`,
    /// and `relu6` as `HardTanh(0.0, 6.0)` (PyTorch's `relu6` is that call).
    HardTanh(f32, f32),
    /// `min(max(x + 3, 0), 6) / 6`.
    HardSigmoid,
    /// `x` if `x > 0`, else `alpha·(eˣ − 1)`.
    Elu(f32),
    /// `x·g(x)`: GELU, SiLU, hardswish. Their derivative needs the input, so they are
    /// fused only into inference passes ([`Activation::needs_input`]).
    Gated(Gated),
}

impl Activation {
    /// Whether `act'` must be computed from the activation's input: the
    /// output-based backward kernels cannot serve such an activation, and
    /// refuse it with [`crate::Error::NeedsInput`].
    pub fn needs_input(self) -> bool {
        matches!(self, Activation::Gated(_))
    }

    /// The unfused kernels' scalar functions ([`crate::act::activate`]), so
    /// that ReLU passes NaN through in both; except sigmoid, kept in its
    /// short form here: the overflow-safe branch of the unfused one stops
    /// the activation `match` from being hoisted out of the tile loop,
    /// and the two differ only below x ≈ −87, where sigmoid is under 1e-38.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => crate::act::relu_scalar(x),
            Activation::LeakyRelu(slope) => crate::act::leaky_relu_scalar(slope, x),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::HardTanh(min, max) => crate::act::hardtanh_scalar(min, max, x),
            Activation::HardSigmoid => crate::act::hardsigmoid_scalar(x),
            Activation::Elu(alpha) => crate::act::elu_scalar(alpha, x),
            Activation::Gated(g) => g.forward(x),
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

/// A step of SGD with heavy-ball momentum fused into the store of a weight
/// gradient. C is the momentum buffer `b`, computed as `g + momentum·b` by
/// the GEMM itself (`alpha = 1`, `beta = momentum`); then, per element,
///
/// ```text
/// b = b + weight_decay · w
/// w = w − lr · b
/// ```
///
/// which is [`crate::optim::Sgd`]'s update without Nesterov, with the terms
/// of `b` added in another order. The gradient itself is never stored.
///
/// `w` has C's shape, with its own strides; it is borrowed mutably for
/// `'a`. Only this crate can make one (`SgdUpdate::new` is crate-private),
/// and it hands each to a single GEMM call, which writes each weight once,
/// on the thread that owns that element of C: an `SgdUpdate` copied into two
/// concurrent GEMMs would race on the weights, so none is ever given out.
#[derive(Clone, Copy, Debug)]
pub struct SgdUpdate<'a> {
    weights: *mut f32,
    len: usize,
    rs: usize,
    cs: usize,
    lr: f32,
    weight_decay: f32,
    _weights: PhantomData<&'a mut [f32]>,
}

// SAFETY: the GEMM shares an epilogue between threads that store disjoint
// blocks of C, and an `SgdUpdate` writes only the weights of the elements
// its thread stores; no two GEMMs get the same one (see the type's docs).
unsafe impl Send for SgdUpdate<'_> {}
// SAFETY: as above.
unsafe impl Sync for SgdUpdate<'_> {}

impl<'a> SgdUpdate<'a> {
    /// The update of `weights`, a matrix laid out with row stride `rs` and
    /// column stride `cs` (checked against C's shape by the GEMM). The
    /// caller passes it to one GEMM call only.
    pub(crate) fn new(
        weights: &'a mut [f32],
        rs: usize,
        cs: usize,
        lr: f32,
        weight_decay: f32,
    ) -> Self {
        SgdUpdate {
            weights: weights.as_mut_ptr(),
            len: weights.len(),
            rs,
            cs,
            lr,
            weight_decay,
            _weights: PhantomData,
        }
    }

    pub(super) fn view(&self) -> (usize, usize, usize) {
        (self.len, self.rs, self.cs)
    }

    fn t(self) -> Self {
        SgdUpdate { rs: self.cs, cs: self.rs, ..self }
    }

    fn offset(self, i0: usize, j0: usize) -> Self {
        let start = (i0 * self.rs + j0 * self.cs).min(self.len);
        SgdUpdate { weights: self.weights.wrapping_add(start), len: self.len - start, ..self }
    }

    /// Steps the weight of element `(i, j)` of C, whose momentum is `b`.
    ///
    /// # Safety
    /// `(i, j)` lies inside the view the GEMM checked, and no other thread
    /// touches this element during the call.
    #[inline(always)]
    unsafe fn step(&self, b: &mut f32, i: usize, j: usize) {
        // SAFETY: forwarded from the caller.
        let w = unsafe { &mut *self.weights.add(i * self.rs + j * self.cs) };
        sgd_step(b, w, self.lr, self.weight_decay);
    }

    /// [`Self::step`] over the elements `(i, j0..j0 + row.len())`.
    ///
    /// # Safety
    /// As [`Self::step`], for every element of the row.
    #[inline]
    unsafe fn step_row(&self, row: &mut [f32], i: usize, j0: usize) {
        if self.cs == 1 {
            // SAFETY: the row lies inside the checked view and is this
            // thread's alone.
            let w = unsafe {
                std::slice::from_raw_parts_mut(self.weights.add(i * self.rs + j0), row.len())
            };
            let (lr, wd) = (self.lr, self.weight_decay);
            for (b, w) in row.iter_mut().zip(w) {
                sgd_step(b, w, lr, wd);
            }
        } else {
            for (j, b) in row.iter_mut().enumerate() {
                // SAFETY: forwarded from the caller.
                unsafe { self.step(b, i, j0 + j) };
            }
        }
    }
}

impl SgdUpdate<'_> {
    /// `b = beta·b + g`, then [`Self::step`], over the elements
    /// `(i, j0..j0 + g.len())`: `b` is their row of C (the momentum), `g`
    /// the GEMM's sums for it. The same arithmetic as scaling C by beta,
    /// adding the tile into it and stepping the weights, in one pass
    /// instead of three.
    ///
    /// # Safety
    /// As [`Self::step`] for every element of the row; the weights' rows
    /// are contiguous (`cs == 1`).
    #[inline(always)]
    unsafe fn momentum_row(&self, g: &[f32], b: &mut [f32], beta: f32, i: usize, j0: usize) {
        assert!(self.cs == 1 && g.len() == b.len());
        // SAFETY: the row lies inside the checked view and is this thread's
        // alone.
        let w =
            unsafe { std::slice::from_raw_parts_mut(self.weights.add(i * self.rs + j0), b.len()) };
        let (lr, wd) = (self.lr, self.weight_decay);
        for ((b, w), &g) in b.iter_mut().zip(w).zip(g) {
            *b = beta * *b + g;
            sgd_step(b, w, lr, wd);
        }
    }

    /// [`Self::momentum_row`] in AVX-512, 16 elements at a time and the
    /// rest under a mask: compiled from the loop above, a tile's rows of 48
    /// went two vectors at a time and left 16 to a 4-wide loop. The same
    /// operations in the same order, so the same results.
    ///
    /// # Safety
    /// As [`Self::momentum_row`], on a CPU with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn momentum_row_avx512(&self, g: &[f32], b: &mut [f32], beta: f32, i: usize, j0: usize) {
        use std::arch::x86_64::*;
        assert!(self.cs == 1 && g.len() == b.len());
        let len = b.len();
        // SAFETY: the row lies inside the checked view and is this thread's
        // alone.
        let w = unsafe { self.weights.add(i * self.rs + j0) };
        let (beta, g, b) = (_mm512_set1_ps(beta), g.as_ptr(), b.as_mut_ptr());
        let (neg_lr, wd) = (_mm512_set1_ps(-self.lr), _mm512_set1_ps(self.weight_decay));
        let min = _mm512_set1_ps(f32::MIN_POSITIVE);
        for at in (0..len).step_by(16) {
            let live = (len - at).min(16);
            let keep = (((1u32 << live) - 1) & 0xffff) as __mmask16;
            // SAFETY: lanes at..at + live of the three rows, which hold len
            // floats each.
            unsafe {
                let (bp, wp, gp) = (b.add(at), w.add(at), g.add(at));
                let (old_b, old_w) =
                    (_mm512_maskz_loadu_ps(keep, bp), _mm512_maskz_loadu_ps(keep, wp));
                let m = _mm512_add_ps(_mm512_mul_ps(beta, old_b), _mm512_maskz_loadu_ps(keep, gp));
                let new_b = _mm512_add_ps(m, _mm512_mul_ps(wd, old_w));
                // `optim::flush_subnormal`: zero where |b| < the smallest
                // normal, NaN kept.
                let normal = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(_mm512_abs_ps(new_b), min);
                let new_b = _mm512_maskz_mov_ps(normal, new_b);
                _mm512_mask_storeu_ps(bp, keep, new_b);
                _mm512_mask_storeu_ps(wp, keep, _mm512_add_ps(old_w, _mm512_mul_ps(neg_lr, new_b)));
            }
        }
    }

    /// [`Self::momentum_row`] on the instruction set of `kernel`'s family,
    /// so that each kernel's tests run their own pass.
    ///
    /// # Safety
    /// As [`Self::momentum_row`]; `kernel` is supported by this CPU.
    pub(crate) unsafe fn momentum_row_for(
        &self,
        kernel: &super::Kernel,
        g: &[f32],
        b: &mut [f32],
        beta: f32,
        i: usize,
        j0: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            /// # Safety
            /// As `momentum_row`, on a CPU with AVX2.
            #[target_feature(enable = "avx2")]
            unsafe fn avx2(
                s: &SgdUpdate,
                g: &[f32],
                b: &mut [f32],
                beta: f32,
                i: usize,
                j0: usize,
            ) {
                // SAFETY: forwarded.
                unsafe { s.momentum_row(g, b, beta, i, j0) }
            }
            if kernel.name.starts_with("avx512") {
                // SAFETY: the kernel's family is supported, and with it AVX-512F.
                return unsafe { self.momentum_row_avx512(g, b, beta, i, j0) };
            }
            if kernel.name.starts_with("avx2") {
                // SAFETY: as above, AVX2.
                return unsafe { avx2(self, g, b, beta, i, j0) };
            }
        }
        let _ = kernel;
        // SAFETY: forwarded.
        unsafe { self.momentum_row(g, b, beta, i, j0) }
    }
}

/// [`sgd_step`], for the GEMM's tests to build their expected values with.
#[cfg(test)]
pub(super) fn sgd_step_for_tests(b: &mut f32, w: &mut f32, lr: f32, weight_decay: f32) {
    sgd_step(b, w, lr, weight_decay);
}

/// One element of [`SgdUpdate`]: `b += wd·w; w -= lr·b`.
#[inline(always)]
fn sgd_step(b: &mut f32, w: &mut f32, lr: f32, weight_decay: f32) {
    // `w` read once, before `b` is stored: written as two updates in
    // place, the compiler read `w` again after the store to `b`, and the
    // two buffers, both page-aligned allocations, share their addresses'
    // low 12 bits, so that load waited on the store (MLP's fc1 step).
    let (old_b, old_w) = (*b, *w);
    // Flushed as `optim::Sgd` flushes it: the next step's GEMM multiplies
    // it by the momentum.
    let new_b = crate::optim::flush_subnormal(old_b + weight_decay * old_w);
    *b = new_b;
    *w = old_w + -lr * new_b;
}

/// `C = act(alpha·A·B + beta·C + bias)`, then zeroed where `relu_mask ≤ 0`,
/// then the SGD step of `sgd`.
///
/// The mask is the output of a forward ReLU (same shape as C): the backward
/// pass of `y = relu(z)` passes gradients only where `y > 0`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub activation: Activation,
    pub relu_mask: Option<MatRef<'a>>,
    pub sgd: Option<SgdUpdate<'a>>,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue::NONE
    }
}

impl<'a> Epilogue<'a> {
    /// Plain `C = alpha·A·B + beta·C`.
    pub const NONE: Epilogue<'static> =
        Epilogue { bias: Bias::None, activation: Activation::Identity, relu_mask: None, sgd: None };

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
            sgd: self.sgd.map(SgdUpdate::t),
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
            sgd: self.sgd.map(|u| u.offset(i0, j0)),
        }
    }

    /// The SGD step, where it is the whole epilogue and its weights' rows
    /// are contiguous: what the GEMM fuses with the momentum's scaling
    /// ([`SgdUpdate::momentum_row`]).
    pub(crate) fn sgd_alone(&self) -> Option<&SgdUpdate<'a>> {
        match self {
            Epilogue {
                bias: Bias::None,
                activation: Activation::Identity,
                relu_mask: None,
                sgd: Some(sgd),
            } if sgd.cs == 1 => Some(sgd),
            _ => None,
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None)
            && self.activation == Activation::Identity
            && self.relu_mask.is_none()
            && self.sgd.is_none()
    }

    /// Applies the epilogue to `row`, the elements `(i, j0..j0 + row.len())`
    /// of C, in one pass per stage with the stage's `match` outside the loop,
    /// so each loop vectorises. Element for element the same as [`apply`].
    ///
    /// [`apply`]: Epilogue::apply
    ///
    /// # Safety
    /// With an SGD step, as [`SgdUpdate::step`] for every element of the row:
    /// the GEMM calls this once per element of C, on the thread that owns it.
    #[inline]
    pub(crate) unsafe fn apply_row(&self, row: &mut [f32], i: usize, j0: usize) {
        let len = row.len();
        match self.bias {
            Bias::None => crate::act::bias_activate_row(self.activation, None, row),
            Bias::PerRow(b) => crate::act::bias_activate_row(self.activation, Some(b[i]), row),
            Bias::PerCol(b) => {
                row.iter_mut().zip(&b[j0..j0 + len]).for_each(|(v, &bj)| *v += bj);
                crate::act::bias_activate_row(self.activation, None, row);
            }
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
        if let Some(sgd) = &self.sgd {
            // SAFETY: forwarded from the caller.
            unsafe { sgd.step_row(row, i, j0) };
        }
    }

    /// The value of element `(i, j)` of C after the bias, the activation
    /// and the mask, given `v = alpha·A·B + beta·C`; without the SGD step.
    #[inline(always)]
    pub fn value(&self, v: f32, i: usize, j: usize) -> f32 {
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

    /// The final value of element `(i, j)` of C, given `v = alpha·A·B + beta·C`:
    /// [`Self::value`], then the SGD step.
    ///
    /// # Safety
    /// With an SGD step, as [`SgdUpdate::step`].
    #[inline(always)]
    pub(crate) unsafe fn apply(&self, v: f32, i: usize, j: usize) -> f32 {
        let mut v = self.value(v, i, j);
        if let Some(sgd) = &self.sgd {
            // SAFETY: forwarded from the caller.
            unsafe { sgd.step(&mut v, i, j) };
        }
        v
    }
}
