//! The generated data-parallel training step, for models the schedule
//! shards: each thread runs the training forward and backward passes (the
//! same functions as the whole-batch step) on its share of the batch.

use super::names::lit;
use super::steps::{times, Sequence};
use super::train::targets;
use super::Module;
use proc_macro2::TokenStream;
use quote::quote;

pub fn sharded(m: &Module<'_>) -> TokenStream {
    let s = m.schedule();
    let Some(t) = targets(m).filter(|_| s.shards) else { return quote!() };
    let (rt, name, params_ty) = (m.rt, &m.name, &m.params_ty);
    let flat_ty = &t.flat_ty;
    let (flat, args) = (m.flat_params(), m.args());
    let k = lit(m.inputs.len());
    let batch_of = m.batch_of(quote!(self.memory.capacity));
    let copy = m.copy_inputs(Sequence::TrainForward, true);
    let (targets_start, targets_len) = (times(t.per_sample, "first"), times(t.per_sample, "n"));
    let full_targets = times(t.per_sample, "n");
    let (arena_per_sample, argmax_per_sample) = (lit(s.arena_per_sample), lit(s.argmax_per_sample));
    let shared = if s.fused_sgd.is_empty() {
        quote!(params)
    } else {
        quote!(#rt::pass::ParamsRef::Shared(params))
    };
    let no_fused = if s.fused_sgd.is_empty() { quote!() } else { quote!(None) };
    quote! {
        impl #name {
            /// One shard of a data-parallel [`Self::train_step`]: the
            /// forward pass, loss and backward pass of its samples, in its
            /// part of the buffers, into `grads`.
            fn train_shard(
                params: &#params_ty,
                grads: &mut #params_ty,
                shard: #rt::shard::Shard<'_>,
                inputs: [&[f32]; #k],
                targets: #flat_ty,
                masks: #rt::dropout::MaskKey,
            ) -> Result<(f32, u64), #rt::Error> {
                let #rt::shard::Shard { first, n, cap, arena, argmax } = shard;
                let [#(#args),*] = inputs;
                let masks = #rt::dropout::MaskKey { first_sample: masks.first_sample + first as u64, ..masks };
                let mut pass = #rt::pass::Pass::new(n, cap, arena, argmax, &mut [], masks);
                #copy
                let targets = &targets[#targets_start..][..#targets_len];
                Self::train_forward_pass(&mut pass, params)?;
                let loss = Self::backward_pass(&mut pass, #shared, grads, targets, #no_fused)?;
                Ok((loss, pass.correct))
            }

            /// [`Self::train_step`] split by samples between the pool's
            /// threads (`runtime::shard`), or `None` where it does not
            /// split: one thread, too few samples per thread, or targets
            /// of the wrong length, which the kernel-by-kernel step then
            /// reports.
            fn train_step_sharded(&mut self, #(#flat,)* targets: #flat_ty, opt: &#rt::nn::Optimizer) -> Result<Option<f32>, #rt::Error> {
                #batch_of
                let shards = #rt::shard::count(n, self.memory.capacity);
                if shards < 2 || targets.len() != #full_targets {
                    return Ok(None);
                }
                self.reserve_training();
                self.step += 1;
                self.batch = 0;
                while self.shard_grads.len() < shards {
                    self.shard_grads.push(#params_ty::zeros());
                }
                // Shard 0 writes into `grads`, which ends the step holding
                // the whole batch's gradients.
                let grads = self.grads.get_or_insert_with(#params_ty::zeros);
                ::std::mem::swap(grads, &mut self.shard_grads[0]);
                let masks = self.mask_key();
                let Self { params, memory, shard_grads, .. } = self;
                let params = &*params;
                let buffers = #rt::shard::Buffers {
                    arena: &mut memory.arena[..],
                    arena_per_sample: #arena_per_sample,
                    argmax: &mut memory.argmax[..],
                    argmax_per_sample: #argmax_per_sample,
                };
                let loss = #rt::shard::run(
                    n,
                    memory.capacity,
                    buffers,
                    &mut shard_grads[..shards],
                    |shard, grads| Self::train_shard(params, grads, shard, [#(#args),*], targets, masks),
                    |a, x, b, y| a.mix(x, b, y),
                );
                let grads = self.grads.get_or_insert_with(#params_ty::zeros);
                ::std::mem::swap(grads, &mut self.shard_grads[0]);
                let (loss, correct) = loss?;
                self.correct = correct;
                self.apply_gradients(opt)?;
                Ok(Some(loss))
            }
        }
    }
}
