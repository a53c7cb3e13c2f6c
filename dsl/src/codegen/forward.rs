//! The generated inference methods, and the inference pass: its steps,
//! printed once, in a function of their own.

use super::names::lit;
use super::schedule::Uses;
use super::steps::{span_range, Sequence};
use super::Module;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `let Pass { n, cap, arena, .. } = pass;` with the fields `uses` needs,
/// and the name the pass parameter takes.
pub fn destructure(m: &Module<'_>, uses: &Uses) -> (TokenStream, TokenStream) {
    let rt = m.rt;
    let mut fields = Vec::new();
    if uses.n {
        fields.push(quote!(n));
    }
    if uses.arena {
        fields.push(quote!(mut arena));
    }
    let argmax = if uses.argmax_mut { quote!(mut argmax) } else { quote!(argmax) };
    for (used, f) in [
        (uses.argmax, argmax),
        (uses.stats, quote!(stats)),
        (uses.step, quote!(step)),
        (uses.seed, quote!(seed)),
    ] {
        if used {
            fields.push(f);
        }
    }
    if fields.is_empty() {
        return (quote!(_pass), quote!());
    }
    (quote!(pass), quote!(let #rt::pass::Pass { #(#fields,)* .. } = pass;))
}

/// `use <runtime> as rt;`, which the printed steps name the runtime by,
/// where there are any.
pub fn use_runtime(m: &Module<'_>, steps: &[crate::program::Step]) -> TokenStream {
    let rt = m.rt;
    if steps.is_empty() {
        quote!()
    } else {
        quote!(use #rt as rt;)
    }
}

/// A `Pass` over the model's own buffers (`self` destructured into them).
pub fn own_pass(m: &Module<'_>) -> TokenStream {
    let rt = m.rt;
    quote!(#rt::pass::Pass { n, arena: #rt::pass::Regions::new(&mut arena[..], n, *capacity), argmax: #rt::pass::Regions::new(&mut argmax[..], n, *capacity), stats: &mut stats[..], step: *step, seed: *seed })
}

pub fn inference(m: &Module<'_>) -> TokenStream {
    let (p, rt, name, params_ty) = (m.p(), m.rt, &m.name, &m.params_ty);
    let uses = m.schedule().infer_uses;
    let (pass, destructure) = destructure(m, &uses);
    let body = m.printer.steps(Sequence::Infer);
    let (params_decl, params_arg) = if uses.params || uses.params_mut {
        (quote!(params: &#params_ty,), quote!(params,))
    } else {
        (quote!(), quote!())
    };
    let (caches_decl, caches_arg) = if uses.caches {
        (quote!(forward_caches: &mut [#rt::conv::ForwardCache],), quote!(forward_caches,))
    } else {
        (quote!(), quote!())
    };
    let out_len = lit(m.out_len);
    let out_range = span_range(m.printer.plan(Sequence::Infer).offset(p.output), m.out_len);
    let (samples, flat, args, flattened) =
        (m.sample_params(), m.flat_params(), m.args(), m.flattened());
    let views = m.inputs.iter().map(|i| {
        let (arg, name) = (&i.arg, &i.name);
        let dims = p.tensor(i.tensor).shape.iter().map(|&d| lit(d));
        quote!(let #arg = #rt::view::samples(&#arg, &[#(#dims),*], #name)?;)
    });
    let view_tys: Vec<_> = (0..m.inputs.len()).map(|k| format_ident!("D{k}")).collect();
    let view_params = m.inputs.iter().zip(&view_tys).map(|(i, d)| {
        let arg = &i.arg;
        quote!(#arg: #rt::view::ndarray::ArrayView<'_, f32, #d>)
    });
    let first = &m.inputs[0].arg;
    let copy = m.copy_inputs(Sequence::Infer, false);
    let cap = cap_binding(m.printer.plan(Sequence::Infer).offset(p.output));
    let batch_of = m.batch_of();
    let own = own_pass(m);
    let use_rt = use_runtime(m, &p.infer_forward);
    quote! {
        #[allow(dead_code)]
        impl #name {
            /// Inference: dropout off, batch norm on running statistics.
            pub fn forward(&mut self, #(#samples,)* out: &mut [[f32; #out_len]]) -> Result<(), #rt::Error> {
                self.forward_flat(#(#flattened,)* out.as_flattened_mut())
            }

            /// [`Self::forward`] on ndarray views of shape `[n, INPUT...]`
            /// in any memory layout (one that is not row-major and
            /// contiguous is copied first); returns the `[n, OUTPUT...]`
            /// outputs.
            pub fn forward_view<#(#view_tys: #rt::view::ndarray::Dimension),*>(&mut self, #(#view_params),*) -> Result<#rt::view::ndarray::ArrayD<f32>, #rt::Error> {
                #(#views)*
                let mut out = #rt::view::output(#first.shape()[0], &Self::OUTPUT);
                self.forward_flat(#(#rt::view::flat(&#args),)* #rt::view::flat_mut(&mut out))?;
                Ok(out)
            }

            /// [`Self::forward`] on flat slices, `n·INPUT_LEN` values in and
            /// `n·OUTPUT_LEN` out.
            pub fn forward_flat(&mut self, #(#flat,)* out: &mut [f32]) -> Result<(), #rt::Error> {
                // The pool's other thread stays awake for the whole pass.
                #rt::nn::awake(move || self.forward_flat_on(#(#args,)* out))
            }

            fn forward_flat_on(&mut self, #(#flat,)* out: &mut [f32]) -> Result<(), #rt::Error> {
                #batch_of
                if out.len() != n * Self::OUTPUT_LEN {
                    return Err(#rt::Error::Len(#rt::LenError { op: "forward", tensor: "out", expected: n * Self::OUTPUT_LEN, found: out.len() }));
                }
                // Inference shares the arena with training's activations.
                self.batch = 0;
                let Self { #params_arg #caches_arg arena, argmax, stats, capacity, step, seed, .. } = self;
                #copy
                Self::infer_pass(#own, #params_arg #caches_arg)?;
                #cap
                out.copy_from_slice(&arena[#out_range]);
                Ok(())
            }

            /// The inference pass's kernels over the inputs in the arena.
            fn infer_pass(#pass: #rt::pass::Pass<'_>, #params_decl #caches_decl) -> Result<(), #rt::Error> {
                #use_rt
                #destructure
                #body
                Ok(())
            }
        }
    }
}

/// `let cap = *capacity;` where a range at `offset` needs it.
pub fn cap_binding(offset: usize) -> TokenStream {
    if offset == 0 {
        quote!()
    } else {
        quote!(let cap = *capacity;)
    }
}
