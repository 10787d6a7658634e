//! From a float network to the integer model: calibration of the quantizers on training
//! images, quantization-aware fine-tuning (optionally in stages of falling bit width, or in
//! UNIQ's gradual schedule of layer blocks), and the fold into integers.

use std::sync::Arc;

use crate::data::{Augment, Dataset};
use crate::error::NnError;
use crate::integer::IntegerModel;
use crate::loss::Distill;
use crate::models::Network;
use crate::pipeline::fine_tune::{fine_tune, Tuning};
use crate::pipeline::Progress;
use crate::quant::{InputNorm, QuantConfig, QuantizedNetwork, Teacher};
use crate::tensor::Tensor;

/// Everything that decides how a float network becomes an integer model.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Bits and codebook families.
    pub config: QuantConfig,
    /// Training images the activation quantizers are calibrated on (the first ones of the
    /// training set; at least one, at most all).
    pub calib_images: usize,
    /// Training images of quantization-aware fine-tuning (0: post-training quantization).
    pub qat_images: usize,
    /// Peak learning rate of the fine-tuning.
    pub qat_lr: f32,
    /// Images per fine-tuning step (at least 1). At a fixed number of images, smaller
    /// batches take more steps.
    pub qat_batch: usize,
    /// Seed of the fine-tuning's batch order (stage `i` uses `seed + i`).
    pub seed: u64,
    /// Recalibration interval in fine-tuning steps (0: never).
    pub recalib_every: usize,
    /// Wider bit widths fine-tuned first (progressive reduction), descending, each wider than
    /// the final width; the fine-tuning images are split equally between the stages and the
    /// final width.
    pub stages: Vec<u8>,
    /// Share of each fine-tuning stage's steps, from its start, trained with UNIQ noise on the
    /// k-quantile weights instead of the straight-through estimator (0: STE throughout).
    pub noise_share: f32,
    /// UNIQ's gradual schedule: the weight layers, in forward order, split into this many
    /// contiguous blocks quantized one stage after another
    /// ([`QuantizedNetwork::begin_stage`]), the fine-tuning images split equally between the
    /// stages. At stage `i` block `i` is quantized (codebooks refitted, activation
    /// quantizers calibrated with the earlier blocks already quantized) and trained — with
    /// UNIQ noise for the first [`Recipe::noise_share`] of the stage's steps, the
    /// straight-through estimator after — the earlier blocks stay quantized and the later
    /// ones in full precision (float weights and activations, trained). 0 or 1: every layer
    /// quantized from the start. At most the number of weight layers; not with
    /// [`Recipe::stages`].
    pub gradual: usize,
    /// In a gradual schedule, freeze the blocks of finished stages (weights, codebooks,
    /// batch-norm parameters and statistics, activation quantizers: UNIQ's choice); else
    /// they keep training with the straight-through estimator.
    pub freeze_done: bool,
    /// Knowledge distillation during fine-tuning: a copy of the float network, as it was
    /// before quantization, is the teacher of every step ([`Teacher`]); `None`: labels only.
    pub distill: Option<Distill>,
}

impl Recipe {
    /// Post-training quantization with `config`, calibrated on 2 000 images: no fine-tuning,
    /// learning rate [`QAT_LR`](crate::pipeline::QAT_LR) and seed 1 for when `qat_images` is
    /// raised.
    pub fn new(config: QuantConfig) -> Recipe {
        Recipe {
            config,
            calib_images: 2000,
            qat_images: 0,
            qat_lr: crate::pipeline::QAT_LR,
            qat_batch: crate::pipeline::QAT_BATCH,
            seed: 1,
            recalib_every: 0,
            stages: Vec::new(),
            noise_share: 0.0,
            gradual: 0,
            freeze_done: true,
            distill: None,
        }
    }

    /// The fine-tuning run of stage `stage` of `stages` (of progressive widths or of a
    /// gradual schedule): an equal share of the images (the last stage takes the remainder)
    /// and the batch order of seed `seed + stage`.
    fn tuning(&self, stage: usize, stages: usize) -> Tuning {
        let per_stage = self.qat_images / stages;
        Tuning {
            images: if stage + 1 == stages {
                self.qat_images - per_stage * stage
            } else {
                per_stage
            },
            batch: self.qat_batch,
            lr: self.qat_lr,
            seed: self.seed + stage as u64,
            recalib_every: self.recalib_every,
            noise_share: self.noise_share,
        }
    }

    /// Checks the parts of the recipe that [`QuantConfig`] does not.
    ///
    /// # Errors
    /// [`NnError::LearningRate`], [`NnError::InvalidParameter`] (noise share),
    /// [`NnError::StagesNotDescending`], [`NnError::StageNotWider`],
    /// [`NnError::StagesWithoutFineTuning`], [`NnError::GradualWithProgressive`] or
    /// [`NnError::GradualWithoutFineTuning`].
    pub fn validate(&self) -> Result<(), NnError> {
        if !(self.qat_lr.is_finite() && self.qat_lr > 0.0) {
            return Err(NnError::LearningRate(self.qat_lr));
        }
        if self.qat_batch == 0 {
            return Err(NnError::InvalidParameter {
                what: "fine-tuning batch".into(),
                allowed: "at least 1",
                found: "0".into(),
            });
        }
        if let Some(d) = &self.distill {
            d.validate()?;
        }
        if !(0.0..=1.0).contains(&self.noise_share) {
            return Err(NnError::InvalidParameter {
                what: "noise share".into(),
                allowed: "a fraction in [0, 1]",
                found: self.noise_share.to_string(),
            });
        }
        if let Some(w) = self.stages.windows(2).find(|w| w[0] <= w[1]) {
            return Err(NnError::StagesNotDescending {
                before: w[0],
                after: w[1],
            });
        }
        let last = self.config.weight_bits.min(self.config.act_bits);
        if let Some(&stage) = self.stages.last().filter(|&&b| b <= last) {
            return Err(NnError::StageNotWider { stage, last });
        }
        if !self.stages.is_empty() && self.qat_images == 0 {
            return Err(NnError::StagesWithoutFineTuning);
        }
        if self.gradual > 1 && !self.stages.is_empty() {
            return Err(NnError::GradualWithProgressive);
        }
        if self.gradual > 1 && self.qat_images == 0 {
            return Err(NnError::GradualWithoutFineTuning);
        }
        Ok(())
    }
}

/// Quantizes `net` by `r`: weights to codebooks, activation quantizers calibrated on the first
/// training images, quantization-aware fine-tuning, then the fold into the integer model.
/// `augment` gives the input normalisation (its random parts are not used).
///
/// # Errors
/// As [`quantize_with_twin`].
pub fn quantize(
    net: Network,
    r: &Recipe,
    train: &Arc<Dataset>,
    augment: &Augment,
    progress: &dyn Progress,
) -> Result<IntegerModel, NnError> {
    quantize_with_twin(net, r, train, augment, progress).map(|(model, _)| model)
}

/// As [`quantize`], also returning the fake-quantized float twin the integer model was folded
/// from (to measure how closely the two agree, see
/// [`twin_agreement`](crate::pipeline::twin_agreement)).
///
/// # Errors
/// [`Recipe::validate`]'s errors, [`NnError::NoTrainingImages`], or an error of preparing,
/// calibrating, fine-tuning or folding the network.
pub fn quantize_with_twin(
    net: Network,
    r: &Recipe,
    train: &Arc<Dataset>,
    augment: &Augment,
    progress: &dyn Progress,
) -> Result<(IntegerModel, QuantizedNetwork), NnError> {
    r.validate()?;
    if train.is_empty() {
        return Err(NnError::NoTrainingImages("calibration"));
    }
    let norm = InputNorm::from_mean_std(&augment.mean, &augment.std)?;
    let n = r.calib_images.clamp(1, train.len());
    let calib = norm.normalise(
        &train.images[..n * train.image_len()],
        n,
        train.height,
        train.width,
    )?;
    // Stage widths for weights and activations, the final one last.
    let mut widths: Vec<(u8, u8)> = r.stages.iter().map(|&b| (b, b)).collect();
    widths.push((r.config.weight_bits, r.config.act_bits));
    let mut first = r.config;
    (first.weight_bits, first.act_bits) = widths[0];
    let teacher = match r.distill {
        Some(d) => Some(Teacher::new(net.clone(), d)?),
        None => None,
    };
    let mut qn = QuantizedNetwork::prepare(net, first, norm)?;
    qn.teacher = teacher;
    // Fine-tuning sees the images with the normalisation the integer model will use (the
    // zero point rounded to a byte), without random crops and flips.
    let tune = Augment::normalize_only(qn.input_norm.mean(), qn.input_norm.std.clone());
    if r.gradual > 1 {
        gradual(&mut qn, r, train, &tune, &calib, progress)?;
    } else {
        progressive(&mut qn, r, &widths, train, &tune, &calib, progress)?;
    }
    qn.teacher = None;
    // The twin moves off the integer model's near-ties (its codes stay the same).
    qn.separate_ties()?;
    let model = qn.to_integer()?;
    Ok((model, qn))
}

/// Calibration, then one fine-tuning run per width of `widths` (progressive reduction; one
/// width: plain fine-tuning), each stage recalibrated at its width.
fn progressive(
    qn: &mut QuantizedNetwork,
    r: &Recipe,
    widths: &[(u8, u8)],
    train: &Arc<Dataset>,
    tune: &Augment,
    calib: &Tensor,
    progress: &dyn Progress,
) -> Result<(), NnError> {
    qn.calibrate(calib)?;
    for (i, &(wb, ab)) in widths.iter().enumerate() {
        if i > 0 {
            qn.set_bits(wb, ab, calib)?;
        }
        fine_tune(
            qn,
            train,
            tune,
            calib,
            &r.tuning(i, widths.len()),
            progress,
            &format!(
                "QAT W{wb}/A{ab} {}",
                crate::quant::family_name(r.config.act_family)
            ),
        )?;
    }
    Ok(())
}

/// UNIQ's gradual schedule ([`Recipe::gradual`]): one fine-tuning run per stage, each with
/// its own cosine schedule and batch order (seed `seed + stage`), then every layer quantized.
fn gradual(
    qn: &mut QuantizedNetwork,
    r: &Recipe,
    train: &Arc<Dataset>,
    tune: &Augment,
    calib: &Tensor,
    progress: &dyn Progress,
) -> Result<(), NnError> {
    let stages = r.gradual;
    for i in 0..stages {
        qn.begin_stage(stages, i, r.freeze_done, calib)?;
        fine_tune(
            qn,
            train,
            tune,
            calib,
            &r.tuning(i, stages),
            progress,
            &format!(
                "QAT W{}/A{} {} stage {}/{stages}",
                r.config.weight_bits,
                r.config.act_bits,
                crate::quant::family_name(r.config.act_family),
                i + 1
            ),
        )?;
    }
    qn.finish_gradual(calib)
}
