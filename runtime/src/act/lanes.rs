//! The elementwise loops of the activations that are not gated, each
//! compiled for AVX-512F, for AVX2 + FMA and for the baseline, and run on
//! the instruction set asked for if this CPU has it. The activation comes
//! in as a closure with its variant fixed (`per_activation!`), so each
//! loop is compiled, and vectorised to the width of its instruction set,
//! for one function. Functions built of arithmetic and selects (ReLU,
//! hardtanh, hardsigmoid, ELU with its own `eˣ − 1`) vectorise; those
//! calling libm (sigmoid, tanh) stay scalar on every path. Rust never
//! fuses a multiply and an add by itself, so every path gives the same
//! bits.

use crate::isa::Isa;

#[inline(always)]
fn map_body<F: Fn(f32) -> f32>(f: F, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = f(x);
    }
}

#[inline(always)]
fn map_in_place_body<F: Fn(f32) -> f32>(f: F, x: &mut [f32]) {
    for x in x.iter_mut() {
        *x = f(*x);
    }
}

#[inline(always)]
fn scale_body<F: Fn(f32) -> f32>(f: F, v: &[f32], g: &[f32], out: &mut [f32]) {
    for ((out, &g), &v) in out.iter_mut().zip(g).zip(v) {
        *out = g * f(v);
    }
}

#[inline(always)]
fn scale_in_place_body<F: Fn(f32) -> f32>(f: F, v: &[f32], g: &mut [f32]) {
    for (g, &v) in g.iter_mut().zip(v) {
        *g *= f(v);
    }
}

/// `fn $name<F>(isa, f, args)`: `$body(f, args)` compiled for AVX-512F,
/// for AVX2 + FMA and for the baseline, run on `isa` if this CPU has it
/// and on the baseline otherwise.
macro_rules! multiversioned {
    ($(#[$doc:meta])* $name:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub(crate) fn $name<F: Fn(f32) -> f32>(isa: Isa, f: F, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<F: Fn(f32) -> f32>(f: F, $($arg: $ty),*) {
                    $body(f, $($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<F: Fn(f32) -> f32>(f: F, $($arg: $ty),*) {
                    $body(f, $($arg),*)
                }
                let isa = isa.if_supported();
                if isa == Isa::Avx512 {
                    // SAFETY: `if_supported` returns AVX-512 only on a CPU
                    // that has AVX-512F.
                    return unsafe { avx512(f, $($arg),*) };
                }
                if isa == Isa::Avx2 {
                    // SAFETY: likewise, AVX2 only with AVX2 and FMA.
                    return unsafe { avx2(f, $($arg),*) };
                }
            }
            let _ = isa;
            $body(f, $($arg),*)
        }
    };
}

multiversioned!(
    /// `y = f(x)`.
    map_on => map_body(x: &[f32], y: &mut [f32])
);
multiversioned!(
    /// `x = f(x)`.
    map_in_place_on => map_in_place_body(x: &mut [f32])
);
multiversioned!(
    /// `out = g · f(v)`: a backward, with `f` the derivative read from `v`.
    scale_on => scale_body(v: &[f32], g: &[f32], out: &mut [f32])
);
multiversioned!(
    /// `g = g · f(v)`.
    scale_in_place_on => scale_in_place_body(v: &[f32], g: &mut [f32])
);
