//! Power-of-two codebooks: `{0, ±2^k}`, multiplied by shifts in hardware.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook, Polarity};
use crate::error::{Error, Result};
use crate::grid::Grid;

const FAMILY: &str = "power-of-two";

impl Codebook {
    /// Power-of-two levels: magnitudes `2^E, 2^(E-1), ...` down from the largest power of two
    /// `2^E` on the grid, every one an exact integer.
    ///
    /// * [`Polarity::Unsigned`]: `{0} ∪ {2^(E-j) : j < 2^b - 1}` (1 bit: `{0, 2^E}`).
    /// * [`Polarity::Signed`]: `{0} ∪ {±2^(E-j) : j < 2^(b-1) - 1}`, `b >= 2`.
    /// * [`Polarity::SignedMidrise`]: `{±2^(E-j) : j < 2^(b-1)}` (1 bit: `{-2^E, 2^E}`).
    ///
    /// The family is rigid: every extra bit only adds levels nearer zero, and it runs out of
    /// integer powers quickly (`E + 1` magnitudes on a grid whose top is below `2^(E+1)`).
    ///
    /// # Errors
    /// [`Error::UnsupportedBits`] (signed at 1 bit), [`Error::SignedLevelsOnUnsignedGrid`],
    /// [`Error::GridTooCoarse`] when the grid has fewer powers of two than needed.
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let cb = Codebook::power_of_two(Grid::I8, 3, Polarity::Signed)?;
    /// assert_eq!(cb.levels(), &[-64, -32, -16, 0, 16, 32, 64]);
    /// assert!(Codebook::power_of_two(Grid::I8, 5, Polarity::Signed).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn power_of_two(grid: Grid, bits: u8, polarity: Polarity) -> Result<Codebook> {
        check_index_bits(bits)?;
        polarity.check_grid(FAMILY, grid)?;
        let n = 1usize << bits;
        let (magnitudes, zero, signed) = match polarity {
            Polarity::Unsigned => (n - 1, true, false),
            Polarity::Signed => {
                if bits < 2 {
                    return Err(Error::UnsupportedBits {
                        family: "signed power-of-two",
                        bits,
                        supported: "2..=8",
                    });
                }
                (n / 2 - 1, true, true)
            }
            Polarity::SignedMidrise => (n / 2, false, true),
        };
        let e = 31 - grid.max().leading_zeros() as usize; // 2^e <= max < 2^(e+1)
        if magnitudes > e + 1 {
            return Err(Error::GridTooCoarse {
                family: FAMILY,
                bits,
                grid,
            });
        }
        let positive: Vec<i32> = (0..magnitudes).rev().map(|j| 1i32 << (e - j)).collect();
        let mut levels: Vec<i32> = Vec::with_capacity(n);
        if signed {
            levels.extend(positive.iter().rev().map(|&p| -p));
        }
        if zero {
            levels.push(0);
        }
        levels.extend_from_slice(&positive);
        Codebook::build(grid, bits, levels).map(|c| c.with_family(crate::Family::PowerOfTwo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let g = Grid::I8;
        assert_eq!(
            Codebook::power_of_two(g, 1, Polarity::Unsigned)
                .unwrap()
                .levels(),
            &[0, 64]
        );
        assert_eq!(
            Codebook::power_of_two(g, 1, Polarity::SignedMidrise)
                .unwrap()
                .levels(),
            &[-64, 64]
        );
        assert_eq!(
            Codebook::power_of_two(Grid::U8, 3, Polarity::Unsigned)
                .unwrap()
                .levels(),
            &[0, 2, 4, 8, 16, 32, 64, 128]
        );
        let four = Codebook::power_of_two(g, 4, Polarity::Signed).unwrap();
        assert_eq!(four.len(), 15);
        assert_eq!(four.levels()[7..], [0, 1, 2, 4, 8, 16, 32, 64]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Codebook::power_of_two(Grid::I8, 1, Polarity::Signed),
            Err(Error::UnsupportedBits { .. })
        ));
        assert_eq!(
            Codebook::power_of_two(Grid::U8, 4, Polarity::Unsigned),
            Err(Error::GridTooCoarse {
                family: FAMILY,
                bits: 4,
                grid: Grid::U8
            })
        );
        assert!(matches!(
            Codebook::power_of_two(Grid::U8, 2, Polarity::SignedMidrise),
            Err(Error::SignedLevelsOnUnsignedGrid { .. })
        ));
    }
}
