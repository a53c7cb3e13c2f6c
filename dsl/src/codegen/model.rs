//! The generated model struct: its buffers, constants, constructor,
//! accessors, and safetensors save and load.

use super::names::lit;
use super::steps::{geometry_const_value, geometry_type};
use super::Module;
use crate::ir::{Decay, Graph, Optimizer, Schedule};
use crate::program::{Geometry, Init};
use proc_macro2::TokenStream;
use proc_macro2::{Ident, Literal, Span};
use quote::quote;

pub fn model(m: &Module<'_>, g: &Graph, source_name: &str) -> TokenStream {
    let (p, s, rt, name, params_ty) = (m.p(), m.schedule(), m.rt, &m.name, &m.params_ty);
    let (shard_field, opt_fields) = (
        s.shards.then(|| {
            quote! {
                /// The gradients of a data-parallel step's shards; the
                /// first is `grads`'s storage during the step.
                shard_grads: Vec<#params_ty>,
            }
        }),
        // Only a network with a loss trains, and keeps gradients and an
        // optimizer's state.
        p.loss.is_some().then(|| {
            quote! {
                /// The gradient of each learnable parameter, allocated by
                /// the first backward pass.
                grads: Option<#params_ty>,
                opt: #rt::pass::OptimizerState,
            }
        }),
    );
    let batch_field = p.loss.is_some().then(|| {
        quote! {
            /// The batch `backward` needs; 0 once used or overwritten.
            batch: usize,
            /// The last training batch's correct predictions (class-label
            /// losses; 0 for the others).
            correct: u64,
        }
    });
    let doc = format!(
        " The network `{}` from `{}`: {} parameters, {} multiply-accumulates per sample.",
        p.name,
        source_name,
        p.learnable_count(),
        g.total_macs()
    );
    let (consts, constructor, accessors, io) = (consts(m, g), constructor(m), accessors(m), io(m));
    quote! {
        #[doc = #doc]
        #[derive(Debug)]
        pub struct #name {
            /// The parameters and buffers: read them with `params`, change
            /// them with `params_mut`.
            params: #params_ty,
            /// The activations, argmax indices and statistics of a
            /// training batch, allocated by the first training step.
            memory: #rt::pass::Memory,
            #opt_fields
            #batch_field
            /// Each conv's weights prepared for inference (packed or
            /// Winograd-transformed) by the first `forward` that needs them,
            /// cleared whenever `params` may change.
            forward_caches: Vec<#rt::conv::ForwardCache>,
            step: u64,
            seed: u64,
            /// The index in the whole batch of the first sample a training
            /// pass sees: not 0 on a data-parallel rank.
            first_sample: u64,
            #shard_field
        }

        #[allow(dead_code)]
        impl #name {
            #consts
            #constructor
            #accessors
            #io
        }
    }
}

/// The model's constants: shapes, sizes, costs, and each layer's kernel shape.
fn consts(m: &Module<'_>, g: &Graph) -> TokenStream {
    let (p, s, rt) = (m.p(), m.schedule(), m.rt);
    let first = &m.inputs[0];
    let input_shape = p.tensor(first.tensor).shape.iter().map(|&d| lit(d));
    let output_shape = p.tensor(p.output).shape.iter().map(|&d| lit(d));
    let (in_rank, out_rank) =
        (lit(p.tensor(first.tensor).shape.len()), lit(p.tensor(p.output).shape.len()));
    let (in_len, out_len) = (lit(first.len), lit(m.out_len));
    let input_count = lit(m.inputs.len());
    let input_lens = m.inputs.iter().map(|i| lit(i.len));
    let learnable = lit(p.learnable_count());
    let (macs, flops) = (g.total_macs(), g.total_flops());
    // Layer names are identifiers: spaces separate them.
    let layers: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    let layers = layers.join(" ");
    let unplanned = lit(p.tensors.iter().map(|t| t.per_sample() * 4).sum());
    let (train_bytes, infer_bytes) = (lit(s.train.size * 4), lit(s.infer.size * 4));
    let input_doc = if m.inputs.len() == 1 {
        " Per-sample shape of the input.".to_string()
    } else {
        format!(" Per-sample shape of the first input, `{}`.", first.name)
    };
    let shape_consts = s.shapes.iter().map(|shape| {
        let ty = geometry_type(rt, &shape.geometry);
        let name = Ident::new(&shape.name, Span::call_site());
        let (value, words) = geometry_const_value(rt, &shape.geometry);
        let doc = format!(" `{}`: {words}.", g.node(shape.node).name);
        quote!(#[doc = #doc] const #name: #ty = #value;)
    });
    quote! {
        #[doc = #input_doc]
        pub const INPUT: [usize; #in_rank] = [#(#input_shape),*];
        /// Per-sample shape of the output.
        pub const OUTPUT: [usize; #out_rank] = [#(#output_shape),*];
        pub const INPUT_LEN: usize = #in_len;
        /// Values per sample of each input, in declaration order.
        pub const INPUT_LENS: [usize; #input_count] = [#(#input_lens),*];
        pub const OUTPUT_LEN: usize = #out_len;
        /// Learnable parameters.
        pub const PARAMS: usize = #learnable;
        /// Forward multiply-accumulates per sample.
        pub const MACS_PER_SAMPLE: u64 = #macs;
        /// Forward floating-point operations per sample.
        pub const FLOPS_PER_SAMPLE: u64 = #flops;
        /// Every layer (node) of the `.net` file in order, separated by
        /// spaces: the names of per-layer timing's rows.
        pub const LAYERS: &str = #layers;
        /// Arena bytes per sample of the planned training pass.
        pub const TRAIN_ARENA_BYTES_PER_SAMPLE: usize = #train_bytes;
        /// Arena bytes per sample of the planned inference pass.
        pub const INFER_ARENA_BYTES_PER_SAMPLE: usize = #infer_bytes;
        /// Bytes per sample of all tensors without a memory plan.
        pub const UNPLANNED_BYTES_PER_SAMPLE: usize = #unplanned;
        /// The batch capacity of [`Self::new`].
        pub const DEFAULT_CAPACITY: usize = 64;
        #(#shape_consts)*
    }
}

/// `new` and `with_capacity`: the parameters initialised; the training
/// buffers wait for the first training step.
fn constructor(m: &Module<'_>) -> TokenStream {
    let (p, s, rt, params_ty) = (m.p(), m.schedule(), m.rt, &m.params_ty);
    let stats_len = lit(p.stat_slots.iter().map(|c| 2 * c).sum());
    let caches = lit(s.caches.iter().flatten().count());
    let (arena, argmax) = (lit(s.arena_per_sample), lit(s.argmax_per_sample));
    let count = lit(p.params.len());
    let starts = p.params.iter().map(|q| match q.init {
        Init::UniformFanIn { fan_in } => {
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            quote!(#rt::init::Start::Uniform(#bound))
        }
        Init::Ones => quote!(#rt::init::Start::Fill(1.0)),
        Init::Zeros => quote!(#rt::init::Start::Fill(0.0)),
        Init::Constant(v) => {
            let v = Literal::f32_suffixed(v as f32);
            quote!(#rt::init::Start::Fill(#v))
        }
    });
    let shard_init = s.shards.then(|| quote!(shard_grads: Vec::new(),));
    let opt_init = p.loss.is_some().then(
        || quote!(grads: None, opt: #rt::pass::OptimizerState::default(), batch: 0, correct: 0,),
    );
    let reserve = p.loss.is_some().then(|| reserve_training(m));
    quote! {
        /// A model with PyTorch's default initialisation, reproducible
        /// from `seed`, that trains on batches of up to
        /// [`Self::DEFAULT_CAPACITY`] samples.
        pub fn new(seed: u64) -> Self {
            Self::with_capacity(seed, Self::DEFAULT_CAPACITY)
        }

        /// How each tensor starts, as PyTorch initialises its layer, in the
        /// order of the parameters' `TENSORS`.
        const STARTS: [#rt::init::Start; #count] = [#(#starts),*];

        /// A model that trains on batches of up to `capacity` samples.
        /// It holds only its parameters until the first training step,
        /// which allocates the gradients, the optimizer's state and the
        /// training buffers for `capacity` samples; inference never does.
        pub fn with_capacity(seed: u64, capacity: usize) -> Self {
            let mut params = #params_ty::zeros();
            // One RNG stream per tensor, so that tensors are independent.
            for (stream, (values, start)) in params.tensors_mut().into_iter().zip(Self::STARTS).enumerate() {
                start.apply(values, seed, stream as u64);
            }
            Self::from_params(params, seed, capacity)
        }

        /// A model of these parameters, seeded with `seed` (for its
        /// dropout masks), that trains on batches of up to `capacity`.
        fn from_params(params: #params_ty, seed: u64, capacity: usize) -> Self {
            Self {
                params,
                memory: #rt::pass::Memory::new(capacity, #arena, #argmax, #stats_len),
                #opt_init
                forward_caches: (0..#caches).map(|_| #rt::conv::ForwardCache::new()).collect(),
                step: 0,
                seed,
                first_sample: 0,
                #shard_init
            }
        }

        #reserve
    }
}

/// `reserve_training`: the training buffers, and every pool thread's conv
/// scratch, for the model's capacity.
fn reserve_training(m: &Module<'_>) -> TokenStream {
    let (s, rt) = (m.schedule(), m.rt);
    // A transposed conv runs on the passes of its conv, whose scratch it
    // reserves.
    let convs: Vec<TokenStream> = s.shapes.iter().filter_map(|shape| {
        let c = Ident::new(&shape.name, Span::call_site());
        match shape.geometry {
            Geometry::Conv { .. } => Some(quote!(&#rt::conv::Conv2d { n: capacity, ..Self::#c })),
            Geometry::ConvTranspose { .. } => Some(
                quote!(&#rt::conv_transpose::ConvTranspose2d { n: capacity, ..Self::#c }.conv()),
            ),
            Geometry::Pool { .. }
            | Geometry::AdaptivePool { .. }
            | Geometry::Upsample { .. }
            | Geometry::Dense { .. }
            | Geometry::Lrn { .. }
            | Geometry::BatchNorm { .. }
            | Geometry::LayerNorm { .. }
            | Geometry::GroupNorm { .. }
            | Geometry::Permute { .. }
            | Geometry::ChannelScale { .. } => None,
        }
    }).collect();
    let capacity = (!convs.is_empty()).then(|| quote!(let capacity = self.memory.capacity;));
    quote! {
        /// Allocates the training buffers and sizes every pool thread's
        /// conv scratch for the capacity, once, so that training steps
        /// allocate nothing after the first.
        fn reserve_training(&mut self) {
            if self.memory.allocate() {
                #capacity
                #rt::nn::reserve_scratch(&[#(#convs),*]);
            }
        }
    }
}

/// Reading and changing the parameters, and the model's settings.
fn accessors(m: &Module<'_>) -> TokenStream {
    let (p, rt, params_ty) = (m.p(), m.rt, &m.params_ty);
    let shards =
        m.schedule().shards.then(|| quote!(+ self.shard_grads.iter().map(tensors).sum::<usize>()));
    let usage = match p.loss {
        Some(_) => quote! {
            grads: self.grads.as_ref().map_or(0, tensors),
            optimizer: 4 * self.opt.values.len(),
            training: self.memory.allocated_bytes() #shards,
        },
        None => quote!(grads: 0, optimizer: 0, training: 0,),
    };
    let default_opt = default_optimizer(p.optimizer.as_ref(), rt);
    let default_schedule = default_schedule(m.printer.g.schedule.as_ref(), rt);
    quote! {
        /// The parameters and buffers.
        pub fn params(&self) -> &#params_ty {
            &self.params
        }

        /// The parameters and buffers, to change: the next `forward`
        /// prepares the conv weights it keeps for inference again.
        pub fn params_mut(&mut self) -> &mut #params_ty {
            self.weights_changed();
            &mut self.params
        }

        /// Whether inference keeps each conv's weights in the form its
        /// forward pass takes, prepared by the first call that needs it
        /// (the default). Off, the model holds nothing beyond its
        /// parameters, and inference takes the least memory: each call
        /// packs the weights again, which is most of a small conv's time
        /// at batch 1, and runs im2col where Winograd's transformed
        /// weights would be larger than the weights. The outputs agree to
        /// rounding.
        pub fn keep_prepared_weights(&mut self, keep: bool) {
            for cache in &mut self.forward_caches {
                cache.keep(keep);
            }
        }

        /// Forgets every form of the weights made from them, since they
        /// may be about to change.
        fn weights_changed(&mut self) {
            for cache in &mut self.forward_caches {
                cache.invalidate();
            }
        }

        /// The largest batch this model trains on (inference takes any).
        pub fn capacity(&self) -> usize {
            self.memory.capacity
        }

        /// The bytes the model holds, by purpose: after inference alone,
        /// only the parameters and the prepared conv weights.
        pub fn memory_usage(&self) -> #rt::pass::MemoryUsage {
            let tensors = |p: &#params_ty| p.tensors().iter().map(|t| 4 * t.len()).sum::<usize>();
            #rt::pass::MemoryUsage {
                params: tensors(&self.params),
                prepared: self.forward_caches.iter().map(#rt::conv::ForwardCache::bytes).sum(),
                #usage
            }
        }

        /// The seed the model was made with, which keys its dropout
        /// masks (with the training step).
        pub fn seed(&self) -> u64 {
            self.seed
        }

        /// Numbers the samples of the coming training passes from `first`
        /// in the whole batch, which keys their dropout masks: a
        /// data-parallel rank that trains on samples `first..` of each
        /// batch draws the masks a whole-batch step would draw for them.
        pub fn set_first_sample(&mut self, first: u64) {
            self.first_sample = first;
        }

        /// What keys the dropout masks of the coming training pass.
        fn mask_key(&self) -> #rt::dropout::MaskKey {
            #rt::dropout::MaskKey { seed: self.seed, step: self.step, first_sample: self.first_sample }
        }

        /// Training steps taken so far.
        pub fn steps(&self) -> u64 {
            self.step
        }

        /// The optimizer of the `.net` file, if it names one.
        pub fn default_optimizer() -> Option<#rt::nn::Optimizer> {
            #default_opt
        }

        /// The learning-rate schedule of the `.net` file, if it names one.
        pub fn default_schedule() -> Option<#rt::schedule::Schedule> {
            #default_schedule
        }
    }
}

/// `save`, the ways to load, and the constructors from weights, through
/// the parameters' table of tensors.
fn io(m: &Module<'_>) -> TokenStream {
    let (rt, params_ty, network) = (m.rt, &m.params_ty, &m.p().name);
    let w = quote!(#rt::weights);
    quote! {
        /// Saves the parameters and buffers to a safetensors file,
        /// atomically (a crash leaves the old file or the new one), with
        /// each batch norm's `num_batches_tracked` (the training steps
        /// taken), as PyTorch's `state_dict` has them.
        pub fn save(&self, path: impl AsRef<::std::path::Path>) -> Result<(), #rt::Error> {
            let tensors: Vec<(String, Vec<usize>, &[f32])> = #params_ty::TENSORS
                .iter()
                .zip(self.params.tensors())
                .map(|((name, shape), values)| (name.to_string(), shape.to_vec(), values))
                .collect();
            #rt::weights::save_model(path.as_ref(), &tensors, self.step, #network)
        }

        /// A model of the weights in a safetensors file (saved by
        /// [`Self::save`], or a PyTorch `state_dict` with the same names),
        /// loaded strictly. It holds only its parameters until it trains.
        pub fn from_file(path: impl AsRef<::std::path::Path>) -> Result<Self, #rt::Error> {
            Self::from_weights(&mut #w::WeightsFile::open(path.as_ref())?)
        }

        /// [`Self::from_file`] on the bytes of a safetensors file, such as
        /// weights embedded with `include_bytes!`.
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, #rt::Error> {
            Self::from_weights(&mut #w::WeightsFile::from_bytes(bytes.into(), "weights bytes")?)
        }

        fn from_weights(file: &mut #w::WeightsFile) -> Result<Self, #rt::Error> {
            let mut params = #params_ty::zeros();
            Self::load_params(&mut params, file, &#w::LoadOptions::strict())?;
            Ok(Self::from_params(params, 0, Self::DEFAULT_CAPACITY))
        }

        /// Loads parameters and buffers saved by [`Self::save`] or from a
        /// PyTorch `state_dict` with the same names, strictly: every
        /// tensor on both sides, with the same shapes. On any error the
        /// model is unchanged.
        pub fn load(&mut self, path: impl AsRef<::std::path::Path>) -> Result<(), #rt::Error> {
            self.load_with(path, &#w::LoadOptions::strict()).map(drop)
        }

        /// [`Self::load`] as `options` say (non-strict, remapped names,
        /// skipping tensors of another shape, as when fine-tuning a new
        /// head); returns what matched. On any error the model is
        /// unchanged.
        pub fn load_with(&mut self, path: impl AsRef<::std::path::Path>, options: &#w::LoadOptions<'_>) -> Result<#w::LoadReport, #rt::Error> {
            self.load_file(&mut #w::WeightsFile::open(path.as_ref())?, options)
        }

        /// [`Self::load`] from the bytes of a safetensors file.
        pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<(), #rt::Error> {
            self.load_bytes_with(bytes, &#w::LoadOptions::strict()).map(drop)
        }

        /// [`Self::load_with`] from the bytes of a safetensors file.
        pub fn load_bytes_with(&mut self, bytes: &[u8], options: &#w::LoadOptions<'_>) -> Result<#w::LoadReport, #rt::Error> {
            self.load_file(&mut #w::WeightsFile::from_bytes(bytes.into(), "weights bytes")?, options)
        }

        /// Loads the parameters and buffers from an open weights file that
        /// may hold more (a checkpoint's optimizer state); unchanged on an
        /// error.
        pub fn load_from(&mut self, file: &mut #w::WeightsFile) -> Result<(), #rt::Error> {
            let options = #w::LoadOptions { unexpected_ok: true, ..#w::LoadOptions::strict() };
            self.load_file(file, &options).map(drop)
        }

        /// Loads into a copy of the parameters, which replaces them only
        /// if the whole load succeeds.
        fn load_file(&mut self, file: &mut #w::WeightsFile, options: &#w::LoadOptions<'_>) -> Result<#w::LoadReport, #rt::Error> {
            let mut loaded = self.params.clone();
            let report = Self::load_params(&mut loaded, file, options)?;
            self.weights_changed();
            self.params = loaded;
            Ok(report)
        }

        fn load_params(params: &mut #params_ty, file: &mut #w::WeightsFile, options: &#w::LoadOptions<'_>) -> Result<#w::LoadReport, #rt::Error> {
            let mut tensors: Vec<(&str, &[usize], &mut [f32])> = #params_ty::TENSORS
                .iter()
                .zip(params.tensors_mut())
                .map(|(&(name, shape), values)| (name, shape, values))
                .collect();
            file.load(&mut tensors, options)
        }
    }
}

fn default_schedule(schedule: Option<&Schedule>, rt: &syn::Path) -> TokenStream {
    let Some(Schedule { decay, warmup }) = schedule else { return quote!(None) };
    let decay = match decay {
        Decay::Constant => quote!(Constant),
        Decay::Step { every, gamma } => quote!(Step { every: #every, gamma: #gamma }),
        Decay::MultiStep { milestones, gamma } => {
            quote!(MultiStep { milestones: vec![#(#milestones),*], gamma: #gamma })
        }
        Decay::Cosine { min_lr } => quote!(Cosine { min_lr: #min_lr }),
    };
    quote!(Some(#rt::schedule::Schedule { decay: #rt::schedule::Decay::#decay, warmup: #warmup }))
}

fn default_optimizer(opt: Option<&Optimizer>, rt: &syn::Path) -> TokenStream {
    let clip = |c: &Option<f64>| match c {
        Some(c) => quote!(Some(#c)),
        None => quote!(None),
    };
    match opt {
        None => quote!(None),
        Some(Optimizer::Sgd { lr, momentum, nesterov, weight_decay, clip_norm }) => {
            let clip_norm = clip(clip_norm);
            quote! {
                Some(#rt::nn::Optimizer::Sgd(#rt::optim::Sgd { lr: #lr, momentum: #momentum, nesterov: #nesterov, weight_decay: #weight_decay, clip_norm: #clip_norm }))
            }
        }
        Some(Optimizer::Adam { lr, beta1, beta2, eps, weight_decay, decoupled, clip_norm }) => {
            let kind = if *decoupled { quote!(AdamW) } else { quote!(Adam) };
            let clip_norm = clip(clip_norm);
            quote! {
                Some(#rt::nn::Optimizer::#kind(#rt::optim::#kind { lr: #lr, beta1: #beta1, beta2: #beta2, eps: #eps, weight_decay: #weight_decay, clip_norm: #clip_norm }))
            }
        }
    }
}
