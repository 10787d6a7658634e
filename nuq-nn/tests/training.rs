//! End-to-end training behaviour: overfitting a small batch and determinism.

use nuq_nn::optim::{AdamW, Optimizer, Sgd};
use nuq_nn::train::{eval_batch, train_step};
use nuq_nn::{Arch, CrossEntropy, ModelConfig, Network, Rng, Tensor};

fn cfg(arch: Arch) -> ModelConfig {
    ModelConfig {
        arch,
        width: 0.125,
        in_channels: 1,
        classes: 4,
        input_size: (12, 12),
    }
}

fn batch(n: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = Tensor::from_vec([n, 12, 12, 1], (0..n * 144).map(|_| rng.normal()).collect()).unwrap();
    (x, (0..n).map(|_| rng.below(4) as u32).collect())
}

#[test]
fn tiny_networks_overfit_a_batch() {
    for (arch, adam) in [(Arch::ResNet20, false), (Arch::VggSmall, true)] {
        let mut net = Network::new(cfg(arch), 5).unwrap();
        let (x, labels) = batch(16, 6);
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let mut opt: Box<dyn Optimizer> = if adam {
            Box::new(AdamW::new(0.0))
        } else {
            Box::new(Sgd::new(0.9, 0.0))
        };
        let lr = if adam { 3e-3 } else { 0.05 };
        let first = train_step(&mut net, &mut ce, opt.as_mut(), &x, &labels, lr).unwrap();
        for _ in 0..60 {
            train_step(&mut net, &mut ce, opt.as_mut(), &x, &labels, lr).unwrap();
        }
        let end = eval_batch(&mut net, &mut ce, &x, &labels).unwrap();
        assert!(
            end.mean_loss() < 0.2 * first.mean_loss(),
            "{arch}: {first:?} → {end:?}"
        );
        assert_eq!(end.correct, 16, "{arch}: {end:?}");
    }
}

fn weights_after(threads: usize, seed: u64) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut net = Network::new(cfg(Arch::ResNet20), seed).unwrap();
        let mut ce = CrossEntropy::new(0.0).unwrap();
        let mut opt = Sgd::new(0.9, 1e-4);
        for s in 0..3 {
            let (x, l) = batch(8, 100 + s);
            train_step(&mut net, &mut ce, &mut opt, &x, &l, 0.05).unwrap();
        }
        let mut w = Vec::new();
        net.visit_params(&mut |_, p| w.extend_from_slice(&p.value));
        w
    })
}

#[test]
fn training_is_deterministic_for_a_seed_and_thread_count() {
    assert_eq!(weights_after(2, 1), weights_after(2, 1));
    assert_eq!(weights_after(1, 1), weights_after(1, 1));
    assert_ne!(weights_after(2, 1), weights_after(2, 2));
}
