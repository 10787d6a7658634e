//! Activation quantizers: real thresholds and integer levels on the unsigned 8-bit grid.

use nuq_core::{
    Calibration, Codebook, EmpiricalDistribution, EqualMassBins, Grid, LloydMaxOptions, Polarity,
};

use crate::quant::{check_trainable, Family};
use crate::NnError;

/// Most samples a per-layer fit looks at; larger calibration sets are thinned to every
/// n-th pixel (all channels of a kept pixel are kept, so every channel is represented).
const MAX_SAMPLES: usize = 1 << 18;

/// Fewest samples per channel a per-channel fit keeps before thinning pixels.
const MIN_CHANNEL_SAMPLES: usize = 1 << 12;

/// A quantizer of post-ReLU activations: `code(x) = #{j : x >= thresholds[j]}`, real value
/// `scale · codebook.levels()[code]`.
///
/// Always `2^bits` strictly increasing levels with `levels[0] = 0` (ReLU's zero is exact)
/// and `2^bits − 1` ascending thresholds per group. A quantizer fitted per layer has one
/// group; one fitted per channel ([`ActQuantizer::fit_nhwc`]) has one group per channel, all
/// sharing the level table (the next layer decodes a code through one lookup table). A
/// threshold of `+∞` is never reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ActQuantizer {
    /// Real thresholds: `groups × (2^bits − 1)` values, group-major, ascending in each group.
    pub thresholds: Vec<f64>,
    /// The `2^bits` integer levels, on the unsigned 8-bit grid.
    pub codebook: Codebook,
    /// Real value of one level step.
    pub scale: f64,
}

impl ActQuantizer {
    /// Code bits (the codebook's index bits).
    pub fn bits(&self) -> u8 {
        self.codebook.bits()
    }

    /// Fits a quantizer of `family` to post-ReLU samples in any order (non-negative;
    /// negative values are treated as 0), one group for all of them.
    ///
    /// - [`Family::KQuantile`] (the paper): the first threshold is the ReLU cut (every
    ///   positive value gets a code ≥ 1); the other `2^b − 2` sit at equal-mass quantiles of
    ///   the positive values (in the gap between the two samples around each quantile), so each
    ///   of the `2^b − 1` positive bins holds the same mass; each
    ///   level is its bin's centroid, snapped to the grid with the scale that puts the top
    ///   centroid on 255.
    /// - [`Family::LloydMax`]: minimum-MSE levels fitted to all samples (`nuq-core`), lowest
    ///   level pinned to 0, nearest-level thresholds.
    /// - [`Family::Apot`] / [`Family::Uniform`]: the unsigned codebook of that family with
    ///   the MSE-optimal scale, nearest-level thresholds.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for bits outside `1..=8`, [`NnError::NoSamples`],
    /// [`NnError::NonFinite`] for a non-finite sample, [`NnError::Core`] when the fit fails,
    /// [`NnError::UntrainableFamily`] for a family outside [`crate::quant::TRAINABLE`].
    pub fn fit(family: Family, bits: u8, samples: &[f32]) -> Result<ActQuantizer, NnError> {
        Self::fit_nhwc(family, bits, samples, 1, false)
    }

    /// Fits a quantizer to channel-last samples (`samples[i]` belongs to channel
    /// `i % channels`), as [`ActQuantizer::fit`] does, on every channel.
    ///
    /// Large sample sets are thinned by whole pixels, so every channel keeps its share.
    /// With `per_channel`, a k-quantile quantizer places each channel's thresholds at that
    /// channel's own equal-mass quantiles and takes each shared level as the centroid of
    /// everything the code stands for, over all channels; the other families' thresholds
    /// follow their levels, so they stay one group.
    ///
    /// # Errors
    /// As [`ActQuantizer::fit`]; also [`NnError::InvalidParameter`] when `samples` do not split into
    /// `channels` channels.
    pub fn fit_nhwc(
        family: Family,
        bits: u8,
        samples: &[f32],
        channels: usize,
        per_channel: bool,
    ) -> Result<ActQuantizer, NnError> {
        check_trainable("activation quantizer", family)?;
        if !(1..=8).contains(&bits) {
            return Err(NnError::InvalidParameter {
                what: "activation bits".into(),
                allowed: "1..=8",
                found: bits.to_string(),
            });
        }
        if samples.is_empty() {
            return Err(NnError::NoSamples("activation calibration"));
        }
        if channels == 0 || !samples.len().is_multiple_of(channels) {
            return Err(NnError::InvalidParameter {
                what: "activation calibration sample count".into(),
                allowed: "a multiple of the (positive) channel count",
                found: format!("{} samples for {channels} channels", samples.len()),
            });
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(NnError::NonFinite {
                what: "activation calibration sample".into(),
                index: i,
                value: samples[i],
            });
        }
        let per_channel = per_channel && channels > 1 && family == Family::KQuantile;
        let pixels = samples.len() / channels;
        let stride = if per_channel {
            pixels.div_ceil(MIN_CHANNEL_SAMPLES)
        } else {
            samples.len().div_ceil(MAX_SAMPLES)
        };
        let xs: Vec<f32> = samples
            .chunks_exact(channels)
            .step_by(stride)
            .flatten()
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
                thresholds: vec![f64::INFINITY; n - 1],
                codebook: level_table(bits, (0..n).map(|i| i as u8).collect()),
                scale: 1.0,
            });
        }
        positive.sort_by(f64::total_cmp);
        let q = match family {
            Family::KQuantile if per_channel => k_quantile_per_channel(bits, &xs, channels),
            Family::KQuantile => k_quantile(bits, &positive),
            Family::LloydMax => {
                let d = EmpiricalDistribution::from_values(&xs).map_err(core_err)?;
                let fit = Codebook::lloyd_max(Grid::U8, bits, &d, &LloydMaxOptions::default())
                    .map_err(core_err)?;
                nearest(bits, fit.codebook.levels(), f64::from(fit.scale.get()))
            }
            // Apot or Uniform (check_trainable refused the rest).
            _ => {
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

    /// Threshold groups: 1 for a per-layer quantizer, the channel count for a per-channel one.
    pub fn groups(&self) -> usize {
        self.thresholds.len() / (self.codebook.len() - 1).max(1)
    }

    /// The thresholds of `group` (taken modulo [`ActQuantizer::groups`], so group 0 of a
    /// per-layer quantizer serves every channel).
    pub fn thresholds_of(&self, group: usize) -> &[f64] {
        let per = self.codebook.len() - 1;
        let g = group % self.groups().max(1);
        &self.thresholds[g * per..(g + 1) * per]
    }

    /// The code of `x` in the first group (the only one of a per-layer quantizer).
    #[inline]
    pub fn code(&self, x: f32) -> u8 {
        let x = f64::from(x);
        self.thresholds[..self.codebook.len() - 1].partition_point(|&t| x >= t) as u8
    }

    /// The code of `x` in channel `group` (see [`ActQuantizer::thresholds_of`]).
    #[inline]
    pub fn code_in(&self, x: f32, group: usize) -> u8 {
        let x = f64::from(x);
        self.thresholds_of(group).partition_point(|&t| x >= t) as u8
    }

    /// The real value of a code.
    #[inline]
    pub fn value(&self, code: u8) -> f32 {
        (self.scale * f64::from(self.codebook.levels()[usize::from(code)])) as f32
    }

    /// `value(code(x))`.
    #[inline]
    pub fn fake_quantize(&self, x: f32) -> f32 {
        self.value(self.code(x))
    }

    /// The real value of the top level, the clip: every value above it is represented below
    /// it.
    pub fn clip(&self) -> f64 {
        self.scale * f64::from(self.codebook.levels().last().copied().unwrap_or(0))
    }

    /// The same quantizer stretched to a new level step: the integer levels stay, the scale
    /// becomes `scale` and every threshold moves with it (a learned clip, see
    /// [`crate::quant::ActQuant`]). A scale that is not finite and positive changes nothing.
    pub fn rescale(&mut self, scale: f64) {
        if !(scale.is_finite() && scale > 0.0) || self.scale <= 0.0 {
            return;
        }
        let ratio = scale / self.scale;
        for t in &mut self.thresholds {
            *t *= ratio;
        }
        self.scale = scale;
    }

    /// Caps the quantizer at `limit` (ReLU6's 6): when the clip is above it, the quantizer is
    /// stretched so that its top level is `limit`, and every finite threshold above `limit`
    /// comes down to it. Afterwards no code stands for a value above `limit` and every value
    /// at or above `limit` gets the top reachable code, so quantizing `min(limit, x)` (the
    /// float twin after a ReLU6) and quantizing `x` (the integer model's thresholds on the
    /// uncapped accumulator) give the same code. A limit that is not finite and positive
    /// changes nothing.
    pub fn cap_at(&mut self, limit: f64) {
        if !(limit.is_finite() && limit > 0.0) {
            return;
        }
        let top = f64::from(self.codebook.levels().last().copied().unwrap_or(0));
        if top > 0.0 && self.clip() > limit {
            self.rescale(limit / top);
        }
        for t in &mut self.thresholds {
            if t.is_finite() && *t > limit {
                *t = limit;
            }
        }
    }
}

fn core_err(e: nuq_core::Error) -> NnError {
    NnError::Core {
        what: "fitting an activation codebook".into(),
        source: e,
    }
}

/// The codebook of `2^bits` strictly increasing levels on the unsigned 8-bit grid (as
/// [`distinct_levels`] makes them).
fn level_table(bits: u8, levels: Vec<u8>) -> Codebook {
    let levels: Vec<i32> = levels.into_iter().map(i32::from).collect();
    Codebook::explicit(Grid::U8, bits, &levels)
        .expect("2^bits strictly increasing levels on the unsigned 8-bit grid")
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

/// Equal-mass bins over sorted positive values: the `bins` thresholds (the first is the
/// ReLU cut) and each positive code's sample sum and count (index 0 is code 1).
struct EqualMass {
    thresholds: Vec<f64>,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

fn equal_mass(bins: usize, positive: &[f64]) -> EqualMass {
    let len = positive.len();
    // Bin i (1..=bins) holds sorted positives [bounds[i-1], bounds[i]).
    let bounds: Vec<usize> = (0..=bins).map(|j| j * len / bins).collect();
    let mut thresholds = Vec::with_capacity(bins);
    thresholds.push(f64::from(f32::MIN_POSITIVE));
    for j in 1..bins {
        if len < 2 {
            // One sample: it is code 1's; higher codes are never reached.
            thresholds.push(f64::INFINITY);
            continue;
        }
        let t = split_between_samples(positive, bounds[j].clamp(1, len - 1));
        thresholds.push(t.max(thresholds[j - 1]));
    }
    let (mut sums, mut counts) = (vec![0.0; bins], vec![0usize; bins]);
    for (code, pair) in bounds.windows(2).enumerate() {
        let part = &positive[pair[0]..pair[1]];
        sums[code] = part.iter().sum();
        counts[code] = part.len();
    }
    EqualMass {
        thresholds,
        sums,
        counts,
    }
}

/// A threshold splitting sorted `values` as near index `b` as the data allows: `nuq-core`'s
/// [`EqualMassBins::cut_near`] (golden-section cut of the nearest gap wider than
/// [`nuq_core::MIN_GAP`], so a threshold keeps about 60 `f32` ulps from every calibration
/// sample and off the lattice of a channel's accumulator values), the one rule of weights'
/// and activations' equal-mass boundaries.
fn split_between_samples(values: &[f64], b: usize) -> f64 {
    EqualMassBins::cut_near(values, b)
}

/// Levels and scale from real centroids (index 0 is code 0, the ReLU zero).
fn snap_centroids(bits: u8, centroids: &[f64], thresholds: Vec<f64>) -> ActQuantizer {
    let top = centroids[centroids.len() - 1].max(f64::MIN_POSITIVE);
    let scale = top / 255.0;
    let wanted: Vec<f64> = centroids.iter().map(|c| c / scale).collect();
    ActQuantizer {
        thresholds,
        codebook: level_table(bits, distinct_levels(&wanted)),
        scale,
    }
}

fn k_quantile(bits: u8, positive: &[f64]) -> ActQuantizer {
    let bins = (1usize << bits) - 1;
    let len = positive.len();
    let m = equal_mass(bins, positive);
    let mut centroids = vec![0.0f64; bins + 1];
    for i in 1..=bins {
        centroids[i] = if m.counts[i - 1] == 0 {
            // Fewer samples than bins: the empty bin stands at the sample where it starts.
            positive[((i - 1) * len / bins).min(len - 1)]
        } else {
            m.sums[i - 1] / m.counts[i - 1] as f64
        };
    }
    snap_centroids(bits, &centroids, m.thresholds)
}

/// Per-channel equal-mass thresholds over channel-last samples `xs` (already ≥ 0), levels
/// at the pooled centroids of every code.
fn k_quantile_per_channel(bits: u8, xs: &[f32], channels: usize) -> ActQuantizer {
    let bins = (1usize << bits) - 1;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); channels];
    for pixel in xs.chunks_exact(channels) {
        for (c, &v) in pixel.iter().enumerate() {
            if v > 0.0 {
                per[c].push(f64::from(v));
            }
        }
    }
    let (mut sums, mut counts) = (vec![0.0f64; bins], vec![0usize; bins]);
    let mut groups: Vec<Option<Vec<f64>>> = Vec::with_capacity(channels);
    for values in &mut per {
        if values.is_empty() {
            groups.push(None);
            continue;
        }
        values.sort_by(f64::total_cmp);
        let m = equal_mass(bins, values);
        for b in 0..bins {
            sums[b] += m.sums[b];
            counts[b] += m.counts[b];
        }
        groups.push(Some(m.thresholds));
    }
    let mut centroids = vec![0.0f64; bins + 1];
    for i in 1..=bins {
        centroids[i] = if counts[i - 1] == 0 {
            centroids[i - 1]
        } else {
            sums[i - 1] / counts[i - 1] as f64
        };
    }
    // A channel that never fired keeps the ReLU cut and never reaches a higher code than 1
    // (its thresholds above the cut are unreachable).
    let silent: Vec<f64> = std::iter::once(f64::from(f32::MIN_POSITIVE))
        .chain(std::iter::repeat_n(f64::INFINITY, bins - 1))
        .collect();
    let thresholds = groups
        .into_iter()
        .flat_map(|g| g.unwrap_or_else(|| silent.clone()))
        .collect();
    snap_centroids(bits, &centroids, thresholds)
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
        thresholds,
        codebook: level_table(bits, levels),
        scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_core::GAP_SPLIT;

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
        assert_eq!(q.codebook.levels()[0], 0);
        assert_eq!(q.codebook.levels()[7], 255);
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
                assert_eq!(q.codebook.len(), 1 << bits);
                assert_eq!(q.thresholds.len(), (1 << bits) - 1);
                let l = q.codebook.levels();
                assert!(l.windows(2).all(|p| p[0] < p[1]), "{family:?} {q:?}");
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

    /// Channel `c` of `pixels` pixels holds `(c + 1) · |normal|`.
    fn scaled_channels(pixels: usize, channels: usize) -> Vec<f32> {
        let mut rng = crate::Rng::new(5);
        (0..pixels * channels)
            .map(|i| (i % channels + 1) as f32 * rng.normal().abs())
            .collect()
    }

    #[test]
    fn thinning_keeps_every_channel() {
        // 2^21 samples: a stride of 8 over 8 channels would see channel 0 alone.
        let channels = 8;
        let xs = scaled_channels((MAX_SAMPLES * 8) / channels, channels);
        for family in crate::quant::TRAINABLE {
            let q = ActQuantizer::fit_nhwc(family, 4, &xs, channels, false).unwrap();
            assert_eq!(q.groups(), 1);
            // Channel 0 alone would put the clip near 3; all channels put it well above.
            assert!(q.clip() > 5.0, "{family:?} clip {}", q.clip());
        }
    }

    #[test]
    fn per_channel_k_quantile_has_equal_mass_in_every_channel() {
        let channels = 4;
        let xs = scaled_channels(20_000, channels);
        let q = ActQuantizer::fit_nhwc(Family::KQuantile, 2, &xs, channels, true).unwrap();
        assert_eq!(q.groups(), channels);
        assert_eq!(q.thresholds.len(), channels * 3);
        for c in 0..channels {
            let t = q.thresholds_of(c);
            assert!(t.windows(2).all(|p| p[0] <= p[1]));
            let mut counts = [0usize; 4];
            for x in xs.iter().skip(c).step_by(channels) {
                counts[usize::from(q.code_in(*x, c))] += 1;
            }
            for &n in &counts[1..] {
                assert!(
                    (n as f64 / 20_000.0 - 1.0 / 3.0).abs() < 0.02,
                    "{c}: {counts:?}"
                );
            }
        }
        // The wider channels' quantiles sit proportionally higher.
        let (t0, t3) = (q.thresholds_of(0)[2], q.thresholds_of(3)[2]);
        assert!((t3 / t0 - 4.0).abs() < 0.4, "{t0} {t3}");
        // Other families' thresholds follow their levels: one group.
        let u = ActQuantizer::fit_nhwc(Family::Uniform, 2, &xs, channels, true).unwrap();
        assert_eq!(u.groups(), 1);
        assert!(ActQuantizer::fit_nhwc(Family::KQuantile, 2, &xs[1..], channels, true).is_err());
    }

    #[test]
    fn a_silent_channel_maps_everything_positive_to_code_one() {
        let xs: Vec<f32> = (0..400)
            .map(|i| if i % 2 == 0 { 0.0 } else { i as f32 })
            .collect();
        let q = ActQuantizer::fit_nhwc(Family::KQuantile, 3, &xs, 2, true).unwrap();
        // A single positive sample, per layer or in a channel, is code 1's.
        let one = ActQuantizer::fit(Family::KQuantile, 3, &[0.0, 2.0, 0.0]).unwrap();
        assert_eq!((one.code(2.0), one.code(9.0), one.code(0.0)), (1, 1, 0));
        let mut lone = vec![0.0f32; 8];
        lone[3] = 1.5;
        let q2 = ActQuantizer::fit_nhwc(Family::KQuantile, 2, &lone, 4, true).unwrap();
        assert_eq!(q2.code_in(1.5, 3), 1);
        assert_eq!(q.code_in(0.0, 0), 0);
        assert_eq!(q.code_in(1e6, 0), 1);
        assert_eq!(q.code_in(1e6, 1), 7);
    }

    #[test]
    fn thresholds_never_sit_on_a_sample_value() {
        // Heavy ties: values 1..=5, the run of 3s holding half the mass.
        let mut xs = vec![3.0f32; 500];
        xs.extend((0..500).map(|i| [1.0, 2.0, 4.0, 5.0][i % 4]));
        let q = ActQuantizer::fit(Family::KQuantile, 2, &xs).unwrap();
        for &t in &q.thresholds[1..] {
            assert!(t.is_infinite() || t.fract() != 0.0, "{:?}", q.thresholds);
        }
        let split = |v: &[f64], b| split_between_samples(v, b);
        assert_eq!(split(&[1.0, 1.0, 1.0], 1), f64::INFINITY);
        let run = [1.0, 2.0, 2.0, 2.0, 9.0];
        assert!((split(&run, 1) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
        assert!((split(&run, 2) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
        assert!((split(&run, 3) - (2.0 + 7.0 * GAP_SPLIT)).abs() < 1e-12);
        assert!((split(&[1.0, 1.0, 1.0, 2.0], 1) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
        // Two lattice points an even number of steps apart: the cut is off the lattice.
        let t = split(&[10.0, 14.0], 1);
        assert!((t - t.round()).abs() > 0.4, "{t}");
        // Values a few f32 ulps apart count as one: the cut goes to the next real gap.
        let near = [0.5, 0.382_327_44, 0.382_327_46, 0.382_327_47, 0.7];
        let mut sorted = near;
        sorted.sort_by(f64::total_cmp);
        let t = split(&sorted, 2);
        assert!(
            !(0.382_327_44 - 1e-6..=0.382_327_47 + 1e-6).contains(&t),
            "{t}"
        );
    }

    #[test]
    fn rescaling_moves_thresholds_with_the_scale() {
        let xs = relu_normal(10_000);
        for family in crate::quant::TRAINABLE {
            let q = ActQuantizer::fit(family, 3, &xs).unwrap();
            let mut r = q.clone();
            r.rescale(q.scale * 1.5);
            assert_eq!(r.codebook, q.codebook);
            assert!((r.clip() - 1.5 * q.clip()).abs() < 1e-9);
            for &x in xs.iter().take(2000) {
                assert_eq!(r.code(x * 1.5), q.code(x), "{family:?} at {x}");
            }
            let mut same = q.clone();
            same.rescale(f64::NAN);
            same.rescale(-1.0);
            assert_eq!(same, q);
        }
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
