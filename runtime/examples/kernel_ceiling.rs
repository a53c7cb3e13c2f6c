//! The microkernels alone, on panels that stay in cache: the ceiling the
//! GEMM's loops can reach, against the measured FMA peak. The gap between
//! this and `gemm_bench` is what packing and the loops cost.
//!
//! `cargo run --release -p netc-runtime --example kernel_ceiling [-- kc]`

use netc_runtime::gemm::{kernel, peak};
use std::time::{Duration, Instant};

fn aligned(buf: &mut [f32]) -> &mut [f32] {
    let offset = buf.as_ptr().align_offset(64).min(16);
    &mut buf[offset..]
}

fn main() {
    let kc: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let (isa, peak_flops) = peak::fma_peak(Duration::from_millis(500));
    println!("FP32 FMA peak per core: {:.1} GFLOP/s ({isa})", peak_flops / 1e9);
    for k in kernel::compiled().iter().filter(|k| k.is_supported()) {
        // Several A micro-panels against one B micro-panel, as loop 1 runs
        // them: B stays in L1, A streams from L2.
        let panels: usize = std::env::var("PANELS").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
        let mut a_buf = vec![0.5f32; panels * kc * k.mr + 16];
        let mut b_buf = vec![0.25f32; kc * k.nr + 16];
        // The GEMM's packing buffers start on a 64-byte boundary; so do these.
        let a = aligned(&mut a_buf);
        let b = aligned(&mut b_buf);
        let mut c = vec![0.0f32; panels * k.mr * k.nr];
        let reps = 2000;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                for p in 0..panels {
                    // SAFETY: the panels hold kc·mr and kc·nr floats and C
                    // holds mr rows of nr; the kernel is supported.
                    unsafe {
                        (k.run)(
                            kc,
                            a.as_ptr().add(p * kc * k.mr),
                            b.as_ptr(),
                            c.as_mut_ptr().add(p * k.mr * k.nr),
                            k.nr,
                            true,
                        )
                    };
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (reps * panels * kc * k.mr * k.nr) as f64;
        let gflops = flops / best / 1e9;
        println!(
            "{:<14} {:>2}x{:<2} kc {kc}: {gflops:7.1} GFLOP/s {:5.1}% of peak",
            k.name,
            k.mr,
            k.nr,
            100.0 * gflops * 1e9 / peak_flops
        );
    }
}
