//! The generated parameter struct: one boxed array per `state_dict` tensor,
//! with visitors and the arithmetic a data-parallel step needs.

use super::names::{field, lit};
use super::Module;
use proc_macro2::TokenStream;
use quote::quote;

pub fn params_struct(m: &Module<'_>) -> TokenStream {
    let p = m.p();
    let params_ty = &m.params_ty;
    let fields: Vec<_> = p.params.iter().map(|q| field(&q.name)).collect();
    let lens: Vec<_> = p.params.iter().map(|q| lit(q.len())).collect();
    let names: Vec<&str> = p.params.iter().map(|q| q.name.as_str()).collect();
    let shapes: Vec<TokenStream> = p
        .params
        .iter()
        .map(|q| {
            let dims = q.shape.iter().map(|&d| lit(d));
            quote!(&[#(#dims),*])
        })
        .collect();
    let docs: Vec<String> = p
        .params
        .iter()
        .map(|q| {
            format!(
                " `{}`, shape {:?}{}",
                q.name,
                q.shape,
                if q.learnable { "" } else { " (buffer)" }
            )
        })
        .collect();
    let doc = format!(
        " The parameters and buffers of [`{}`], named and shaped as PyTorch's `state_dict`.",
        p.name
    );
    // Only a model that shards its training step averages gradients.
    let mix = m.schedule().shards.then(|| {
        quote! {
            /// `self = a·self + b·other`, tensor by tensor: how a
            /// data-parallel step averages its shards' gradients.
            pub fn mix(&mut self, a: f32, other: &Self, b: f32) {
                #(
                    for (x, &y) in self.#fields.iter_mut().zip(other.#fields.iter()) {
                        *x = a * *x + b * y;
                    }
                )*
            }
        }
    });
    if p.params.is_empty() {
        // Nothing to visit: the visitors take their callback only to keep
        // the API of every model the same.
        return quote! {
            #[doc = #doc]
            #[derive(Clone, Debug)]
            pub struct #params_ty {}

            #[allow(dead_code)]
            impl #params_ty {
                /// Every tensor set to zero (there are none).
                pub fn zeros() -> Self {
                    Self {}
                }

                /// Visits every tensor (there are none).
                pub fn visit(&self, _visitor: impl FnMut(&str, &[usize], &[f32])) {}

                /// Visits every tensor mutably (there are none).
                pub fn visit_mut(&mut self, _visitor: impl FnMut(&str, &[usize], &mut [f32])) {}

                #mix
            }
        };
    }
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #params_ty {
            #( #[doc = #docs] pub #fields: Box<[f32; #lens]>, )*
        }

        #[allow(dead_code)]
        impl #params_ty {
            /// Every tensor set to zero.
            pub fn zeros() -> Self {
                // Built on the heap: a large array on the stack would overflow it.
                fn boxed<const N: usize>() -> Box<[f32; N]> {
                    match vec![0.0f32; N].into_boxed_slice().try_into() {
                        Ok(b) => b,
                        Err(_) => unreachable!("a boxed slice of N floats converts to an array of N"),
                    }
                }
                Self { #( #fields: boxed::<#lens>(), )* }
            }

            /// Visits every tensor as `(state_dict name, shape, values)`.
            pub fn visit(&self, mut f: impl FnMut(&str, &[usize], &[f32])) {
                #( f(#names, #shapes, &self.#fields[..]); )*
            }

            /// Visits every tensor mutably.
            pub fn visit_mut(&mut self, mut f: impl FnMut(&str, &[usize], &mut [f32])) {
                #( f(#names, #shapes, &mut self.#fields[..]); )*
            }

            #mix
        }
    }
}
