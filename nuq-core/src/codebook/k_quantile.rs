//! k-quantile codebooks: equal-mass bins of the empirical distribution (the paper's
//! quantizer).

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook};
use crate::empirical::EmpiricalDistribution;
use crate::error::Result;
use crate::grid::Grid;
use crate::snap::{fit_to_grid, FittedCodebook, Refinement};

const FAMILY: &str = "k-quantile";

/// Real-valued k-quantile levels: the weighted centroids of `k` equal-mass bins. Sample `i`
/// belongs to bin `floor(k · F_mid(i))`, where `F_mid(i)` is the cumulative weight up to the
/// middle of the sample, so bins are contiguous runs of the sorted data. Empty bins and equal
/// centroids (ties spanning bins) are dropped, so fewer than `k` levels can result.
pub(crate) fn k_quantile_levels(data: &EmpiricalDistribution, k: usize) -> Vec<f64> {
    let n = data.len();
    let total = data.total_weight();
    let mut levels: Vec<f64> = Vec::with_capacity(k);
    let mut start = 0usize;
    for j in 1..=k {
        // First sample whose mid-CDF reaches j/k (all remaining for the last bin).
        let end = if j == k {
            n
        } else {
            let target = j as f64 * total / k as f64;
            let (mut lo, mut hi) = (start, n);
            while lo < hi {
                let mid = (lo + hi) / 2;
                let f_mid = 0.5 * (data.prefix_weight(mid) + data.prefix_weight(mid + 1));
                if f_mid < target {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let (w, s1, _) = data.moments(start, end);
        if w > 0.0 {
            let c = s1 / w;
            if levels.last().is_none_or(|&p| c > p) {
                levels.push(c);
            }
        }
        start = end;
    }
    levels
}

impl Codebook {
    /// A k-quantile codebook fitted to (weighted) data: `2^bits` bins of equal probability
    /// mass under the empirical CDF, each represented by its weighted centroid — the
    /// quantizer of Liss et al. (and UNIQ), whose equal-mass bins spread the levels by
    /// data density.
    ///
    /// The real levels are snapped to `grid` as in [fitting to the grid](crate#fitting-to-the-grid):
    /// scale `s0` puts the outermost level on the grid's edge, each level rounds to the
    /// nearer of its two neighbouring grid values that lowers the data's MSE (levels stay
    /// distinct), and the returned scale is `s0`. Fewer than `2^bits` levels result when the
    /// data has fewer distinct values than bins.
    ///
    /// The codebook then assigns values to their *nearest* level, so its bin edges are the
    /// midpoints between the centroids, not the quantiles: the nearest-level variant
    /// ([`Assignment::Nearest`](crate::Assignment::Nearest)). The paper's quantizer, which
    /// assigns by quantile, is [`Codebook::k_quantile_by_cdf`].
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`](crate::Error::InvalidIndexBits);
    /// [`Error::GridTooCoarse`](crate::Error::GridTooCoarse) when the grid has fewer values
    /// than levels.
    ///
    /// ```
    /// use nuq_core::{Codebook, EmpiricalDistribution, Grid};
    /// let data: Vec<f32> = (0..1000).map(|i| (i as f32 / 1000.0).powi(2)).collect();
    /// let d = EmpiricalDistribution::from_values(&data)?;
    /// let fit = Codebook::k_quantile(Grid::U8, 2, &d)?;
    /// // Four equal-mass bins of x² on [0, 1): centroids near 0.02, 0.15, 0.40, 0.77.
    /// assert_eq!(fit.codebook.levels().len(), 4);
    /// assert_eq!(*fit.codebook.levels().last().unwrap(), 255);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn k_quantile(
        grid: Grid,
        bits: u8,
        data: &EmpiricalDistribution,
    ) -> Result<FittedCodebook> {
        check_index_bits(bits)?;
        let levels = k_quantile_levels(data, 1 << bits);
        fit_to_grid(FAMILY, grid, bits, &levels, data, Refinement::Neighbours)
            .map(|f| f.with_family(crate::Family::KQuantile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn uniform_data_gives_bin_midpoints() {
        let data: Vec<f32> = (0..4000).map(|i| i as f32 + 0.5).collect();
        let d = EmpiricalDistribution::from_values(&data).unwrap();
        let l = k_quantile_levels(&d, 4);
        assert_eq!(l, [500.0, 1500.0, 2500.0, 3500.0]);
    }

    #[test]
    fn equal_mass_with_weights() {
        // Weight 3 on 0, weight 1 on 1..=3: two bins of mass 3 each -> {0} and {1, 2, 3}.
        let d = EmpiricalDistribution::from_weighted(&[0.0, 1.0, 2.0, 3.0], &[3.0, 1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(k_quantile_levels(&d, 2), [0.0, 2.0]);
    }

    #[test]
    fn ties_collapse_levels() {
        let d = EmpiricalDistribution::from_values(&[1.0; 10]).unwrap();
        assert_eq!(k_quantile_levels(&d, 8), [1.0]);
        let fit = Codebook::k_quantile(Grid::I8, 3, &d).unwrap();
        assert_eq!(fit.codebook.levels(), &[127]);
        assert_eq!(fit.mse, 0.0);
    }

    #[test]
    fn errors() {
        let d = EmpiricalDistribution::from_values(&[0.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(
            Codebook::k_quantile(Grid::I8, 0, &d),
            Err(Error::InvalidIndexBits { bits: 0 })
        );
        let g = Grid::unsigned(2).unwrap();
        assert_eq!(
            Codebook::k_quantile(g, 3, &d),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 3,
                grid: g
            })
        );
    }
}
