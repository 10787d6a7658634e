//! Seeded random integer models of the real network shapes, for speed work.
//!
//! [`random_model`] builds a freshly initialised float [`Network`] (seeded weights, batch-norm
//! statistics drawn at random so that folding meets every case), quantizes it with
//! [`QuantizedNetwork`], calibrates the activation quantizers on a few seeded random images
//! and converts it with [`QuantizedNetwork::to_integer`]: the resulting [`IntegerModel`] has
//! exactly the node graph, layouts and bit widths the converter emits for a trained network
//! (codebook weights, MAC thresholds, residual alignment, pooling, 8-bit first convolution
//! and classifier), only its values are meaningless. The report binary
//! `cargo run --release -p nuq-benches --bin infer-report` and the `infer` criterion bench
//! time these models.

use crate::integer::IntegerModel;
use crate::layers::{BatchNorm2d, Sequential};
use crate::models::{ModelConfig, Network};
use crate::quant::{Family, InputNorm, QuantConfig, QuantizedNetwork};
use crate::rng::Rng;
use crate::NnError;

/// What [`random_model`] builds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomModelSpec {
    /// Architecture, width, input shape and classes.
    pub config: ModelConfig,
    /// Weight and activation bits of the inner layers (the first convolution and the
    /// classifier stay at 8 bits, as [`QuantConfig::new`] sets).
    pub bits: u8,
    /// Codebook family of weights and activations.
    pub family: Family,
    /// Images the activation quantizers are calibrated on.
    pub calibration_images: usize,
}

impl RandomModelSpec {
    /// A CIFAR-shaped (32×32×3, 10 classes), full-width `arch` with `bits`-bit k-quantile
    /// codebooks, calibrated on 4 images.
    pub fn cifar(arch: crate::models::Arch, bits: u8) -> Self {
        Self {
            config: ModelConfig::cifar10(arch),
            bits,
            family: Family::KQuantile,
            calibration_images: 4,
        }
    }
}

/// Seeded NHWC image bytes: a per-image gradient plus noise, so that convolutions see some
/// structure (`n` images of `len` bytes).
pub fn random_images(n: usize, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * len)
        .map(|i| {
            let base = ((i % len) * 255 / len.max(1)) as f32;
            (base * 0.5 + rng.uniform(0.0, 127.0)) as u8
        })
        .collect()
}

/// Builds a random integer model through the real conversion path (see the module docs);
/// the same `spec` and `seed` give the same model.
///
/// # Errors
/// The errors of [`crate::Network::new`] and [`crate::pipeline::quantize`] for a configuration
/// the float network or the quantizer rejects.
pub fn random_model(spec: &RandomModelSpec, seed: u64) -> Result<IntegerModel, NnError> {
    let cfg = spec.config;
    let mut net = Network::new(cfg, seed)?;
    randomise_batch_norm(&mut net.body, &mut Rng::derive(seed, &[1]));
    let c = cfg.in_channels;
    let norm = InputNorm::from_mean_std(&vec![0.45; c], &vec![0.25; c])?;
    let mut qn = QuantizedNetwork::prepare(net, QuantConfig::new(spec.bits, spec.family), norm)?;
    let (h, w) = cfg.input_size;
    let n = spec.calibration_images.max(1);
    let bytes = random_images(n, h * w * c, seed ^ 0x5eed);
    let x = qn.input_norm.normalise(&bytes, n, h, w)?;
    qn.calibrate(&x)?;
    qn.to_integer()
}

/// Draws batch-norm statistics around identity, one channel in eight with a negative scale.
fn randomise_batch_norm(s: &mut Sequential, rng: &mut Rng) {
    crate::layer::visit_leaves_mut(s, "", &mut |_, l| {
        if let Some(bn) = l.as_any_mut().downcast_mut::<BatchNorm2d>() {
            for o in 0..bn.channels() {
                let sign = if rng.next_f32() < 0.125 { -1.0 } else { 1.0 };
                bn.weight.value[o] = sign * rng.uniform(0.5, 1.5);
                bn.bias.value[o] = rng.uniform(-0.2, 0.4);
                bn.running_mean[o] = rng.uniform(-0.3, 0.3);
                bn.running_var[o] = rng.uniform(0.5, 2.0);
            }
        }
    });
}
