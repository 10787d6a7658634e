//! Assignment by the empirical CDF: [`EqualMassBins`] (value-domain boundaries at the
//! quantiles of each group of data), the [`BinLevel`] that stands for a bin, and the faithful
//! k-quantile fit [`Codebook::k_quantile_by_cdf`] (levels *and* indices), beside the
//! nearest-level rule every other codebook uses ([`Assignment`]).
//!
//! The k-quantile quantizer of Liss et al. and of UNIQ (Baskin et al., arXiv 1804.10969) puts
//! a value `x` in bin `floor(k · F(x))`, `F` the empirical CDF: every bin holds the same mass,
//! and the bin edges are quantiles, not the midpoints between the levels that nearest-level
//! assignment would use. Activations have always been quantized this way (their thresholds are
//! the equal-mass boundaries); these types give weights the same rule.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook};
use crate::error::{Error, Result};
use crate::family::Family;
use crate::grid::Grid;
use crate::scale::Scale;

/// How values are assigned to the indices of a codebook.
///
/// ```
/// use nuq_core::Assignment;
/// assert_eq!(Assignment::default(), Assignment::Quantile);
/// assert_eq!(Assignment::Nearest.name(), "nearest");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Assignment {
    /// Each value goes to its nearest level ([`Codebook::nearest`]): bin edges at the
    /// midpoints between levels. Every family but k-quantile uses it.
    Nearest,
    /// Each value goes to the bin where its empirical CDF falls ([`EqualMassBins`]): bin
    /// edges at the quantiles, equal mass per index — the k-quantile quantizer as its authors
    /// define it.
    #[default]
    Quantile,
}

impl Assignment {
    /// `"nearest"` or `"quantile"`, as command lines and reports spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Assignment::Nearest => "nearest",
            Assignment::Quantile => "quantile",
        }
    }
}

/// Which value of a bin's samples its level stands at.
///
/// ```
/// use nuq_core::BinLevel;
/// let v = [1.0f32, 2.0, 9.0];
/// assert_eq!(BinLevel::Centroid.of(&v), Some(4.0));
/// assert_eq!(BinLevel::Median.of(&v), Some(2.0));
/// assert_eq!(BinLevel::Median.of(&[]), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BinLevel {
    /// The mean of the bin's samples (least squared error for that bin).
    #[default]
    Centroid,
    /// The median of the bin's samples (the middle quantile of the bin; least absolute
    /// error). An even count takes the mean of the two middle samples.
    Median,
}

impl BinLevel {
    /// `"centroid"` or `"median"`.
    pub const fn name(self) -> &'static str {
        match self {
            BinLevel::Centroid => "centroid",
            BinLevel::Median => "median",
        }
    }

    /// The representative of `samples` (any order), `None` when there are none.
    pub fn of(self, samples: &[f32]) -> Option<f64> {
        if samples.is_empty() {
            return None;
        }
        Some(match self {
            BinLevel::Centroid => {
                samples.iter().map(|&v| f64::from(v)).sum::<f64>() / samples.len() as f64
            }
            BinLevel::Median => {
                let mut s: Vec<f64> = samples.iter().map(|&v| f64::from(v)).collect();
                s.sort_unstable_by(f64::total_cmp);
                let n = s.len();
                if n % 2 == 1 {
                    s[n / 2]
                } else {
                    0.5 * (s[n / 2 - 1] + s[n / 2])
                }
            }
        })
    }
}

/// Where a boundary cuts the gap between two neighbouring samples, as a fraction of the gap:
/// the golden section rather than the midpoint. Samples that lie on a lattice (an activation
/// channel's values are `d · acc + c` of an integer accumulator) would put a midpoint between
/// two points an even number of steps apart on the lattice itself, where an unseen value would
/// hit it exactly; an irrational fraction lands on a lattice only by accident.
pub const GAP_SPLIT: f64 = 0.381_966_011_250_105;

/// The narrowest gap, relative to the values around it, that a boundary may cut: values a
/// few `f32` ulps apart (one value computed twice with different rounding) stay in one bin.
/// Cutting only wider gaps keeps every boundary at least `0.38 · 1e-5` of the values (about
/// 60 `f32` ulps) away from every sample.
pub const MIN_GAP: f64 = 1e-5;

/// Per-group equal-mass bins: for each of `groups` groups, `bins − 1` ascending value-domain
/// boundaries at the group's quantiles `j / bins`. The bin of `x` in group `g` is the number
/// of the group's boundaries it reaches, `#{j : x ≥ b[g][j]}` — its empirical CDF times
/// `bins`, rounded down. Larger values never get a smaller bin; equal neighbouring boundaries
/// leave a bin empty; `+∞` is never reached.
///
/// ```
/// use nuq_core::EqualMassBins;
/// let v: Vec<f32> = (0..8).map(|i| i as f32).collect(); // one group, 0..8
/// let b = EqualMassBins::fit(&v, 1, 4)?;
/// assert_eq!(b.assign_all(&v)?, vec![0, 0, 1, 1, 2, 2, 3, 3]);
/// assert!(b.boundaries_of(0)[0] > 1.0 && b.boundaries_of(0)[0] < 2.0);
/// assert_eq!(b.assign(0, -100.0), 0);
/// assert_eq!(b.assign(0, 100.0), 3);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EqualMassBins {
    bins: usize,
    /// `groups × (bins − 1)`, group-major, ascending within each group.
    boundaries: Vec<f64>,
}

impl EqualMassBins {
    /// Equal-mass bins of `values`, which are `groups` contiguous equal blocks (the rows of a
    /// row-major table), each with its own quantiles. Bin `j` of a group of `n` sorted
    /// samples holds samples `⌊j·n/bins⌋ ..⌊(j+1)·n/bins⌋`; the boundary between two bins sits
    /// in the gap between the samples on either side ([`EqualMassBins::cut_near`]), so a run
    /// of equal values goes wholly to one side (mass is then only close to equal). A group of
    /// fewer samples than bins leaves bins empty.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `bins` is not in `1..=256` or `groups` is 0 or does not
    /// divide `values.len()`; [`Error::EmptyData`] for no values; [`Error::NonFinite`] naming
    /// the first NaN or infinite value.
    pub fn fit(values: &[f32], groups: usize, bins: usize) -> Result<EqualMassBins> {
        check_bins(bins)?;
        if values.is_empty() {
            return Err(Error::EmptyData);
        }
        check_groups(values.len(), groups)?;
        crate::quantizer::check_finite(values, 0)?;
        let per = values.len() / groups;
        let mut boundaries = Vec::with_capacity(groups * (bins - 1));
        let mut sorted: Vec<f64> = Vec::with_capacity(per);
        for g in values.chunks_exact(per) {
            sorted.clear();
            sorted.extend(g.iter().map(|&v| f64::from(v)));
            sorted.sort_unstable_by(f64::total_cmp);
            let start = boundaries.len();
            for j in 1..bins {
                let b = if per < 2 {
                    f64::INFINITY
                } else {
                    EqualMassBins::cut_near(&sorted, (j * per / bins).clamp(1, per - 1))
                };
                // Stay ascending when a cut had to move past a run of ties.
                let b = match boundaries[start..].last() {
                    Some(&p) if b < p => p,
                    _ => b,
                };
                boundaries.push(b);
            }
        }
        Ok(EqualMassBins { bins, boundaries })
    }

    /// Bins from given boundaries: `groups × (bins − 1)` values, group-major.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `bins` outside `1..=256`, a boundary count that is not a
    /// positive multiple of `bins − 1` (any count but zero groups for one bin), a NaN
    /// boundary, or boundaries that descend within a group.
    ///
    /// ```
    /// use nuq_core::EqualMassBins;
    /// let b = EqualMassBins::from_boundaries(3, vec![0.0, 1.0, -1.0, f64::INFINITY])?;
    /// assert_eq!((b.groups(), b.assign(1, 5.0)), (2, 1));
    /// assert!(EqualMassBins::from_boundaries(3, vec![1.0, 0.0]).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_boundaries(bins: usize, boundaries: Vec<f64>) -> Result<EqualMassBins> {
        check_bins(bins)?;
        let per = bins - 1;
        let bad = |value: f64, expected: &'static str| Error::InvalidParameter {
            name: "boundaries",
            value,
            expected,
        };
        if per == 0 {
            if !boundaries.is_empty() {
                return Err(bad(
                    boundaries.len() as f64,
                    "no boundaries for a single bin",
                ));
            }
        } else if boundaries.is_empty() || !boundaries.len().is_multiple_of(per) {
            return Err(bad(
                boundaries.len() as f64,
                "a positive multiple of bins - 1 boundaries",
            ));
        }
        if let Some(&b) = boundaries.iter().find(|b| b.is_nan()) {
            return Err(bad(b, "boundaries that are numbers"));
        }
        if per > 0 {
            for g in boundaries.chunks_exact(per) {
                if let Some(w) = g.windows(2).find(|w| w[1] < w[0]) {
                    return Err(bad(w[1], "ascending boundaries within each group"));
                }
            }
        }
        Ok(EqualMassBins { bins, boundaries })
    }

    /// A boundary splitting sorted `values` as near index `b` (`1..len`) as the data allows:
    /// in the nearest gap between neighbours `values[i − 1] < values[i]` wider than
    /// [`MIN_GAP`] (relative), at [`GAP_SPLIT`] of the gap; at equal distance the gap below
    /// `b` first. `+∞` when no gap is wide enough.
    ///
    /// ```
    /// use nuq_core::{EqualMassBins, GAP_SPLIT};
    /// let run = [1.0, 2.0, 2.0, 2.0, 9.0];
    /// assert!((EqualMassBins::cut_near(&run, 2) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
    /// assert!((EqualMassBins::cut_near(&run, 3) - (2.0 + 7.0 * GAP_SPLIT)).abs() < 1e-12);
    /// assert_eq!(EqualMassBins::cut_near(&[1.0, 1.0, 1.0], 1), f64::INFINITY);
    /// ```
    pub fn cut_near(values: &[f64], b: usize) -> f64 {
        let wide = |i: usize| {
            let (lo, hi) = (values[i - 1], values[i]);
            hi - lo > MIN_GAP * lo.abs().max(hi.abs()).max(f64::MIN_POSITIVE)
        };
        let cut = |i: usize| values[i - 1] + GAP_SPLIT * (values[i] - values[i - 1]);
        let n = values.len();
        // Gap `i` lies between `values[i − 1]` and `values[i]`; try `b`, then `b ∓ 1`, …
        for d in 0..n {
            if b < d + 1 && b + d >= n {
                break;
            }
            if b > d && b - d < n && wide(b - d) {
                return cut(b - d);
            }
            if d > 0 && b + d < n && wide(b + d) {
                return cut(b + d);
            }
        }
        f64::INFINITY
    }

    /// The number of bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The number of groups (0 only for one bin, which needs no boundaries).
    pub fn groups(&self) -> usize {
        match self.bins - 1 {
            0 => 0,
            per => self.boundaries.len() / per,
        }
    }

    /// All boundaries, group-major.
    pub fn boundaries(&self) -> &[f64] {
        &self.boundaries
    }

    /// The `bins − 1` ascending boundaries of `group`.
    ///
    /// # Panics
    /// If `group >= groups()` (with more than one bin).
    pub fn boundaries_of(&self, group: usize) -> &[f64] {
        let per = self.bins - 1;
        &self.boundaries[group * per..(group + 1) * per]
    }

    /// The bin of `x` in `group`: the number of the group's boundaries `x` reaches. NaN gets
    /// bin 0.
    ///
    /// # Panics
    /// If `group >= groups()` (with more than one bin).
    #[inline]
    pub fn assign(&self, group: usize, x: f64) -> u8 {
        if self.bins == 1 {
            return 0;
        }
        self.boundaries_of(group).partition_point(|&b| x >= b) as u8
    }

    /// The bins of `values`, `groups()` contiguous equal blocks (as [`EqualMassBins::fit`]
    /// takes them).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the values do not split into `groups()` blocks.
    pub fn assign_all(&self, values: &[f32]) -> Result<Vec<u8>> {
        let groups = self.groups().max(1);
        check_groups(values.len(), groups)?;
        let per = (values.len() / groups).max(1);
        Ok(values
            .iter()
            .enumerate()
            .map(|(i, &v)| self.assign((i / per).min(groups - 1), f64::from(v)))
            .collect())
    }

    /// The same bins with group `g`'s boundaries multiplied by `factors[g]` (positive): the
    /// bins of data that was divided by those factors before fitting, in the original units.
    /// A single group is repeated, once per factor (one set of quantiles fitted to data
    /// pooled over groups that were each normalised by their factor).
    ///
    /// ```
    /// use nuq_core::EqualMassBins;
    /// let one = EqualMassBins::from_boundaries(2, vec![0.5])?;
    /// let rows = one.scaled(&[1.0, 4.0])?;
    /// assert_eq!(rows.boundaries(), &[0.5, 2.0]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when there is not one factor per group (or one group);
    /// [`Error::InvalidParameter`] for a factor that is not finite and positive.
    pub fn scaled(&self, factors: &[f64]) -> Result<EqualMassBins> {
        let groups = self.groups();
        if factors.len() != groups && groups > 1 {
            return Err(Error::LengthMismatch {
                expected: groups,
                found: factors.len(),
            });
        }
        if let Some(&f) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
            return Err(Error::InvalidParameter {
                name: "factor",
                value: f,
                expected: "finite and positive",
            });
        }
        let per = self.bins - 1;
        let boundaries = if groups == 1 {
            factors
                .iter()
                .flat_map(|&f| self.boundaries.iter().map(move |&b| b * f))
                .collect()
        } else {
            self.boundaries
                .iter()
                .enumerate()
                .map(|(i, &b)| b * factors[i / per.max(1)])
                .collect()
        };
        Ok(EqualMassBins {
            bins: self.bins,
            boundaries,
        })
    }
}

fn check_bins(bins: usize) -> Result<()> {
    if !(1..=256).contains(&bins) {
        return Err(Error::InvalidParameter {
            name: "bins",
            value: bins as f64,
            expected: "1..=256",
        });
    }
    Ok(())
}

fn check_groups(len: usize, groups: usize) -> Result<()> {
    if groups == 0 || !len.is_multiple_of(groups) {
        return Err(Error::InvalidParameter {
            name: "groups",
            value: groups as f64,
            expected: "a positive divisor of the value count",
        });
    }
    Ok(())
}

/// A faithful k-quantile fit: the codebook, its scale, the equal-mass bins and every value's
/// index (its bin). Real value of index `i` in group `g`: `scale · levels[i]` (times the
/// group's factor, when the values were normalised per group).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive] // more fields may come: read them, do not build the struct
pub struct KQuantileFit {
    /// `2^bits` non-decreasing levels (a [`Codebook::table`]: bins whose levels snap to the
    /// same grid value repeat it), family [`Family::KQuantile`].
    pub codebook: Codebook,
    /// Real value of one grid step.
    pub scale: Scale,
    /// The bins, in the units of the fitted values.
    pub bins: EqualMassBins,
    /// Each value's index, in the order of the values.
    pub indices: Vec<u8>,
}

impl Codebook {
    /// The k-quantile quantizer as its authors define it: each value is assigned by its
    /// empirical CDF within its group ([`EqualMassBins`], `2^bits` equal-mass bins, boundaries
    /// at the quantiles), and the level of bin `j` is the [`BinLevel`] of everything assigned
    /// to `j` over all groups (one level table shared by the groups, as one layer's weights
    /// share one codebook). The real levels snap to `grid` with the scale that puts the
    /// outermost one on the grid's edge; each rounds to its nearest grid value, so bins whose
    /// levels are closer than a grid step share a level (the table is non-decreasing, as the
    /// `.nuq` format allows). An empty bin (a group with fewer values than bins) takes the
    /// level of the bin below it.
    ///
    /// Compare [`Codebook::k_quantile`], which keeps the same equal-mass centroids as distinct
    /// levels but leaves the assignment to the nearest level.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`]; as [`EqualMassBins::fit`].
    ///
    /// ```
    /// use nuq_core::{BinLevel, Codebook, Grid};
    /// let v: Vec<f32> = (0..1000).map(|i| (i as f32 / 1000.0).powi(2)).collect();
    /// let fit = Codebook::k_quantile_by_cdf(Grid::I8, 2, &v, 1, BinLevel::Centroid)?;
    /// // Four bins of 250 values each; the top centroid (about 0.77) maps to 127.
    /// for j in 0..4u8 {
    ///     assert_eq!(fit.indices.iter().filter(|&&i| i == j).count(), 250);
    /// }
    /// assert_eq!(fit.codebook.levels().len(), 4);
    /// assert_eq!(*fit.codebook.levels().last().unwrap(), 127);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn k_quantile_by_cdf(
        grid: Grid,
        bits: u8,
        values: &[f32],
        groups: usize,
        level: BinLevel,
    ) -> Result<KQuantileFit> {
        check_index_bits(bits)?;
        let k = 1usize << bits;
        let bins = EqualMassBins::fit(values, groups, k)?;
        let indices = bins.assign_all(values)?;
        let mut members: Vec<Vec<f32>> = alloc::vec![Vec::new(); k];
        for (&v, &i) in values.iter().zip(&indices) {
            members[usize::from(i)].push(v);
        }
        let mut real: Vec<f64> = Vec::with_capacity(k);
        for m in &members {
            let r = level
                .of(m)
                .or_else(|| real.last().copied())
                .unwrap_or(f64::NAN);
            real.push(r);
        }
        // Leading empty bins (never, unless every value sits above the first boundaries):
        // take the first real level.
        if let Some(&first) = real.iter().find(|r| !r.is_nan()) {
            for r in real.iter_mut().take_while(|r| r.is_nan()) {
                *r = first;
            }
        }
        // A median (or rounding) could step back across bins: keep the table monotone.
        for j in 1..k {
            if real[j] < real[j - 1] {
                real[j] = real[j - 1];
            }
        }
        let (codebook, scale) = snap_table(grid, bits, &real)?;
        Ok(KQuantileFit {
            codebook: codebook.with_family(Family::KQuantile),
            scale,
            bins,
            indices,
        })
    }
}

/// Snaps non-decreasing real levels to `grid`: scale `s` puts the outermost level on the
/// grid's edge, each level rounds to the nearest grid value (ties may repeat).
fn snap_table(grid: Grid, bits: u8, real: &[f64]) -> Result<(Codebook, Scale)> {
    let (gmin, gmax) = (f64::from(grid.min()), f64::from(grid.max()));
    let (lo, hi) = (real[0], real[real.len() - 1]);
    let mut s: f64 = 0.0;
    if hi > 0.0 {
        s = s.max(hi / gmax);
    }
    if lo < 0.0 && gmin < 0.0 {
        s = s.max(lo / gmin);
    }
    if !(s >= f64::from(f32::MIN_POSITIVE) && s <= f64::from(f32::MAX)) {
        let zero = grid.clamp(0);
        let cb = Codebook::table(grid, bits, &alloc::vec![zero; real.len()])?;
        return Ok((cb, Scale::ONE));
    }
    let s = f64::from(s as f32);
    let q: Vec<i32> = real
        .iter()
        .map(|&r| libm::round(r / s).clamp(gmin, gmax) as i32)
        .collect();
    Ok((Codebook::table(grid, bits, &q)?, Scale::new(s as f32)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn cut_near_keeps_runs_together_and_off_lattices() {
        let split = EqualMassBins::cut_near;
        assert!((split(&[1.0, 1.0, 1.0, 2.0], 1) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
        let run = [1.0, 2.0, 2.0, 2.0, 9.0];
        assert!((split(&run, 1) - (1.0 + GAP_SPLIT)).abs() < 1e-12);
        // Two lattice points an even number of steps apart: the cut is off the lattice.
        let t = split(&[10.0, 14.0], 1);
        assert!((t - libm::round(t)).abs() > 0.4, "{t}");
        // Values a few f32 ulps apart count as one: the cut goes to the next real gap.
        let sorted = [0.382_327_44, 0.382_327_46, 0.382_327_47, 0.5, 0.7];
        let t = split(&sorted, 2);
        assert!(
            !(0.382_327_44 - 1e-6..=0.382_327_47 + 1e-6).contains(&t),
            "{t}"
        );
    }

    #[test]
    fn groups_get_their_own_quantiles() {
        // Row 0 small, row 1 large: the same ranks get the same bins.
        let v: Vec<f32> = (0..8)
            .map(|i| i as f32)
            .chain((0..8).map(|i| 100.0 * i as f32))
            .collect();
        let b = EqualMassBins::fit(&v, 2, 4).unwrap();
        let idx = b.assign_all(&v).unwrap();
        assert_eq!(&idx[..8], &idx[8..]);
        let scaled = b.scaled(&[2.0, 0.5]).unwrap();
        assert_eq!(scaled.boundaries_of(0)[0], 2.0 * b.boundaries_of(0)[0]);
        assert!(b.scaled(&[1.0, 1.0, 1.0]).is_err());
        assert!(b.scaled(&[1.0, 0.0]).is_err());
    }

    #[test]
    fn fewer_values_than_bins_and_coinciding_levels() {
        // 3 values, 8 bins: empty bins repeat the level below; the table is non-decreasing.
        let fit =
            Codebook::k_quantile_by_cdf(Grid::I8, 3, &[-1.0, 0.0, 1.0], 1, BinLevel::Centroid)
                .unwrap();
        let l = fit.codebook.levels();
        assert_eq!(l.len(), 8);
        assert!(l.windows(2).all(|w| w[0] <= w[1]), "{l:?}");
        // Every value decodes to itself (scale 1/127).
        for (&i, v) in fit.indices.iter().zip([-1.0f32, 0.0, 1.0]) {
            let back = fit.scale.get() * l[usize::from(i)] as f32;
            assert!((back - v).abs() < 1e-6, "{back} vs {v}");
        }
        // Many bins on a coarse grid: neighbouring levels coincide, indices stay bins.
        let g = Grid::signed(3).unwrap();
        let v: Vec<f32> = (0..256).map(|i| i as f32 - 128.0).collect();
        let fit = Codebook::k_quantile_by_cdf(g, 4, &v, 1, BinLevel::Median).unwrap();
        assert!(fit.codebook.levels().windows(2).any(|w| w[0] == w[1]));
        assert_eq!(fit.indices[0], 0);
        assert_eq!(fit.indices[255], 15);
        assert_eq!(fit.codebook.family(), Family::KQuantile);
        // All zero: one level, scale one.
        let z = Codebook::k_quantile_by_cdf(Grid::I8, 2, &[0.0; 8], 1, BinLevel::Centroid).unwrap();
        assert_eq!(z.codebook.levels(), &[0, 0, 0, 0]);
    }

    #[test]
    fn errors() {
        assert!(EqualMassBins::fit(&[], 1, 4).is_err());
        assert!(EqualMassBins::fit(&[1.0; 5], 2, 4).is_err());
        assert!(EqualMassBins::fit(&[1.0; 4], 1, 0).is_err());
        assert!(matches!(
            EqualMassBins::fit(&[1.0, f32::NAN], 1, 2),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(EqualMassBins::from_boundaries(1, vec![]).is_ok());
        assert!(EqualMassBins::from_boundaries(1, vec![1.0]).is_err());
        assert!(EqualMassBins::from_boundaries(3, vec![f64::NAN, 1.0]).is_err());
        assert!(EqualMassBins::from_boundaries(3, vec![1.0]).is_err());
        assert_eq!(
            Codebook::k_quantile_by_cdf(Grid::I8, 0, &[1.0], 1, BinLevel::Centroid),
            Err(Error::InvalidIndexBits { bits: 0 })
        );
    }

    #[test]
    fn centroids_beat_medians_in_mse_and_medians_in_abs() {
        let mut rng = Rng::new(5);
        let v: Vec<f32> = (0..4096).map(|_| rng.normal() as f32).collect();
        let err = |level: BinLevel, p: i32| {
            let f = Codebook::k_quantile_by_cdf(Grid::I8, 3, &v, 1, level).unwrap();
            let s = f64::from(f.scale.get());
            v.iter()
                .zip(&f.indices)
                .map(|(&x, &i)| {
                    (f64::from(x) - s * f64::from(f.codebook.levels()[usize::from(i)]))
                        .abs()
                        .powi(p)
                })
                .sum::<f64>()
        };
        assert!(err(BinLevel::Centroid, 2) <= err(BinLevel::Median, 2));
        assert!(err(BinLevel::Median, 1) <= err(BinLevel::Centroid, 1));
    }

    proptest! {
        #[test]
        fn equal_mass_monotone_sorted_deterministic(
            raw in proptest::collection::vec(-1000i32..1000, 1..300),
            groups in 1usize..4,
            bits in 1u8..5,
            spread in 0.001f32..10.0,
        ) {
            let n = raw.len() - raw.len() % groups;
            prop_assume!(n > 0);
            let v: Vec<f32> = raw[..n].iter().map(|&r| r as f32 * spread).collect();
            let k = 1usize << bits;
            let b = EqualMassBins::fit(&v, groups, k).unwrap();
            prop_assert_eq!(b.groups(), if k == 1 { 0 } else { groups });
            let idx = b.assign_all(&v).unwrap();
            let per = n / groups;
            for g in 0..groups {
                let bs = if k > 1 { b.boundaries_of(g) } else { &[][..] };
                prop_assert!(bs.windows(2).all(|w| w[0] <= w[1]));
                let vals = &v[g * per..(g + 1) * per];
                let ids = &idx[g * per..(g + 1) * per];
                // Monotone: a larger value never gets a smaller index.
                for (a, ia) in vals.iter().zip(ids) {
                    for (c, ic) in vals.iter().zip(ids) {
                        if a < c {
                            prop_assert!(ia <= ic);
                        }
                    }
                }
                // Equal mass: with distinct values each bin holds floor or ceil of per/k.
                let mut distinct = vals.to_vec();
                distinct.sort_by(f32::total_cmp);
                distinct.dedup();
                if distinct.len() == per {
                    for j in 0..k {
                        let c = ids.iter().filter(|&&i| usize::from(i) == j).count();
                        prop_assert!(c + 1 >= per / k && c <= per.div_ceil(k), "bin {} holds {} of {}", j, c, per);
                    }
                }
            }
            // Deterministic.
            prop_assert_eq!(&EqualMassBins::fit(&v, groups, k).unwrap(), &b);
            let fit = Codebook::k_quantile_by_cdf(Grid::I8, bits, &v, groups, BinLevel::Centroid).unwrap();
            prop_assert_eq!(&fit.indices, &idx);
            prop_assert!(fit.codebook.levels().windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
