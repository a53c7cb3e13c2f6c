//! Test support for the Caffe importer: a small protobuf writer of
//! `.caffemodel` files (independent of the importer's decoder), random
//! weights from a fixed seed, and a naive f64 reference of the Caffe layers
//! the importer maps, written from Caffe's own definitions (its loops for
//! pooling, LRN and batch norm), so that the imported network can be
//! checked against Caffe's semantics rather than against its own mapping.

#![allow(dead_code)]

pub mod nets;

/// A blob: its shape and values.
#[derive(Clone, Debug)]
pub struct Blob {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Deterministic uniform draws (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    pub fn uniform(&mut self, scale: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * scale
    }

    /// A blob of `shape` with values uniform in `[lo, hi)`.
    pub fn blob(&mut self, shape: &[usize], lo: f32, hi: f32) -> Blob {
        let n = shape.iter().product();
        let values = (0..n).map(|_| lo + (self.uniform(0.5) + 0.5) * (hi - lo)).collect();
        Blob { shape: shape.to_vec(), values }
    }

    /// Weights of a layer with `fan_in` inputs per output, He-like.
    pub fn weights(&mut self, shape: &[usize], fan_in: usize) -> Blob {
        let a = (3.0 / fan_in as f32).sqrt();
        self.blob(shape, -a, a)
    }
}

// The wire format: varints, keys, length-delimited fields.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

fn packed_floats(out: &mut Vec<u8>, field: u32, values: &[f32]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(out, field, &data);
}

/// `BlobProto` with a `BlobShape` (field 7) and packed data (field 5). A
/// blob of no axes has no shape field, as Caffe's `Blob::ToProto` writes
/// it (it sets the shape only by adding dims).
fn blob_proto(blob: &Blob) -> Vec<u8> {
    let mut out = Vec::new();
    if !blob.shape.is_empty() {
        let mut shape = Vec::new();
        let mut dims = Vec::new();
        for &d in &blob.shape {
            varint(&mut dims, d as u64);
        }
        bytes_field(&mut shape, 1, &dims);
        bytes_field(&mut out, 7, &shape);
    }
    packed_floats(&mut out, 5, &blob.values);
    out
}

/// `BlobProto` in the legacy form: num, channels, height, width (fields
/// 1-4), the shape padded with leading ones to four dims.
fn legacy_blob_proto(blob: &Blob) -> Vec<u8> {
    let mut dims = vec![1; 4 - blob.shape.len()];
    dims.extend_from_slice(&blob.shape);
    let mut out = Vec::new();
    for (field, d) in (1..=4).zip(dims) {
        varint_field(&mut out, field, d as u64);
    }
    packed_floats(&mut out, 5, &blob.values);
    out
}

/// A `.caffemodel` in the current format: `NetParameter.layer` (100) of
/// `LayerParameter { name: 1, type: 2, blobs: 7 }`.
pub fn caffemodel(name: &str, layers: &[(&str, &str, Vec<Blob>)]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, name.as_bytes());
    for (layer, kind, blobs) in layers {
        let mut l = Vec::new();
        bytes_field(&mut l, 1, layer.as_bytes());
        bytes_field(&mut l, 2, kind.as_bytes());
        for b in blobs {
            bytes_field(&mut l, 7, &blob_proto(b));
        }
        bytes_field(&mut out, 100, &l);
    }
    out
}

/// A `.caffemodel` in the V1 format: `NetParameter.layers` (2) of
/// `V1LayerParameter { name: 4, type: 5 (an enum), blobs: 6 }` with
/// legacy 4-d blob shapes.
pub fn caffemodel_v1(name: &str, layers: &[(&str, u64, Vec<Blob>)]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, name.as_bytes());
    for (layer, kind, blobs) in layers {
        let mut l = Vec::new();
        bytes_field(&mut l, 4, layer.as_bytes());
        varint_field(&mut l, 5, *kind);
        for b in blobs {
            bytes_field(&mut l, 6, &legacy_blob_proto(b));
        }
        bytes_field(&mut out, 2, &l);
    }
    out
}

// The reference: one sample at a time, channels-first, in f64.

/// A `[c, h, w]` sample (a vector is `[c, 1, 1]`).
#[derive(Clone, Debug, PartialEq)]
pub struct T {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub v: Vec<f64>,
}

impl T {
    pub fn new(c: usize, h: usize, w: usize) -> T {
        T { c, h, w, v: vec![0.0; c * h * w] }
    }

    pub fn from(c: usize, h: usize, w: usize, v: &[f32]) -> T {
        T { c, h, w, v: v.iter().map(|&x| f64::from(x)).collect() }
    }

    fn at(&self, c: usize, y: usize, x: usize) -> f64 {
        self.v[(c * self.h + y) * self.w + x]
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> T {
        T { v: self.v.iter().map(|&x| f(x)).collect(), ..self.clone() }
    }
}

fn w64(b: &Blob) -> Vec<f64> {
    b.values.iter().map(|&x| f64::from(x)).collect()
}

/// Convolution settings: kernel, stride, pad, dilation (each `(h, w)`)
/// and groups.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub k: (usize, usize),
    pub s: (usize, usize),
    pub p: (usize, usize),
    pub d: (usize, usize),
    pub g: usize,
}

impl Conv {
    pub fn square(k: usize, s: usize, p: usize) -> Conv {
        Conv { k: (k, k), s: (s, s), p: (p, p), d: (1, 1), g: 1 }
    }
}

/// Caffe's Convolution: weight `[m, c/g, kh, kw]`, zero padding.
pub fn conv(x: &T, weight: &Blob, bias: Option<&Blob>, c: Conv) -> T {
    let m = weight.shape[0];
    let span = |k: usize, d: usize| d * (k - 1) + 1;
    let oh = (x.h + 2 * c.p.0 - span(c.k.0, c.d.0)) / c.s.0 + 1;
    let ow = (x.w + 2 * c.p.1 - span(c.k.1, c.d.1)) / c.s.1 + 1;
    let (cin, mout) = (x.c / c.g, m / c.g);
    let w = w64(weight);
    let mut out = T::new(m, oh, ow);
    for o in 0..m {
        let group = o / mout;
        for y in 0..oh {
            for xx in 0..ow {
                let mut acc = bias.map_or(0.0, |b| f64::from(b.values[o]));
                for ci in 0..cin {
                    for i in 0..c.k.0 {
                        for j in 0..c.k.1 {
                            let iy = (y * c.s.0 + i * c.d.0) as isize - c.p.0 as isize;
                            let ix = (xx * c.s.1 + j * c.d.1) as isize - c.p.1 as isize;
                            if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                continue;
                            }
                            let wv = w[((o * cin + ci) * c.k.0 + i) * c.k.1 + j];
                            acc += wv * x.at(group * cin + ci, iy as usize, ix as usize);
                        }
                    }
                }
                out.v[(o * oh + y) * ow + xx] = acc;
            }
        }
    }
    out
}

/// Caffe's Deconvolution: each input cell scatters its kernel, weight
/// `[c, m/g, kh, kw]`; output `s(h−1) + d(k−1) + 1 − 2p`.
pub fn deconv(x: &T, weight: &Blob, bias: Option<&Blob>, c: Conv) -> T {
    let (cin, mout) = (x.c / c.g, weight.shape[1]);
    let m = mout * c.g;
    let full_h = c.s.0 * (x.h - 1) + c.d.0 * (c.k.0 - 1) + 1;
    let full_w = c.s.1 * (x.w - 1) + c.d.1 * (c.k.1 - 1) + 1;
    let (oh, ow) = (full_h - 2 * c.p.0, full_w - 2 * c.p.1);
    let w = w64(weight);
    let mut out = T::new(m, oh, ow);
    for ch in 0..x.c {
        let group = ch / cin;
        for y in 0..x.h {
            for xx in 0..x.w {
                let v = x.at(ch, y, xx);
                for ol in 0..mout {
                    for i in 0..c.k.0 {
                        for j in 0..c.k.1 {
                            let oy = (y * c.s.0 + i * c.d.0) as isize - c.p.0 as isize;
                            let ox = (xx * c.s.1 + j * c.d.1) as isize - c.p.1 as isize;
                            if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                continue;
                            }
                            let o = group * mout + ol;
                            let wv = w[((ch * mout + ol) * c.k.0 + i) * c.k.1 + j];
                            out.v[(o * oh + oy as usize) * ow + ox as usize] += wv * v;
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = bias {
        for o in 0..m {
            for cell in &mut out.v[o * oh * ow..(o + 1) * oh * ow] {
                *cell += f64::from(b.values[o]);
            }
        }
    }
    out
}

/// Caffe's pooled size: rounded up, then one fewer with padding if the
/// last window would start at or past the input's end plus the padding.
pub fn pooled(size: usize, k: usize, s: usize, p: usize, padded: bool) -> usize {
    let mut out = (size + 2 * p - k).div_ceil(s) + 1;
    if padded && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

/// Caffe's Pooling (MAX or AVE), with its loops: a window starts at
/// `o·s − p`; AVE divides by the window clipped to the padded input, MAX
/// takes the window clipped to the input.
pub fn pool(x: &T, average: bool, k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> T {
    let padded = p != (0, 0);
    let oh = pooled(x.h, k.0, s.0, p.0, padded);
    let ow = pooled(x.w, k.1, s.1, p.1, padded);
    let mut out = T::new(x.c, oh, ow);
    for ch in 0..x.c {
        for y in 0..oh {
            for xx in 0..ow {
                let hs = (y * s.0) as isize - p.0 as isize;
                let ws = (xx * s.1) as isize - p.1 as isize;
                let he = (hs + k.0 as isize).min((x.h + p.0) as isize);
                let we = (ws + k.1 as isize).min((x.w + p.1) as isize);
                let pool_size = ((he - hs) * (we - ws)) as f64;
                let (hs, ws) = (hs.max(0) as usize, ws.max(0) as usize);
                let (he, we) = (he.min(x.h as isize) as usize, we.min(x.w as isize) as usize);
                let mut acc = if average { 0.0 } else { f64::NEG_INFINITY };
                for iy in hs..he {
                    for ix in ws..we {
                        let v = x.at(ch, iy, ix);
                        acc = if average { acc + v } else { acc.max(v) };
                    }
                }
                out.v[(ch * oh + y) * ow + xx] = if average { acc / pool_size } else { acc };
            }
        }
    }
    out
}

/// Caffe's global pooling: the whole plane, `[c, 1, 1]`.
pub fn global_pool(x: &T, average: bool) -> T {
    pool(x, average, (x.h, x.w), (1, 1), (0, 0))
}

/// Caffe's LRN across channels: `x / (k + alpha/size · Σ x²)^beta` over
/// the `size` channels centred on each (pre-pad `(size − 1)/2`).
pub fn lrn(x: &T, size: usize, alpha: f64, beta: f64, k: f64) -> T {
    let half = (size - 1) / 2;
    let mut out = x.clone();
    for ch in 0..x.c {
        for y in 0..x.h {
            for xx in 0..x.w {
                let lo = ch.saturating_sub(half);
                let hi = (ch + half).min(x.c - 1);
                let sum: f64 = (lo..=hi).map(|c| x.at(c, y, xx).powi(2)).sum();
                let scale = k + alpha / size as f64 * sum;
                out.v[(ch * x.h + y) * x.w + xx] = x.at(ch, y, xx) / scale.powf(beta);
            }
        }
    }
    out
}

/// Caffe's BatchNorm in inference: statistics divided by the moving
/// average factor (blob 2), then an optional Scale's gamma and beta.
pub fn batch_norm(x: &T, stats: &[Blob], eps: f64, scale: Option<(&Blob, &Blob)>) -> T {
    let factor = f64::from(stats[2].values[0]);
    let inverse = if factor == 0.0 { 0.0 } else { 1.0 / factor };
    let mut out = x.clone();
    let plane = x.h * x.w;
    for ch in 0..x.c {
        let mean = f64::from(stats[0].values[ch]) * inverse;
        let var = f64::from(stats[1].values[ch]) * inverse;
        let (g, b) =
            scale.map_or((1.0, 0.0), |(g, b)| (f64::from(g.values[ch]), f64::from(b.values[ch])));
        for cell in &mut out.v[ch * plane..(ch + 1) * plane] {
            *cell = (*cell - mean) / (var + eps).sqrt() * g + b;
        }
    }
    out
}

/// Caffe's InnerProduct over the flattened sample: weight `[n, k]`, or
/// `[k, n]` with `transpose`.
pub fn inner_product(x: &T, weight: &Blob, bias: Option<&Blob>, transpose: bool) -> T {
    let k = x.v.len();
    let n = if transpose { weight.shape[1] } else { weight.shape[0] };
    let w = w64(weight);
    let mut out = T::new(n, 1, 1);
    for o in 0..n {
        let mut acc = bias.map_or(0.0, |b| f64::from(b.values[o]));
        for (i, &xv) in x.v.iter().enumerate() {
            acc += xv * if transpose { w[i * n + o] } else { w[o * k + i] };
        }
        out.v[o] = acc;
    }
    out
}

pub fn relu(x: &T, slope: f64) -> T {
    x.map(|v| if v > 0.0 { v } else { slope * v })
}

/// Caffe's PReLU: `max(0, x) + a·min(0, x)`, with `a` the channel's
/// slope, or the one slope of a `channel_shared` layer (a blob of no
/// axes, one value).
pub fn prelu(x: &T, slopes: &Blob) -> T {
    let plane = x.h * x.w;
    let shared = slopes.shape.is_empty();
    assert!(shared || slopes.shape == [x.c], "one slope per channel");
    let mut out = x.clone();
    for (i, cell) in out.v.iter_mut().enumerate() {
        let a = f64::from(slopes.values[if shared { 0 } else { i / plane }]);
        *cell = cell.max(0.0) + a * cell.min(0.0);
    }
    out
}

/// Caffe's Split: each of its `tops` is a copy of its bottom.
pub fn split(x: &T, tops: usize) -> Vec<T> {
    vec![x.clone(); tops]
}

pub fn sigmoid(x: &T) -> T {
    x.map(|v| 1.0 / (1.0 + (-v).exp()))
}

pub fn tanh(x: &T) -> T {
    x.map(f64::tanh)
}

pub fn eltwise(a: &T, b: &T, product: bool) -> T {
    let v = a.v.iter().zip(&b.v).map(|(x, y)| if product { x * y } else { x + y }).collect();
    T { v, ..a.clone() }
}

/// Caffe's Concat along the channels.
pub fn concat(a: &T, b: &T) -> T {
    let mut v = a.v.clone();
    v.extend_from_slice(&b.v);
    T { c: a.c + b.c, h: a.h, w: a.w, v }
}

/// Caffe's Softmax over the channels, at each position.
pub fn softmax(x: &T) -> T {
    let plane = x.h * x.w;
    let mut out = x.clone();
    for pos in 0..plane {
        let max = (0..x.c).map(|c| x.v[c * plane + pos]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..x.c).map(|c| (x.v[c * plane + pos] - max).exp()).sum();
        for c in 0..x.c {
            out.v[c * plane + pos] = (x.v[c * plane + pos] - max).exp() / sum;
        }
    }
    out
}

/// The largest difference between two outputs, relative to the largest
/// magnitude of the expected one.
pub fn worst_relative(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "output sizes");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / scale).fold(0f64, f64::max)
}
