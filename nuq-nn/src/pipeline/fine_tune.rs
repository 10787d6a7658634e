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

/// Images per fine-tuning step (fewer when the training set is smaller).
pub const QAT_BATCH: usize = 128;

/// One quantization-aware fine-tuning run.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Training images (rounded down to whole batches of [`QAT_BATCH`], at least one batch).
    pub images: usize,
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
    let batch = QAT_BATCH.min(data.len());
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
