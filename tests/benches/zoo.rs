//! Criterion benches of the zoo's generated models: a full training step
//! (forward, loss, backward, SGD update) at the standard batch, and forward
//! inference at batch 1 and at the standard batch, reported in samples/s.
//! IDs are `zoo/<model>/<mode>/<batch>`: `cargo bench --bench zoo -- zoo/lenet5`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

use netc_tests::nets::alexnet;
use netc_tests::nets::lenet5;
use netc_tests::nets::mlp;
use netc_tests::nets::resnet20;

fn data<const N: usize>(n: usize) -> Vec<[f32; N]> {
    (0..n).map(|s| std::array::from_fn(|i| ((i * 7 + s * 13) % 255) as f32 / 255.0)).collect()
}

macro_rules! bench_model {
    ($c:expr, $ty:ty, $name:literal, $batch:expr) => {{
        const IN: usize = <$ty>::INPUT_LEN;
        const OUT: usize = <$ty>::OUTPUT_LEN;
        let mut group = $c.benchmark_group("zoo");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        let mut model = <$ty>::with_capacity(1, $batch);
        let opt = <$ty>::default_optimizer().expect("zoo models name an optimizer");
        let x = data::<IN>($batch);
        let labels: Vec<u32> = (0..$batch as u32).map(|i| i % OUT as u32).collect();
        group.throughput(Throughput::Elements($batch as u64));
        group.bench_function(BenchmarkId::new(concat!($name, "/train_step"), $batch), |b| {
            b.iter(|| model.train_step(&x, &labels, &opt).expect("step"))
        });
        for n in [1usize, $batch] {
            let mut out = vec![[0.0f32; OUT]; n];
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(concat!($name, "/forward"), n), |b| {
                b.iter(|| model.forward(&x[..n], &mut out).expect("forward"))
            });
        }
        group.finish();
    }};
}

fn zoo(c: &mut Criterion) {
    bench_model!(c, mlp::Mlp, "mlp", 128);
    bench_model!(c, lenet5::LeNet5, "lenet5", 64);
    bench_model!(c, resnet20::ResNet20, "resnet20", 64);
    bench_model!(c, alexnet::AlexNet, "alexnet", 8);
}

criterion_group!(benches, zoo);
criterion_main!(benches);
