//! Scale calibration for a given codebook: max-abs, percentile, and MSE-optimal clipping.

use alloc::vec::Vec;

use crate::codebook::Codebook;
use crate::empirical::EmpiricalDistribution;
use crate::error::{Error, Result};
use crate::scale::{Scale, Scales};

/// How to choose a tensor's [`Scale`] for a codebook.
///
/// Each value `x` *asks* for the scale that maps it exactly onto the codebook's outermost
/// level on its side: `x / max_level` for `x > 0`, `x / min_level` for `x < 0` (values with no
/// level on their side, and zeros, ask nothing). Then:
///
/// * [`MaxAbs`](Calibration::MaxAbs): the largest request, so nothing is clipped.
/// * [`Percentile(p)`](Calibration::Percentile): the `p`-th percentile of the requests
///   (`p` in `(0, 100]`; 100 is max-abs), clipping the rarest outliers.
/// * [`MseOptimal`](Calibration::MseOptimal): the scale minimising the mean squared
///   quantization error, clip and resolution traded off exactly. Searched on 800 log-spaced
///   candidates from `2^-12` to `2^0.5` times the max-abs scale, then refined by golden-section
///   search between the best candidate's neighbours, and compared with the max-abs scale
///   itself, so it is never worse than [`MaxAbs`](Calibration::MaxAbs); each candidate costs
///   `O(k log n)` on the sorted data ([`EmpiricalDistribution`]).
///
/// When no value asks for anything (all zero, or empty), every method returns [`Scale::ONE`].
///
/// ```
/// use nuq_core::{Calibration, Codebook, Grid, Polarity, QuantizedTensor, Scale};
/// let cb = Codebook::uniform(Grid::I8, 4, Polarity::Signed)?; // ±126 outermost
/// let data = [0.5f32, -2.52, 1.0, 0.1];
/// let max_abs = Calibration::MaxAbs.scale(&data, &cb)?;
/// assert_eq!(max_abs.get(), 0.02);
/// let best = Calibration::MseOptimal.scale(&data, &cb)?;
/// let mse = |s: Scale| -> nuq_core::Result<f64> {
///     Ok(QuantizedTensor::quantize(&data, &[4], &cb, s)?.error_stats(&data)?.mse)
/// };
/// assert!(mse(best)? < mse(max_abs)?);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive] // more methods may come: match with a wildcard arm
pub enum Calibration {
    /// No clipping: the largest magnitude maps to the outermost level.
    MaxAbs,
    /// The given percentile (in `(0, 100]`) of the per-value scale requests.
    Percentile(f32),
    /// Minimum mean squared error.
    MseOptimal,
}

/// The scale value `x` asks for (see [`Calibration`]).
fn request(x: f64, lo: f64, hi: f64) -> Option<f64> {
    if x > 0.0 && hi > 0.0 {
        Some(x / hi)
    } else if x < 0.0 && lo < 0.0 {
        Some(x / lo)
    } else {
        None
    }
}

/// A positive `f64` scale as a valid [`Scale`], clamped into the normal `f32` range.
fn to_scale(s: f64) -> Scale {
    let v = (s as f32).clamp(f32::MIN_POSITIVE, f32::MAX);
    Scale::new(v).expect("clamped into range")
}

impl Calibration {
    fn check(&self) -> Result<()> {
        if let Calibration::Percentile(p) = *self {
            if !(p > 0.0 && p <= 100.0) {
                return Err(Error::InvalidParameter {
                    name: "percentile",
                    value: p as f64,
                    expected: "a number in (0, 100]",
                });
            }
        }
        Ok(())
    }

    /// The scale for `data` (any order) and `codebook`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first NaN or infinite value;
    /// [`Error::InvalidParameter`] for a percentile outside `(0, 100]`.
    ///
    /// ```
    /// use nuq_core::{Calibration, Codebook, Grid, Polarity};
    /// let cb = Codebook::uniform(Grid::U8, 2, Polarity::Unsigned)?; // 0, 85, 170, 255
    /// let data: Vec<f32> = (0..=100).map(|i| i as f32).collect();
    /// let s = Calibration::Percentile(50.0).scale(&data, &cb)?;
    /// assert_eq!(s.get(), 50.0 / 255.0);
    /// assert!(Calibration::Percentile(0.0).scale(&data, &cb).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn scale(&self, data: &[f32], codebook: &Codebook) -> Result<Scale> {
        self.check()?;
        crate::quantizer::check_finite(data, 0)?;
        let (lo, hi) = outer_levels(codebook);
        match self {
            Calibration::MaxAbs => {
                // Requests grow away from zero on each side, so only the extremes matter.
                let (mn, mx) = data.iter().fold((0f32, 0f32), |(mn, mx), &x| {
                    (if x < mn { x } else { mn }, if x > mx { x } else { mx })
                });
                let r = [request(mn as f64, lo, hi), request(mx as f64, lo, hi)];
                Ok(r.into_iter()
                    .flatten()
                    .reduce(f64::max)
                    .map_or(Scale::ONE, to_scale))
            }
            Calibration::Percentile(p) => {
                let mut r: Vec<f64> = data
                    .iter()
                    .filter_map(|&x| request(x as f64, lo, hi))
                    .collect();
                if r.is_empty() {
                    return Ok(Scale::ONE);
                }
                let k = percentile_rank(*p, r.len());
                let (_, v, _) = r.select_nth_unstable_by(k, f64::total_cmp);
                Ok(to_scale(*v))
            }
            Calibration::MseOptimal => {
                if data.is_empty() {
                    return Ok(Scale::ONE);
                }
                let dist = EmpiricalDistribution::from_values(data)?;
                self.scale_for_distribution(&dist, codebook)
            }
        }
    }

    /// The scale for a (weighted) [`EmpiricalDistribution`] and `codebook`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a percentile outside `(0, 100]`.
    ///
    /// ```
    /// use nuq_core::{Calibration, Codebook, EmpiricalDistribution, Grid, Polarity};
    /// let cb = Codebook::uniform(Grid::I8, 1, Polarity::SignedMidrise)?; // ±127
    /// let d = EmpiricalDistribution::from_values(&[-1.0, -1.0, 1.0, 1.0, 3.0])?;
    /// // Two levels ±c with c = 127·s: 4(c - 1)² + (3 - c)² is least at c = 1.4.
    /// let s = Calibration::MseOptimal.scale_for_distribution(&d, &cb)?;
    /// assert!((s.get() * 127.0 - 1.4).abs() < 1e-4);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn scale_for_distribution(
        &self,
        dist: &EmpiricalDistribution,
        codebook: &Codebook,
    ) -> Result<Scale> {
        self.check()?;
        let (lo, hi) = outer_levels(codebook);
        let s = match self {
            Calibration::MaxAbs => max_request(dist, lo, hi),
            Calibration::Percentile(p) => {
                // Requests grow away from zero on each side: gather them with their weights.
                let mut r: Vec<(f64, f64)> = dist
                    .values()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &x)| request(x, lo, hi).map(|r| (r, dist.weight(i))))
                    .collect();
                if r.is_empty() {
                    None
                } else {
                    r.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                    let total: f64 = r.iter().map(|p| p.1).sum();
                    let target = *p as f64 / 100.0 * total;
                    let mut acc = 0.0;
                    let mut pick = r[r.len() - 1].0;
                    for &(v, w) in &r {
                        acc += w;
                        if acc >= target {
                            pick = v;
                            break;
                        }
                    }
                    Some(pick)
                }
            }
            Calibration::MseOptimal => mse_optimal_scale(dist, codebook.levels()),
        };
        Ok(s.map_or(Scale::ONE, to_scale))
    }

    /// One scale per channel: `data` is `channels` contiguous equal blocks (the first
    /// dimension of a tensor), each calibrated on its own.
    ///
    /// # Errors
    /// As [`Calibration::scale`], plus [`Error::InvalidParameter`] when `channels` is 0 or
    /// does not divide `data.len()`.
    ///
    /// ```
    /// use nuq_core::{Calibration, Codebook, Grid, Polarity, Scale, Scales};
    /// let cb = Codebook::uniform(Grid::I8, 2, Polarity::Signed)?; // -127, 0, 127
    /// let s = Calibration::MaxAbs.channel_scales(&[1.27, -0.5, 0.0, 12.7], 2, &cb)?;
    /// assert_eq!(s, Scales::PerChannel(vec![Scale::new(0.01)?, Scale::new(0.1)?]));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn channel_scales(
        &self,
        data: &[f32],
        channels: usize,
        codebook: &Codebook,
    ) -> Result<Scales> {
        if channels == 0 || !data.len().is_multiple_of(channels) {
            return Err(Error::InvalidParameter {
                name: "channels",
                value: channels as f64,
                expected: "a positive divisor of the data length",
            });
        }
        let per = data.len() / channels;
        let mut scales = Vec::with_capacity(channels);
        for c in 0..channels {
            let block = &data[c * per..(c + 1) * per];
            let s = self.scale(block, codebook).map_err(|e| match e {
                Error::NonFinite { index, value } => Error::NonFinite {
                    index: index + c * per,
                    value,
                },
                other => other,
            })?;
            scales.push(s);
        }
        Ok(Scales::PerChannel(scales))
    }
}

fn percentile_rank(p: f32, n: usize) -> usize {
    let k = libm::ceil(p as f64 / 100.0 * n as f64) as usize;
    k.clamp(1, n) - 1
}

/// The outermost levels as `f64`.
fn outer_levels(codebook: &Codebook) -> (f64, f64) {
    let l = codebook.levels();
    (l[0] as f64, l[l.len() - 1] as f64)
}

/// The max-abs scale of a distribution, if any value asks for one.
fn max_request(dist: &EmpiricalDistribution, lo: f64, hi: f64) -> Option<f64> {
    let a = request(dist.max(), lo, hi);
    let b = request(dist.min(), lo, hi);
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The MSE-optimal scale for integer `levels` on `dist` (see [`Calibration::MseOptimal`]);
/// `None` when no value asks for a scale.
pub(crate) fn mse_optimal_scale(dist: &EmpiricalDistribution, levels: &[i32]) -> Option<f64> {
    let lo = levels[0] as f64;
    let hi = levels[levels.len() - 1] as f64;
    let s_max = max_request(dist, lo, hi)?;
    let mut buf: Vec<f64> = Vec::with_capacity(levels.len());
    let mut cost = |s: f64| {
        buf.clear();
        buf.extend(levels.iter().map(|&l| l as f64 * s));
        dist.quantization_mse(&buf)
    };
    const N: usize = 800;
    let (a, b) = (-12.0f64, 0.5f64);
    let at = |j: usize| s_max * libm::exp2(a + (b - a) * j as f64 / (N - 1) as f64);
    let mut best = (f64::INFINITY, 0usize);
    for j in 0..N {
        let c = cost(at(j));
        if c < best.0 {
            best = (c, j);
        }
    }
    let (mut best_cost, j) = best;
    let mut best_s = at(j);
    // Golden-section search between the neighbours of the best candidate.
    let (mut x0, mut x3) = (at(j.saturating_sub(1)), at((j + 1).min(N - 1)));
    const INV_PHI: f64 = 0.618_033_988_749_894_9;
    let mut x1 = x3 - INV_PHI * (x3 - x0);
    let mut x2 = x0 + INV_PHI * (x3 - x0);
    let (mut f1, mut f2) = (cost(x1), cost(x2));
    for _ in 0..48 {
        if f1 <= f2 {
            x3 = x2;
            x2 = x1;
            f2 = f1;
            x1 = x3 - INV_PHI * (x3 - x0);
            f1 = cost(x1);
        } else {
            x0 = x1;
            x1 = x2;
            f1 = f2;
            x2 = x0 + INV_PHI * (x3 - x0);
            f2 = cost(x2);
        }
    }
    for (f, x) in [(f1, x1), (f2, x2)] {
        if f < best_cost {
            best_cost = f;
            best_s = x;
        }
    }
    // Keep the f32 rounding of the scale honest: pick the better of the neighbours. The
    // max-abs scale competes too: the log-spaced candidates can straddle it, and a search
    // that ends a hair worse than not clipping at all would break the method's promise.
    let s32 = best_s as f32;
    let candidates = [
        s32,
        f32::from_bits(s32.to_bits() + 1),
        f32::from_bits(s32.to_bits().saturating_sub(1)),
        s_max as f32,
    ];
    let mut out = (cost(s32 as f64), s32);
    for c in candidates {
        if c.is_finite() && c >= f32::MIN_POSITIVE {
            let f = cost(c as f64);
            if f < out.0 {
                out = (f, c);
            }
        }
    }
    // Tiny data can push the optimum below the normal f32 range; a Scale must be normal.
    Some(out.1.clamp(f32::MIN_POSITIVE, f32::MAX) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grid, Polarity, Rng};
    use alloc::vec;

    #[test]
    fn mse_optimal_beats_every_scale_on_a_fine_sweep() {
        let mut rng = Rng::new(3);
        let data: Vec<f32> = (0..4000).map(|_| rng.normal() as f32).collect();
        let dist = EmpiricalDistribution::from_values(&data).unwrap();
        let cb = Codebook::uniform(Grid::I8, 3, Polarity::Signed).unwrap();
        let s = Calibration::MseOptimal.scale(&data, &cb).unwrap().get() as f64;
        let mse = |s: f64| {
            let l: Vec<f64> = cb.levels().iter().map(|&l| l as f64 * s).collect();
            dist.quantization_mse(&l)
        };
        let best = mse(s);
        for k in 1..2000 {
            let t = k as f64 * 0.00002;
            assert!(best <= mse(t) * (1.0 + 1e-9), "scale {t} beats {s}");
        }
    }

    #[test]
    fn max_abs_and_percentile_edges() {
        let cb = Codebook::uniform(Grid::U8, 2, Polarity::Unsigned).unwrap();
        // Negative values have no level on their side: they ask nothing.
        let s = Calibration::MaxAbs.scale(&[-100.0, 25.5], &cb).unwrap();
        assert_eq!(s.get(), 0.1);
        for m in [
            Calibration::MaxAbs,
            Calibration::Percentile(90.0),
            Calibration::MseOptimal,
        ] {
            assert_eq!(m.scale(&[], &cb).unwrap(), Scale::ONE);
            assert_eq!(m.scale(&[0.0, -3.0], &cb).unwrap(), Scale::ONE);
        }
        assert!(matches!(
            Calibration::MaxAbs.scale(&[1.0, f32::NAN], &cb),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            Calibration::Percentile(f32::NAN).scale(&[1.0], &cb),
            Err(Error::InvalidParameter {
                name: "percentile",
                ..
            })
        ));
        assert_eq!(
            Calibration::Percentile(100.0)
                .scale(&[1.0, 2.55, 2.0], &cb)
                .unwrap()
                .get(),
            0.01
        );
    }

    #[test]
    fn tiny_data_still_gives_a_valid_scale() {
        let cb = Codebook::uniform(Grid::I8, 4, Polarity::Signed).unwrap();
        let data = [1e-38f32, -2e-38, 3e-39];
        for m in [
            Calibration::MaxAbs,
            Calibration::Percentile(50.0),
            Calibration::MseOptimal,
        ] {
            let s = m.scale(&data, &cb).unwrap();
            assert!(s.get() >= f32::MIN_POSITIVE, "{m:?}");
        }
        let d = EmpiricalDistribution::from_values(&data).unwrap();
        assert!(Codebook::lloyd_max(Grid::I8, 2, &d, &crate::LloydMaxOptions::default()).is_ok());
    }

    #[test]
    fn distribution_and_slice_paths_agree() {
        let mut rng = Rng::new(8);
        let data: Vec<f32> = (0..999).map(|_| (rng.normal() * 2.0) as f32).collect();
        let dist = EmpiricalDistribution::from_values(&data).unwrap();
        let cb = Codebook::iq4_nl();
        for m in [
            Calibration::MaxAbs,
            Calibration::Percentile(99.0),
            Calibration::MseOptimal,
        ] {
            assert_eq!(
                m.scale(&data, &cb).unwrap(),
                m.scale_for_distribution(&dist, &cb).unwrap()
            );
        }
    }

    #[test]
    fn channel_scales_checks_and_offsets_errors() {
        let cb = Codebook::iq4_nl();
        assert!(Calibration::MaxAbs
            .channel_scales(&[1.0; 5], 2, &cb)
            .is_err());
        assert!(Calibration::MaxAbs
            .channel_scales(&[1.0; 4], 0, &cb)
            .is_err());
        let mut d = vec![1.0f32; 6];
        d[4] = f32::INFINITY;
        assert!(matches!(
            Calibration::MaxAbs.channel_scales(&d, 3, &cb),
            Err(Error::NonFinite { index: 4, .. })
        ));
    }
}
