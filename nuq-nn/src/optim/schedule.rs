//! Learning-rate schedules, indexed by optimiser step (0-based).

use std::f64::consts::PI;

use crate::error::NnError;

/// A learning-rate schedule.
pub trait LrSchedule {
    /// The learning rate for step `step` (0-based).
    fn lr(&self, step: usize) -> f32;
}

/// The provided schedules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// A fixed rate.
    Constant {
        /// The rate.
        lr: f32,
    },
    /// Linear warm-up `lr·(s+1)/warmup` for steps `s < warmup` (reaching `lr` at step
    /// `warmup − 1`), then cosine decay reaching `min_lr` at the last step `total − 1`.
    Cosine {
        /// Peak rate.
        lr: f32,
        /// Final rate.
        min_lr: f32,
        /// Warm-up steps.
        warmup: usize,
        /// Total steps.
        total: usize,
    },
    /// PyTorch `OneCycleLR` with cosine annealing: from `max_lr/div` up to `max_lr` over the
    /// first `pct_start·total − 1` steps, then down to `max_lr/(div·final_div)` at step
    /// `total − 1`.
    OneCycle {
        /// Peak rate.
        max_lr: f32,
        /// Total steps.
        total: usize,
        /// Fraction of steps spent rising (PyTorch default 0.3).
        pct_start: f32,
        /// Initial rate divisor (PyTorch default 25).
        div: f32,
        /// Final divisor applied to the initial rate (PyTorch default 1e4).
        final_div: f32,
    },
    /// `lr · gammaᶠˡᵒᵒʳ⁽ˢᵗᵉᵖ/ˢᵗᵉᵖ_ˢⁱᶻᵉ⁾` (PyTorch `StepLR`).
    Step {
        /// Initial rate.
        lr: f32,
        /// Steps between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f32,
    },
}

impl Schedule {
    /// One-cycle with PyTorch's defaults (pct_start 0.3, div 25, final_div 1e4).
    pub fn one_cycle(max_lr: f32, total: usize) -> Self {
        Schedule::OneCycle {
            max_lr,
            total,
            pct_start: 0.3,
            div: 25.0,
            final_div: 1e4,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), NnError> {
        let nonneg = |v: f32| v.is_finite() && v >= 0.0;
        let bad = match *self {
            Schedule::Constant { lr } => !nonneg(lr),
            Schedule::Cosine {
                lr,
                min_lr,
                warmup,
                total,
            } => !nonneg(lr) || !nonneg(min_lr) || warmup > total || total == 0,
            Schedule::OneCycle {
                max_lr,
                total,
                pct_start,
                div,
                final_div,
            } => {
                let positive =
                    div.is_finite() && div > 0.0 && final_div.is_finite() && final_div > 0.0;
                let pct_ok = pct_start > 0.0 && pct_start < 1.0;
                !nonneg(max_lr) || !positive || !pct_ok || total < 2
            }
            Schedule::Step {
                lr,
                step_size,
                gamma,
            } => !(nonneg(lr) && gamma.is_finite() && gamma > 0.0) || step_size == 0,
        };
        if bad {
            return Err(NnError::InvalidParameter {
                what: "learning-rate schedule".into(),
                allowed: "finite, non-negative rates and positive lengths",
                found: format!("{self:?}"),
            });
        }
        Ok(())
    }
}

fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * (1.0 + (PI * pct).cos())
}

impl LrSchedule for Schedule {
    fn lr(&self, step: usize) -> f32 {
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::Cosine {
                lr,
                min_lr,
                warmup,
                total,
            } => {
                if step < warmup {
                    lr * (step + 1) as f32 / warmup as f32
                } else {
                    let span = (total - warmup).max(1) as f64;
                    let pct = ((step + 1 - warmup) as f64 / span).min(1.0);
                    cos_anneal(lr as f64, min_lr as f64, pct) as f32
                }
            }
            Schedule::OneCycle {
                max_lr,
                total,
                pct_start,
                div,
                final_div,
            } => {
                let initial = max_lr as f64 / div as f64;
                let min = initial / final_div as f64;
                let up_end = pct_start as f64 * total as f64 - 1.0;
                let down_end = total as f64 - 1.0;
                let s = (step as f64).min(down_end);
                if s <= up_end {
                    cos_anneal(initial, max_lr as f64, s / up_end.max(1e-12)) as f32
                } else {
                    cos_anneal(max_lr as f64, min, (s - up_end) / (down_end - up_end)) as f32
                }
            }
            Schedule::Step {
                lr,
                step_size,
                gamma,
            } => lr * gamma.powi((step / step_size) as i32),
        }
    }
}
