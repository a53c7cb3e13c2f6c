//! One kernel call per program step, printed from the step's arguments:
//! its arena views (named after the `.net` layers), the call with literal
//! shapes, and a comment naming the `.net` line, the layer and the shapes.

use super::names::{field, lit, view_name, COMMENT_MARKER};
use super::schedule::Schedule;
use crate::ir::{Graph, NodeId};
use crate::program::passes::MemoryPlan;
use crate::program::{Access, Act, Arg, Geometry, ParamId, Program, Step, TensorId};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

/// What printing a sequence of steps needs.
pub struct Printer<'a> {
    pub p: &'a Program,
    pub g: &'a Graph,
    pub schedule: &'a Schedule,
    pub source: &'a str,
    pub source_name: &'a str,
    pub rt: &'a syn::Path,
}

/// Which sequence is printed: it decides the memory plan, the caches and
/// the fused SGD steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequence {
    Infer,
    TrainForward,
    Backward,
}

impl Printer<'_> {
    pub fn plan(&self, seq: Sequence) -> &MemoryPlan {
        match seq {
            Sequence::Infer => &self.schedule.infer,
            Sequence::TrainForward | Sequence::Backward => &self.schedule.train,
        }
    }

    /// Every step of a sequence, in order.
    pub fn steps(&self, seq: Sequence) -> TokenStream {
        let steps = match seq {
            Sequence::Infer => &self.p.infer_forward,
            Sequence::TrainForward => &self.p.train_forward,
            Sequence::Backward => &self.p.backward,
        };
        let mut hand_overs = match seq {
            Sequence::Backward => self.hand_overs(steps),
            Sequence::Infer | Sequence::TrainForward => vec![TokenStream::new(); steps.len() + 1],
        };
        let first = std::mem::take(&mut hand_overs[0]);
        let calls = steps.iter().enumerate().map(|(i, s)| {
            let call = self.step(seq, i, s);
            let next = steps.get(i + 1).map(|next| next.node);
            let lap = (next != Some(s.node)).then(|| self.lap(seq, s.node));
            let ready = &hand_overs[i + 1];
            quote!(#call #lap #ready)
        });
        quote!(#first #(#calls)*)
    }

    /// What the backward pass hands to `pass.ready` after each step (at
    /// `i + 1`), and before the first (at 0): each learned tensor's
    /// gradient once the last step that writes it has run, so that a
    /// data-parallel trainer can start summing it while the rest are
    /// computed. A gradient no step writes (a frozen layer's) is final
    /// from the start. Indices count learned tensors in declaration order,
    /// as `Model::gradients_mut` does.
    fn hand_overs(&self, steps: &[Step]) -> Vec<TokenStream> {
        let mut after: Vec<Vec<(usize, ParamId)>> = vec![Vec::new(); steps.len() + 1];
        let learned = (0..self.p.params.len()).filter(|&q| self.p.params[q].learnable);
        for (k, q) in learned.map(ParamId).enumerate() {
            let last = steps.iter().rposition(|s| s.grads().contains(&q)).map_or(0, |i| i + 1);
            after[last].push((k, q));
        }
        let give = |list: &Vec<(usize, ParamId)>| {
            let items = list.iter().map(|&(k, q)| {
                let (k, f) = (lit(k), field(&self.p.params[q.0].name));
                quote!((#k, &grads.#f[..]))
            });
            quote!(pass.ready.give(&[#(#items),*]);)
        };
        after
            .iter()
            .map(|list| if list.is_empty() { TokenStream::new() } else { give(list) })
            .collect()
    }

    /// The mark that ends layer `node`'s steps in a training pass, for
    /// per-layer timing (`runtime::profile`); inference has none.
    fn lap(&self, seq: Sequence, node: NodeId) -> TokenStream {
        let layer = lit(node.0);
        match seq {
            Sequence::Infer => quote!(),
            Sequence::TrainForward => quote!(pass.profiler.forward(#layer);),
            Sequence::Backward => quote!(pass.profiler.backward(#layer);),
        }
    }

    /// Tensor `t`'s per-sample `(offset, length)` in `seq`'s plan.
    pub fn region(&self, seq: Sequence, t: TensorId) -> TokenStream {
        let (offset, len) = (lit(self.plan(seq).offset(t)), lit(self.p.tensor(t).per_sample()));
        quote!((#offset, #len))
    }

    fn step(&self, seq: Sequence, index: usize, s: &Step) -> TokenStream {
        let rt = self.rt;
        // Arena views: each tensor once, reads first, then writes.
        let mut reads: Vec<TensorId> = Vec::new();
        let mut writes: Vec<TensorId> = Vec::new();
        for (t, access) in s.tensors() {
            let list = if access == Access::Read { &mut reads } else { &mut writes };
            if !list.contains(&t) {
                list.push(t);
            }
        }
        let mut views: Vec<(TensorId, Ident)> = Vec::new();
        for &t in reads.iter().chain(&writes) {
            let base = view_name(&self.p.tensor(t).name, self.p.is_input(t));
            let mut name = base.clone();
            let mut k = 2;
            while views.iter().any(|(_, v)| *v == name) {
                name = Ident::new(&format!("{base}_{k}"), Span::call_site());
                k += 1;
            }
            views.push((t, name));
        }
        let view = |t: TensorId| -> TokenStream {
            let v = views.iter().find(|(u, _)| *u == t).map(|(_, v)| v.clone());
            let v = v.unwrap_or_else(|| unreachable!("every tensor of a step has a view"));
            quote!(#v)
        };
        let fused = (seq == Sequence::Backward)
            .then(|| s.grads().into_iter().find(|q| self.schedule.fused_sgd.contains(q)))
            .flatten();
        let args: Vec<TokenStream> =
            s.args.iter().map(|a| self.arg(s.node, index, a, &view)).collect();
        let kernel = Ident::new(s.kernel, Span::call_site());
        let call = match fused {
            None => quote!(#rt::nn::#kernel(#(#args),*)?;),
            Some(q) => {
                // The weight gradient becomes an SGD step in its GEMM when
                // the pass owns the parameters and is asked to take one.
                let f = field(&self.p.param(q).name);
                let (off, len) = (lit(self.p.learnable_offset(q)), lit(self.p.param(q).len()));
                let into_args = s.args.iter().zip(&args).map(|(a, tokens)| {
                    if *a == Arg::Grad(q) {
                        quote!(weight_grad)
                    } else {
                        tokens.clone()
                    }
                });
                let kernel = Ident::new(&format!("{}_into", s.kernel), Span::call_site());
                quote! {
                    let weight_grad = #rt::pass::WeightGrad::new(fused.as_mut(), params.exclusive().map(|p| &mut p.#f[..]), &mut grads.#f[..], (#off, #len));
                    #rt::nn::#kernel(#(#into_args),*)?;
                }
            }
        };
        let comment = self.comment(seq, s);
        if views.is_empty() {
            return quote! { #comment #call };
        }
        let (r_vars, w_vars): (Vec<&Ident>, Vec<&Ident>) = (
            views[..reads.len()].iter().map(|(_, v)| v).collect(),
            views[reads.len()..].iter().map(|(_, v)| v).collect(),
        );
        let rr = reads.iter().map(|&t| self.region(seq, t));
        let wr = writes.iter().map(|&t| self.region(seq, t));
        // No block of its own: each step's views end with its call, and the
        // next step's shadow them.
        quote! {
            #comment
            let ([#(#r_vars),*], [#(#w_vars),*]) = arena.split([#(#rr),*], [#(#wr),*])?;
            #call
        }
    }

    /// One argument of step `index` of its sequence, of layer `node`.
    fn arg(
        &self,
        node: NodeId,
        index: usize,
        a: &Arg,
        view: &impl Fn(TensorId) -> TokenStream,
    ) -> TokenStream {
        let rt = self.rt;
        let p = self.p;
        match a {
            Arg::Batch => quote!(n),
            Arg::Masks => quote!(masks),
            Arg::In(t, _) | Arg::Out(t, _) | Arg::InOut(t, _) => view(*t),
            Arg::Param(q) => {
                let f = field(&p.param(*q).name);
                quote!(&params.#f[..])
            }
            Arg::Buffer(q) => {
                let f = field(&p.param(*q).name);
                quote!(&mut params.#f[..])
            }
            Arg::Grad(q) => {
                let f = field(&p.param(*q).name);
                quote!(&mut grads.#f[..])
            }
            Arg::Argmax { slot, write } => {
                let off = lit(p.argmax_slots[..*slot].iter().sum());
                let len = lit(p.argmax_slots[*slot]);
                if *write {
                    quote!(argmax.get_mut(#off, #len)?)
                } else {
                    quote!(argmax.get(#off, #len)?)
                }
            }
            Arg::Stats { slot, write } => {
                let off: usize = p.stat_slots[..*slot].iter().map(|c| 2 * c).sum();
                let (start, end) = (lit(off), lit(off + 2 * p.stat_slots[*slot]));
                if *write {
                    quote!(&mut stats[#start..#end])
                } else {
                    quote!(&stats[#start..#end])
                }
            }
            Arg::Usize(v) => {
                let v = lit(*v);
                quote!(#v)
            }
            Arg::F32(v) => {
                let v = Literal::f32_suffixed(*v as f32);
                quote!(#v)
            }
            Arg::U16(v) => {
                let v = Literal::u16_suffixed(*v);
                quote!(#v)
            }
            Arg::Act(act) => activation(rt, act),
            Arg::Shape(g) => {
                let name = Ident::new(&self.schedule.shape(node, g).name, Span::call_site());
                quote!(&#rt::pass::batch(Self::#name, n))
            }
            Arg::Parts { parts, write } => {
                let items = parts.iter().map(|&(t, c, _)| {
                    let (v, c) = (view(t), lit(c));
                    quote!((#v, #c))
                });
                if *write {
                    quote!(&mut [#(#items),*])
                } else {
                    quote!(&[#(#items),*])
                }
            }
            Arg::Optional(None) | Arg::ReluMask(None) | Arg::Through(None) => quote!(None),
            Arg::Optional(Some(inner)) => {
                let inner = self.arg(node, index, inner, view);
                quote!(Some(#inner))
            }
            Arg::ReluMask(Some(y)) => {
                let y = view(*y);
                quote!(Some(#y))
            }
            Arg::Through(Some((act, y))) => {
                let (act, y) = (activation(rt, act), view(*y));
                quote!(Some((#act, #y)))
            }
            Arg::Layer(name) => quote!(#name),
            Arg::Cache => {
                let i = self.schedule.caches.get(index).copied().flatten();
                let i = lit(i.unwrap_or_else(|| unreachable!("the schedule numbers every cache")));
                quote!(&forward_caches[#i])
            }
        }
    }

    /// The comment above a step: `file:line  layer = source  [in] -> [out]`.
    fn comment(&self, seq: Sequence, s: &Step) -> TokenStream {
        let node = self.g.node(s.node);
        let line = super::line_of(self.source, node.span.start);
        let inputs: Vec<String> =
            node.inputs.iter().map(|&i| self.g.node(i).shape.to_string()).collect();
        let snippet = self
            .source
            .get(node.span.range())
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut extra = String::new();
        // An activation's own step carries its activation too; only
        // another op's store has one fused.
        if let Some(act) = s.fused_activation().filter(|_| node.op.activation().is_none()) {
            extra = format!("  ({} fused)", act.name);
        }
        for a in &s.args {
            if let Arg::ReluMask(Some(_)) = a {
                extra = "  (relu mask fused)".to_string();
            }
            if let Arg::Through(Some((act, _))) = a {
                extra = format!("  ({} backward fused)", act.name);
            }
        }
        let what = if seq == Sequence::Backward {
            format!("backward of {}", node.name)
        } else {
            node.name.clone()
        };
        let text = format!(
            "{}:{line}  {what} = {snippet}  {} -> {}{extra}",
            self.source_name,
            inputs.join(" + "),
            node.shape
        );
        let marker = Ident::new(COMMENT_MARKER, Span::call_site());
        quote!(#marker!(#text);)
    }
}

fn activation(rt: &syn::Path, a: &Act) -> TokenStream {
    let variant = Ident::new(a.variant, Span::call_site());
    let args: Vec<Literal> =
        a.args.iter().flatten().map(|&v| Literal::f32_suffixed(v as f32)).collect();
    match (a.gated, args.is_empty()) {
        (true, _) => quote!(#rt::gemm::Activation::Gated(#rt::act::Gated::#variant)),
        (false, false) => quote!(#rt::gemm::Activation::#variant(#(#args),*)),
        (false, true) => quote!(#rt::gemm::Activation::#variant),
    }
}

/// The runtime type of a shape.
pub fn geometry_type(rt: &syn::Path, g: &Geometry) -> TokenStream {
    match g {
        Geometry::Conv { .. } => quote!(#rt::conv::Conv2d),
        Geometry::ConvTranspose { .. } => quote!(#rt::conv_transpose::ConvTranspose2d),
        Geometry::Pool { .. } => quote!(#rt::pool::Pool2d),
        Geometry::AdaptivePool { .. } => quote!(#rt::pool::AdaptivePool2d),
        Geometry::Upsample { .. } => quote!(#rt::upsample::Upsample2d),
        Geometry::Dense { .. } => quote!(#rt::dense::Dense),
        Geometry::Lrn { .. } => quote!(#rt::norm::Lrn),
        Geometry::BatchNorm { .. } => quote!(#rt::norm::BatchNorm),
        Geometry::LayerNorm { .. } => quote!(#rt::sample_norm::LayerNorm),
        Geometry::GroupNorm { .. } => quote!(#rt::sample_norm::GroupNorm),
        Geometry::Permute { .. } => quote!(#rt::permute::Permute),
        Geometry::ChannelScale { .. } => quote!(#rt::elementwise::ChannelScale),
    }
}

/// A layer's shape as a constant of batch 0, through the runtime's one-line
/// constructors, with a doc line that says it in words.
pub fn geometry_const_value(rt: &syn::Path, g: &Geometry) -> (TokenStream, String) {
    let f32_lit = |v: f64| Literal::f32_suffixed(v as f32);
    match *g {
        Geometry::Conv { win: w, o, groups } => {
            let d =
                [w.c, w.h, w.w, o, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw, groups].map(lit);
            let words = format!(
                "{}x{}x{} -> {o} channels, kernel {}x{}, stride {}x{}, padding {}x{}, dilation {}x{}, groups {groups}",
                w.c, w.h, w.w, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw
            );
            (quote!(#rt::pass::conv2d([#(#d),*])), words)
        }
        Geometry::ConvTranspose { win: w, o, oph, opw, groups } => {
            let d = [
                w.c, w.h, w.w, o, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, oph, opw, w.dh, w.dw, groups,
            ]
            .map(lit);
            let words = format!(
                "{}x{}x{} -> {o} channels transposed, kernel {}x{}, stride {}x{}, padding {}x{}, output padding {oph}x{opw}, dilation {}x{}, groups {groups}",
                w.c, w.h, w.w, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw
            );
            (quote!(#rt::pass::conv_transpose2d([#(#d),*])), words)
        }
        Geometry::Pool { win: w, ceil_mode, count_include_pad } => {
            let d = [w.c, w.h, w.w, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw].map(lit);
            let mut words = format!(
                "{}x{}x{}, window {}x{}, stride {}x{}, padding {}x{}",
                w.c, w.h, w.w, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw
            );
            if ceil_mode {
                words.push_str(", ceil mode");
            }
            if !count_include_pad {
                words.push_str(", padding not counted");
            }
            // PyTorch's defaults keep the short form, a line in the generated code.
            let shape = if !ceil_mode && count_include_pad {
                quote!(#rt::pass::pool2d([#(#d),*]))
            } else {
                quote!(#rt::pass::pool2d_modes([#(#d),*], #ceil_mode, #count_include_pad))
            };
            (shape, words)
        }
        Geometry::AdaptivePool { c, h, w, oh, ow } => {
            let d = [c, h, w, oh, ow].map(lit);
            let words = format!("{c}x{h}x{w} -> {oh}x{ow} bins");
            (quote!(#rt::pass::adaptive_pool2d([#(#d),*])), words)
        }
        Geometry::Upsample { c, h, w, sh, sw } => {
            let d = [c, h, w, sh, sw].map(lit);
            let words = format!("{c}x{h}x{w}, factor {sh}x{sw}");
            (quote!(#rt::pass::upsample2d([#(#d),*])), words)
        }
        Geometry::Dense { input, output } => {
            let (i, o) = (lit(input), lit(output));
            (quote!(#rt::pass::dense(#i, #o)), format!("{input} -> {output} features"))
        }
        Geometry::Lrn { c, inner, size, alpha, beta, k } => {
            let [c_l, inner_l, size_l] = [c, inner, size].map(lit);
            let [a, b, k_l] = [alpha, beta, k].map(f32_lit);
            let words = format!(
                "{c} channels of {inner}, window {size}, alpha {alpha}, beta {beta}, k {k}"
            );
            (quote!(#rt::pass::lrn(#c_l, #inner_l, #size_l, #a, #b, #k_l)), words)
        }
        Geometry::BatchNorm { c, inner, eps, momentum } => {
            let [c_l, inner_l] = [c, inner].map(lit);
            let [e, m] = [eps, momentum].map(f32_lit);
            let words = format!("{c} channels of {inner}, eps {eps:e}, momentum {momentum}");
            (quote!(#rt::pass::batch_norm(#c_l, #inner_l, #e, #m)), words)
        }
        Geometry::LayerNorm { rows, len, eps } => {
            let ([r, l], e) = ([rows, len].map(lit), f32_lit(eps));
            let words = format!("{rows} rows of {len} values, eps {eps:e}");
            (quote!(#rt::pass::layer_norm(#r, #l, #e)), words)
        }
        Geometry::GroupNorm { c, inner, groups, eps } => {
            let ([c_l, inner_l, g], e) = ([c, inner, groups].map(lit), f32_lit(eps));
            let words = format!("{c} channels of {inner} in {groups} groups, eps {eps:e}");
            (quote!(#rt::pass::group_norm(#c_l, #inner_l, #g, #e)), words)
        }
        Geometry::Permute { rank, dims, perm } => {
            let (r, d, p) = (lit(rank), dims.map(lit), perm.map(lit));
            let words =
                format!("{:?} with its axes in the order {:?}", &dims[..rank], &perm[..rank]);
            (quote!(#rt::pass::permute(#r, [#(#d),*], [#(#p),*])), words)
        }
        Geometry::ChannelScale { c, inner } => {
            let (c_l, inner_l) = (lit(c), lit(inner));
            let words = format!("{c} channels of {inner}, one scale each");
            (quote!(#rt::pass::channel_scale(#c_l, #inner_l)), words)
        }
    }
}

/// `k · var` as tokens, without the `0 ·` and `1 ·` that clippy rejects.
pub fn times(k: usize, var: &str) -> TokenStream {
    let v = Ident::new(var, Span::call_site());
    match k {
        0 => quote!(0),
        1 => quote!(#v),
        k => {
            let k = lit(k);
            quote!(#k * #v)
        }
    }
}
