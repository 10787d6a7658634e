//! μ-law companding codebooks.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, snap_normalized, Codebook, Polarity};
use crate::error::{Error, Result};
use crate::grid::Grid;

const FAMILY: &str = "mu-law";

/// Inverse of the μ-law compressor `F(x) = sign(x) ln(1 + μ|x|) / ln(1 + μ)` on `[-1, 1]`.
fn expand(y: f64, mu: f64) -> f64 {
    let mag = libm::expm1(y.abs() * libm::log1p(mu)) / mu;
    if y < 0.0 {
        -mag
    } else {
        mag
    }
}

impl Codebook {
    /// μ-law levels: points spaced uniformly in the compressed domain
    /// `F(x) = sign(x)·ln(1 + μ|x|)/ln(1 + μ)` and expanded back, then rounded onto the grid
    /// (the largest magnitude at the grid's top). Larger `μ` crowds levels towards zero.
    ///
    /// The compressed-domain points follow `polarity` exactly as [`Codebook::uniform`] places
    /// its multiples: unsigned `j/(2^b-1)`, signed mid-tread `j/(2^(b-1)-1)` (`b >= 2`), mid-rise
    /// odd `k/(2^b-1)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `μ` is finite and in `(0, 1e6]`;
    /// [`Error::UnsupportedBits`] (signed at 1 bit); [`Error::SignedLevelsOnUnsignedGrid`];
    /// [`Error::GridTooCoarse`] when neighbouring levels round to the same integer.
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let cb = Codebook::mu_law(Grid::I8, 3, Polarity::Signed, 8.0)?;
    /// assert_eq!(cb.levels(), &[-127, -53, -17, 0, 17, 53, 127]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn mu_law(grid: Grid, bits: u8, polarity: Polarity, mu: f32) -> Result<Codebook> {
        check_index_bits(bits)?;
        polarity.check_grid(FAMILY, grid)?;
        if !(mu.is_finite() && mu > 0.0 && mu <= 1e6) {
            return Err(Error::InvalidParameter {
                name: "mu",
                value: mu as f64,
                expected: "a finite number in (0, 1e6]",
            });
        }
        let n = 1i64 << bits;
        let (ks, top): (Vec<i64>, i64) = match polarity {
            Polarity::Unsigned => ((0..n).collect(), n - 1),
            Polarity::Signed => {
                if bits < 2 {
                    return Err(Error::UnsupportedBits {
                        family: "signed mu-law",
                        bits,
                        supported: "2..=8",
                    });
                }
                let m = n / 2 - 1;
                ((-m..=m).collect(), m)
            }
            Polarity::SignedMidrise => ((0..n).map(|j| 2 * j - (n - 1)).collect(), n - 1),
        };
        let mu = mu as f64;
        let normalized: Vec<f64> = ks
            .iter()
            .map(|&k| expand(k as f64 / top as f64, mu))
            .collect();
        snap_normalized(FAMILY, grid, bits, &normalized)
            .map(|c| c.with_family(crate::Family::MuLaw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_inverts_the_compressor() {
        for mu in [0.5, 8.0, 255.0] {
            for x in [-1.0, -0.3, 0.0, 0.01, 0.7, 1.0] {
                let f = libm::copysign(libm::log1p(mu * libm::fabs(x)) / libm::log1p(mu), x);
                assert!((expand(f, mu) - x).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn tiny_mu_is_nearly_uniform() {
        let mu = Codebook::mu_law(Grid::I8, 3, Polarity::Unsigned, 1e-6).unwrap();
        let u = Codebook::uniform(Grid::I8, 3, Polarity::Unsigned).unwrap();
        for (a, b) in mu.levels().iter().zip(u.levels()) {
            assert!((a - b).abs() <= 2 + b / 18, "{a} vs {b}"); // uniform uses step 18 (top 126)
        }
    }

    #[test]
    fn one_bit_and_errors() {
        let g = Grid::I8;
        assert_eq!(
            Codebook::mu_law(g, 1, Polarity::Unsigned, 8.0)
                .unwrap()
                .levels(),
            &[0, 127]
        );
        assert_eq!(
            Codebook::mu_law(g, 1, Polarity::SignedMidrise, 8.0)
                .unwrap()
                .levels(),
            &[-127, 127]
        );
        assert!(matches!(
            Codebook::mu_law(g, 1, Polarity::Signed, 8.0),
            Err(Error::UnsupportedBits { .. })
        ));
        for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY, 2e6] {
            assert!(matches!(
                Codebook::mu_law(g, 3, Polarity::Signed, bad),
                Err(Error::InvalidParameter { name: "mu", .. })
            ));
        }
        // 255 strongly compressed 8-bit levels cannot stay distinct on 255 grid values.
        assert_eq!(
            Codebook::mu_law(g, 8, Polarity::Signed, 255.0),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 8,
                grid: g
            })
        );
    }
}
