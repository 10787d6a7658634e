//! Lloyd–Max codebooks: minimum mean squared error for (weighted) data.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook};
use crate::empirical::EmpiricalDistribution;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::rng::Rng;
use crate::snap::{fit_to_grid, FittedCodebook, Refinement};

const FAMILY: &str = "Lloyd-Max";

/// Options of [`Codebook::lloyd_max`].
///
/// ```
/// let o = nuq_core::LloydMaxOptions { seed: 7, ..Default::default() };
/// assert_eq!(o.max_iterations, 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LloydMaxOptions {
    /// Seed of the k-means++ initialisation; the fit is a pure function of data and seed.
    pub seed: u64,
    /// Upper bound on Lloyd iterations (each costs `O(k log n)`).
    pub max_iterations: u32,
    /// Convergence: stop when no level moves by more than `tolerance × (max − min)` of the
    /// data.
    pub tolerance: f64,
}

impl Default for LloydMaxOptions {
    /// Seed 0, at most 100 000 iterations, tolerance `1e-10`.
    ///
    /// ```
    /// assert_eq!(nuq_core::LloydMaxOptions::default().seed, 0);
    /// ```
    fn default() -> Self {
        LloydMaxOptions {
            seed: 0,
            max_iterations: 100_000,
            tolerance: 1e-10,
        }
    }
}

/// k-means++ seeding on sorted weighted samples: the first centre drawn by weight, each next
/// by weight × squared distance to the nearest centre so far. Stops early when every sample
/// coincides with a centre (fewer distinct values than `k`).
fn kmeans_pp(data: &EmpiricalDistribution, k: usize, rng: &mut Rng) -> Vec<f64> {
    let x = data.values();
    let n = x.len();
    let pick = |rng: &mut Rng, cum: &[f64]| -> usize {
        let total = cum[cum.len() - 1];
        let u = rng.next_f64() * total;
        // First i with cum[i] > u; never past the last index with positive mass.
        cum.partition_point(|&c| c <= u).min(cum.len() - 1)
    };
    let weights: Vec<f64> = (0..n).map(|i| data.weight(i)).collect();
    let mut cum: Vec<f64> = Vec::with_capacity(n);
    let mut acc = 0.0;
    for &w in &weights {
        acc += w;
        cum.push(acc);
    }
    let mut centres = alloc::vec![x[pick(rng, &cum)]];
    let mut d2: Vec<f64> = x
        .iter()
        .map(|&v| (v - centres[0]) * (v - centres[0]))
        .collect();
    while centres.len() < k {
        acc = 0.0;
        for (c, (&w, &d)) in cum.iter_mut().zip(weights.iter().zip(&d2)) {
            acc += w * d;
            *c = acc;
        }
        if acc <= 0.0 {
            break;
        }
        let c = x[pick(rng, &cum)];
        centres.push(c);
        for (d, &v) in d2.iter_mut().zip(x) {
            *d = d.min((v - c) * (v - c));
        }
    }
    centres.sort_unstable_by(f64::total_cmp);
    centres.dedup();
    centres
}

/// Lloyd iterations from `centres` (sorted, distinct) to a fixed point: nearest-level
/// partition (thresholds at midpoints, ties up), then each level to its bin's weighted
/// centroid. A level whose bin empties is moved onto the sample with the largest weighted
/// squared error.
pub(crate) fn lloyd_iterate(
    data: &EmpiricalDistribution,
    mut centres: Vec<f64>,
    options: &LloydMaxOptions,
) -> Vec<f64> {
    let x = data.values();
    let span = data.max() - data.min();
    let k = centres.len();
    let mut cuts = alloc::vec![0usize; k + 1];
    for _ in 0..options.max_iterations {
        cuts[k] = x.len();
        for j in 1..k {
            cuts[j] = data.lower_bound(0.5 * (centres[j - 1] + centres[j]));
        }
        let mut moved = 0.0f64;
        let mut empty = None;
        for j in 0..k {
            let (w, s1, _) = data.moments(cuts[j], cuts[j + 1]);
            if w > 0.0 {
                let c = s1 / w;
                moved = moved.max((c - centres[j]).abs());
                centres[j] = c;
            } else {
                empty = Some(j);
            }
        }
        if let Some(j) = empty {
            // Re-seed at the worst-served sample.
            let mut worst = (0.0f64, x[0]);
            for b in 0..k {
                for (i, &v) in x.iter().enumerate().take(cuts[b + 1]).skip(cuts[b]) {
                    let e = data.weight(i) * (v - centres[b]) * (v - centres[b]);
                    if e > worst.0 {
                        worst = (e, v);
                    }
                }
            }
            centres[j] = worst.1;
            centres.sort_unstable_by(f64::total_cmp);
            centres.dedup();
            if centres.len() < k {
                // Every sample sits on a level already; nothing left to improve.
                return centres;
            }
            continue;
        }
        if moved <= options.tolerance * span {
            break;
        }
    }
    centres
}

impl Codebook {
    /// A Lloyd–Max (minimum-MSE) codebook fitted to (weighted) data.
    ///
    /// 1. **Initialise** `2^bits` levels by k-means++ seeding (deterministic given
    ///    `options.seed`).
    /// 2. **Iterate** Lloyd's algorithm in real units to convergence: partition at the
    ///    midpoints between levels, move each level to its bin's weighted centroid; on sorted
    ///    data with prefix sums one iteration costs `O(k log n)`.
    /// 3. **Snap** to `grid` and **re-optimise** (see [crate docs](crate#fitting-to-the-grid)):
    ///    the outermost level on the grid's edge, round keeping levels distinct, then
    ///    alternate an MSE-optimal choice of the scale with coordinate descent over ±1 grid
    ///    steps until neither lowers the MSE.
    ///
    /// Fewer than `2^bits` levels result when the data has fewer distinct values.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`]; [`Error::InvalidParameter`] for a negative or non-finite
    /// tolerance; [`Error::GridTooCoarse`] when the grid has fewer values than levels.
    ///
    /// ```
    /// use nuq_core::{Codebook, EmpiricalDistribution, Grid, LloydMaxOptions, Rng};
    /// let mut rng = Rng::new(1);
    /// let data: Vec<f32> = (0..50_000).map(|_| rng.normal() as f32).collect();
    /// let d = EmpiricalDistribution::from_values(&data)?;
    /// let fit = Codebook::lloyd_max(Grid::I8, 2, &d, &LloydMaxOptions::default())?;
    /// // Max (1960): 4 levels reach MSE 0.1175 on N(0, 1).
    /// assert!((fit.mse / 0.1175 - 1.0).abs() < 0.02);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn lloyd_max(
        grid: Grid,
        bits: u8,
        data: &EmpiricalDistribution,
        options: &LloydMaxOptions,
    ) -> Result<FittedCodebook> {
        check_index_bits(bits)?;
        if !(options.tolerance.is_finite() && options.tolerance >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "tolerance",
                value: options.tolerance,
                expected: "a finite number >= 0",
            });
        }
        let k = 1usize << bits;
        if k > grid.size() {
            return Err(Error::GridTooCoarse {
                family: FAMILY,
                bits,
                grid,
            });
        }
        let mut rng = Rng::new(options.seed);
        let init = kmeans_pp(data, k, &mut rng);
        let levels = lloyd_iterate(data, init, options);
        fit_to_grid(FAMILY, grid, bits, &levels, data, Refinement::Descent)
            .map(|f| f.with_family(crate::Family::LloydMax))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_known_gaussian_optimum_in_real_units() {
        let mut rng = Rng::new(5);
        let data: Vec<f32> = (0..100_000).map(|_| rng.normal() as f32).collect();
        let d = EmpiricalDistribution::from_values(&data).unwrap();
        // Max (1960), 2 levels: ±0.7979; 4 levels: ±0.4528, ±1.510.
        let mut r = Rng::new(0);
        let two = lloyd_iterate(&d, kmeans_pp(&d, 2, &mut r), &LloydMaxOptions::default());
        assert!(
            (two[1] - 0.7979).abs() < 0.01 && (two[0] + 0.7979).abs() < 0.01,
            "{two:?}"
        );
        let four = lloyd_iterate(&d, kmeans_pp(&d, 4, &mut r), &LloydMaxOptions::default());
        assert!(
            (four[2] - 0.4528).abs() < 0.01 && (four[3] - 1.510).abs() < 0.02,
            "{four:?}"
        );
    }

    #[test]
    fn deterministic_given_seed() {
        let mut rng = Rng::new(2);
        let data: Vec<f32> = (0..5000)
            .map(|_| (rng.normal() * rng.normal()) as f32)
            .collect();
        let d = EmpiricalDistribution::from_values(&data).unwrap();
        let o = LloydMaxOptions {
            seed: 9,
            ..Default::default()
        };
        let a = Codebook::lloyd_max(Grid::I8, 3, &d, &o).unwrap();
        let b = Codebook::lloyd_max(Grid::I8, 3, &d, &o).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn few_distinct_values_give_exact_levels() {
        let d = EmpiricalDistribution::from_values(&[-2.0, -2.0, 0.0, 2.0, 2.0]).unwrap();
        let fit = Codebook::lloyd_max(Grid::I8, 3, &d, &LloydMaxOptions::default()).unwrap();
        assert_eq!(fit.codebook.len(), 3);
        assert!(fit.mse < 1e-9, "{}", fit.mse);
    }

    #[test]
    fn errors() {
        let d = EmpiricalDistribution::from_values(&[0.0, 1.0]).unwrap();
        let bad = LloydMaxOptions {
            tolerance: f64::NAN,
            ..Default::default()
        };
        assert!(matches!(
            Codebook::lloyd_max(Grid::I8, 2, &d, &bad),
            Err(Error::InvalidParameter {
                name: "tolerance",
                ..
            })
        ));
        assert_eq!(
            Codebook::lloyd_max(Grid::I8, 8, &d, &LloydMaxOptions::default()),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 8,
                grid: Grid::I8
            })
        );
    }
}
