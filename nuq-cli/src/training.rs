//! The training loops the commands share: float training (SGD with Nesterov momentum and a
//! one-cycle or cosine schedule) and quantization-aware fine-tuning of a
//! [`QuantizedNetwork`] with its quantizers in the loop.

use std::sync::Arc;

use clap::ValueEnum;
use nuq_nn::data::{Augment, BatchLoader, Dataset};
use nuq_nn::optim::{LrSchedule, Optimizer, Schedule, Sgd, WeightDecay};
use nuq_nn::quant::QuantizedNetwork;
use nuq_nn::train::{train_step, Stats};
use nuq_nn::{CrossEntropy, Network, Tensor};

use crate::exit::{CmdResult, Failure};
use crate::progress::Progress;

/// Turns a library error into a one-line failure.
pub fn nn(e: nuq_nn::NnError) -> Failure {
    Failure::new(e.to_string())
}

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Linear warm-up to the peak, then cosine annealing to zero (fast convergence).
    Onecycle,
    /// Cosine annealing from the peak with one epoch of linear warm-up.
    Cosine,
}

/// What a float training run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Epochs in total (a resumed run continues up to this count).
    pub epochs: u32,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// L2 weight decay.
    pub wd: f32,
    /// Whether the decay also applies to batch-norm parameters and biases.
    pub decay_bn: bool,
    /// Schedule shape.
    pub schedule: ScheduleKind,
    /// Seed of batch order and augmentation.
    pub seed: u64,
}

impl Plan {
    /// Optimiser steps per epoch over `images` training images (last partial batch dropped).
    pub fn steps_per_epoch(&self, images: usize) -> Result<usize, Failure> {
        let steps = images / self.batch.max(1);
        if steps == 0 {
            return Err(Failure::new(format!(
                "{images} training images are fewer than one batch of {}; lower --batch",
                self.batch
            )));
        }
        Ok(steps)
    }

    /// The learning-rate schedule over `total` steps.
    pub fn schedule(&self, steps_per_epoch: usize) -> Result<Schedule, Failure> {
        let total = (steps_per_epoch * self.epochs as usize).max(2);
        let s = match self.schedule {
            ScheduleKind::Onecycle => Schedule::one_cycle(self.lr, total),
            ScheduleKind::Cosine => Schedule::Cosine {
                lr: self.lr,
                min_lr: 0.0,
                warmup: steps_per_epoch.min(total / 2),
                total,
            },
        };
        s.validate().map_err(nn)?;
        Ok(s)
    }

    /// SGD with Nesterov momentum 0.9 and L2 decay.
    pub fn optimizer(&self) -> Sgd {
        let mut opt = Sgd::new(0.9, self.wd);
        opt.nesterov = true;
        opt.decay_mode = WeightDecay::L2;
        opt.decay_bn_and_bias = self.decay_bn;
        opt
    }
}

/// Where a float run stands: the next epoch and the optimiser step count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Position {
    /// Next epoch (0-based).
    pub epoch: u32,
    /// Optimiser steps done.
    pub step: usize,
}

/// What to do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Train the next epoch.
    Continue,
    /// Stop here (the run can be resumed later).
    Stop,
}

/// Called after every epoch with the network, the optimiser, the position reached and the
/// epoch's training statistics.
pub type AfterEpoch<'a> =
    dyn FnMut(&mut Network, &Sgd, Position, Stats) -> Result<Flow, Failure> + 'a;

/// Trains `net` from `from` up to `plan.epochs`, calling `after_epoch` after each epoch with
/// the position reached and that epoch's training statistics; it may stop the run early.
#[allow(clippy::too_many_arguments)]
pub fn train_float(
    net: &mut Network,
    opt: &mut Sgd,
    data: &Arc<Dataset>,
    augment: &Augment,
    plan: &Plan,
    from: Position,
    progress: &Progress,
    after_epoch: &mut AfterEpoch<'_>,
) -> CmdResult {
    let steps = plan.steps_per_epoch(data.len())?;
    let schedule = plan.schedule(steps)?;
    let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
    let mut step = from.step;
    for epoch in from.epoch..plan.epochs {
        let bar = progress.bar(steps as u64, &format!("epoch {}", epoch + 1));
        let mut stats = Stats::default();
        let loader = BatchLoader::new(
            data.clone(),
            plan.batch,
            augment.clone(),
            true,
            true,
            plan.seed,
            u64::from(epoch),
        );
        for b in loader {
            let s = train_step(
                net,
                &mut ce,
                opt as &mut dyn Optimizer,
                &b.images,
                &b.labels,
                schedule.lr(step),
            )
            .map_err(nn)?;
            stats.add(s);
            step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let at = Position {
            epoch: epoch + 1,
            step,
        };
        if after_epoch(net, opt, at, stats)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// One quantization-aware fine-tuning run.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Training images (rounded down to whole batches of 128, at least one batch).
    pub images: usize,
    /// Peak learning rate (cosine decay to zero).
    pub lr: f32,
    /// Seed of the batch order.
    pub seed: u64,
    /// Recalibrate every this many steps (0: never).
    pub recalib_every: usize,
}

/// Quantization-aware fine-tuning with the quantizers in the loop, SGD with Nesterov
/// momentum, cosine decay; every `recalib_every` steps the codebooks are refitted and the
/// activation quantizers recalibrated on `calib`. Batches continue across epochs of the data
/// when `images` exceeds the training set.
pub fn fine_tune(
    qn: &mut QuantizedNetwork,
    data: &Arc<Dataset>,
    augment: &Augment,
    calib: &Tensor,
    t: &Tuning,
    progress: &Progress,
    label: &str,
) -> CmdResult {
    if t.images == 0 {
        return Ok(());
    }
    if data.is_empty() {
        return Err(Failure::new(
            "quantization-aware training needs training images, the training set is empty",
        ));
    }
    let batch = 128usize.min(data.len());
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
    schedule.validate().map_err(nn)?;
    let mut ce = CrossEntropy::new(0.0).map_err(nn)?;
    let bar = progress.bar(steps as u64, label);
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
            qn.qat_step(&mut ce, &mut opt, &b.images, &b.labels, schedule.lr(step))
                .map_err(nn)?;
            step += 1;
            bar.inc(1);
            if t.recalib_every > 0 && step % t.recalib_every == 0 && step < steps {
                qn.recalibrate(calib).map_err(nn)?;
            }
        }
        epoch += 1;
    }
    bar.finish_and_clear();
    Ok(())
}
