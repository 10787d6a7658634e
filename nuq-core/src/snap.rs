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
pub struct FittedCodebook {
    /// The integer codebook.
    pub codebook: Codebook,
    /// The scale: real value = `scale × level`.
    pub scale: Scale,
    /// The weighted mean squared error on the fitting data, nearest-level decoding.
    pub mse: f64,
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
            descend(&mut q, s, data, grid, Some(&bounds), &mut buf);
        }
        Refinement::Descent => {
            for _ in 0..16 {
                if let Some(better) = mse_optimal_scale(data, &q) {
                    s = better;
                }
                if !descend(&mut q, s, data, grid, None, &mut buf) {
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

/// Coordinate descent over ±1 grid steps at scale `s`; returns whether any level moved.
fn descend(
    q: &mut [i32],
    s: f64,
    data: &EmpiricalDistribution,
    grid: Grid,
    bounds: Option<&[(i32, i32)]>,
    buf: &mut Vec<f64>,
) -> bool {
    real_levels(q, s, buf);
    let mut best = data.quantization_mse(buf);
    let mut moved_any = false;
    // Each accepted move lowers the MSE, so this terminates; the cap only bounds the time.
    for _ in 0..10_000 {
        let mut moved = false;
        for i in 0..q.len() {
            for step in [-1i32, 1] {
                let v = q[i] + step;
                let (lo, hi) = match bounds {
                    Some(b) => b[i],
                    None => (grid.min(), grid.max()),
                };
                let below_ok = i == 0 || q[i - 1] < v;
                let above_ok = i + 1 == q.len() || v < q[i + 1];
                if v < lo || v > hi || !below_ok || !above_ok {
                    continue;
                }
                let old = q[i];
                q[i] = v;
                real_levels(q, s, buf);
                let c = data.quantization_mse(buf);
                if c < best * (1.0 - 1e-12) {
                    best = c;
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
    fn all_zero_data_gives_a_zero_level() {
        let d = EmpiricalDistribution::from_values(&[0.0, 0.0]).unwrap();
        let fit = fit_to_grid("test", Grid::I8, 2, &[0.0], &d, Refinement::Descent).unwrap();
        assert_eq!(fit.codebook.levels(), &[0]);
        assert_eq!(fit.mse, 0.0);
    }
}
