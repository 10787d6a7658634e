//! One training step and evaluation, the building blocks of a training loop.

use crate::error::NnError;
use crate::layer::Mode;
use crate::loss::CrossEntropy;
use crate::models::Network;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// Loss and accuracy counts of one or more batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Sum over samples of the per-sample loss.
    pub loss_sum: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples seen.
    pub samples: usize,
}

impl Stats {
    /// Mean loss per sample (0 when empty).
    pub fn mean_loss(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.loss_sum / self.samples as f64
        }
    }

    /// Fraction classified correctly (0 when empty).
    pub fn accuracy(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.correct as f64 / self.samples as f64
        }
    }

    /// Adds another batch's statistics.
    pub fn add(&mut self, other: Stats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.samples += other.samples;
    }
}

/// Forward (training mode), loss, backward and one optimiser update with rate `lr`.
pub fn train_step(
    net: &mut Network,
    loss: &mut CrossEntropy,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    labels: &[u32],
    lr: f32,
) -> Result<Stats, NnError> {
    let logits = net.forward(x, Mode::Train)?;
    let out = loss.forward(logits, labels)?;
    net.backward(x, loss.grad())?;
    opt.step(net, lr)?;
    Ok(Stats {
        loss_sum: out.loss as f64 * labels.len() as f64,
        correct: out.correct,
        samples: labels.len(),
    })
}

/// Loss and accuracy of one batch in evaluation mode (no parameter change).
pub fn eval_batch(
    net: &mut Network,
    loss: &mut CrossEntropy,
    x: &Tensor,
    labels: &[u32],
) -> Result<Stats, NnError> {
    let logits = net.forward(x, Mode::Eval)?;
    let out = loss.forward(logits, labels)?;
    Ok(Stats {
        loss_sum: out.loss as f64 * labels.len() as f64,
        correct: out.correct,
        samples: labels.len(),
    })
}
