//! The generated inference methods, and the inference pass: its steps,
//! printed once, in a function of their own.

use super::names::lit;
use super::schedule::Uses;
use super::steps::Sequence;
use super::Module;
use proc_macro2::TokenStream;
use quote::quote;

/// The locals a pass function takes from its `pass: &mut Pass`: those its
/// steps use; and the name of the pass parameter (`_pass` if it is not
/// used).
pub fn destructure(uses: &Uses) -> (TokenStream, TokenStream) {
    let mut lets = Vec::new();
    for (used, binding) in [
        (uses.n, quote!(let n = pass.n;)),
        (uses.arena, quote!(let arena = &mut pass.arena;)),
        (uses.argmax, quote!(let argmax = &mut pass.argmax;)),
        (uses.stats, quote!(let stats = &mut *pass.stats;)),
        (uses.masks, quote!(let masks = pass.masks;)),
    ] {
        if used {
            lets.push(binding);
        }
    }
    // Laps use `pass.profiler` directly, a field apart from the others.
    let name = if lets.is_empty() && !uses.laps { quote!(_pass) } else { quote!(pass) };
    (name, quote!(#(#lets)*))
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

pub fn inference(m: &Module<'_>) -> TokenStream {
    let (p, s, rt, name, params_ty) = (m.p(), m.schedule(), m.rt, &m.name, &m.params_ty);
    let uses = s.infer_uses;
    let ((pass_name, destructure), use_rt) = (destructure(&uses), use_runtime(m, &p.infer_forward));
    let body = m.printer.steps(Sequence::Infer);
    let uses_params = uses.params || uses.params_mut;
    let params_decl = uses_params.then(|| quote!(params: &#params_ty,));
    let params_arg = uses_params.then(|| quote!(&self.params,));
    let caches_decl = uses.caches.then(|| quote!(forward_caches: &[#rt::conv::ForwardCache],));
    let caches_arg = uses.caches.then(|| quote!(&self.forward_caches,));
    let out_len = lit(m.out_len);
    let out_offset = lit(m.printer.plan(Sequence::Infer).offset(p.output));
    let (samples, flat, args, flattened) =
        (m.sample_params(), m.flat_params(), m.args(), m.flattened());
    let (view_generics, view_params, views) = m.view_inputs();
    let first = &m.inputs[0].arg;
    let (copy, batch_of) = (m.copy_inputs(Sequence::Infer, false), m.batch_of(quote!(usize::MAX)));
    let stats_len = p.stat_slots.iter().map(|c| 2 * c).sum();
    let sizes = [
        s.infer.size,
        if uses.argmax { s.argmax_per_sample } else { 0 },
        if uses.stats { stats_len } else { 0 },
    ]
    .map(lit);
    quote! {
        #[allow(dead_code)]
        impl #name {
            /// Per-sample arena floats and argmax indices, and statistics,
            /// of an inference workspace.
            const INFER_SIZES: (usize, usize, usize) = (#(#sizes),*);

            /// Inference: dropout off, batch norm on running statistics.
            /// Takes `&self`: one model, shared through an `Arc`, serves
            /// any number of threads at once, each running in buffers of
            /// its own (see [`Self::release_workspace`]). Any batch size
            /// is accepted.
            pub fn forward(&self, #(#samples,)* out: &mut [[f32; #out_len]]) -> Result<(), #rt::Error> {
                self.forward_flat(#(#flattened,)* out.as_flattened_mut())
            }

            /// [`Self::forward`] on ndarray views `[n, INPUT...]` of any layout
            /// (copied first unless row-major); returns `[n, OUTPUT...]`.
            pub fn forward_view #view_generics (&self, #(#view_params),*) -> Result<#rt::view::ndarray::ArrayD<f32>, #rt::Error> {
                #(#views)*
                let mut out = #rt::view::output(#first.shape()[0], &Self::OUTPUT);
                self.forward_flat(#(#rt::view::flat(&#args),)* #rt::view::flat_mut(&mut out))?;
                Ok(out)
            }

            /// [`Self::forward`] on flat slices, `n·INPUT_LEN` values in and
            /// `n·OUTPUT_LEN` out.
            pub fn forward_flat(&self, #(#flat,)* out: &mut [f32]) -> Result<(), #rt::Error> {
                // The pool's other thread stays awake for the whole pass.
                #rt::nn::awake(move || self.forward_flat_on(#(#args,)* out))
            }

            fn forward_flat_on(&self, #(#flat,)* out: &mut [f32]) -> Result<(), #rt::Error> {
                #batch_of
                #rt::error::check_len("forward", "out", out.len(), n * Self::OUTPUT_LEN)?;
                #rt::pass::with_workspace(Self::workspace(), n, Self::INFER_SIZES, |memory| {
                    // Inference draws no dropout mask: no step or seed.
                    let mut pass = memory.pass(n, Default::default());
                    #copy
                    Self::infer_pass(&mut pass, #params_arg #caches_arg)?;
                    out.copy_from_slice(pass.arena.get(#out_offset, #out_len)?);
                    Ok(())
                })
            }

            /// Frees the calling thread's inference buffers of this network
            /// (every thread that ran [`Self::forward`] keeps its own, sized
            /// for the largest batch it ran, until it exits); the thread's
            /// next inference makes them again.
            pub fn release_workspace() {
                #rt::pass::release_workspace(Self::workspace());
            }

            /// This network's inference buffers, one set per thread.
            fn workspace() -> &'static ::std::thread::LocalKey<::std::cell::Cell<Option<#rt::pass::Memory>>> {
                ::std::thread_local! {
                    static WORKSPACE: ::std::cell::Cell<Option<#rt::pass::Memory>> = const { ::std::cell::Cell::new(None) };
                }
                &WORKSPACE
            }

            /// The inference pass's kernels over the inputs in the arena.
            fn infer_pass(#pass_name: &mut #rt::pass::Pass<'_>, #params_decl #caches_decl) -> Result<(), #rt::Error> {
                #use_rt
                #destructure
                #body
                Ok(())
            }
        }
    }
}
