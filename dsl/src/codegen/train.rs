//! The generated training methods, and the training forward and backward
//! passes: their steps, printed once each, in functions that the
//! whole-batch and the sharded training step share.

use super::forward::{destructure, use_runtime};
use super::names::{field, lit};
use super::steps::Sequence;
use super::Module;
use crate::ir::LossKind;
use crate::program::ParamId;
use proc_macro2::TokenStream;
use quote::quote;

/// How the targets of the loss are passed.
pub struct Targets {
    /// `labels` or `targets`.
    pub param: TokenStream,
    /// `&[u32]` or `&[[f32; L]]`.
    pub ty: TokenStream,
    /// The same as a flat slice.
    pub flat: TokenStream,
    pub flat_ty: TokenStream,
    /// Values per sample.
    pub per_sample: usize,
}

pub fn targets(m: &Module<'_>) -> Option<Targets> {
    let loss = m.p().loss.as_ref()?;
    let len = lit(m.p().tensor(loss.input).per_sample());
    Some(match loss.kind.takes_labels() {
        true => Targets {
            param: quote!(labels),
            ty: quote!(&[u32]),
            flat: quote!(labels),
            flat_ty: quote!(&[u32]),
            per_sample: 1,
        },
        false => Targets {
            param: quote!(targets),
            ty: quote!(&[[f32; #len]]),
            flat: quote!(targets.as_flattened()),
            flat_ty: quote!(&[f32]),
            per_sample: m.p().tensor(loss.input).per_sample(),
        },
    })
}

pub fn training(m: &Module<'_>) -> TokenStream {
    let Some(t) = targets(m) else { return quote!() };
    let name = &m.name;
    let (forward_backward, updates, steps) =
        (pass_methods(m, &t), update_methods(m, &t), step_methods(m, &t));
    let (passes, apply) = (passes(m, &t), apply_gradients_impl(m));
    quote! {
        #[allow(dead_code)]
        impl #name {
            #forward_backward
            #updates
            #steps
            #passes
        }

        impl #name {
            #apply
        }
    }
}

/// Whether the dense weight gradients may take a fused SGD step.
fn fuses(m: &Module<'_>) -> bool {
    !m.schedule().fused_sgd.is_empty()
}

/// `forward_train`, `backward` and their flat and internal forms.
fn pass_methods(m: &Module<'_>, t: &Targets) -> TokenStream {
    let (p, s, rt, params_ty) = (m.p(), m.schedule(), m.rt, &m.params_ty);
    let (tp, tty, tflat) = (&t.param, &t.ty, &t.flat);
    let out_len = lit(m.out_len);
    let out_offset = lit(s.train.offset(p.train_output));
    let (samples, flat, flattened) = (m.sample_params(), m.flat_params(), m.flattened());
    let (batch_of, copy, own_pass) = (
        m.batch_of(quote!(self.memory.capacity)),
        m.copy_inputs(Sequence::TrainForward, false),
        m.own_pass(),
    );
    let forward_params =
        if s.forward_uses.params_mut { quote!(&mut self.params) } else { quote!(&self.params) };
    let (fused, guard) = (fuses(m), m.batch_norm_guard());
    let take_ready = quote! {
        if let Some(ready) = ready {
            pass.ready = #rt::pass::Ready::new(ready);
        }
    };
    let backward_call = if fused {
        quote! {
            #own_pass
            #take_ready
            let fused = fused.map(|sgd| #rt::pass::FusedSgd { sgd, state: &mut self.opt.values[..] });
            let params = #rt::pass::ParamsRef::Exclusive(&mut self.params);
            let grads = self.grads.get_or_insert_with(#params_ty::zeros);
            let loss = Self::backward_pass(&mut pass, params, grads, targets, fused);
            self.correct = pass.correct;
            loss
        }
    } else {
        quote! {
            #own_pass
            #take_ready
            let grads = self.grads.get_or_insert_with(#params_ty::zeros);
            let loss = Self::backward_pass(&mut pass, &self.params, grads, targets);
            self.correct = pass.correct;
            loss
        }
    };
    let fused_param = fused.then(|| quote!(fused: Option<&#rt::optim::Sgd>,));
    let no_fused = fused.then(|| quote!(None,));
    let backward_plain = quote!(self.backward_with(#tp, #no_fused None));
    let backward_streaming = quote!(self.backward_with(#tp, #no_fused Some(ready)));
    let target_doc = match m.p().loss.as_ref().is_some_and(|l| l.kind.takes_labels()) {
        true => "`labels` are class indices, one per sample.",
        false => "`targets` has the scored tensor's shape, one per sample.",
    };
    let backward_doc = format!(" The loss of the last [`Self::forward_train`] batch and the gradients of every parameter (into `grads`). {target_doc} Once per `forward_train`: a second call is `Err(NoForwardTrain)`. Inference in between does not disturb it: it runs in buffers of its own.");
    quote! {
        /// The training forward pass (dropout on, batch norm on batch
        /// statistics, running statistics updated); returns the outputs.
        /// Each call starts a new training step.
        pub fn forward_train(&mut self, #(#samples),*) -> Result<&[[f32; #out_len]], #rt::Error> {
            let out = self.forward_train_flat(#(#flattened),*)?;
            Ok(out.as_chunks::<#out_len>().0)
        }

        /// [`Self::forward_train`] on flat slices of `n·INPUT_LEN`
        /// values; returns the `n·OUTPUT_LEN` outputs.
        pub fn forward_train_flat(&mut self, #(#flat),*) -> Result<&[f32], #rt::Error> {
            #batch_of
            #guard
            self.reserve_training();
            self.step += 1;
            self.batch = 0;
            #own_pass
            #copy
            Self::train_forward_pass(&mut pass, #forward_params)?;
            self.batch = n;
            Ok(pass.arena.take(#out_offset, #out_len)?)
        }

        #[doc = #backward_doc]
        pub fn backward(&mut self, #tp: #tty) -> Result<f32, #rt::Error> {
            #backward_plain
        }

        /// [`Self::backward`], handing each learned tensor's gradient to
        /// `ready` as soon as it is final, last layers first, by its index
        /// among the learned tensors in declaration order: a data-parallel
        /// trainer sums it across processes while the rest are computed.
        pub fn backward_streaming(&mut self, #tp: #tty, ready: &mut #rt::pass::GradientsReady<'_>) -> Result<f32, #rt::Error> {
            #backward_streaming
        }

        /// [`Self::backward`]; with `fused`, the dense weights whose
        /// gradient is computed last take that SGD step as it is
        /// computed (their gradients are not stored), on optimizer state
        /// that `OptimizerState::reset_for` has sized; with `ready`, each
        /// learned tensor's gradient is handed to it once final.
        fn backward_with(&mut self, #tp: #tty, #fused_param ready: Option<&mut #rt::pass::GradientsReady<'_>>) -> Result<f32, #rt::Error> {
            // One backward per forward_train: this one reuses the
            // activations' memory for gradients.
            let n = ::std::mem::replace(&mut self.batch, 0);
            if n == 0 {
                return Err(#rt::Error::NoForwardTrain);
            }
            let targets = #tflat;
            #backward_call
        }

    }
}

/// `apply_gradients`, the fused step, and the optimizer's state.
fn update_methods(m: &Module<'_>, t: &Targets) -> TokenStream {
    let (rt, params_ty) = (m.rt, &m.params_ty);
    let (tp, tty) = (&t.param, &t.ty);
    let fused = fuses(m);
    let fused_binding = fused.then(|| quote!(let fused = opt.fusable_sgd();));
    let backward_with_call = if fused {
        quote!(self.backward_with(#tp, fused, None)?)
    } else {
        quote!(self.backward_with(#tp, None)?)
    };
    let fused_flag = if fused { quote!(fused.is_some()) } else { quote!(false) };
    quote! {
        /// Updates every learnable parameter from `grads` with `opt`; the
        /// optimizer's state lives in the model and is reset when the kind
        /// of optimizer changes. With `opt`'s `clip_norm`, `grads` are
        /// first scaled to that global norm (and keep the scaled values).
        pub fn apply_gradients(&mut self, opt: &#rt::nn::Optimizer) -> Result<(), #rt::Error> {
            let k = self.opt.reset_for(opt, Self::PARAMS);
            let step = self.step.max(1);
            self.weights_changed();
            let grads = self.grads.get_or_insert_with(#params_ty::zeros);
            Self::apply_gradients_impl(&mut self.params, grads, &mut self.opt.values, k, step, opt, false)
        }

        /// `backward` and `apply_gradients`, with the SGD step fused into
        /// the dense weight gradients where `opt` allows
        /// (`Optimizer::fusable_sgd`): those gradients are never
        /// stored, which saves a pass over them and their memory.
        fn backward_and_update(&mut self, #tp: #tty, opt: &#rt::nn::Optimizer) -> Result<f32, #rt::Error> {
            #fused_binding
            let k = self.opt.reset_for(opt, Self::PARAMS);
            self.weights_changed();
            let loss = #backward_with_call;
            let step = self.step.max(1);
            let grads = self.grads.get_or_insert_with(#params_ty::zeros);
            Self::apply_gradients_impl(&mut self.params, grads, &mut self.opt.values, k, step, opt, #fused_flag)?;
            Ok(loss)
        }

        /// The gradient of each learnable parameter after the last
        /// `backward` (or `train_step`, less the fused ones); `None`
        /// before the first.
        pub fn grads(&self) -> Option<&#params_ty> {
            self.grads.as_ref()
        }

        /// How many samples of the last training batch (`train_step` or
        /// `backward`) had their largest output at their label; 0 for a
        /// loss on target values.
        pub fn last_correct(&self) -> u64 {
            self.correct
        }

        /// The optimizer's state (momentum or moments, per learnable
        /// parameter), its kind tag and the step count, for checkpoints
        /// that resume training exactly.
        pub fn optimizer_state(&self) -> (&[f32], u8, u64) {
            (&self.opt.values, self.opt.kind, self.step)
        }

        /// Restores what [`Self::optimizer_state`] returned.
        pub fn set_optimizer_state(&mut self, state: &[f32], kind: u8, step: u64) -> Result<(), #rt::Error> {
            self.opt.restore(state, kind, Self::PARAMS)?;
            self.step = step;
            Ok(())
        }

    }
}

/// `train_step` on sample arrays and on ndarray views.
fn step_methods(m: &Module<'_>, t: &Targets) -> TokenStream {
    let (s, rt) = (m.schedule(), m.rt);
    let (tp, tty, tflat) = (&t.param, &t.ty, &t.flat);
    let (samples, args, flattened) = (m.sample_params(), m.args(), m.flattened());
    let shard_doc = s.shards.then(|| {
        quote! {
            ///
            /// On a pool of several threads, a batch of at least 8 samples
            /// per thread is split between the threads, each running the
            /// whole step on its share; `grads` then holds every gradient
            /// of the batch, and nothing is fused.
        }
    });
    let try_sharded = |inputs: Vec<TokenStream>| {
        s.shards.then(|| {
            quote! {
                if let Some(loss) = self.train_step_sharded(#(#inputs,)* #tflat, opt)? {
                    return Ok(loss);
                }
            }
        })
    };
    let try_sharded_nested = try_sharded(flattened.clone());
    let try_sharded_flat = try_sharded(args.iter().map(|a| quote!(#a)).collect());
    let (view_generics, view_params, checks) = m.view_inputs();
    let flat_views = m.args().into_iter().map(|arg| quote!(let #arg = #rt::view::flat(&#arg);));
    quote! {
        /// One step of training: forward, loss, backward and update.
        /// Returns the mean loss of the batch.
        ///
        /// With SGD (plain or heavy-ball momentum, not Nesterov, no
        /// clipping), the step of a dense layer's weights may be fused
        /// into their gradient, which is then never stored: `grads` does
        /// not hold those tensors' gradients after this call. [`Self::forward_train`],
        /// [`Self::backward`] and [`Self::apply_gradients`] take the same
        /// step with every gradient kept.
        #shard_doc
        pub fn train_step(&mut self, #(#samples,)* #tp: #tty, opt: &#rt::nn::Optimizer) -> Result<f32, #rt::Error> {
            // The pool's other thread stays awake for the whole step.
            #rt::nn::awake(move || {
                #try_sharded_nested
                self.forward_train(#(#args),*)?;
                self.backward_and_update(#tp, opt)
            })
        }

        /// [`Self::train_step`] on ndarray views of shape `[n, INPUT...]`
        /// in any memory layout (one that is not row-major and
        /// contiguous is copied first).
        pub fn train_step_view #view_generics (&mut self, #(#view_params,)* #tp: #tty, opt: &#rt::nn::Optimizer) -> Result<f32, #rt::Error> {
            #(#checks)*
            #(#flat_views)*
            #rt::nn::awake(move || {
                #try_sharded_flat
                self.forward_train_flat(#(#args),*)?;
                self.backward_and_update(#tp, opt)
            })
        }

    }
}

/// The training forward pass and the loss-and-backward pass.
fn passes(m: &Module<'_>, t: &Targets) -> TokenStream {
    let (p, s, rt, params_ty) = (m.p(), m.schedule(), m.rt, &m.params_ty);
    let Some(loss) = &p.loss else { return quote!() };
    let (fwd_pass, fwd_destructure) = destructure(&s.forward_uses);
    let forward = m.printer.steps(Sequence::TrainForward);
    let forward_params = if s.forward_uses.params_mut {
        quote!(params: &mut #params_ty)
    } else if s.forward_uses.params {
        quote!(params: &#params_ty)
    } else {
        quote!(_params: &#params_ty)
    };
    let (bwd_pass, bwd_destructure) = destructure(&s.backward_uses);
    let backward = m.printer.steps(Sequence::Backward);
    let fused = !s.fused_sgd.is_empty();
    let (params_decl, fused_decl) = if fused {
        (
            quote!(mut params: #rt::pass::ParamsRef<'_, #params_ty>),
            quote!(mut fused: Option<#rt::pass::FusedSgd<'_>>,),
        )
    } else if s.backward_uses.params {
        (quote!(params: &#params_ty), quote!())
    } else {
        (quote!(_params: &#params_ty), quote!())
    };
    // Learned tensors' gradients are handed over by name even where no
    // step writes them (a frozen layer's).
    let hands_over = p.params.iter().any(|q| q.learnable);
    let grads_decl =
        if s.backward_uses.grads || hands_over { quote!(grads) } else { quote!(_grads) };
    let len = p.tensor(loss.input).per_sample();
    let (loss_in, loss_grad, len_lit) =
        (lit(s.train.offset(loss.input)), lit(s.train.offset(loss.grad)), lit(len));
    let (use_forward_rt, use_rt) = (use_runtime(m, &p.train_forward), use_runtime(m, &p.backward));
    let loss_call = loss_call(&loss.kind, rt, &len_lit);
    // Classification losses count the correct predictions while the logits
    // are at hand; the backward pass reuses their memory.
    let loss_value = if loss.kind.takes_labels() {
        quote! {
            let loss = #loss_call;
            #bwd_pass.correct += #rt::nn::count_correct(n, #len_lit, logits, targets);
            loss
        }
    } else {
        loss_call
    };
    let flat_ty = &t.flat_ty;
    quote! {
        /// The training forward pass's kernels over the inputs in the arena.
        fn train_forward_pass(#fwd_pass: &mut #rt::pass::Pass<'_>, #forward_params) -> Result<(), #rt::Error> {
            #use_forward_rt
            #fwd_destructure
            #forward
            Ok(())
        }

        /// The loss of the training forward pass's outputs against
        /// `targets`, then the backward pass's kernels.
        fn backward_pass(#bwd_pass: &mut #rt::pass::Pass<'_>, #params_decl, #grads_decl: &mut #params_ty, targets: #flat_ty, #fused_decl) -> Result<f32, #rt::Error> {
            #use_rt
            #bwd_destructure
            let loss = {
                let ([logits], [d]) = arena.split([(#loss_in, #len_lit)], [(#loss_grad, #len_lit)])?;
                #loss_value
            };
            pass.profiler.loss();
            #backward
            Ok(loss)
        }
    }
}

/// The loss kernel's call on `logits` (the scored tensor), `targets` and
/// its gradient `d`, with the loss's options as literals.
fn loss_call(kind: &LossKind, rt: &syn::Path, len: &proc_macro2::Literal) -> TokenStream {
    let list = |values: &Option<Vec<f64>>| match values {
        Some(v) => {
            let v = v.iter().map(|&x| x as f32);
            quote!(Some(&[#(#v),*]))
        }
        None => quote!(None),
    };
    match kind {
        LossKind::CrossEntropy { label_smoothing, weight }
            if *label_smoothing == 0.0 && weight.is_none() =>
        {
            quote!(#rt::nn::cross_entropy(n, #len, logits, targets, d)?)
        }
        LossKind::CrossEntropy { label_smoothing, weight } => {
            let (eps, weight) = (*label_smoothing as f32, list(weight));
            quote!(#rt::nn::cross_entropy_with(n, #len, logits, targets, #eps, #weight, d)?)
        }
        LossKind::Mse => quote!(#rt::nn::mse(n, #len, logits, targets, d)?),
        LossKind::BceWithLogits { pos_weight } => {
            let pos_weight = list(pos_weight);
            quote!(#rt::nn::bce_with_logits(n, #len, logits, targets, #pos_weight, d)?)
        }
        LossKind::SmoothL1 { beta } => {
            let beta = *beta as f32;
            quote!(#rt::nn::smooth_l1(n, #len, logits, targets, #beta, d)?)
        }
        LossKind::Huber { delta } => {
            let delta = *delta as f32;
            quote!(#rt::nn::huber(n, #len, logits, targets, #delta, d)?)
        }
    }
}

/// One optimizer update per learnable tensor; the ones a fused SGD step
/// already took are skipped when `fused`.
fn apply_gradients_impl(m: &Module<'_>) -> TokenStream {
    let (p, s, rt, params_ty) = (m.p(), m.schedule(), m.rt, &m.params_ty);
    // A frozen layer's tensors take no step, and their gradients (none,
    // or batch norm's by-products) are no part of the clipped norm.
    let stepped =
        || p.params.iter().enumerate().filter(|(_, q)| q.learnable && !q.multipliers.frozen());
    let updates: Vec<TokenStream> = stepped()
        .map(|(i, q)| {
            let o = p.learnable_offset(ParamId(i));
            let f = field(&q.name);
            let (offset, len) = (lit(o), lit(q.len()));
            let update = if q.multipliers == crate::ir::Multipliers::ONE {
                quote!(update!(#f, #offset, #len, opt);)
            } else {
                let (lr, decay) = (q.multipliers.lr, q.multipliers.decay);
                quote!(update!(#f, #offset, #len, &opt.scaled(#lr, #decay));)
            };
            if s.fused_sgd.contains(&ParamId(i)) {
                quote!(if !fused { #update })
            } else {
                update
            }
        })
        .collect();
    let fused = if s.fused_sgd.is_empty() { quote!(_fused) } else { quote!(fused) };
    if updates.is_empty() {
        return quote! {
            /// There is nothing to update: the network learns no parameter.
            fn apply_gradients_impl(_params: &mut #params_ty, _grads: &mut #params_ty, _opt_state: &mut [f32], _k: usize, _step: u64, _opt: &#rt::nn::Optimizer, _fused: bool) -> Result<(), #rt::Error> {
                Ok(())
            }
        };
    }
    let learnable_grads = stepped().map(|(_, q)| {
        let f = field(&q.name);
        quote!(&mut grads.#f[..])
    });
    quote! {
        /// One optimizer update of every learnable tensor, from its
        /// gradient (clipped first to `opt`'s global norm, if it has one)
        /// and its slice of the optimizer state.
        #[allow(clippy::too_many_arguments)]
        fn apply_gradients_impl(params: &mut #params_ty, grads: &mut #params_ty, opt_state: &mut [f32], k: usize, step: u64, opt: &#rt::nn::Optimizer, #fused: bool) -> Result<(), #rt::Error> {
            if let Some(max_norm) = opt.clip_norm() {
                #rt::optim::clip_grad_norm(&mut [#(#learnable_grads),*], max_norm);
            }
            // A tensor's state: `k` values for each of its learnable values.
            macro_rules! update {
                ($tensor:ident, $offset:expr, $len:expr, $opt:expr) => {
                    $opt.update(step, &mut params.$tensor[..], &grads.$tensor[..], &mut opt_state[$offset * k..($offset + $len) * k])?
                };
            }
            #(#updates)*
            Ok(())
        }
    }
}
