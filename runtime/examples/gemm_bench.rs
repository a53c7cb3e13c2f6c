//! Prints SGEMM throughput against the measured FMA peak of one core, for
//! square and model-shaped sizes, on 1 and 2 threads, with the
//! `matrixmultiply` crate as a baseline in the same run.
//!
//! `cargo run --release -p netc-runtime --example gemm_bench [-- --json] [--quick]`

use netc_runtime::gemm::{kernel, peak, sgemm, Epilogue, MatMut, MatRef, Par};
use std::time::Duration;

mod common;
use common::{best_gflops as time, fill};

/// (label, m, n, k): the im2col GEMMs of convs are `[out_ch] x [out_h·out_w]
/// x [in_ch·kh·kw]` per sample; dense layers are `[batch] x [out] x [in]`.
const MODEL_SHAPES: &[(&str, usize, usize, usize)] = &[
    ("alexnet conv1", 96, 3025, 363),
    ("alexnet conv2", 256, 729, 2400),
    ("alexnet conv3", 384, 169, 2304),
    ("alexnet conv4", 384, 169, 3456),
    ("alexnet conv5", 256, 169, 3456),
    ("resnet20 conv 16ch", 16, 1024, 144),
    ("resnet20 conv 32ch", 32, 256, 288),
    ("resnet20 conv 64ch", 64, 64, 576),
    ("resnet20 proj 32ch", 32, 256, 16),
    ("mlp fc1 b128", 128, 512, 784),
    ("mlp fc2 b128", 128, 256, 512),
    ("mlp fc3 b128", 128, 10, 256),
];

struct Row {
    label: String,
    imp: &'static str,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    gflops: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 60 } else { 400 });

    let (isa, peak_flops) = peak::fma_peak(Duration::from_millis(if quick { 200 } else { 1000 }));
    let peak1 = peak_flops / 1e9;
    let k = kernel::selected();
    if !json {
        println!("FP32 FMA peak per core: {peak1:.1} GFLOP/s ({isa})");
        println!("netc kernel: {} ({}x{}), blocking {:?}", k.name, k.mr, k.nr, k.blocking);
    }

    let squares: Vec<usize> = if quick {
        vec![64, 256, 512]
    } else {
        vec![64, 128, 256, 384, 512, 768, 1024, 1536, 2048]
    };
    let mut shapes: Vec<(String, usize, usize, usize)> =
        squares.iter().map(|&s| (format!("square {s}"), s, s, s)).collect();
    shapes.extend(MODEL_SHAPES.iter().map(|&(l, m, n, k)| (l.to_string(), m, n, k)));

    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|t| (t, rayon::ThreadPoolBuilder::new().num_threads(t).build().expect("thread pool")))
        .collect();
    let mut rows = Vec::new();
    for (label, m, n, kk) in &shapes {
        let (m, n, kk) = (*m, *n, *kk);
        let a = fill(m * kk);
        let b = fill(kk * n);
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * kk) as f64;
        for (threads, pool) in &pools {
            let par = if *threads == 1 { Par::Seq } else { Par::Rayon };
            let g = pool.install(|| {
                time(flops, budget, || {
                    sgemm(
                        m,
                        n,
                        kk,
                        1.0,
                        MatRef::row_major(&a, kk),
                        MatRef::row_major(&b, n),
                        0.0,
                        MatMut::row_major(&mut c, n),
                        &Epilogue::NONE,
                        par,
                    )
                    .expect("valid shapes");
                })
            });
            rows.push(Row {
                label: label.clone(),
                imp: "netc",
                m,
                n,
                k: kk,
                threads: *threads,
                gflops: g,
            });
        }
        let g = time(flops, budget, || {
            // SAFETY: the pointers and strides describe the three vectors above.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    kk,
                    n,
                    1.0,
                    a.as_ptr(),
                    kk as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        });
        rows.push(Row {
            label: label.clone(),
            imp: "matrixmultiply",
            m,
            n,
            k: kk,
            threads: 1,
            gflops: g,
        });
        if !json {
            let netc1 = rows[rows.len() - 3].gflops;
            let netc2 = rows[rows.len() - 2].gflops;
            println!(
                "{label:<20} {m:>5} {n:>5} {kk:>5} | netc 1t {netc1:7.1} GFLOP/s {:5.1}% | 2t {netc2:7.1} {:5.1}% (x{:.2}) | matrixmultiply 1t {g:7.1} {:5.1}% | netc/mm {:.2}",
                100.0 * netc1 / peak1,
                50.0 * netc2 / peak1,
                netc2 / netc1,
                100.0 * g / peak1,
                netc1 / g
            );
        }
    }
    if json {
        for r in &rows {
            let peak = peak1 * r.threads as f64;
            println!(
                "{{\"impl\":\"{}\",\"label\":\"{}\",\"m\":{},\"n\":{},\"k\":{},\"threads\":{},\"gflops\":{:.3},\"peak_gflops\":{:.3},\"pct_of_peak\":{:.2}}}",
                r.imp,
                r.label,
                r.m,
                r.n,
                r.k,
                r.threads,
                r.gflops,
                peak,
                100.0 * r.gflops / peak
            );
        }
    }
}
