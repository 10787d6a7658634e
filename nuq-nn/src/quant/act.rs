//! Activation quantizers: real thresholds and integer levels on the unsigned 8-bit grid.

use nuq_core::{Calibration, Codebook, EmpiricalDistribution, Grid, LloydMaxOptions, Polarity};

use crate::quant::Family;
use crate::NnError;

/// Most samples a fit looks at; larger calibration sets are thinned with a fixed stride.
const MAX_SAMPLES: usize = 1 << 18;

/// A quantizer of post-ReLU activations: `code(x) = #{j : x >= thresholds[j]}`, real value
/// `scale · levels[code]`.
///
/// Always `2^bits` strictly increasing levels with `levels[0] = 0` (ReLU's zero is exact)
/// and `2^bits − 1` ascending thresholds. A threshold of `+∞` is never reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ActQuantizer {
    /// Code bits.
    pub bits: u8,
    /// Real thresholds, ascending.
    pub thresholds: Vec<f64>,
    /// Integer levels on the unsigned 8-bit grid.
    pub levels: Vec<u8>,
    /// Real value of one level step.
    pub scale: f64,
}

impl ActQuantizer {
    /// Fits a quantizer of `family` to post-ReLU samples (non-negative; negative values are
    /// treated as 0).
    ///
    /// - [`Family::KQuantile`] (the paper): the first threshold is the ReLU cut (every
    ///   positive value gets a code ≥ 1); the other `2^b − 2` sit at equal-mass quantiles of
    ///   the positive values (halfway between the two samples around each quantile), so each
    ///   of the `2^b − 1` positive bins holds the same mass; each
    ///   level is its bin's centroid, snapped to the grid with the scale that puts the top
    ///   centroid on 255.
    /// - [`Family::LloydMax`]: minimum-MSE levels fitted to all samples (`nuq-core`), lowest
    ///   level pinned to 0, nearest-level thresholds.
    /// - [`Family::Apot`] / [`Family::Uniform`]: the unsigned codebook of that family with
    ///   the MSE-optimal scale, nearest-level thresholds.
    ///
    /// # Errors
    /// [`NnError::Config`] for bits outside `1..=8`, no samples or non-finite samples.
    pub fn fit(family: Family, bits: u8, samples: &[f32]) -> Result<ActQuantizer, NnError> {
        if !(1..=8).contains(&bits) {
            return Err(NnError::Config(format!(
                "activation bits must be 1..=8, got {bits}"
            )));
        }
        if samples.is_empty() {
            return Err(NnError::Config(
                "activation calibration saw no samples".into(),
            ));
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(NnError::Config(format!(
                "activation calibration sample {i} is not finite ({})",
                samples[i]
            )));
        }
        let stride = samples.len().div_ceil(MAX_SAMPLES);
        let xs: Vec<f32> = samples
            .iter()
            .step_by(stride)
            .map(|&v| v.max(0.0))
            .collect();
        let n = 1usize << bits;
        let mut positive: Vec<f64> = xs
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|&v| f64::from(v))
            .collect();
        if positive.is_empty() {
            // Everything is zero: code 0 always; the other levels are never used.
            return Ok(ActQuantizer {
                bits,
                thresholds: vec![f64::INFINITY; n - 1],
                levels: (0..n).map(|i| i as u8).collect(),
                scale: 1.0,
            });
        }
        positive.sort_by(f64::total_cmp);
        let q = match family {
            Family::KQuantile => k_quantile(bits, &positive),
            Family::LloydMax => {
                let d = EmpiricalDistribution::from_values(&xs).map_err(core_err)?;
                let fit = Codebook::lloyd_max(Grid::U8, bits, &d, &LloydMaxOptions::default())
                    .map_err(core_err)?;
                nearest(bits, fit.codebook.levels(), f64::from(fit.scale.get()))
            }
            Family::Apot | Family::Uniform => {
                let cb = if family == Family::Apot {
                    Codebook::apot(Grid::U8, bits, Polarity::Unsigned)
                } else {
                    Codebook::uniform(Grid::U8, bits, Polarity::Unsigned)
                }
                .map_err(core_err)?;
                let s = Calibration::MseOptimal.scale(&xs, &cb).map_err(core_err)?;
                nearest(bits, cb.levels(), f64::from(s.get()))
            }
        };
        Ok(q)
    }

    /// The code of `x`.
    #[inline]
    pub fn code(&self, x: f32) -> u8 {
        let x = f64::from(x);
        self.thresholds.partition_point(|&t| x >= t) as u8
    }

    /// The real value of a code.
    #[inline]
    pub fn value(&self, code: u8) -> f32 {
        (self.scale * f64::from(self.levels[usize::from(code)])) as f32
    }

    /// `value(code(x))`.
    #[inline]
    pub fn fake_quantize(&self, x: f32) -> f32 {
        self.value(self.code(x))
    }
}

fn core_err(e: nuq_core::Error) -> NnError {
    NnError::Config(format!("fitting an activation codebook: {e}"))
}

/// `2^bits` strictly increasing grid levels starting at 0, nearest to `wanted` (which starts
/// at 0 and is non-decreasing).
fn distinct_levels(wanted: &[f64]) -> Vec<u8> {
    let n = wanted.len();
    let mut levels = vec![0u8; n];
    for i in 1..n {
        let lo = i32::from(levels[i - 1]) + 1;
        let hi = 255 - (n - 1 - i) as i32;
        levels[i] = (wanted[i].round() as i32).clamp(lo, hi) as u8;
    }
    levels
}

fn k_quantile(bits: u8, positive: &[f64]) -> ActQuantizer {
    let n = 1usize << bits;
    let bins = n - 1;
    let len = positive.len();
    // Bin i (1..=bins) holds sorted positives [bounds[i-1], bounds[i]).
    let bounds: Vec<usize> = (0..=bins).map(|j| j * len / bins).collect();
    let mut centroids = vec![0.0f64; n];
    for i in 1..=bins {
        let part = &positive[bounds[i - 1]..bounds[i]];
        centroids[i] = if part.is_empty() {
            positive[bounds[i - 1].min(len - 1)]
        } else {
            part.iter().sum::<f64>() / part.len() as f64
        };
    }
    let top = centroids[bins].max(f64::MIN_POSITIVE);
    let scale = top / 255.0;
    let wanted: Vec<f64> = centroids.iter().map(|c| c / scale).collect();
    let levels = distinct_levels(&wanted);
    let mut thresholds = Vec::with_capacity(bins);
    thresholds.push(f64::from(f32::MIN_POSITIVE));
    for j in 1..bins {
        // Halfway between the last sample of bin j and the first of bin j + 1: a threshold on
        // a sample value would put later values equal to it on a knife edge.
        let b = bounds[j].clamp(1, len - 1);
        let t = 0.5 * (positive[b - 1] + positive[b]);
        thresholds.push(t.max(thresholds[j - 1]));
    }
    ActQuantizer {
        bits,
        thresholds,
        levels,
        scale,
    }
}

fn nearest(bits: u8, fitted: &[i32], scale: f64) -> ActQuantizer {
    let n = 1usize << bits;
    let mut wanted: Vec<f64> = fitted.iter().map(|&l| f64::from(l.clamp(0, 255))).collect();
    wanted[0] = 0.0;
    while wanted.len() < n {
        let last = *wanted.last().unwrap_or(&0.0);
        wanted.push(last + 1.0);
    }
    wanted.truncate(n);
    let levels = distinct_levels(&wanted);
    let thresholds = levels
        .windows(2)
        .map(|p| scale * (f64::from(p[0]) + f64::from(p[1])) / 2.0)
        .collect();
    ActQuantizer {
        bits,
        thresholds,
        levels,
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relu_normal(n: usize) -> Vec<f32> {
        let mut rng = crate::Rng::new(3);
        (0..n).map(|_| rng.normal().max(0.0)).collect()
    }

    #[test]
    fn k_quantile_bins_hold_equal_mass() {
        let xs = relu_normal(100_000);
        let q = ActQuantizer::fit(Family::KQuantile, 3, &xs).unwrap();
        let mut counts = [0usize; 8];
        for &x in &xs {
            counts[usize::from(q.code(x))] += 1;
        }
        let positive = xs.iter().filter(|&&x| x > 0.0).count();
        assert_eq!(
            counts[0],
            xs.len() - positive,
            "code 0 is exactly the ReLU zeros"
        );
        for &c in &counts[1..] {
            let share = c as f64 / positive as f64;
            assert!((share - 1.0 / 7.0).abs() < 0.01, "{counts:?}");
        }
        assert_eq!(q.levels[0], 0);
        assert_eq!(q.levels[7], 255);
    }

    #[test]
    fn every_family_is_monotone_with_zero_exact() {
        let xs = relu_normal(20_000);
        for family in [
            Family::KQuantile,
            Family::LloydMax,
            Family::Apot,
            Family::Uniform,
        ] {
            for bits in [2u8, 3, 4] {
                let q = ActQuantizer::fit(family, bits, &xs).unwrap();
                assert_eq!(q.levels.len(), 1 << bits);
                assert_eq!(q.thresholds.len(), (1 << bits) - 1);
                assert!(q.levels.windows(2).all(|p| p[0] < p[1]), "{family:?} {q:?}");
                assert!(q.thresholds.windows(2).all(|p| p[0] <= p[1]));
                assert_eq!(q.fake_quantize(0.0), 0.0);
                let mut last = 0.0;
                for i in 0..400 {
                    let v = q.fake_quantize(i as f32 * 0.01);
                    assert!(v >= last);
                    last = v;
                }
            }
        }
    }

    #[test]
    fn nearest_families_beat_a_coarse_bound() {
        let xs = relu_normal(50_000);
        let mse = |q: &ActQuantizer| {
            xs.iter()
                .map(|&x| f64::from(q.fake_quantize(x) - x).powi(2))
                .sum::<f64>()
                / xs.len() as f64
        };
        let lloyd = ActQuantizer::fit(Family::LloydMax, 4, &xs).unwrap();
        let uniform = ActQuantizer::fit(Family::Uniform, 4, &xs).unwrap();
        assert!(
            mse(&lloyd) <= mse(&uniform) * 1.05,
            "{} vs {}",
            mse(&lloyd),
            mse(&uniform)
        );
        assert!(mse(&lloyd) < 0.005);
    }

    #[test]
    fn degenerate_and_bad_samples() {
        let q = ActQuantizer::fit(Family::KQuantile, 2, &[0.0; 10]).unwrap();
        assert_eq!(q.code(5.0), 0);
        assert!(ActQuantizer::fit(Family::Uniform, 0, &[1.0]).is_err());
        assert!(ActQuantizer::fit(Family::Uniform, 4, &[]).is_err());
        let e = ActQuantizer::fit(Family::Uniform, 4, &[1.0, f32::INFINITY]).unwrap_err();
        assert!(e.to_string().contains("sample 1"));
    }
}
