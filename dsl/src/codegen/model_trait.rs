//! `impl Model for <Network>`: the runtime's object-safe interface over the
//! generated inherent methods, for networks of one input with a loss (the
//! ones a program can train without knowing their type).

use super::names::lit;
use super::train::targets;
use super::Module;
use proc_macro2::TokenStream;
use quote::quote;

pub fn model_trait(m: &Module<'_>) -> TokenStream {
    let (Some(t), Some(loss)) = (targets(m), m.p().loss.as_ref()) else { return quote!() };
    if m.inputs.len() != 1 {
        return quote!();
    }
    let (rt, name, params_ty) = (m.rt, &m.name, &m.params_ty);
    let network = m.p().name.clone();
    let per_sample = lit(t.per_sample);
    let in_len = lit(m.inputs[0].len);
    // The targets as the generated methods take them, or the error.
    let (kind, typed) = if loss.kind.takes_labels() {
        let classes = lit(m.p().tensor(loss.input).per_sample());
        (
            quote!(#rt::model::TargetKind::Labels { classes: #classes }),
            quote! {
                match targets {
                    #rt::model::Targets::Labels(labels) => labels,
                    #rt::model::Targets::Values(_) => {
                        return Err(#rt::Error::WrongTargets { takes: "class labels" })
                    }
                }
            },
        )
    } else {
        (
            quote!(#rt::model::TargetKind::Values { len: #per_sample }),
            quote! {
                match targets {
                    #rt::model::Targets::Values(values) => {
                        #rt::model::samples::<#per_sample>("train", "targets", values)?
                    }
                    #rt::model::Targets::Labels(_) => {
                        return Err(#rt::Error::WrongTargets { takes: "target values" })
                    }
                }
            },
        )
    };
    let no_fused = (!m.schedule().fused_sgd.is_empty()).then(|| quote!(None,));
    let single_value = m.single_value_batch_norm().map(|layer| {
        quote! {
            fn single_value_batch_norm(&self) -> Option<&'static str> {
                Some(#layer)
            }
        }
    });
    quote! {
        impl #rt::model::Model for #name {
            fn name(&self) -> &'static str {
                #network
            }
            fn input_shape(&self) -> &'static [usize] {
                &Self::INPUT
            }
            fn output_shape(&self) -> &'static [usize] {
                &Self::OUTPUT
            }
            fn target_kind(&self) -> #rt::model::TargetKind {
                #kind
            }
            fn param_count(&self) -> usize {
                Self::PARAMS
            }
            fn macs_per_sample(&self) -> u64 {
                Self::MACS_PER_SAMPLE
            }
            fn capacity(&self) -> usize {
                #name::capacity(self)
            }
            fn default_optimizer(&self) -> Option<#rt::nn::Optimizer> {
                Self::default_optimizer()
            }
            fn default_schedule(&self) -> Option<#rt::schedule::Schedule> {
                Self::default_schedule()
            }
            fn predict(&self, x: &[f32], out: &mut [f32]) -> Result<(), #rt::Error> {
                self.forward_flat(x, out)
            }
            fn forward_backward(
                &mut self,
                x: &[f32],
                targets: #rt::model::Targets<'_>,
                outputs: &mut [f32],
            ) -> Result<f32, #rt::Error> {
                // The pool's other thread stays awake for both passes.
                self.forward_backward_streaming(x, targets, outputs, None)
            }
            fn forward_backward_streaming(
                &mut self,
                x: &[f32],
                targets: #rt::model::Targets<'_>,
                outputs: &mut [f32],
                ready: Option<&mut #rt::pass::GradientsReady<'_>>,
            ) -> Result<f32, #rt::Error> {
                // The pool's other thread stays awake for both passes.
                let targets = #typed;
                #rt::nn::awake(move || {
                    let out = self.forward_train_flat(x)?;
                    #rt::error::check_len("forward_backward", "outputs", outputs.len(), out.len())?;
                    outputs.copy_from_slice(out);
                    self.backward_with(targets, #no_fused ready)
                })
            }
            fn train_step(
                &mut self,
                x: &[f32],
                targets: #rt::model::Targets<'_>,
                opt: &#rt::nn::Optimizer,
            ) -> Result<(f32, u64), #rt::Error> {
                let targets = #typed;
                let x = #rt::model::samples::<#in_len>("train", "x", x)?;
                let loss = #name::train_step(self, x, targets, opt)?;
                Ok((loss, self.correct))
            }
            fn apply_gradients(&mut self, opt: &#rt::nn::Optimizer) -> Result<(), #rt::Error> {
                #name::apply_gradients(self, opt)
            }
            fn save(&self, path: &::std::path::Path) -> Result<(), #rt::Error> {
                #name::save(self, path)
            }
            fn load(&mut self, path: &::std::path::Path) -> Result<(), #rt::Error> {
                #name::load(self, path)
            }
            fn load_from(&mut self, file: &mut #rt::weights::WeightsFile) -> Result<(), #rt::Error> {
                #name::load_from(self, file)
            }
            fn optimizer_state(&self) -> (&[f32], u8, u64) {
                #name::optimizer_state(self)
            }
            fn set_optimizer_state(
                &mut self,
                state: &[f32],
                kind: u8,
                step: u64,
            ) -> Result<(), #rt::Error> {
                #name::set_optimizer_state(self, state, kind, step)
            }
            fn visit_params(&self, f: &mut #rt::model::TensorVisitor<'_>) {
                #params_ty::visit(self.params(), f)
            }
            fn gradients_mut(&mut self) -> Vec<&mut [f32]> {
                let Some(grads) = self.grads.as_mut() else { return Vec::new() };
                let tensors = grads.tensors_mut().into_iter().zip(#params_ty::LEARNABLE);
                tensors.filter_map(|(t, learned)| learned.then_some(t)).collect()
            }
            fn set_first_sample(&mut self, first: u64) {
                #name::set_first_sample(self, first)
            }
            fn buffers_mut(&mut self) -> Vec<&mut [f32]> {
                let tensors = self.params_mut().tensors_mut().into_iter().zip(#params_ty::LEARNABLE);
                tensors.filter_map(|(t, learned)| (!learned).then_some(t)).collect()
            }
            #single_value
            fn profile_slot(&mut self) -> Option<#rt::profile::Slot<'_>> {
                Some(self.memory.profile_slot(Self::LAYERS))
            }
        }
    }
}
