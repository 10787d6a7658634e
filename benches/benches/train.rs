//! Training-step benchmarks of nuq-nn: forward + backward + SGD update on CIFAR-shaped
//! full-width ResNet-18 and VGG-Small, 2 threads, throughput in images.
//!
//! `cargo bench -p nuq-benches --bench train` runs batch 32 by default (about a minute);
//! `NUQ_TRAIN_BATCH=128 cargo bench -p nuq-benches --bench train` measures the batch of the
//! `train-report` figures (several seconds per step).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nuq_nn::optim::Sgd;
use nuq_nn::train::train_step;
use nuq_nn::{Arch, CrossEntropy, ModelConfig, Network, Rng, Tensor};

fn bench_train(c: &mut Criterion) {
    let batch: usize = std::env::var("NUQ_TRAIN_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("thread pool");
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(batch as u64));
    for arch in [Arch::ResNet18, Arch::VggSmall] {
        let mut net = Network::new(ModelConfig::cifar10(arch), 1).expect("model");
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec(
            [batch, 32, 32, 3],
            (0..batch * 3072).map(|_| rng.normal()).collect(),
        )
        .expect("input");
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
        let mut loss = CrossEntropy::new(0.0).expect("loss");
        let mut opt = Sgd::new(0.9, 5e-4);
        group.bench_function(
            BenchmarkId::new(arch.name(), format!("32x32x3 b{batch} t2")),
            |b| {
                b.iter(|| {
                    pool.install(|| {
                        black_box(
                            train_step(&mut net, &mut loss, &mut opt, &x, &labels, 0.01)
                                .expect("step"),
                        )
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_train);
criterion_main!(benches);
