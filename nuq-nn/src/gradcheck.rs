//! Finite-difference gradient checking for any [`Layer`].
//!
//! The scalar checked is `L = Σ rᵢ·yᵢ` with fixed random weights `r`, accumulated in `f64`.
//! Its analytic gradient comes from `backward(x, r)`; the numeric one from central
//! differences `(L(v + h) − L(v − h)) / 2h` on every input value and every parameter value
//! (or on a seeded sample of them when there are many).
//!
//! Networks with ReLU and max-pool are only piecewise smooth: when a kink lies within one step
//! of the evaluation point, the central difference averages two different slopes and is no
//! estimate of the derivative. Such coordinates are detected — the one-sided differences
//! `(L(v + h) − L(v)) / h` and `(L(v) − L(v − h)) / h` disagree by more than the tolerance —
//! and counted as skipped instead of compared. At a smooth point the two agree, so a wrong
//! gradient is still caught; callers bound the skipped fraction.
//!
//! A check runs many forward passes: in [`Mode::Train`], BatchNorm running statistics and
//! `num_batches_tracked` change along the way (the checked function itself does not depend on
//! them).

use crate::error::NnError;
use crate::layer::{Layer, Mode};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Settings of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheckConfig {
    /// Central-difference step.
    pub step: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the larger magnitude of the two gradients).
    pub rtol: f64,
    /// At most this many coordinates are checked per tensor (a seeded sample beyond it).
    pub max_checks_per_tensor: usize,
    /// Mode of the forward passes.
    pub mode: Mode,
    /// Seed of `r` and of the coordinate sample.
    pub seed: u64,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        Self {
            step: 1e-2,
            atol: 2e-3,
            rtol: 2e-2,
            max_checks_per_tensor: 64,
            mode: Mode::Train,
            seed: 1,
        }
    }
}

/// Outcome of a gradient check.
#[derive(Clone, Debug, Default)]
pub struct GradCheckReport {
    /// Coordinates compared (skipped ones not included).
    pub checked: usize,
    /// Coordinates outside the tolerance.
    pub failed: usize,
    /// Coordinates skipped because a kink lies within one step (see the module docs).
    pub skipped: usize,
    /// Largest `|analytic − numeric| / (atol + rtol·max(|analytic|, |numeric|))` seen
    /// (≤ 1 passes).
    pub worst_ratio: f64,
    /// Description of the worst coordinate.
    pub worst: String,
}

impl GradCheckReport {
    fn record(&mut self, what: String, analytic: f64, l: [f64; 3], cfg: &GradCheckConfig) {
        let [lm, l0, lp] = l;
        let (fwd, bwd) = ((lp - l0) / cfg.step, (l0 - lm) / cfg.step);
        if (fwd - bwd).abs() > cfg.atol + cfg.rtol * fwd.abs().max(bwd.abs()) {
            self.skipped += 1;
            return;
        }
        let numeric = (lp - lm) / (2.0 * cfg.step);
        let tol = cfg.atol + cfg.rtol * analytic.abs().max(numeric.abs());
        let ratio = (analytic - numeric).abs() / tol;
        self.checked += 1;
        if ratio > 1.0 {
            self.failed += 1;
        }
        if ratio > self.worst_ratio {
            self.worst_ratio = ratio;
            self.worst = format!("{what}: analytic {analytic:.6}, numeric {numeric:.6}");
        }
    }
}

fn objective(layer: &mut dyn Layer, x: &Tensor, r: &[f32], mode: Mode) -> Result<f64, NnError> {
    let y = layer.forward(x, mode)?;
    Ok(y.data()
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum())
}

fn sample(len: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    if len <= max {
        return (0..len).collect();
    }
    let mut idx: Vec<usize> = (0..len).collect();
    rng.shuffle(&mut idx);
    idx.truncate(max);
    idx.sort_unstable();
    idx
}

/// Checks the input and parameter gradients of `layer` at input `x`.
pub fn check_layer(
    layer: &mut dyn Layer,
    x: &Tensor,
    cfg: &GradCheckConfig,
) -> Result<GradCheckReport, NnError> {
    let mut rng = Rng::new(cfg.seed);
    let out_shape = layer.output_shape(x.shape())?;
    let r: Vec<f32> = (0..out_shape.iter().product::<usize>())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let dy = Tensor::from_vec(out_shape, r.clone())?;
    layer.forward(x, cfg.mode)?;
    layer.backward(x, &dy, true)?;
    let dx = layer.input_grad().data().to_vec();
    let mut names = Vec::new();
    let mut grads = Vec::new();
    layer.visit_params("", &mut |n, p| {
        names.push(n.to_string());
        grads.push(p.grad.clone());
    });
    let mut report = GradCheckReport::default();
    let l0 = objective(layer, x, &r, cfg.mode)?;
    let mut xp = x.clone();
    for i in sample(x.len(), cfg.max_checks_per_tensor, &mut rng) {
        let v = xp.data()[i];
        xp.data_mut()[i] = (v as f64 + cfg.step) as f32;
        let lp = objective(layer, &xp, &r, cfg.mode)?;
        xp.data_mut()[i] = (v as f64 - cfg.step) as f32;
        let lm = objective(layer, &xp, &r, cfg.mode)?;
        xp.data_mut()[i] = v;
        report.record(format!("input[{i}]"), dx[i] as f64, [lm, l0, lp], cfg);
    }
    for (pi, (name, grad)) in names.iter().zip(&grads).enumerate() {
        for i in sample(grad.len(), cfg.max_checks_per_tensor, &mut rng) {
            let mut orig = 0.0;
            let mut k = 0;
            layer.visit_params("", &mut |_, p| {
                if k == pi {
                    orig = p.value[i];
                    p.value[i] = (orig as f64 + cfg.step) as f32;
                }
                k += 1;
            });
            let lp = objective(layer, x, &r, cfg.mode)?;
            k = 0;
            layer.visit_params("", &mut |_, p| {
                if k == pi {
                    p.value[i] = (orig as f64 - cfg.step) as f32;
                }
                k += 1;
            });
            let lm = objective(layer, x, &r, cfg.mode)?;
            k = 0;
            layer.visit_params("", &mut |_, p| {
                if k == pi {
                    p.value[i] = orig;
                }
                k += 1;
            });
            report.record(format!("{name}[{i}]"), grad[i] as f64, [lm, l0, lp], cfg);
        }
    }
    Ok(report)
}
