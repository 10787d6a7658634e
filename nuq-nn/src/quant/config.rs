//! What to quantize and how ([`QuantConfig`]), and the input normalisation with integer zero
//! points ([`InputNorm`]).

use crate::quant::{Family, KQuantileRule};
use crate::tensor::Tensor;
use crate::NnError;

/// What to quantize and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantConfig {
    /// Weight index bits of the inner layers.
    pub weight_bits: u8,
    /// Activation code bits.
    pub act_bits: u8,
    /// Weight codebook family.
    pub weight_family: Family,
    /// Activation codebook family.
    pub act_family: Family,
    /// One weight scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Weight bits of the first convolution and the classifier.
    pub edge_bits: u8,
    /// Activation thresholds per channel (k-quantile: each channel's own equal-mass
    /// quantiles, one shared level table), else one threshold set per layer.
    pub act_per_channel: bool,
    /// Learn the activation clips and the weight scales during fine-tuning
    /// ([`crate::quant::ActQuant`], [`QuantizedNetwork::qat_step`](crate::quant::QuantizedNetwork::qat_step)); else they stay where
    /// calibration put them.
    pub learn_clip: bool,
    /// Weight normalisation of the inner convolutions: each output channel's weights are
    /// used minus their mean (APoT's `(w − mean) / std`; the per-channel scale divides out
    /// the magnitude). It changes the function, so it is meant for fine-tuning.
    pub weight_norm: bool,
    /// How k-quantile weights are assigned (by quantile, the paper's, or to the nearest
    /// level) and what a bin's level stands at.
    pub kq_rule: KQuantileRule,
    /// Under quantile assignment, recompute each row's equal-mass boundaries from the float
    /// masters at every fine-tuning step (the levels stay): the bins follow the weights'
    /// distribution as it moves. Otherwise the boundaries stay where the last fit put them
    /// (refitted with the codebooks by [`QuantizedNetwork::recalibrate`](crate::quant::QuantizedNetwork::recalibrate)).
    pub follow_quantiles: bool,
}

impl QuantConfig {
    /// `bits`-bit weights and activations of one family, per-channel weight scales, 8-bit
    /// first and last layers.
    pub fn new(bits: u8, family: Family) -> Self {
        Self {
            weight_bits: bits,
            act_bits: bits,
            weight_family: family,
            act_family: family,
            per_channel: true,
            edge_bits: 8,
            act_per_channel: false,
            learn_clip: false,
            weight_norm: false,
            kq_rule: KQuantileRule::default(),
            follow_quantiles: true,
        }
    }
}

/// Input normalisation with integer zero points: `x = (byte − zero_point) / (255 · std)`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputNorm {
    /// Per-channel byte standing for zero.
    pub zero_point: Vec<u8>,
    /// Per-channel standard deviation (in units of 1/255 of the byte range, as usual).
    pub std: Vec<f32>,
}

impl InputNorm {
    /// From the usual float mean and std (pixels in `[0, 1]`); the mean is rounded to a byte.
    ///
    /// # Errors
    /// [`NnError::SizeMismatch`] for mismatched lengths, [`NnError::InvalidParameter`] for a mean
    /// outside `[0, 1]` or a std ≤ 0.
    pub fn from_mean_std(mean: &[f32], std: &[f32]) -> Result<Self, NnError> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(NnError::SizeMismatch {
                what: "input normalisation: means (one per std, at least one)".into(),
                expected: std.len().max(1),
                found: mean.len(),
            });
        }
        if mean.iter().any(|m| !(0.0..=1.0).contains(m))
            || std.iter().any(|s| !(*s > 0.0 && s.is_finite()))
        {
            return Err(NnError::InvalidParameter {
                what: "input normalisation".into(),
                allowed: "means in [0, 1] and finite stds > 0",
                found: format!("mean {mean:?} std {std:?}"),
            });
        }
        Ok(Self {
            zero_point: mean.iter().map(|m| (m * 255.0).round() as u8).collect(),
            std: std.to_vec(),
        })
    }

    /// The mean actually used (`zero_point / 255`), for the float twin's normalisation.
    pub fn mean(&self) -> Vec<f32> {
        self.zero_point
            .iter()
            .map(|&z| f32::from(z) / 255.0)
            .collect()
    }

    /// Normalises NHWC bytes of `n` images of `h × w` into a float tensor.
    pub fn normalise(&self, bytes: &[u8], n: usize, h: usize, w: usize) -> Result<Tensor, NnError> {
        let c = self.std.len();
        let data = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                (f32::from(b) - f32::from(self.zero_point[i % c])) / (255.0 * self.std[i % c])
            })
            .collect();
        Tensor::from_vec([n, h, w, c], data)
    }
}
