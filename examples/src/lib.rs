//! What the example programs share: the networks `build.rs` compiled, and
//! a small synthetic digits task to train them on without a download.

pub mod lenet5 {
    netc::include_network!("lenet5");
}

pub mod lenet5_five {
    netc::include_network!("lenet5_five");
}

pub mod resnet18 {
    netc::include_network!("resnet18");
}

pub mod alexnet {
    netc::include_network!("alexnet");
}

/// Side of the square images.
pub const SIDE: usize = 28;

/// `n` 28x28 images of classes below `classes` (at most 10), reproducible
/// from `seed`: noise, plus a bright horizontal bar whose row is the
/// class's and a vertical one whose column is, so every class is a
/// distinct shape at a fixed place.
pub fn digits(n: usize, classes: u32, seed: u64) -> (Vec<[f32; SIDE * SIDE]>, Vec<u32>) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut images = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let label = (next() * classes as f32) as u32 % classes;
        let mut image = [0.0f32; SIDE * SIDE];
        for v in image.iter_mut() {
            *v = 0.3 * next();
        }
        let line = 3 + 2 * label as usize;
        for i in 4..SIDE - 4 {
            image[line * SIDE + i] = 1.0;
            image[i * SIDE + line] = 1.0;
        }
        images.push(image);
        labels.push(label);
    }
    (images, labels)
}

/// The index of the largest value.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
