//! Quantization-aware fine-tuning of a [`QuantizedNetwork`] with its quantizers in the loop.

use std::sync::Arc;

use crate::data::{Augment, BatchLoader, Dataset};
use crate::error::NnError;
use crate::loss::CrossEntropy;
use crate::optim::{LrSchedule, Schedule};
use crate::pipeline::float::{Plan, ScheduleKind};
use crate::pipeline::Progress;
use crate::quant::QuantizedNetwork;
use crate::tensor::Tensor;

/// The default images per fine-tuning step ([`Recipe::new`](crate::pipeline::Recipe::new),
/// `nuq quantize --qat-batch`; fewer when the training set is smaller).
pub const QAT_BATCH: usize = 128;

/// The default peak learning rate of the fine-tuning ([`Recipe::new`](crate::pipeline::Recipe::new),
/// `nuq quantize --qat-lr`). Measured on VGG-Small ×0.25 (Fashion-MNIST, 0.5 epoch, seed 1):
/// 0.08 lifts every family and width against the former 0.01 — k-quantile 2/2 by 2.2 points
/// and 4/4 by 0.8, Lloyd–Max 2/2 by 3.1, uniform 2/2 by 1.2 — and 0.16 gains no more; over 3
/// seeds every cell of the VGG-Small and ResNet-18 ×0.25 tables rises (README, "Fine-tuning:
/// learning rate, steps and distillation").
pub const QAT_LR: f32 = 0.08;

/// One quantization-aware fine-tuning run.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Training images (rounded down to whole batches, at least one batch).
    pub images: usize,
    /// Images per step (at least 1; at most the training set).
    pub batch: usize,
    /// Peak learning rate (cosine decay to zero).
    pub lr: f32,
    /// Seed of the batch order.
    pub seed: u64,
    /// Recalibrate every this many steps (0: never).
    pub recalib_every: usize,
    /// Share of the steps, from the start, trained with UNIQ noise on the k-quantile weights
    /// instead of the straight-through estimator ([`QuantizedNetwork::set_noise`]); 0: STE
    /// throughout.
    pub noise_share: f32,
}

/// Quantization-aware fine-tuning with the quantizers in the loop: SGD with Nesterov momentum
/// and weight decay 5e-4, cosine decay to zero; every `recalib_every` steps the codebooks are
/// refitted and the activation quantizers recalibrated on `calib` (normalised images). Batches
/// continue across epochs of the data when `images` exceeds the training set; nothing happens
/// when `images` is 0.
///
/// # Errors
/// [`NnError::NoTrainingImages`] for an empty training set, or a training-step error.
pub fn fine_tune(
    qn: &mut QuantizedNetwork,
    data: &Arc<Dataset>,
    augment: &Augment,
    calib: &Tensor,
    t: &Tuning,
    progress: &dyn Progress,
    label: &str,
) -> Result<(), NnError> {
    if t.images == 0 {
        return Ok(());
    }
    if data.is_empty() {
        return Err(NnError::NoTrainingImages("quantization-aware training"));
    }
    let batch = t.batch.clamp(1, data.len());
    let steps = (t.images / batch).max(1);
    let mut opt = Plan {
        epochs: 1,
        batch,
        lr: t.lr,
        wd: 5e-4,
        decay_bn: true,
        schedule: ScheduleKind::Cosine,
        seed: t.seed,
    }
    .optimizer();
    let schedule = Schedule::Cosine {
        lr: t.lr,
        min_lr: 0.0,
        warmup: 0,
        total: steps,
    };
    schedule.validate()?;
    let mut ce = CrossEntropy::new(0.0)?;
    let noise_steps = (f64::from(t.noise_share.clamp(0.0, 1.0)) * steps as f64).round() as usize;
    if noise_steps > 0 {
        qn.set_noise(Some(t.seed));
    }
    progress.begin(label, steps as u64);
    let mut step = 0;
    let mut epoch = 0u64;
    while step < steps {
        let loader = BatchLoader::new(
            data.clone(),
            batch,
            augment.clone(),
            true,
            true,
            t.seed,
            epoch,
        );
        for b in loader.take(steps - step) {
            qn.qat_step(&mut ce, &mut opt, &b.images, &b.labels, schedule.lr(step))?;
            step += 1;
            progress.step();
            if step == noise_steps && noise_steps > 0 {
                qn.set_noise(None);
            }
            if t.recalib_every > 0 && step % t.recalib_every == 0 && step < steps {
                qn.recalibrate(calib)?;
            }
        }
        epoch += 1;
    }
    progress.end();
    Ok(())
}
