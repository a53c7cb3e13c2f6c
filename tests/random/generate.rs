//! A generator of random valid networks, as `.net` source, for the
//! differential test (`tests/differential.rs`): each network is compiled
//! to Rust by `build.rs` and checked against the f64 interpreter.
//!
//! Shapes are valid by construction: the generator tracks every value's
//! per-sample shape through the op's output-size rule, and writes it as an
//! annotation after each binding, so the checker also checks the
//! generator. Sizes stay small (a pass takes milliseconds) and odd.
//! `build.rs` and the test both include this file with `#[path]`.

/// Every op the generator writes: a test compares it with the language's.
pub const COVERED: &[&str] = &[
    "conv2d",
    "conv_transpose2d",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "adaptive_avg_pool",
    "upsample",
    "dense",
    "flatten",
    "reshape",
    "permute",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "relu6",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "elu",
    "prelu",
    "softmax",
    "log_softmax",
    "dropout",
    "stochastic_depth",
    "lrn",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "add",
    "mul",
    "concat",
];

/// What a generated network's training methods take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// No loss: inference only.
    None,
    /// Class indices below `classes`.
    Labels { classes: usize },
    /// `len` floats a sample.
    Values { len: usize },
}

/// One generated network.
#[derive(Clone, Debug)]
pub struct Net {
    /// The network's name, which is also its file's and module's stem.
    pub name: String,
    pub seed: u64,
    pub source: String,
    /// Values a sample of each input, in declaration order.
    pub input_lens: Vec<usize>,
    /// The batch the test runs (at least 2 where a batch norm has one
    /// value per channel in a sample).
    pub batch: usize,
    pub targets: Targets,
    /// Whether the file names an optimizer (it has learnable parameters).
    pub optimizer: bool,
}

/// SplitMix64: small, seedable, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The sizes that stress kernels' edges: 1, primes, one past a power.
const ODD: &[usize] = &[1, 2, 3, 5, 7, 9, 17];
/// The largest height or width a value may take (a wide network's may
/// be larger).
const MAX_SIDE: usize = 12;
/// The most channels a value may take.
const MAX_CHANNELS: usize = 9;

#[derive(Clone, Debug)]
struct Value {
    name: String,
    shape: Vec<usize>,
    used: bool,
}

struct Gen {
    rng: Rng,
    lines: Vec<String>,
    blocks: Vec<String>,
    values: Vec<Value>,
    count: usize,
    /// The largest side and channel count values may take: a quarter of
    /// the networks are wide, with the channels and tiles from which the
    /// conv kernels pick Winograd and their direct paths.
    max_side: usize,
    max_channels: usize,
    /// The fewest values a channel of a batch norm has in a sample.
    min_bn_inner: usize,
    learnable: bool,
    /// Layers (or block instances) with learnable parameters named with
    /// `as`, for `train` statements.
    named: Vec<String>,
}

fn list(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Output size of a conv or pool window of span `span` over `len` padded
/// by `pad` on each side, stride `stride`, floor rule; `None` if empty.
fn windows(len: usize, pad: usize, span: usize, stride: usize) -> Option<usize> {
    let padded = len + 2 * pad;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

/// PyTorch's ceil-mode pooling size: the last window must start inside
/// the input or its left padding.
fn ceil_windows(len: usize, pad: usize, k: usize, stride: usize) -> Option<usize> {
    let padded = len + 2 * pad;
    if padded < k {
        return None;
    }
    let mut out = (padded - k).div_ceil(stride) + 1;
    if (out - 1) * stride >= len + pad {
        out -= 1;
    }
    Some(out)
}

impl Gen {
    fn fresh(&mut self) -> String {
        self.count += 1;
        format!("v{}", self.count)
    }

    /// `text`, named with `as` a quarter of the time: a learnable layer
    /// that `train` statements may then name.
    fn maybe_named(&mut self, text: String) -> String {
        if !self.rng.chance(25) {
            return text;
        }
        let name = format!("l{}", self.named.len() + 1);
        self.named.push(name.clone());
        format!("{text} as {name}")
    }

    fn float(&mut self, choices: &[&'static str]) -> &'static str {
        self.rng.pick(choices)
    }

    /// An activation written as a stage.
    fn activation(&mut self) -> String {
        let r = &mut self.rng;
        match r.range(0, 12) {
            0 => "relu".into(),
            1 => format!("leaky_relu({})", r.pick(&["0.01", "0.2", "0.0"])),
            2 => "sigmoid".into(),
            3 => "tanh".into(),
            4 => format!("gelu(approximate: {})", r.pick(&["none", "tanh"])),
            5 => "silu".into(),
            6 => "relu6".into(),
            7 => format!("hardtanh({})", r.pick(&["-1.0, 1.0", "-0.5, 2.0", "-2.0, 0.25"])),
            8 => "hardsigmoid".into(),
            9 => "hardswish".into(),
            10 => format!("elu(alpha: {})", r.pick(&["1.0", "0.5", "2.0"])),
            11 => "gelu".into(),
            _ => "relu".into(),
        }
    }

    /// A stage that keeps any shape, and its name in [`COVERED`].
    fn same_shape_stage(&mut self, shape: &[usize]) -> String {
        let c = shape[0];
        match self.rng.range(0, 11) {
            0..=3 => self.activation(),
            4 => {
                self.learnable = true;
                match self.rng.chance(50) {
                    true => format!("prelu({c}, init: {})", self.float(&["0.25", "0.1", "-0.3"])),
                    false => "prelu".into(),
                }
            }
            5 => self.rng.pick(&["softmax", "log_softmax"]).into(),
            6 => format!("dropout({})", self.float(&["0.5", "0.2", "0.0", "0.75"])),
            // Batch mode only on a residual branch (`statement`): a
            // whole batch zeroed makes the norms after it divide rounding
            // noise by their epsilon.
            7 => format!("stochastic_depth({}, mode: row)", self.float(&["0.5", "0.2"])),
            8 if shape.len() == 1 || shape.len() == 3 => {
                let size = self.rng.range(1, c + 2);
                let (alpha, beta, k) = (
                    self.float(&["1e-4", "0.1", "1.0"]),
                    self.float(&["0.75", "0.5", "1.5"]),
                    self.float(&["1.0", "2.0", "0.5"]),
                );
                format!("lrn({size}, alpha: {alpha}, beta: {beta}, k: {k})")
            }
            9 if shape.len() == 1 || shape.len() == 3 => {
                self.learnable = true;
                let inner: usize = shape[1..].iter().product();
                self.min_bn_inner = self.min_bn_inner.min(inner);
                match self.rng.chance(50) {
                    true => "batch_norm".into(),
                    false => format!(
                        "batch_norm(eps: {}, momentum: {})",
                        self.float(&["1e-5", "1e-3", "0.1"]),
                        self.float(&["0.1", "0.5", "0.9"])
                    ),
                }
            }
            10 => {
                // Over the last k dims of the sample, at least 3 values:
                // fewer make an ill-conditioned (or constant) output
                // whose float32 rounding the gradients then amplify.
                let Some(fewest) = (1..=shape.len())
                    .find(|&k| shape[shape.len() - k..].iter().product::<usize>() >= 3)
                else {
                    return self.activation();
                };
                let k = self.rng.range(fewest, shape.len());
                let affine = self.rng.chance(70);
                self.learnable |= affine;
                let eps = self.float(&["1e-5", "1e-3"]);
                match k == shape.len() && self.rng.chance(50) {
                    true => format!("layer_norm(eps: {eps}, elementwise_affine: {affine})"),
                    false => format!(
                        "layer_norm({}, eps: {eps}, elementwise_affine: {affine})",
                        list(&shape[shape.len() - k..])
                    ),
                }
            }
            11 if shape.len() == 1 || shape.len() == 3 => {
                // Groups of at least 3 values, as layer norm's.
                let inner: usize = shape[1..].iter().product();
                let divisors: Vec<usize> =
                    (1..=c).filter(|g| c.is_multiple_of(*g) && c / g * inner >= 3).collect();
                if divisors.is_empty() {
                    return self.activation();
                }
                let groups = self.rng.pick(&divisors);
                let affine = self.rng.chance(70);
                self.learnable |= affine;
                format!(
                    "group_norm({groups}, eps: {}, affine: {affine})",
                    self.float(&["1e-5", "1e-3"])
                )
            }
            _ => self.activation(),
        }
    }

    /// A conv2d over `[c, h, w]`, or `None` if the draw gives no output.
    fn conv(&mut self, c: usize, h: usize, w: usize) -> Option<(String, Vec<usize>)> {
        let (max_side, max_channels) = (self.max_side, self.max_channels);
        let r = &mut self.rng;
        let groups_of_c: Vec<usize> = (1..=c).filter(|g| c.is_multiple_of(*g)).collect();
        let (groups, out) = match r.range(0, 9) {
            // Depthwise, with up to 4 outputs a channel.
            0 | 1 => (c, c * r.range(1, (max_channels / c).clamp(1, 4))),
            2 | 3 => {
                let groups = r.pick(&groups_of_c);
                (groups, groups * r.range(1, (max_channels / groups).max(1)))
            }
            _ => (1, r.range(1, max_channels)),
        };
        let (mut kh, mut kw) = (r.pick(&[1, 1, 2, 3, 3, 5]), r.pick(&[1, 2, 3, 3, 5]));
        let (mut sh, mut sw) = (r.pick(&[1, 1, 1, 2, 3]), r.pick(&[1, 1, 2]));
        let (mut dh, mut dw) = (r.pick(&[1, 1, 1, 2]), r.pick(&[1, 1, 2, 3]));
        if max_side > MAX_SIDE && r.chance(50) {
            // Winograd's shape: 3x3, stride 1, no dilation.
            (kh, kw, sh, sw, dh, dw) = (3, 3, 1, 1, 1, 1);
        }
        let bias = r.chance(70);
        let same = sh == 1 && sw == 1 && (dh * (kh - 1)) % 2 == 0 && (dw * (kw - 1)) % 2 == 0;
        let (pad_text, (oh, ow)) = if same && r.chance(30) {
            ("same".to_string(), (h, w))
        } else {
            let (ph, pw) = (r.range(0, kh), r.range(0, kw));
            let oh = windows(h, ph, dh * (kh - 1) + 1, sh)?;
            let ow = windows(w, pw, dw * (kw - 1) + 1, sw)?;
            if oh > max_side || ow > max_side {
                return None;
            }
            let pad = if ph == pw { ph.to_string() } else { list(&[ph, pw]) };
            (pad, (oh, ow))
        };
        let pair = |a: usize, b: usize| if a == b { a.to_string() } else { list(&[a, b]) };
        self.learnable = true;
        let text = format!(
            "conv2d({out}, kernel: {}, stride: {}, pad: {pad_text}, dilation: {}, groups: {groups}, bias: {bias})",
            pair(kh, kw),
            pair(sh, sw),
            pair(dh, dw)
        );
        Some((self.maybe_named(text), vec![out, oh, ow]))
    }

    /// A conv_transpose2d over `[c, h, w]` that stays small.
    fn conv_transpose(&mut self, c: usize, h: usize, w: usize) -> Option<(String, Vec<usize>)> {
        let r = &mut self.rng;
        let groups_of_c: Vec<usize> = (1..=c).filter(|g| c.is_multiple_of(*g)).collect();
        let groups = if r.chance(30) { r.pick(&groups_of_c) } else { 1 };
        let out = groups * r.range(1, (self.max_channels / groups).max(1));
        let k = r.pick(&[1, 2, 3, 4]);
        let (s, d) = (r.pick(&[1, 2, 3]), r.pick(&[1, 1, 2]));
        let p = r.range(0, (d * (k - 1)) / 2);
        let output_pad = r.range(0, s.max(d) - 1);
        let size = |len: usize| -> Option<usize> {
            let full = (len - 1) * s + d * (k - 1) + output_pad + 1;
            (full > 2 * p).then(|| full - 2 * p)
        };
        let (oh, ow) = (size(h)?, size(w)?);
        if oh > self.max_side || ow > self.max_side {
            return None;
        }
        self.learnable = true;
        let text = format!(
            "conv_transpose2d({out}, kernel: {k}, stride: {s}, pad: {p}, output_pad: {output_pad}, groups: {groups}, dilation: {d}, bias: {})",
            r.chance(60)
        );
        Some((self.maybe_named(text), vec![out, oh, ow]))
    }

    /// A max or average pool over `[c, h, w]`.
    fn pool(&mut self, c: usize, h: usize, w: usize) -> Option<(String, Vec<usize>)> {
        let r = &mut self.rng;
        let k = r.pick(&[1, 2, 2, 3]);
        let s = r.pick(&[1, 2, k]);
        let p = r.range(0, k / 2);
        let ceil = r.chance(30);
        let size = |len| if ceil { ceil_windows(len, p, k, s) } else { windows(len, p, k, s) };
        let (oh, ow) = (size(h)?, size(w)?);
        let text = match r.chance(50) {
            true => format!("max_pool({k}, stride: {s}, pad: {p}, ceil_mode: {ceil})"),
            false => format!(
                "avg_pool({k}, stride: {s}, pad: {p}, ceil_mode: {ceil}, count_include_pad: {})",
                r.chance(50)
            ),
        };
        Some((text, vec![c, oh, ow]))
    }

    /// A stage for an image `[c, h, w]`.
    fn image_stage(&mut self, shape: &[usize]) -> Option<(String, Vec<usize>)> {
        let (c, h, w) = (shape[0], shape[1], shape[2]);
        match self.rng.range(0, 12) {
            0..=2 => self.conv(c, h, w),
            3 => self.conv_transpose(c, h, w),
            4 => self.pool(c, h, w),
            5 => {
                let (oh, ow) = (self.rng.range(1, h.min(5)), self.rng.range(1, w.min(5)));
                let text = match oh == ow && self.rng.chance(50) {
                    true => format!("adaptive_avg_pool({oh})"),
                    false => format!("adaptive_avg_pool({oh}, {ow})"),
                };
                Some((text, vec![c, oh, ow]))
            }
            6 => {
                let (sh, sw) = (self.rng.range(1, 3), self.rng.range(1, 3));
                // One pixel upsampled is constant over each channel, which a
                // norm after it divides by its epsilon: ill-conditioned, not
                // wrong.
                if h * sh > self.max_side || w * sw > self.max_side || h * w == 1 {
                    return None;
                }
                let mode = self.rng.pick(&["nearest", "bilinear"]);
                let scale = if sh == sw { sh.to_string() } else { list(&[sh, sw]) };
                Some((format!("upsample({scale}, mode: {mode})"), vec![c, h * sh, w * sw]))
            }
            7 => Some(("global_avg_pool".into(), vec![c])),
            8 => Some(("flatten".into(), vec![c * h * w])),
            9 => {
                // A channel shuffle, as ShuffleNet's.
                let divisors: Vec<usize> = (1..=c).filter(|g| c.is_multiple_of(*g)).collect();
                let g = self.rng.pick(&divisors);
                let text = format!(
                    "reshape([{g}, {}, {h}, {w}]) -> permute([1, 0, 2, 3]) -> reshape([-1, {h}, {w}])",
                    c / g
                );
                Some((text, shape.to_vec()))
            }
            10 => {
                let dims = self.rng.pick(&[[0, 2, 1], [1, 0, 2], [2, 1, 0], [1, 2, 0]]);
                let out: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
                if out[0] > self.max_channels * 2
                    || out[1] > self.max_side
                    || out[2] > self.max_side
                {
                    return None;
                }
                Some((format!("permute({})", list(&dims)), out))
            }
            _ => Some((self.same_shape_stage(shape), shape.to_vec())),
        }
    }

    /// A stage for features `[f]`.
    fn vector_stage(&mut self, f: usize) -> Option<(String, Vec<usize>)> {
        match self.rng.range(0, 6) {
            0 | 1 => {
                let units = self.rng.pick(ODD);
                self.learnable = true;
                let text = match self.rng.chance(30) {
                    true => format!("dense({units}, bias: false, in: {f})"),
                    false => format!("dense({units})"),
                };
                Some((self.maybe_named(text), vec![units]))
            }
            2 => {
                // Back to an image: f = c·h·w with h, w > 1 where possible.
                let splits: Vec<(usize, usize, usize)> = (1..=f)
                    .filter(|c| f.is_multiple_of(*c))
                    .flat_map(|c| {
                        let rest = f / c;
                        (1..=rest)
                            .filter(move |h| rest.is_multiple_of(*h))
                            .map(move |h| (c, h, rest / h))
                    })
                    .filter(|&(c, h, w)| {
                        c <= self.max_channels && h <= self.max_side && w <= self.max_side
                    })
                    .collect();
                if splits.is_empty() {
                    return None;
                }
                let (c, h, w) = self.rng.pick(&splits);
                let text = match self.rng.chance(50) {
                    true => format!("reshape([{c}, {h}, {w}])"),
                    false => format!("reshape([{c}, -1, {w}])"),
                };
                Some((text, vec![c, h, w]))
            }
            _ => Some((self.same_shape_stage(&[f]), vec![f])),
        }
    }

    fn stage(&mut self, shape: &[usize]) -> Option<(String, Vec<usize>)> {
        match shape.len() {
            1 => self.vector_stage(shape[0]),
            _ => self.image_stage(shape),
        }
    }

    /// A chain of 1–4 stages from `shape`.
    fn chain(&mut self, shape: &[usize]) -> (Vec<String>, Vec<usize>) {
        let mut stages = Vec::new();
        let mut shape = shape.to_vec();
        let want = self.rng.range(1, 4);
        let mut tries = 0;
        while stages.len() < want && tries < 20 {
            tries += 1;
            if let Some((text, next)) = self.stage(&shape) {
                stages.push(text);
                shape = next;
            }
        }
        if stages.is_empty() {
            stages.push(self.activation());
        }
        (stages, shape)
    }

    fn bind(&mut self, text: String, shape: Vec<usize>) {
        let name = self.fresh();
        self.lines.push(format!("    {name} = {text} : {}", list(&shape)));
        self.values.push(Value { name, shape, used: false });
    }

    /// A value to build on, preferring recent and unused ones.
    fn source(&mut self) -> usize {
        let n = self.values.len();
        let unused: Vec<usize> = (0..n).filter(|&i| !self.values[i].used).collect();
        if !unused.is_empty() && self.rng.chance(70) {
            return self.rng.pick(&unused);
        }
        n - 1 - self.rng.range(0, (n - 1).min(2))
    }

    /// A binding that joins values: `+`, `*` or `concat`; or a chain.
    fn statement(&mut self) {
        let i = self.source();
        let a = self.values[i].clone();
        let same: Vec<usize> =
            (0..self.values.len()).filter(|&j| j != i && self.values[j].shape == a.shape).collect();
        let join = self.rng.range(0, 9);
        if join == 0 && !same.is_empty() {
            let j = self.rng.pick(&same);
            let b = self.values[j].name.clone();
            self.values[i].used = true;
            self.values[j].used = true;
            let text = match self.rng.chance(50) {
                true => format!("{} + {b}", a.name),
                false => format!("add({}, {b})", a.name),
            };
            return self.bind(text, a.shape);
        }
        if join == 1 && !same.is_empty() {
            let j = self.rng.pick(&same);
            let b = self.values[j].name.clone();
            self.values[i].used = true;
            self.values[j].used = true;
            return self.bind(format!("{} * {b}", a.name), a.shape);
        }
        if join == 2 {
            // A residual: a shape-keeping branch added back, sometimes
            // dropped as stochastic depth drops it (EfficientNet's).
            self.values[i].used = true;
            let layer = match a.shape.len() {
                1 => format!("dense({})", a.shape[0]),
                _ => format!("conv2d({}, kernel: 3, pad: 1)", a.shape[0]),
            };
            let mut branch = format!("{} -> {layer} -> {}", a.name, self.activation());
            if self.rng.chance(50) {
                let mode = self.rng.pick(&["row", "batch"]);
                branch = format!(
                    "{branch} -> stochastic_depth({}, mode: {mode})",
                    self.float(&["0.5", "0.2"])
                );
            }
            self.learnable = true;
            let text = format!("({branch}) + {}", a.name);
            return self.bind(text, a.shape);
        }
        if join == 3 && a.shape.len() == 3 {
            // A per-channel gate, as squeeze-and-excitation's.
            self.values[i].used = true;
            let c = a.shape[0];
            self.learnable = true;
            let gate = match self.rng.chance(50) {
                true => format!("{} -> global_avg_pool -> dense({c}) -> sigmoid", a.name),
                false => format!("{} -> adaptive_avg_pool(1) -> hardsigmoid", a.name),
            };
            let text = match self.rng.chance(50) {
                true => format!("mul({}, {gate})", a.name),
                false => format!("({gate}) * {}", a.name),
            };
            return self.bind(text, a.shape);
        }
        if join == 4 {
            let fits: Vec<usize> = (0..self.values.len())
                .filter(|&j| j != i && self.values[j].shape[1..] == a.shape[1..])
                .filter(|&j| self.values[j].shape.len() == a.shape.len())
                .filter(|&j| self.values[j].shape[0] + a.shape[0] <= 2 * self.max_channels)
                .collect();
            if !fits.is_empty() {
                let j = self.rng.pick(&fits);
                let b = self.values[j].clone();
                self.values[i].used = true;
                self.values[j].used = true;
                let mut shape = a.shape.clone();
                shape[0] += b.shape[0];
                let text = match self.rng.chance(50) {
                    true => format!("concat({}, {})", a.name, b.name),
                    false => format!("{} -> concat({})", a.name, b.name),
                };
                return self.bind(text, shape);
            }
        }
        if join == 5 {
            return self.block_use(i);
        }
        self.values[i].used = true;
        let (stages, shape) = self.chain(&a.shape);
        self.bind(format!("{} -> {}", a.name, stages.join(" -> ")), shape);
    }

    /// A block (defined once per network file) used on value `i`, with
    /// `repeat` some of the time.
    fn block_use(&mut self, i: usize) {
        let a = self.values[i].clone();
        self.values[i].used = true;
        let k = self.blocks.len() + 1;
        let times = self.rng.range(1, 3);
        self.learnable = true;
        let (def, call) = if a.shape.len() == 3 {
            let c = a.shape[0];
            let act = self.activation();
            let def = format!(
                "block res{k}(c, k = 3)(x) {{\n    y = x -> conv2d(c, kernel: k, pad: k / 2) -> batch_norm -> {act}\n    out y + x\n}}\n"
            );
            (def, format!("res{k}({c})"))
        } else {
            let f = a.shape[0];
            let act = self.activation();
            let def = format!("block fc{k}(units)(x) {{\n    out x -> dense(units) -> {act}\n}}\n");
            (def, format!("fc{k}(units: {f})"))
        };
        if a.shape.len() == 3 {
            // Conv over [c, h, w] then batch norm: h·w values a channel.
            self.min_bn_inner = self.min_bn_inner.min(a.shape[1] * a.shape[2]);
        }
        self.blocks.push(def);
        let text = match times {
            1 => format!("{} -> {call}", a.name),
            n if self.rng.chance(50) => format!("{} -> repeat {n} {call}", a.name),
            n => format!("{} -> repeat {n} {{ {call} -> {} }}", a.name, self.activation()),
        };
        let text = self.maybe_named(text);
        self.bind(text, a.shape);
    }

    /// Everything not yet used, flattened and joined: the head's input.
    fn gather(&mut self) -> (String, usize) {
        let unused: Vec<Value> = self.values.iter().filter(|v| !v.used).cloned().collect();
        let flat = |v: &Value| match v.shape.len() {
            1 => v.name.clone(),
            _ => format!("flatten({})", v.name),
        };
        let len: usize = unused.iter().map(|v| v.shape.iter().product::<usize>()).sum();
        let text = match unused.len() {
            1 => flat(&unused[0]),
            _ => format!("concat({})", unused.iter().map(flat).collect::<Vec<_>>().join(", ")),
        };
        (text, len)
    }
}

/// The network of `seed`, named `r<seed>`.
/// Every learning-rate schedule the generator writes: a test checks each
/// appears.
pub const SCHEDULES: &[&str] = &["constant", "step", "multistep", "cosine"];

/// A `schedule` statement's text for half the networks that have an
/// optimizer, each kind with and without warmup, drawn from its own stream
/// so that the rest of a seed's network does not change with it.
fn schedule(seed: u64) -> Option<String> {
    let mut rng = Rng::new(seed ^ 0x5C4E_D01E);
    if !rng.chance(50) {
        return None;
    }
    let warmup = rng.pick(&["", ", warmup: 0.5", ", warmup: 1", ", warmup: 2.25"]);
    Some(match rng.pick(SCHEDULES) {
        "constant" => format!("constant({})", warmup.trim_start_matches(", ")),
        "step" => {
            format!("step({}, gamma: {}{warmup})", rng.range(1, 3), rng.pick(&["0.5", "0.1"]))
        }
        "multistep" => {
            format!("multistep({}, gamma: 0.5{warmup})", rng.pick(&["[1]", "[1, 3]", "[2, 3, 5]"]))
        }
        _ => format!("cosine(min_lr: {}{warmup})", rng.pick(&["0.0", "1e-3"])),
    })
}

pub fn generate(seed: u64) -> Net {
    let mut g = Gen {
        rng: Rng::new(seed),
        lines: Vec::new(),
        blocks: Vec::new(),
        values: Vec::new(),
        count: 0,
        min_bn_inner: usize::MAX,
        max_side: MAX_SIDE,
        max_channels: MAX_CHANNELS,
        learnable: false,
        named: Vec::new(),
    };
    let name = format!("r{seed}");
    let mut header = Vec::new();
    let mut input_lens = Vec::new();
    let wide = g.rng.chance(25);
    if wide {
        (g.max_side, g.max_channels) = (18, 40);
    }
    let inputs = if g.rng.chance(75) { 1 } else { g.rng.range(2, 3) };
    // Several inputs often share a shape, so that they can be joined.
    let shared = g.rng.chance(60);
    let mut shape = Vec::new();
    for i in 0..inputs {
        if i == 0 || !shared {
            shape = match g.rng.chance(70) {
                true if wide => {
                    vec![
                        g.rng.pick(&[4, 8, 9, 16, 33]),
                        g.rng.pick(&[7, 8, 9, 16]),
                        g.rng.pick(&[8, 11, 17]),
                    ]
                }
                true => vec![
                    g.rng.range(1, 4),
                    g.rng.pick(&[1, 2, 3, 5, 7, 8, 9]),
                    g.rng.pick(&[1, 2, 3, 6, 7, 11]),
                ],
                false => vec![g.rng.pick(ODD)],
            };
        }
        let input = format!("x{}", i + 1);
        header.push(format!("    input {input}: {}", list(&shape)));
        input_lens.push(shape.iter().product());
        g.values.push(Value { name: input, shape: shape.clone(), used: false });
    }
    let statements = if wide { g.rng.range(1, 3) } else { g.rng.range(1, 6) };
    for _ in 0..statements {
        g.statement();
    }
    let (gathered, len) = g.gather();
    let loss = g.rng.range(0, 9);
    let mut tail = Vec::new();
    let targets = if loss == 0 {
        tail.push(format!("    output {gathered}"));
        Targets::None
    } else if loss <= 4 {
        let classes = g.rng.pick(&[2, 3, 7, 17]);
        g.learnable = true;
        tail.push(format!("    logits = {gathered} -> dense({classes})"));
        let options = match g.rng.range(0, 3) {
            0 => String::new(),
            1 => format!(", label_smoothing: {}", g.float(&["0.1", "0.3"])),
            _ => {
                let weights: Vec<String> =
                    (0..classes).map(|c| ["1.0", "2.0", "0.5"][c % 3].to_string()).collect();
                format!(", weight: [{}]", weights.join(", "))
            }
        };
        tail.push(format!("    loss cross_entropy(logits{options})"));
        Targets::Labels { classes }
    } else {
        let head = match g.rng.chance(50) {
            true => {
                g.learnable = true;
                let units = g.rng.pick(ODD);
                tail.push(format!("    y = {gathered} -> dense({units})"));
                units
            }
            false => {
                tail.push(format!("    y = {gathered}"));
                len
            }
        };
        let loss = match loss {
            5 => "mse(y)".to_string(),
            6 => match g.rng.chance(50) {
                true => "bce_with_logits(y)".to_string(),
                false if head <= 17 => {
                    let w: Vec<&str> = (0..head).map(|i| ["1.0", "3.0", "0.5"][i % 3]).collect();
                    format!("bce_with_logits(y, pos_weight: [{}])", w.join(", "))
                }
                false => "bce_with_logits(y, pos_weight: [2.0])".to_string(),
            },
            7 => format!("smooth_l1(y, beta: {})", g.float(&["1.0", "0.5", "0.0"])),
            _ => format!("huber(y, delta: {})", g.float(&["1.0", "0.5", "2.0"])),
        };
        tail.push(format!("    loss {loss}"));
        Targets::Values { len: head }
    };
    let optimizer = targets != Targets::None && g.learnable;
    if optimizer {
        let clip = match g.rng.chance(25) {
            true => format!(", clip_norm: {}", g.float(&["0.5", "5.0"])),
            false => String::new(),
        };
        let text = match g.rng.range(0, 3) {
            0 => format!("sgd(lr: 0.1{clip})"),
            1 => format!(
                "sgd(lr: 0.05, momentum: 0.9, nesterov: {}, weight_decay: {}{clip})",
                g.rng.chance(50),
                g.float(&["0.0", "5e-4"])
            ),
            2 => format!("adam(lr: 0.01, weight_decay: {}{clip})", g.float(&["0.0", "1e-3"])),
            _ => format!("adamw(lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6{clip})"),
        };
        tail.push(format!("    optimizer {text}"));
        if let Some(schedule) = schedule(seed) {
            tail.push(format!("    schedule {schedule}"));
        }
        for layer in g.named.clone() {
            let settings = match g.rng.range(0, 5) {
                0 => "frozen: true",
                1 => "lr_mult: 2.5",
                2 => "decay_mult: 0",
                3 => "lr_mult: 0.5, decay_mult: 3",
                _ => continue,
            };
            tail.push(format!("    train {layer}({settings})"));
        }
    }
    // 17 samples split between two threads where the step shards. Batch
    // norm gets at least 4 values a channel, and two samples: of one, its
    // output's spatial mean is its bias, which a norm after a global pool
    // would then divide by its epsilon.
    let batch = match g.min_bn_inner {
        usize::MAX => g.rng.pick(&[1, 2, 3, 5, 17]),
        inner => g.rng.pick(&[2, 3, 5, 17]).max(4usize.div_ceil(inner)),
    };
    let mut source = format!("// random network, seed {seed}\n");
    for b in &g.blocks {
        source.push_str(b);
        source.push('\n');
    }
    source.push_str(&format!("network {} {{\n", name.to_uppercase()));
    for line in header.iter().chain(&g.lines).chain(&tail) {
        source.push_str(line);
        source.push('\n');
    }
    source.push_str("}\n");
    Net { name, seed, source, input_lens, batch, targets, optimizer }
}
