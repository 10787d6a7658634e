//! NormalFloat (NF4-like) codebooks: quantiles of a standard normal.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, snap_normalized, Codebook};
use crate::error::{Error, Result};
use crate::grid::Grid;

const FAMILY: &str = "normal-float";

/// The standard normal CDF.
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// The standard normal quantile Φ⁻¹(p) for `p` in `(0, 1)`: bisection to a bracket, then
/// Newton steps on the CDF (accurate to ~1e-14 over the range used here).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut x = 0.5 * (lo + hi);
    for _ in 0..3 {
        let pdf = libm::exp(-0.5 * x * x) / libm::sqrt(2.0 * core::f64::consts::PI);
        if pdf > 0.0 {
            x -= (normal_cdf(x) - p) / pdf;
        }
    }
    x
}

/// `n` points from `a` to `b`, both included.
fn linspace(a: f64, b: f64, n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| {
        if n == 1 {
            a
        } else {
            a + (b - a) * i as f64 / (n - 1) as f64
        }
    })
}

impl Codebook {
    /// NormalFloat levels (QLoRA's NF4, generalised to `b` bits): quantiles of N(0, 1)
    /// normalised to `[-1, 1]`, asymmetric with an exact zero, `2^(b-1)` positive and
    /// `2^(b-1) - 1` negative levels, then rounded onto the grid.
    ///
    /// The positive levels are `Φ⁻¹` at `2^(b-1)` points spaced evenly from the offset
    /// `δ = ½(1 - 1/(2(2^b - 1)) + 1 - 1/(2·2^b))` down to ½ (excluded), the negative ones at
    /// `2^(b-1) - 1` such points, as in QLoRA (`δ = 0.9677` at 4 bits). At 4 bits the
    /// normalised values match NF4's published table to 1e-4.
    ///
    /// # Errors
    /// [`Error::UnsupportedBits`] for 1 bit; [`Error::SignedLevelsOnUnsignedGrid`];
    /// [`Error::GridTooCoarse`] when levels collide (8 bits needs a grid wider than 8 bits).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid};
    /// let nf4 = Codebook::normal_float(Grid::I8, 4)?;
    /// assert_eq!(nf4.len(), 16);
    /// assert_eq!(nf4.levels()[0], -127);
    /// assert_eq!(nf4.levels()[7], 0);
    /// assert_eq!(nf4.levels()[15], 127);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn normal_float(grid: Grid, bits: u8) -> Result<Codebook> {
        check_index_bits(bits)?;
        if bits < 2 {
            return Err(Error::UnsupportedBits {
                family: FAMILY,
                bits,
                supported: "2..=8",
            });
        }
        if !grid.is_signed() {
            return Err(Error::SignedLevelsOnUnsignedGrid {
                family: FAMILY,
                grid,
            });
        }
        let n = 1usize << bits;
        let half = n / 2;
        let offset = 0.5 * ((1.0 - 0.5 / (n - 1) as f64) + (1.0 - 0.5 / n as f64));
        let positive: Vec<f64> = linspace(offset, 0.5, half + 1)
            .take(half)
            .map(normal_quantile)
            .collect();
        let negative: Vec<f64> = linspace(offset, 0.5, half)
            .take(half - 1)
            .map(|p| -normal_quantile(p))
            .collect();
        let top = positive[0];
        let mut normalized: Vec<f64> = negative.iter().map(|v| v / top).collect();
        normalized.push(0.0);
        normalized.extend(positive.iter().rev().map(|v| v / top));
        snap_normalized(FAMILY, grid, bits, &normalized).map(|c| c.with_family(crate::Family::Nf4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_inverts_cdf() {
        for p in [1e-9, 0.01, 0.3, 0.5, 0.9677, 0.999999] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-13 * p.max(1e-3));
        }
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
    }

    #[test]
    fn matches_published_nf4() {
        let nf4 = [
            -1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0910, 0.0, 0.0796, 0.1609,
            0.2461, 0.3379, 0.4407, 0.5626, 0.7230, 1.0,
        ];
        // On a 16-bit grid the rounding is finer than the table's 4 decimals.
        let cb = Codebook::normal_float(Grid::signed(16).unwrap(), 4).unwrap();
        for (l, want) in cb.levels().iter().zip(nf4) {
            assert!((*l as f64 / 32767.0 - want).abs() < 1.2e-4, "{l} vs {want}");
        }
    }

    #[test]
    fn errors_and_widths() {
        assert!(matches!(
            Codebook::normal_float(Grid::I8, 1),
            Err(Error::UnsupportedBits { bits: 1, .. })
        ));
        assert!(matches!(
            Codebook::normal_float(Grid::U8, 4),
            Err(Error::SignedLevelsOnUnsignedGrid { .. })
        ));
        assert_eq!(
            Codebook::normal_float(Grid::I8, 8),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 8,
                grid: Grid::I8
            })
        );
        assert_eq!(Codebook::normal_float(Grid::I8, 2).unwrap().len(), 4);
        assert_eq!(
            Codebook::normal_float(Grid::signed(12).unwrap(), 8)
                .unwrap()
                .len(),
            256
        );
    }
}
