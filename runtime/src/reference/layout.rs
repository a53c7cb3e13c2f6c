//! The reference axis permutation and per-channel product, index by index
//! from their definitions.

use crate::elementwise::ChannelScale;
use crate::permute::Permute;

/// `y[s][i_0, ..] = x[s][j_0, ..]` with `j_{perm[k]} = i_k`: every output
/// index unravelled, its input index built, one value at a time.
pub fn permute(p: Permute, x: &[f64]) -> Vec<f64> {
    let rank = p.rank;
    let dims = &p.dims[..rank];
    let out_dims: Vec<usize> = (0..rank).map(|k| dims[p.perm[k]]).collect();
    let sample: usize = dims.iter().product();
    let mut y = vec![0.0; x.len()];
    for s in 0..p.n {
        for o in 0..sample {
            let mut rest = o;
            let mut index = vec![0; rank];
            for k in (0..rank).rev() {
                index[p.perm[k]] = rest % out_dims[k];
                rest /= out_dims[k];
            }
            let i = index.iter().zip(dims).fold(0, |acc, (&j, &d)| acc * d + j);
            y[s * sample + o] = x[s * sample + i];
        }
    }
    y
}

/// `y[s, ch, i] = x[s, ch, i] · scale[s, ch]`.
pub fn mul_channels(cs: ChannelScale, x: &[f64], scale: &[f64]) -> Vec<f64> {
    x.iter().enumerate().map(|(i, v)| v * scale[i / cs.inner.max(1)]).collect()
}

/// The backward of [`mul_channels`]: `(dx, dscale)`.
pub fn mul_channels_backward(
    cs: ChannelScale,
    x: &[f64],
    scale: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let dx = mul_channels(cs, dy, scale);
    let mut dscale = vec![0.0; cs.n * cs.c];
    for (i, (g, v)) in dy.iter().zip(x).enumerate() {
        dscale[i / cs.inner] += g * v;
    }
    (dx, dscale)
}
