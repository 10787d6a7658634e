//! [`EmpiricalDistribution`]: sorted, weighted samples with prefix sums, the input of every
//! data-fitted codebook and of scale calibration.

use alloc::vec::Vec;

use crate::error::{Error, Result};

/// A weighted empirical distribution: samples sorted ascending with prefix sums of weight,
/// weighted value and weighted square.
///
/// Building it sorts once (`O(n log n)`); afterwards the quantization error of any set of
/// levels costs `O(k log n)` for `k` levels, which is what makes Lloyd–Max iterations and
/// the MSE-optimal scale search cheap on millions of samples. Sums are kept in `f64`.
///
/// ```
/// use nuq_core::EmpiricalDistribution;
/// let d = EmpiricalDistribution::from_values(&[3.0, -1.0, 2.0, 0.0])?;
/// assert_eq!(d.values(), &[-1.0, 0.0, 2.0, 3.0]);
/// assert_eq!(d.mean(), 1.0);
/// // Nearest of {0, 2}: -1 -> 0, 0 -> 0, 2 -> 2, 3 -> 2; squared errors 1, 0, 0, 1.
/// assert_eq!(d.quantization_mse(&[0.0, 2.0]), 0.5);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EmpiricalDistribution {
    values: Vec<f64>,
    /// `cw[i]` = total weight of `values[..i]`; `n + 1` entries.
    cw: Vec<f64>,
    cwx: Vec<f64>,
    cwx2: Vec<f64>,
}

impl EmpiricalDistribution {
    /// Equally weighted samples.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no samples, [`Error::NonFinite`] naming the first NaN or
    /// infinite sample.
    ///
    /// ```
    /// use nuq_core::{EmpiricalDistribution, Error};
    /// assert_eq!(EmpiricalDistribution::from_values(&[]), Err(Error::EmptyData));
    /// assert!(EmpiricalDistribution::from_values(&[1.0, f32::NAN]).is_err());
    /// ```
    pub fn from_values(values: &[f32]) -> Result<EmpiricalDistribution> {
        crate::quantizer::check_finite(values, 0)?;
        let pairs = values.iter().map(|&v| (v as f64, 1.0)).collect();
        EmpiricalDistribution::from_pairs(pairs)
    }

    /// Weighted samples; zero-weight samples are dropped.
    ///
    /// # Errors
    /// [`Error::WeightCountMismatch`], [`Error::NonFinite`] (values),
    /// [`Error::InvalidWeight`] (negative or non-finite), [`Error::EmptyData`] when no
    /// weight is positive.
    ///
    /// ```
    /// use nuq_core::EmpiricalDistribution;
    /// let d = EmpiricalDistribution::from_weighted(&[0.0, 10.0], &[3.0, 1.0])?;
    /// assert_eq!(d.mean(), 2.5);
    /// assert_eq!(d.total_weight(), 4.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_weighted(values: &[f32], weights: &[f32]) -> Result<EmpiricalDistribution> {
        if values.len() != weights.len() {
            return Err(Error::WeightCountMismatch {
                values: values.len(),
                weights: weights.len(),
            });
        }
        crate::quantizer::check_finite(values, 0)?;
        let mut pairs = Vec::with_capacity(values.len());
        for (index, (&v, &w)) in values.iter().zip(weights).enumerate() {
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::InvalidWeight { index, weight: w });
            }
            if w > 0.0 {
                pairs.push((v as f64, w as f64));
            }
        }
        EmpiricalDistribution::from_pairs(pairs)
    }

    fn from_pairs(mut pairs: Vec<(f64, f64)>) -> Result<EmpiricalDistribution> {
        if pairs.is_empty() {
            return Err(Error::EmptyData);
        }
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let n = pairs.len();
        let mut values = Vec::with_capacity(n);
        let (mut cw, mut cwx, mut cwx2) = (
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
        );
        let (mut sw, mut swx, mut swx2) = (0.0f64, 0.0f64, 0.0f64);
        cw.push(0.0);
        cwx.push(0.0);
        cwx2.push(0.0);
        for (v, w) in pairs {
            // -0.0 and 0.0 sort apart under total_cmp but are the same sample.
            let v = if v == 0.0 { 0.0 } else { v };
            values.push(v);
            sw += w;
            swx += w * v;
            swx2 += w * v * v;
            cw.push(sw);
            cwx.push(swx);
            cwx2.push(swx2);
        }
        Ok(EmpiricalDistribution {
            values,
            cw,
            cwx,
            cwx2,
        })
    }

    /// The number of samples (with positive weight).
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[1.0, 1.0])?;
    /// assert_eq!(d.len(), 2);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The samples, ascending (as `f64`; every one is an exact `f32`).
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[2.0, 1.0])?;
    /// assert_eq!(d.values(), &[1.0, 2.0]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The weight of the `i`-th sample in sorted order.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_weighted(&[5.0, 1.0], &[2.0, 7.0])?;
    /// assert_eq!(d.weight(0), 7.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn weight(&self, i: usize) -> f64 {
        self.cw[i + 1] - self.cw[i]
    }

    /// The total weight.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[0.0; 5])?;
    /// assert_eq!(d.total_weight(), 5.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn total_weight(&self) -> f64 {
        self.cw[self.len()]
    }

    /// The smallest sample.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[4.0, -2.0])?;
    /// assert_eq!((d.min(), d.max()), (-2.0, 4.0));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn min(&self) -> f64 {
        self.values[0]
    }

    /// The largest sample.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[4.0, -2.0])?;
    /// assert_eq!(d.max(), 4.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn max(&self) -> f64 {
        self.values[self.len() - 1]
    }

    /// The weighted mean.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[1.0, 2.0, 6.0])?;
    /// assert_eq!(d.mean(), 3.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn mean(&self) -> f64 {
        self.cwx[self.len()] / self.total_weight()
    }

    /// The weighted mean of the squares (the signal power).
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[-1.0, 3.0])?;
    /// assert_eq!(d.mean_square(), 5.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn mean_square(&self) -> f64 {
        self.cwx2[self.len()] / self.total_weight()
    }

    /// The lower weighted quantile: the smallest sample `x` whose cumulative weight
    /// `W(values <= x)` reaches `p · total_weight()`. `p` is clamped to `[0, 1]`; `p = 0`
    /// gives the minimum, `p = 1` the maximum.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(d.quantile(0.5), 2.0);
    /// assert_eq!(d.quantile(0.51), 3.0);
    /// assert_eq!(d.quantile(1.0), 4.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn quantile(&self, p: f64) -> f64 {
        let target = p.clamp(0.0, 1.0) * self.total_weight();
        // First i (1-based prefix) with cw[i] >= target, ignoring cw[0].
        let i = self.cw[1..].partition_point(|&c| c < target);
        self.values[i.min(self.len() - 1)]
    }

    /// Index of the first sample `>= x`.
    pub(crate) fn lower_bound(&self, x: f64) -> usize {
        self.values.partition_point(|&v| v < x)
    }

    /// Total weight, weighted sum and weighted sum of squares of `values[a..b]`.
    pub(crate) fn moments(&self, a: usize, b: usize) -> (f64, f64, f64) {
        (
            self.cw[b] - self.cw[a],
            self.cwx[b] - self.cwx[a],
            self.cwx2[b] - self.cwx2[a],
        )
    }

    /// Prefix weight `W(values[..i])`.
    pub(crate) fn prefix_weight(&self, i: usize) -> f64 {
        self.cw[i]
    }

    /// Weighted squared error of `values[a..b]` all mapped to `c`.
    pub(crate) fn segment_cost(&self, a: usize, b: usize, c: f64) -> f64 {
        let (w, s1, s2) = self.moments(a, b);
        (s2 - 2.0 * c * s1 + c * c * w).max(0.0)
    }

    /// The weighted mean squared error of mapping every sample to its nearest level, ties
    /// going to the upper level (the [`Codebook`](crate::Codebook) rule). `levels` must be
    /// ascending; an empty slice gives `NaN`.
    ///
    /// ```
    /// let d = nuq_core::EmpiricalDistribution::from_values(&[0.0, 1.0, 4.0])?;
    /// // 0 -> 0; 1 sits on the threshold between 0 and 2 and goes up to 2; 4 -> 3.
    /// assert_eq!(d.quantization_mse(&[0.0, 2.0, 3.0]), 2.0 / 3.0);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn quantization_mse(&self, levels: &[f64]) -> f64 {
        if levels.is_empty() {
            return f64::NAN;
        }
        let mut total = 0.0;
        let mut start = 0usize;
        for (j, &c) in levels.iter().enumerate() {
            let end = match levels.get(j + 1) {
                Some(&next) => {
                    let t = 0.5 * (c + next);
                    start + self.values[start..].partition_point(|&v| v < t)
                }
                None => self.len(),
            };
            total += self.segment_cost(start, end, c);
            start = end;
        }
        total / self.total_weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_mse(values: &[f64], weights: &[f64], levels: &[f64]) -> f64 {
        let mut num = 0.0;
        for (&v, &w) in values.iter().zip(weights) {
            let mut best = 0;
            for (j, &l) in levels.iter().enumerate() {
                // ties go to the upper level: strictly-better or equal for a higher index
                if (v - l).abs() <= (v - levels[best]).abs() {
                    best = j;
                }
            }
            num += w * (v - levels[best]).powi(2);
        }
        num / weights.iter().sum::<f64>()
    }

    #[test]
    fn mse_matches_brute_force_including_ties() {
        let vals = [-3.0f32, -1.0, 0.0, 0.5, 1.0, 1.0, 2.0, 7.5];
        let ws = [1.0f32, 2.0, 0.5, 1.0, 3.0, 1.0, 0.0, 2.0];
        let d = EmpiricalDistribution::from_weighted(&vals, &ws).unwrap();
        let v64: Vec<f64> = vals.iter().map(|&v| v as f64).collect();
        let w64: Vec<f64> = ws.iter().map(|&w| w as f64).collect();
        for levels in [
            &[0.0][..],
            &[-1.0, 1.0],
            &[-2.0, 0.0, 1.0, 3.0],
            &[-10.0, 0.25, 0.75, 9.0],
        ] {
            let a = d.quantization_mse(levels);
            let b = brute_mse(&v64, &w64, levels);
            assert!((a - b).abs() < 1e-12, "{levels:?}: {a} vs {b}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            EmpiricalDistribution::from_weighted(&[1.0], &[1.0, 2.0]),
            Err(Error::WeightCountMismatch {
                values: 1,
                weights: 2
            })
        );
        assert_eq!(
            EmpiricalDistribution::from_weighted(&[1.0, 2.0], &[1.0, -2.0]),
            Err(Error::InvalidWeight {
                index: 1,
                weight: -2.0
            })
        );
        assert_eq!(
            EmpiricalDistribution::from_weighted(&[1.0, 2.0], &[0.0, 0.0]),
            Err(Error::EmptyData)
        );
        assert!(matches!(
            EmpiricalDistribution::from_values(&[0.0, 1.0, f32::NEG_INFINITY]),
            Err(Error::NonFinite { index: 2, .. })
        ));
    }

    #[test]
    fn quantiles_are_weighted() {
        let d = EmpiricalDistribution::from_weighted(&[1.0, 2.0, 3.0], &[1.0, 1.0, 8.0]).unwrap();
        assert_eq!(d.quantile(0.0), 1.0);
        assert_eq!(d.quantile(0.15), 2.0);
        assert_eq!(d.quantile(0.21), 3.0);
    }
}
