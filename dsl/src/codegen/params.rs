//! The generated parameter struct: one boxed array per `state_dict` tensor,
//! a table of their names and shapes, and the visitors, checkpoints and
//! arithmetic that walk that table.

use super::names::{field, lit};
use super::Module;
use proc_macro2::TokenStream;
use quote::quote;

pub fn params_struct(m: &Module<'_>) -> TokenStream {
    let p = m.p();
    let params_ty = &m.params_ty;
    let fields: Vec<_> = p.params.iter().map(|q| field(&q.name)).collect();
    let lens: Vec<_> = p.params.iter().map(|q| lit(q.len())).collect();
    let count = lit(p.params.len());
    let learnable = p.params.iter().map(|q| q.learnable);
    let table = p.params.iter().map(|q| {
        let (name, dims) = (&q.name, q.shape.iter().map(|&d| lit(d)));
        quote!((#name, &[#(#dims),*]))
    });
    let docs = p.params.iter().map(|q| {
        let buffer = if q.learnable { "" } else { " (buffer)" };
        format!(" `{}`, shape {:?}{buffer}", q.name, q.shape)
    });
    let doc = format!(
        " The parameters and buffers of [`{}`], named and shaped as PyTorch's `state_dict`.",
        p.name
    );
    // Built on the heap: a large array on the stack would overflow it.
    let zeros = if p.params.is_empty() {
        quote!(Self {})
    } else {
        quote! {
            fn boxed<const N: usize>() -> Box<[f32; N]> {
                match vec![0.0f32; N].into_boxed_slice().try_into() {
                    Ok(b) => b,
                    Err(_) => unreachable!("a boxed slice of N floats converts to an array of N"),
                }
            }
            Self { #( #fields: boxed::<#lens>(), )* }
        }
    };
    // Only a model that shards its training step averages gradients.
    let mix = m.schedule().shards.then(|| {
        quote! {
            /// `self = a·self + b·other`, tensor by tensor: how a
            /// data-parallel step averages its shards' gradients.
            pub fn mix(&mut self, a: f32, other: &Self, b: f32) {
                for (x, y) in self.tensors_mut().into_iter().zip(other.tensors()) {
                    for (x, &y) in x.iter_mut().zip(y) {
                        *x = a * *x + b * y;
                    }
                }
            }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #params_ty {
            #( #[doc = #docs] pub #fields: Box<[f32; #lens]>, )*
        }

        #[allow(dead_code)]
        impl #params_ty {
            /// Every tensor's `state_dict` name and shape, in order.
            pub const TENSORS: [(&'static str, &'static [usize]); #count] = [#(#table),*];

            /// Whether each tensor is learned, rather than a buffer.
            pub const LEARNABLE: [bool; #count] = [#(#learnable),*];

            /// Every tensor set to zero.
            pub fn zeros() -> Self {
                #zeros
            }

            /// Every tensor's values, in the order of [`Self::TENSORS`].
            pub fn tensors(&self) -> [&[f32]; #count] {
                [#(&self.#fields[..]),*]
            }

            /// Every tensor's values, to change.
            pub fn tensors_mut(&mut self) -> [&mut [f32]; #count] {
                [#(&mut self.#fields[..]),*]
            }

            /// Visits every tensor as `(state_dict name, shape, values)`.
            pub fn visit(&self, mut f: impl FnMut(&str, &[usize], &[f32])) {
                for ((name, shape), values) in Self::TENSORS.iter().zip(self.tensors()) {
                    f(name, shape, values);
                }
            }

            /// Visits every tensor mutably.
            pub fn visit_mut(&mut self, mut f: impl FnMut(&str, &[usize], &mut [f32])) {
                for ((name, shape), values) in Self::TENSORS.iter().zip(self.tensors_mut()) {
                    f(name, shape, values);
                }
            }

            #mix
        }
    }
}
