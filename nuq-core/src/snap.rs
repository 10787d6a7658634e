//! Snapping real-valued (data-fitted) levels onto the integer grid, and the local
//! re-optimisation on the grid that follows.
//!
//! A data-fitted codebook starts as `k` real levels `r[0] < ... < r[k-1]`. Snapping:
//!
//! 1. **Scale.** `s0` maps the outermost real level onto the grid's edge:
//!    `s0 = max(r[k-1] / max, r[0] / min)` over the sides the grid has, so the levels use the
//!    grid's full resolution.
//! 2. **Round, keep distinct.** `q[i] = clamp(round(r[i] / s0))`, then a forward pass lifts
//!    each level to at least one above its predecessor and a backward pass lowers levels that
//!    overflow the grid's top, so the `k` levels stay strictly increasing on the grid.
//! 3. **Re-optimise on the grid** ([`Refinement`]): coordinate descent that moves one level by
//!    one grid step at a time while the weighted MSE of the data drops, either confined to the
//!    two grid points around each `r[i] / s0` ([`Refinement::Neighbours`], which keeps the
//!    family's shape) or free, alternating with an MSE-optimal re-choice of the scale
//!    ([`Refinement::Descent`], used by Lloyd–Max, whose objective *is* the MSE).

use alloc::vec::Vec;

use crate::calibrate::mse_optimal_scale;
use crate::codebook::Codebook;
use crate::empirical::EmpiricalDistribution;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::scale::Scale;

/// A codebook fitted to data, with the scale it was fitted at and the weighted MSE it
/// reaches on that data (in squared real units).
///
/// ```
/// use nuq_core::{Codebook, EmpiricalDistribution, Grid, LloydMaxOptions};
/// let d = EmpiricalDistribution::from_values(&[-2.0, -1.0, 1.0, 2.0])?;
/// let fit = Codebook::lloyd_max(Grid::I8, 1, &d, &LloydMaxOptions::default())?;
/// // Two levels at the bin centroids ±1.5, on the grid as ±127 with scale 1.5/127.
/// assert_eq!(fit.codebook.levels(), &[-127, 127]);
/// assert!((fit.scale.get() - 1.5 / 127.0).abs() < 1e-7);
/// assert!((fit.mse - 0.25).abs() < 1e-6);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive] // more fields may come: read them, do not build the struct
pub struct FittedCodebook {
    /// The integer codebook.
    pub codebook: Codebook,
    /// The scale: real value = `scale × level`.
    pub scale: Scale,
    /// The weighted mean squared error on the fitting data, nearest-level decoding.
    pub mse: f64,
}

impl FittedCodebook {
    pub(crate) fn with_family(self, family: crate::Family) -> FittedCodebook {
        let codebook = self.codebook.with_family(family);
        FittedCodebook { codebook, ..self }
    }
}

/// How far snapped levels may move while re-optimising on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refinement {
    /// Each level stays on `floor` or `ceil` of its real position; the scale stays `s0`.
    Neighbours,
    /// Free coordinate descent, alternating with MSE-optimal scale choice.
    Descent,
}

fn real_levels(q: &[i32], s: f64, buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend(q.iter().map(|&l| l as f64 * s));
}

/// Snaps `real` (ascending, distinct, non-empty) onto `grid` and re-optimises.
pub(crate) fn fit_to_grid(
    family: &'static str,
    grid: Grid,
    bits: u8,
    real: &[f64],
    data: &EmpiricalDistribution,
    refinement: Refinement,
) -> Result<FittedCodebook> {
    debug_assert!(!real.is_empty() && real.windows(2).all(|w| w[0] < w[1]));
    let k = real.len();
    if k > grid.size() {
        return Err(Error::GridTooCoarse { family, bits, grid });
    }
    let (gmin, gmax) = (grid.min(), grid.max());
    let mut s0: f64 = 0.0;
    if real[k - 1] > 0.0 {
        s0 = s0.max(real[k - 1] / gmax as f64);
    }
    if real[0] < 0.0 && gmin < 0 {
        s0 = s0.max(real[0] / gmin as f64);
    }
    if !(s0 >= f32::MIN_POSITIVE as f64 && s0 <= f32::MAX as f64) {
        // Only zero (or unrepresentable) levels: a lone level at the grid value nearest 0.
        let codebook = Codebook::build(grid, bits, alloc::vec![grid.clamp(0)])?;
        let mse = data.quantization_mse(&[0.0]);
        return Ok(FittedCodebook {
            codebook,
            scale: Scale::ONE,
            mse,
        });
    }
    let s0 = (s0 as f32) as f64;
    let pos: Vec<f64> = real.iter().map(|&r| r / s0).collect();
    let mut q: Vec<i32> = pos
        .iter()
        .map(|&p| libm::round(p).clamp(gmin as f64, gmax as f64) as i32)
        .collect();
    for i in 1..k {
        q[i] = q[i].max(q[i - 1] + 1);
    }
    if q[k - 1] > gmax {
        q[k - 1] = gmax;
        for i in (0..k - 1).rev() {
            q[i] = q[i].min(q[i + 1] - 1);
        }
    }
    let mut buf = Vec::with_capacity(k);
    let mut s = s0;
    match refinement {
        Refinement::Neighbours => {
            let bounds: Vec<(i32, i32)> = pos
                .iter()
                .map(|&p| {
                    let lo = (libm::floor(p) as i32).clamp(gmin, gmax);
                    let hi = (libm::ceil(p) as i32).clamp(gmin, gmax);
                    (lo, hi)
                })
                .collect();
            descend(&mut q, s, data, grid, Some(&bounds));
        }
        Refinement::Descent => {
            for _ in 0..16 {
                if let Some(better) = mse_optimal_scale(data, &q) {
                    s = better;
                }
                if !descend(&mut q, s, data, grid, None) {
                    break;
                }
            }
            if let Some(better) = mse_optimal_scale(data, &q) {
                s = better;
            }
        }
    }
    real_levels(&q, s, &mut buf);
    let mse = data.quantization_mse(&buf);
    let scale = Scale::new(s as f32)?;
    Ok(FittedCodebook {
        codebook: Codebook::build(grid, bits, q)?,
        scale,
        mse,
    })
}

/// Weighted squared error (not divided by the total weight) of the samples that levels
/// `lo..=hi` of `q` receive at scale `s`: the samples between the threshold below level `lo`
/// and the threshold above level `hi`. Thresholds are computed exactly as in
/// [`EmpiricalDistribution::quantization_mse`].
fn span_cost(data: &EmpiricalDistribution, q: &[i32], s: f64, lo: usize, hi: usize) -> f64 {
    let cut = |j: usize| -> usize {
        if j == 0 {
            0
        } else if j == q.len() {
            data.len()
        } else {
            data.lower_bound(0.5 * (q[j - 1] as f64 * s + q[j] as f64 * s))
        }
    };
    let mut total = 0.0;
    let mut a = cut(lo);
    for (j, &level) in q.iter().enumerate().take(hi + 1).skip(lo) {
        let b = cut(j + 1);
        total += data.segment_cost(a, b, level as f64 * s);
        a = b;
    }
    total
}

/// Coordinate descent over ±1 grid steps at scale `s`; returns whether any level moved.
///
/// Moving level `i` only changes the thresholds on either side of it, so only the samples of
/// levels `i-1..=i+1` are re-costed: `O(log n)` per trial move.
fn descend(
    q: &mut [i32],
    s: f64,
    data: &EmpiricalDistribution,
    grid: Grid,
    bounds: Option<&[(i32, i32)]>,
) -> bool {
    let k = q.len();
    let total = span_cost(data, q, s, 0, k - 1);
    // A move must gain more than rounding noise of the whole sum to count, so this terminates.
    let eps = 1e-12 * total;
    let mut moved_any = false;
    for _ in 0..10_000 {
        let mut moved = false;
        for i in 0..k {
            let (lo, hi) = (i.saturating_sub(1), (i + 1).min(k - 1));
            for step in [-1i32, 1] {
                let v = q[i] + step;
                let (min, max) = match bounds {
                    Some(b) => b[i],
                    None => (grid.min(), grid.max()),
                };
                let below_ok = i == 0 || q[i - 1] < v;
                let above_ok = i + 1 == k || v < q[i + 1];
                if v < min || v > max || !below_ok || !above_ok {
                    continue;
                }
                let before = span_cost(data, q, s, lo, hi);
                let old = q[i];
                q[i] = v;
                let after = span_cost(data, q, s, lo, hi);
                if after < before - eps {
                    moved = true;
                    moved_any = true;
                } else {
                    q[i] = old;
                }
            }
        }
        if !moved {
            break;
        }
    }
    moved_any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowded_levels_stay_distinct() {
        let d = EmpiricalDistribution::from_values(&[0.0, 1.0]).unwrap();
        let grid = Grid::signed(3).unwrap(); // -3..=3
        let real = [-1.0, 0.99, 0.995, 0.999, 1.0];
        let fit = fit_to_grid("test", grid, 3, &real, &d, Refinement::Neighbours).unwrap();
        let l = fit.codebook.levels();
        assert_eq!(l.len(), 5);
        assert!(l.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*l.last().unwrap(), 3);
    }

    #[test]
    fn too_many_levels_for_the_grid() {
        let d = EmpiricalDistribution::from_values(&[0.0]).unwrap();
        let grid = Grid::unsigned(2).unwrap();
        let real = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            fit_to_grid("test", grid, 3, &real, &d, Refinement::Descent),
            Err(Error::GridTooCoarse {
                family: "test",
                bits: 3,
                grid
            })
        );
    }

    #[test]
    fn negative_levels_on_an_unsigned_grid_are_pushed_up() {
        let d = EmpiricalDistribution::from_values(&[-1.0, 0.0, 1.0, 2.0]).unwrap();
        let fit = fit_to_grid(
            "test",
            Grid::U8,
            2,
            &[-1.0, 0.0, 1.0, 2.0],
            &d,
            Refinement::Descent,
        )
        .unwrap();
        let l = fit.codebook.levels();
        assert!(l[0] >= 0 && l.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn span_costs_add_up_to_the_mse() {
        let mut rng = crate::Rng::new(6);
        let xs: alloc::vec::Vec<f32> = (0..3000).map(|_| rng.normal() as f32).collect();
        let d = EmpiricalDistribution::from_values(&xs).unwrap();
        let q = [-120, -50, -7, 0, 3, 40, 99, 127];
        let s = 0.021;
        let levels: alloc::vec::Vec<f64> = q.iter().map(|&l| l as f64 * s).collect();
        let whole = span_cost(&d, &q, s, 0, q.len() - 1) / d.total_weight();
        assert!((whole - d.quantization_mse(&levels)).abs() < 1e-12);
        let parts: f64 = (0..q.len()).map(|j| span_cost(&d, &q, s, j, j)).sum();
        assert!((parts / d.total_weight() - whole).abs() < 1e-12);
    }

    #[test]
    fn all_zero_data_gives_a_zero_level() {
        let d = EmpiricalDistribution::from_values(&[0.0, 0.0]).unwrap();
        let fit = fit_to_grid("test", Grid::I8, 2, &[0.0], &d, Refinement::Descent).unwrap();
        assert_eq!(fit.codebook.levels(), &[0]);
        assert_eq!(fit.mse, 0.0);
    }
}
