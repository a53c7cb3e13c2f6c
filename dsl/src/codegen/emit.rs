//! One kernel call per program step: its arena views, its runtime call with
//! literal shapes, and a comment naming the `.net` line, the layer and the
//! shapes.

use super::names::{field, COMMENT_MARKER};
use crate::ir::Graph;
use crate::program::passes::MemoryPlan;
use crate::program::{Act, ParamId, Program, Step, StepKind, TensorId, Window};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

/// What every step's emission needs.
pub struct Ctx<'a> {
    pub p: &'a Program,
    pub g: &'a Graph,
    pub source: &'a str,
    pub source_name: &'a str,
    pub rt: &'a syn::Path,
    /// Dense weights whose gradient step can take a fused SGD step
    /// ([`Program::fusable_weights`]).
    pub fused_weights: Vec<ParamId>,
    /// Conv weights whose forward steps keep them prepared (packed or
    /// Winograd-transformed) across calls, each in `forward_caches[i]`
    /// (inference only: in training the weights change every step).
    pub forward_caches: Vec<ParamId>,
}

/// All steps, in order.
pub fn steps(ctx: &Ctx<'_>, steps: &[Step], plan: &MemoryPlan) -> TokenStream {
    let calls = steps.iter().map(|s| step(ctx, s, plan));
    quote!(#(#calls)*)
}

fn f32_lit(v: f64) -> Literal {
    Literal::f32_suffixed(v as f32)
}

fn act(ctx: &Ctx<'_>, a: Act) -> TokenStream {
    let rt = ctx.rt;
    match a {
        Act::Identity => quote!(#rt::gemm::Activation::Identity),
        Act::Relu => quote!(#rt::gemm::Activation::Relu),
        Act::LeakyRelu(s) => {
            let s = f32_lit(s);
            quote!(#rt::gemm::Activation::LeakyRelu(#s))
        }
        Act::Sigmoid => quote!(#rt::gemm::Activation::Sigmoid),
        Act::Tanh => quote!(#rt::gemm::Activation::Tanh),
    }
}

fn param(ctx: &Ctx<'_>, q: ParamId) -> TokenStream {
    let f = field(&ctx.p.param(q).name);
    quote!(&params.#f[..])
}

fn param_mut(ctx: &Ctx<'_>, q: ParamId) -> TokenStream {
    let f = field(&ctx.p.param(q).name);
    quote!(&mut params.#f[..])
}

fn grad_mut(ctx: &Ctx<'_>, q: ParamId) -> TokenStream {
    let f = field(&ctx.p.param(q).name);
    quote!(&mut grads.#f[..])
}

pub fn conv_shape(ctx: &Ctx<'_>, w: &Window, o: usize, groups: usize) -> TokenStream {
    let rt = ctx.rt;
    let Window { c, h, w: wd, kh, kw, sh, sw, ph, pw, dh, dw } = *w;
    quote!(&#rt::conv::Conv2d { n, c: #c, h: #h, w: #wd, o: #o, kh: #kh, kw: #kw, sh: #sh, sw: #sw, ph: #ph, pw: #pw, dh: #dh, dw: #dw, groups: #groups })
}

fn pool_shape(ctx: &Ctx<'_>, w: &Window) -> TokenStream {
    let rt = ctx.rt;
    let Window { c, h, w: wd, kh, kw, sh, sw, ph, pw, .. } = *w;
    quote!(&#rt::pool::Pool2d { n, c: #c, h: #h, w: #wd, kh: #kh, kw: #kw, sh: #sh, sw: #sw, ph: #ph, pw: #pw })
}

/// The argmax slot `slot`: its per-sample offset and length.
fn argmax_range(ctx: &Ctx<'_>, slot: usize, mutable: bool) -> TokenStream {
    let off: usize = ctx.p.argmax_slots[..slot].iter().sum();
    let len = ctx.p.argmax_slots[slot];
    let range = span_range(off, len);
    if mutable {
        quote!(&mut argmax[#range])
    } else {
        quote!(&argmax[#range])
    }
}

/// The saved statistics of batch-norm slot `slot` (2·C values).
fn stats_range(ctx: &Ctx<'_>, slot: usize, mutable: bool) -> TokenStream {
    let off: usize = ctx.p.stat_slots[..slot].iter().map(|c| 2 * c).sum();
    let len = 2 * ctx.p.stat_slots[slot];
    let end = off + len;
    if mutable {
        quote!(&mut stats[#off..#end])
    } else {
        quote!(&stats[#off..#end])
    }
}

/// `k · var` as tokens, without the `0 ·` and `1 ·` that clippy rejects.
pub fn times(k: usize, var: &str) -> TokenStream {
    let v = Ident::new(var, Span::call_site());
    match k {
        0 => quote!(0),
        1 => quote!(#v),
        k => quote!(#k * #v),
    }
}

/// The half-open range `[off·cap, off·cap + n·len)`.
pub fn span_range(off: usize, len: usize) -> TokenStream {
    let (start, size) = (times(off, "cap"), times(len, "n"));
    if off == 0 {
        quote!(0..#size)
    } else {
        quote!(#start..#start + #size)
    }
}

fn var(prefix: &str, i: usize) -> Ident {
    Ident::new(&format!("{prefix}{i}"), Span::call_site())
}

/// The comment above a step: `file:line  layer = source  [in] -> [out]`.
fn comment(ctx: &Ctx<'_>, s: &Step) -> TokenStream {
    let node = ctx.g.node(s.node);
    let line = super::line_of(ctx.source, node.span.start);
    let inputs: Vec<String> =
        node.inputs.iter().map(|&i| ctx.g.node(i).shape.to_string()).collect();
    let snippet = ctx
        .source
        .get(node.span.range())
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let backward = s.kind.is_backward();
    let extra = match (&s.kind, s.kind.fused_activation()) {
        (_, Some(act)) => format!("  ({} fused)", format!("{act:?}").to_lowercase()),
        (StepKind::ConvBackwardData { mask: Some(_), .. }, _)
        | (StepKind::DenseBackwardData { mask: Some(_), .. }, _) => {
            "  (relu mask fused)".to_string()
        }
        (StepKind::MaxPoolBackward { act: Some((act, _)), .. }, _) => {
            format!("  ({} backward fused)", format!("{act:?}").to_lowercase())
        }
        _ => String::new(),
    };
    let what = if backward { format!("backward of {}", node.name) } else { node.name.clone() };
    let text = format!(
        "{}:{line}  {what} = {snippet}  {} -> {}{extra}",
        ctx.source_name,
        inputs.join(" + "),
        node.shape
    );
    let marker = Ident::new(COMMENT_MARKER, Span::call_site());
    quote!(#marker!(#text);)
}

fn step(ctx: &Ctx<'_>, s: &Step, plan: &MemoryPlan) -> TokenStream {
    let rt = ctx.rt;
    let p = ctx.p;
    // Arena views: reads that the step does not also write, then writes.
    let writes = s.kind.writes();
    let mut reads: Vec<TensorId> =
        s.kind.reads().into_iter().filter(|t| !writes.contains(t)).collect();
    reads.dedup();
    let region = |t: &TensorId| {
        let (start, size) = (times(plan.offset(*t), "cap"), times(p.tensor(*t).per_sample(), "n"));
        quote!((#start, #size))
    };
    let read_regions: Vec<TensorId> = {
        let mut seen = Vec::new();
        for t in &reads {
            if !seen.contains(t) {
                seen.push(*t);
            }
        }
        seen
    };
    let r_vars: Vec<Ident> = (0..read_regions.len()).map(|i| var("r", i)).collect();
    let w_vars: Vec<Ident> = (0..writes.len()).map(|i| var("w", i)).collect();
    let rr = read_regions.iter().map(region);
    let wr = writes.iter().map(region);
    let r = |t: &TensorId| -> TokenStream {
        let i = read_regions
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| unreachable!("read {t:?} has a view"));
        let v = &r_vars[i];
        quote!(#v)
    };
    let w = |t: &TensorId| -> TokenStream {
        let i = writes
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| unreachable!("write {t:?} has a view"));
        let v = &w_vars[i];
        quote!(#v)
    };
    let call = match &s.kind {
        StepKind::Conv { x, y, w: wt, b, act: a, win, o, groups } => {
            let (shape, weight_id) = (conv_shape(ctx, win, *o, *groups), *wt);
            let (wt, b, a) = (param(ctx, *wt), b.map(|b| param(ctx, b)), act(ctx, *a));
            let b = b.map_or(quote!(None), |b| quote!(Some(#b)));
            let (x, y) = (r(x), w(y));
            match ctx.forward_caches.iter().position(|&q| q == weight_id) {
                Some(i) => {
                    quote!(#rt::nn::conv2d_forward_cached(#shape, #x, #wt, #b, #a, #y, &mut forward_caches[#i])?;)
                }
                None => quote!(#rt::nn::conv2d_forward(#shape, #x, #wt, #b, #a, #y)?;),
            }
        }
        StepKind::Dense { x, y, w: wt, b, act: a, input, output } => {
            let (wt, a) = (param(ctx, *wt), act(ctx, *a));
            let b = b.map(|b| param(ctx, b)).map_or(quote!(None), |b| quote!(Some(#b)));
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::dense_forward(&#rt::dense::Dense { n, input: #input, output: #output }, #x, #wt, #b, #a, #y)?;)
        }
        StepKind::MaxPool { x, y, argmax, win } => {
            let (shape, am) = (pool_shape(ctx, win), argmax_range(ctx, *argmax, true));
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::max_pool_forward(#shape, #x, #y, #am)?;)
        }
        StepKind::MaxPoolInfer { x, y, win } => {
            let shape = pool_shape(ctx, win);
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::max_pool_forward_infer(#shape, #x, #y)?;)
        }
        StepKind::AvgPool { x, y, win } => {
            let shape = pool_shape(ctx, win);
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::avg_pool_forward(#shape, #x, #y)?;)
        }
        StepKind::GlobalAvgPool { x, y, c, hw } => {
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::global_avg_pool_forward(n, #c, #hw, #x, #y)?;)
        }
        StepKind::Activation { act: a, x, y } => {
            let a = act(ctx, *a);
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::activation_forward(#a, #x, #y)?;)
        }
        StepKind::Softmax { x, y, c, inner } => {
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::softmax_forward(n, #c, #inner, #x, #y)?;)
        }
        StepKind::Dropout { x, y, p: prob, layer } => {
            let (prob, layer) = (f32_lit(*prob), *layer as u16);
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::dropout_forward(#prob, seed, step, #layer, #x, #y)?;)
        }
        StepKind::Lrn { x, y, scale, c, inner, size, alpha, beta, k } => {
            let (alpha, beta, k) = (f32_lit(*alpha), f32_lit(*beta), f32_lit(*k));
            let (x, y, scale) = (r(x), w(y), w(scale));
            quote! {
                #rt::nn::lrn_forward(&#rt::norm::Lrn { n, c: #c, h: #inner, w: 1, size: #size, alpha: #alpha, beta: #beta, k: #k }, #x, #y, #scale)?;
            }
        }
        StepKind::BatchNormTrain {
            x,
            y,
            act: fused,
            gamma,
            beta,
            mean,
            var,
            slot,
            c,
            inner,
            eps,
            momentum,
        } => {
            let (eps, momentum) = (f32_lit(*eps), f32_lit(*momentum));
            let (g, b, m, v) = (
                param(ctx, *gamma),
                param(ctx, *beta),
                param_mut(ctx, *mean),
                param_mut(ctx, *var),
            );
            let saved = stats_range(ctx, *slot, true);
            let (x, y, act) = (r(x), w(y), act(ctx, *fused));
            quote! {
                #rt::nn::batch_norm_forward_train(&#rt::norm::BatchNorm { n, c: #c, h: #inner, w: 1, eps: #eps, momentum: #momentum }, #act, #x, #g, #b, #m, #v, #saved, #y)?;
            }
        }
        StepKind::BatchNormInfer { x, y, act: fused, gamma, beta, mean, var, c, inner, eps } => {
            let eps = f32_lit(*eps);
            let (g, b, m, v) =
                (param(ctx, *gamma), param(ctx, *beta), param(ctx, *mean), param(ctx, *var));
            let (x, y, act) = (r(x), w(y), act(ctx, *fused));
            quote! {
                #rt::nn::batch_norm_forward_infer(&#rt::norm::BatchNorm { n, c: #c, h: #inner, w: 1, eps: #eps, momentum: 0.1 }, #act, #x, #g, #b, #m, #v, #y)?;
            }
        }
        StepKind::Add { a, b, y, act: fused } => {
            let (a, b, y) = (r(a), r(b), w(y));
            let act = act(ctx, *fused);
            quote!(#rt::nn::add(#a, #b, #act, #y)?;)
        }
        StepKind::AddAssign { acc, x } => {
            let (x, acc) = (r(x), w(acc));
            quote!(#rt::nn::add_assign(#acc, #x)?;)
        }
        StepKind::Copy { x, y } => {
            let (x, y) = (r(x), w(y));
            quote!(#rt::nn::copy(#x, #y)?;)
        }
        StepKind::Concat { parts, y, inner } => {
            let items = parts.iter().map(|(t, c)| {
                let v = r(t);
                quote!((#v, #c))
            });
            let y = w(y);
            quote!(#rt::nn::concat_forward(n, #inner, &[#(#items),*], #y)?;)
        }
        StepKind::ConvBackwardData { dy, w: wt, mask, dx, win, o, groups } => {
            let shape = conv_shape(ctx, win, *o, *groups);
            let wt = param(ctx, *wt);
            let mask = mask.as_ref().map(&r).map_or(quote!(None), |m| quote!(Some(#m)));
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::conv2d_backward_data(#shape, #dy, #wt, #mask, #dx)?;)
        }
        StepKind::ConvBackwardWeights { x, dy, dw, db, win, o, groups } => {
            let shape = conv_shape(ctx, win, *o, *groups);
            let dw = grad_mut(ctx, *dw);
            let db = db.map(|b| grad_mut(ctx, b)).map_or(quote!(None), |b| quote!(Some(#b)));
            let (x, dy) = (r(x), r(dy));
            quote!(#rt::nn::conv2d_backward_weights(#shape, #x, #dy, #dw, #db)?;)
        }
        StepKind::DenseBackwardData { dy, w: wt, mask, dx, input, output } => {
            let wt = param(ctx, *wt);
            let mask = mask.as_ref().map(&r).map_or(quote!(None), |m| quote!(Some(#m)));
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::dense_backward_data(&#rt::dense::Dense { n, input: #input, output: #output }, #dy, #wt, #mask, #dx)?;)
        }
        StepKind::DenseBackwardWeights { x, dy, dw: q, db, input, output } => {
            let shape = quote!(&#rt::dense::Dense { n, input: #input, output: #output });
            let dw = grad_mut(ctx, *q);
            let db = db.map(|b| grad_mut(ctx, b)).map_or(quote!(None), |b| quote!(Some(#b)));
            let (x, dy) = (r(x), r(dy));
            let unfused = quote!(#rt::nn::dense_backward_weights(#shape, #x, #dy, #dw, #db)?);
            if ctx.fused_weights.contains(q) {
                // `fused` and `state_k` (momentum values per parameter) come
                // from `backward_with`; the step's slice of the optimizer
                // state sits at the tensor's learnable offset.
                let (w, start) = (param_mut(ctx, *q), p.learnable_offset(*q));
                let end = times(start + p.param(*q).len(), "state_k");
                let start = times(start, "state_k");
                quote! {
                    match fused {
                        Some(sgd) => #rt::nn::dense_backward_weights_sgd(#shape, #x, #dy, #w, &mut opt_state[#start..#end], #db, sgd)?,
                        None => #unfused,
                    }
                }
            } else {
                quote!(#unfused;)
            }
        }
        StepKind::ActivationBackward { act: a, y, d } => {
            let a = act(ctx, *a);
            let (y, d) = (r(y), w(d));
            quote!(#rt::nn::activation_backward_in_place(#a, #y, #d)?;)
        }
        StepKind::MaxPoolBackward { dy, argmax, dx, win, act: None } => {
            let (shape, am) = (pool_shape(ctx, win), argmax_range(ctx, *argmax, false));
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::max_pool_backward(#shape, #dy, #am, #dx)?;)
        }
        StepKind::MaxPoolBackward { dy, argmax, dx, win, act: Some((a, y)) } => {
            let (shape, am) = (pool_shape(ctx, win), argmax_range(ctx, *argmax, false));
            let a = act(ctx, *a);
            let (dy, y, dx) = (r(dy), r(y), w(dx));
            quote!(#rt::nn::max_pool_backward_through(#shape, #dy, #am, #a, #y, #dx)?;)
        }
        StepKind::AvgPoolBackward { dy, dx, win } => {
            let shape = pool_shape(ctx, win);
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::avg_pool_backward(#shape, #dy, #dx)?;)
        }
        StepKind::GlobalAvgPoolBackward { dy, dx, c, hw } => {
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::global_avg_pool_backward(n, #c, #hw, #dy, #dx)?;)
        }
        StepKind::SoftmaxBackward { y, dy, dx, c, inner } => {
            let (y, dy, dx) = (r(y), r(dy), w(dx));
            quote!(#rt::nn::softmax_backward(n, #c, #inner, #y, #dy, #dx)?;)
        }
        StepKind::DropoutBackward { dy, dx, p: prob, layer } => {
            let (prob, layer) = (f32_lit(*prob), *layer as u16);
            let (dy, dx) = (r(dy), w(dx));
            quote!(#rt::nn::dropout_backward(#prob, seed, step, #layer, #dy, #dx)?;)
        }
        StepKind::LrnBackward { x, y, scale, dy, dx, c, inner, size, alpha, beta, k } => {
            let (alpha, beta, k) = (f32_lit(*alpha), f32_lit(*beta), f32_lit(*k));
            let (x, y, scale, dy, dx) = (r(x), r(y), r(scale), r(dy), w(dx));
            quote! {
                #rt::nn::lrn_backward(&#rt::norm::Lrn { n, c: #c, h: #inner, w: 1, size: #size, alpha: #alpha, beta: #beta, k: #k }, #x, #y, #scale, #dy, #dx)?;
            }
        }
        StepKind::BatchNormBackward { x, gamma, slot, dy, dx, dgamma, dbeta, c, inner } => {
            let g = param(ctx, *gamma);
            let (dg, db) = (grad_mut(ctx, *dgamma), grad_mut(ctx, *dbeta));
            let saved = stats_range(ctx, *slot, false);
            let (x, dy, dx) = (r(x), r(dy), w(dx));
            quote! {
                #rt::nn::batch_norm_backward(&#rt::norm::BatchNorm { n, c: #c, h: #inner, w: 1, eps: 0.0, momentum: 0.0 }, #x, #g, #saved, #dy, #dx, #dg, #db)?;
            }
        }
        StepKind::ConcatBackward { dy, parts, inner } => {
            let items = parts.iter().map(|(t, c)| {
                let v = w(t);
                quote!((#v, #c))
            });
            let dy = r(dy);
            quote!(#rt::nn::concat_backward(n, #inner, #dy, &mut [#(#items),*])?;)
        }
    };
    let comment = comment(ctx, s);
    // Views are only declared when the step uses the arena.
    let binding = if r_vars.is_empty() && w_vars.is_empty() {
        quote!()
    } else {
        let w_pat = w_vars.iter().map(|v| quote!(#v));
        quote!(let ([#(#r_vars),*], [#(#w_pat),*]) = #rt::arena::split(arena, [#(#rr),*], [#(#wr),*])?;)
    };
    quote! {
        #comment
        {
            #binding
            #call
        }
    }
}
