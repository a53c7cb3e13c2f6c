//! Criterion benches of SGEMM, reported as FLOP/s (`Throughput::Elements`
//! counts 2·m·n·k), on square and model-shaped sizes, with matrixmultiply as
//! the baseline in the same run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netc_runtime::gemm::{sgemm, Epilogue, MatMut, MatRef, Par};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(20);
    let shapes =
        [(256, 256, 256), (512, 512, 512), (256, 729, 2400), (16, 1024, 144), (128, 512, 784)];
    for (m, n, k) in shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut out = vec![0.0f32; m * n];
        let id = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_with_input(BenchmarkId::new("netc", &id), &(), |bench, _| {
            bench.iter(|| {
                sgemm(
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::row_major(&a, k),
                    MatRef::row_major(&b, n),
                    0.0,
                    MatMut::row_major(&mut out, n),
                    &Epilogue::NONE,
                    Par::Seq,
                )
                .expect("valid shapes")
            })
        });
        group.bench_with_input(BenchmarkId::new("matrixmultiply", &id), &(), |bench, _| {
            bench.iter(|| {
                // SAFETY: the pointers and strides describe the vectors above.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

/// bf16 operands with f32 sums against SGEMM, one thread each, in the same
/// run: the mixed-precision path's matrix product, by every hardware
/// kernel the machine has (AVX512_BF16, AMX).
fn bench_bf16(c: &mut Criterion) {
    use netc_runtime::gemm::bf16::{gemm_bf16, Bf16Kernel};
    let mut group = c.benchmark_group("gemm_bf16");
    group.sample_size(10);
    let kernels = Bf16Kernel::supported().iter().filter(|&&k| k != Bf16Kernel::Portable);
    for (m, n, k) in [(512, 512, 512), (1024, 1024, 1024), (256, 729, 2400)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut out = vec![0.0f32; m * n];
        let id = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_with_input(BenchmarkId::new("sgemm", &id), &(), |bench, _| {
            bench.iter(|| {
                sgemm(
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::row_major(&a, k),
                    MatRef::row_major(&b, n),
                    0.0,
                    MatMut::row_major(&mut out, n),
                    &Epilogue::NONE,
                    Par::Seq,
                )
                .expect("valid shapes")
            })
        });
        for &kernel in kernels.clone() {
            let name = format!("bf16_{kernel:?}");
            group.bench_with_input(BenchmarkId::new(name, &id), &(), |bench, _| {
                bench.iter(|| {
                    let (ar, br) = (MatRef::row_major(&a, k), MatRef::row_major(&b, n));
                    gemm_bf16(kernel, m, n, k, ar, br, &mut out, n, false, Par::Seq)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench_bf16);
criterion_main!(benches);
