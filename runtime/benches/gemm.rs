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

criterion_group!(benches, bench);
criterion_main!(benches);
