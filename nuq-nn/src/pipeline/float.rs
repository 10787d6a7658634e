//! Float training: SGD with Nesterov momentum and a one-cycle or cosine schedule, epoch by
//! epoch, resumable.

use std::str::FromStr;
use std::sync::Arc;

use crate::data::{Augment, BatchLoader, Dataset};
use crate::error::NnError;
use crate::loss::CrossEntropy;
use crate::models::Network;
use crate::optim::{LrSchedule, Optimizer, Schedule, Sgd, WeightDecay};
use crate::pipeline::Progress;
use crate::train::{train_step, Stats};

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Linear warm-up to the peak, then cosine annealing to zero (fast convergence).
    Onecycle,
    /// Cosine annealing from the peak with one epoch of linear warm-up.
    Cosine,
}

impl ScheduleKind {
    /// Every schedule.
    pub const ALL: [ScheduleKind; 2] = [ScheduleKind::Onecycle, ScheduleKind::Cosine];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Onecycle => "onecycle",
            ScheduleKind::Cosine => "cosine",
        }
    }
}

impl FromStr for ScheduleKind {
    type Err = NnError;

    /// ```
    /// use nuq_nn::pipeline::ScheduleKind;
    /// assert_eq!("cosine".parse::<ScheduleKind>().unwrap(), ScheduleKind::Cosine);
    /// assert!("step".parse::<ScheduleKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScheduleKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| NnError::UnknownName {
                what: "schedule",
                found: s.to_string(),
                expected: "onecycle, cosine",
            })
    }
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
    ///
    /// # Errors
    /// [`NnError::FewerThanOneBatch`] when not even one batch fits.
    pub fn steps_per_epoch(&self, images: usize) -> Result<usize, NnError> {
        let steps = images / self.batch.max(1);
        if steps == 0 {
            return Err(NnError::FewerThanOneBatch {
                images,
                batch: self.batch,
            });
        }
        Ok(steps)
    }

    /// The learning-rate schedule of a run with `steps_per_epoch` steps per epoch.
    ///
    /// # Errors
    /// As [`Schedule::validate`].
    pub fn schedule(&self, steps_per_epoch: usize) -> Result<Schedule, NnError> {
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
        s.validate()?;
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
/// epoch's training statistics; decides whether the run goes on.
pub type AfterEpoch<'a, E> = dyn FnMut(&mut Network, &Sgd, Position, Stats) -> Result<Flow, E> + 'a;

/// Trains `net` from `from` up to `plan.epochs`, calling `after_epoch` after each epoch with
/// the network, the optimiser, the position reached and that epoch's training statistics; it
/// may stop the run early (to checkpoint and resume later, the position and the optimiser
/// state are all a run needs). The caller's error type `E` carries both the library's errors
/// and those of `after_epoch`.
///
/// # Errors
/// [`NnError::FewerThanOneBatch`], a schedule or training-step error, or whatever
/// `after_epoch` returns.
#[allow(clippy::too_many_arguments)]
pub fn train_float<E: From<NnError>>(
    net: &mut Network,
    opt: &mut Sgd,
    data: &Arc<Dataset>,
    augment: &Augment,
    plan: &Plan,
    from: Position,
    progress: &dyn Progress,
    after_epoch: &mut AfterEpoch<'_, E>,
) -> Result<(), E> {
    let steps = plan.steps_per_epoch(data.len())?;
    let schedule = plan.schedule(steps)?;
    let mut ce = CrossEntropy::new(0.0)?;
    let mut step = from.step;
    for epoch in from.epoch..plan.epochs {
        progress.begin(&format!("epoch {}", epoch + 1), steps as u64);
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
            )?;
            stats.add(s);
            step += 1;
            progress.step();
        }
        progress.end();
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
