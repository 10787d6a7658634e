//! Integer-only inference benchmarks: CIFAR-shaped full-width ResNet-18 and VGG-Small with
//! 4-bit codebook weights and activations (random weights, built through the real
//! conversion path by [`nuq_benches::infer::cifar_model`]), batch 1 and 64, 2 threads,
//! throughput in images. `infer-report` prints the same configurations as one line each.
//!
//! `cargo bench -p nuq-benches --bench infer`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nuq_benches::infer::{cifar_model, model_images};
use nuq_kernels::KernelPath;
use nuq_nn::integer::IntegerRunner;
use nuq_nn::Arch;

fn bench_infer(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("thread pool");
    let path = KernelPath::detect().expect("kernel path");
    let mut group = c.benchmark_group("infer");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for arch in [Arch::ResNet18, Arch::VggSmall] {
        let model = cifar_model(arch, 4).expect("model");
        let mut runner = IntegerRunner::new(&model, path).expect("runner");
        for batch in [1usize, 64] {
            let images = model_images(&model, batch).expect("images");
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(
                BenchmarkId::new(arch.name(), format!("32x32x3 bits4 b{batch} t2")),
                |b| {
                    b.iter(|| {
                        pool.install(|| {
                            black_box(runner.forward(&images, batch).expect("forward")[0])
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_infer);
criterion_main!(benches);
