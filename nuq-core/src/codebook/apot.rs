//! Additive powers-of-two (APoT) codebooks (Li et al., ICLR 2020).

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook, Polarity};
use crate::error::{Error, Result};
use crate::grid::Grid;

const FAMILY: &str = "APoT";

/// Unsigned APoT levels as integer numerators over their largest value, as built by the
/// official APoT code (`build_power_value`): each is a sum of power-of-two terms.
fn unsigned_numerators(bits: u8) -> &'static [i32] {
    match bits {
        1 => &[0, 1],
        // {0, 2^-3, 2^-2, 2^-1} / 2^-1
        2 => &[0, 1, 2, 4],
        // base_a ∈ {0, 2^-1, 2^-2, 2^-4}, base_b ∈ {0, 2^-3}; in 16ths, over 10/16
        3 => &[0, 1, 2, 3, 4, 6, 8, 10],
        // base_a ∈ {0, 2^-1, 2^-3, 2^-5}, base_b ∈ {0, 2^-2, 2^-4, 2^-6}; in 64ths, over 48/64
        _ => &[0, 1, 2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 33, 36, 48],
    }
}

impl Codebook {
    /// APoT levels: every level a sum of power-of-two terms, denser near zero than uniform but
    /// less rigid than power-of-two.
    ///
    /// * [`Polarity::Unsigned`], `b` in `1..=4`: the official APoT activation levels, e.g. at
    ///   4 bits `{0,1,2,3,4,6,8,9,12,16,18,24,32,33,36,48}/48`, at 3 bits
    ///   `{0,.1,.2,.3,.4,.6,.8,1}`, at 2 bits `{0,1/4,1/2,1}`, at 1 bit `{0,1}`.
    /// * [`Polarity::Signed`], `b` in `2..=5`: the APoT weight form, sign plus the
    ///   `(b-1)`-bit unsigned magnitudes (`2^b - 1` levels; 2 bits is ternary).
    ///
    /// The numerators are multiplied by the largest integer factor that keeps them on the
    /// grid, so the power-of-two sum structure survives exactly.
    ///
    /// # Errors
    /// [`Error::UnsupportedBits`] outside the widths above, [`Error::UnsupportedPolarity`]
    /// for mid-rise, [`Error::SignedLevelsOnUnsignedGrid`], [`Error::GridTooCoarse`] when the
    /// grid's top is below the largest numerator (48 at 4 bits).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let a = Codebook::apot(Grid::U8, 4, Polarity::Unsigned)?; // factor 5
    /// assert_eq!(a.levels()[..6], [0, 5, 10, 15, 20, 30]);
    /// assert_eq!(a.levels()[15], 240);
    /// let w = Codebook::apot(Grid::I8, 2, Polarity::Signed)?;
    /// assert_eq!(w.levels(), &[-127, 0, 127]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn apot(grid: Grid, bits: u8, polarity: Polarity) -> Result<Codebook> {
        check_index_bits(bits)?;
        polarity.check_grid(FAMILY, grid)?;
        let magnitude_bits = match polarity {
            Polarity::Unsigned if (1..=4).contains(&bits) => bits,
            Polarity::Unsigned => {
                return Err(Error::UnsupportedBits {
                    family: "unsigned APoT",
                    bits,
                    supported: "1..=4",
                })
            }
            Polarity::Signed if (2..=5).contains(&bits) => bits - 1,
            Polarity::Signed => {
                return Err(Error::UnsupportedBits {
                    family: "signed APoT",
                    bits,
                    supported: "2..=5",
                })
            }
            Polarity::SignedMidrise => {
                return Err(Error::UnsupportedPolarity {
                    family: FAMILY,
                    polarity: polarity.name(),
                })
            }
        };
        let nums = unsigned_numerators(magnitude_bits);
        let top = *nums.last().expect("non-empty table");
        let factor = grid.max() / top;
        if factor == 0 {
            return Err(Error::GridTooCoarse {
                family: FAMILY,
                bits,
                grid,
            });
        }
        let mut levels: Vec<i32> = Vec::with_capacity(2 * nums.len());
        if polarity == Polarity::Signed {
            levels.extend(nums[1..].iter().rev().map(|&n| -n * factor));
        }
        levels.extend(nums.iter().map(|&n| n * factor));
        Codebook::build(grid, bits, levels).map(|c| c.with_family(crate::Family::Apot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_bit_table_is_the_sum_of_two_power_of_two_terms() {
        let mut sums: Vec<i32> = Vec::new();
        for a in [0, 32, 8, 2] {
            for b in [0, 16, 4, 1] {
                sums.push(a + b);
            }
        }
        sums.sort_unstable();
        assert_eq!(sums, unsigned_numerators(4));
    }

    #[test]
    fn three_bit_table_matches_the_published_levels() {
        let l = unsigned_numerators(3);
        let published = [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0];
        for (n, p) in l.iter().zip(published) {
            assert!((*n as f64 / 10.0 - p).abs() < 1e-12);
        }
    }

    #[test]
    fn signed_forms_and_errors() {
        let w = Codebook::apot(Grid::I8, 4, Polarity::Signed).unwrap();
        assert_eq!(w.len(), 15);
        assert_eq!(w.levels()[7..], [0, 12, 24, 36, 48, 72, 96, 120]);
        let w5 = Codebook::apot(Grid::I8, 5, Polarity::Signed).unwrap();
        assert_eq!(w5.len(), 31);
        assert!(matches!(
            Codebook::apot(Grid::I8, 1, Polarity::Signed),
            Err(Error::UnsupportedBits { bits: 1, .. })
        ));
        assert!(matches!(
            Codebook::apot(Grid::I8, 5, Polarity::Unsigned),
            Err(Error::UnsupportedBits { bits: 5, .. })
        ));
        assert!(matches!(
            Codebook::apot(Grid::I8, 3, Polarity::SignedMidrise),
            Err(Error::UnsupportedPolarity { .. })
        ));
        assert_eq!(
            Codebook::apot(Grid::unsigned(5).unwrap(), 4, Polarity::Unsigned),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 4,
                grid: Grid::unsigned(5).unwrap()
            })
        );
    }
}
