//! Uniform codebooks: equally spaced integer levels.

use alloc::vec::Vec;

use crate::codebook::{check_index_bits, Codebook, Polarity};
use crate::error::{Error, Result};
use crate::grid::Grid;

const FAMILY: &str = "uniform";

impl Codebook {
    /// Uniform levels `k · step` with the largest integer `step` that keeps them on the grid.
    ///
    /// * [`Polarity::Unsigned`]: `k = 0, 1, ..., 2^b - 1` (`b >= 1`; 1 bit gives `{0, step}`).
    /// * [`Polarity::Signed`]: `k = -(2^(b-1) - 1) ..= 2^(b-1) - 1`, the symmetric int8-style
    ///   quantizer with an exact zero; `2^b - 1` levels, `b >= 2`.
    /// * [`Polarity::SignedMidrise`]: odd `k = ±1, ±3, ..., ±(2^b - 1)`; `2^b` levels without
    ///   zero, `b >= 1` (1 bit gives the binary `{-step, step}`).
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`], [`Error::UnsupportedBits`] (signed at 1 bit),
    /// [`Error::SignedLevelsOnUnsignedGrid`], and [`Error::GridTooCoarse`] when `step` would
    /// be 0 (e.g. 8-bit unsigned levels on the signed 8-bit grid).
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let cb = Codebook::uniform(Grid::I8, 4, Polarity::Signed)?;
    /// assert_eq!(cb.levels()[..3], [-126, -108, -90]);
    /// assert_eq!(cb.len(), 15);
    /// let u = Codebook::uniform(Grid::U8, 8, Polarity::Unsigned)?;
    /// assert_eq!(u.levels()[255], 255);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn uniform(grid: Grid, bits: u8, polarity: Polarity) -> Result<Codebook> {
        check_index_bits(bits)?;
        polarity.check_grid(FAMILY, grid)?;
        let n = 1i64 << bits;
        let ks: Vec<i64> = match polarity {
            Polarity::Unsigned => (0..n).collect(),
            Polarity::Signed => {
                if bits < 2 {
                    return Err(Error::UnsupportedBits {
                        family: "signed uniform",
                        bits,
                        supported: "2..=8",
                    });
                }
                let m = n / 2 - 1;
                (-m..=m).collect()
            }
            Polarity::SignedMidrise => (0..n).map(|j| 2 * j - (n - 1)).collect(),
        };
        let top = *ks.last().expect("at least two multiples");
        let step = grid.max() as i64 / top;
        if step == 0 {
            return Err(Error::GridTooCoarse {
                family: FAMILY,
                bits,
                grid,
            });
        }
        Codebook::build(grid, bits, ks.iter().map(|&k| (k * step) as i32).collect())
            .map(|c| c.with_family(crate::Family::Uniform))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bit_behaviour() {
        let g = Grid::I8;
        assert_eq!(
            Codebook::uniform(g, 1, Polarity::Unsigned)
                .unwrap()
                .levels(),
            &[0, 127]
        );
        assert_eq!(
            Codebook::uniform(g, 1, Polarity::SignedMidrise)
                .unwrap()
                .levels(),
            &[-127, 127]
        );
        assert!(matches!(
            Codebook::uniform(g, 1, Polarity::Signed),
            Err(Error::UnsupportedBits { bits: 1, .. })
        ));
    }

    #[test]
    fn equal_spacing_and_symmetry_at_every_width() {
        for bits in 2..=8u8 {
            let cb = Codebook::uniform(Grid::signed(16).unwrap(), bits, Polarity::Signed).unwrap();
            let l = cb.levels();
            assert_eq!(l.len(), (1 << bits) - 1);
            let step = l[1] - l[0];
            assert!(l.windows(2).all(|w| w[1] - w[0] == step));
            assert!(l.iter().zip(l.iter().rev()).all(|(a, b)| *a == -*b));
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            Codebook::uniform(Grid::I8, 8, Polarity::Unsigned),
            Err(Error::GridTooCoarse {
                family: "uniform",
                bits: 8,
                grid: Grid::I8
            })
        );
        assert!(matches!(
            Codebook::uniform(Grid::U8, 3, Polarity::Signed),
            Err(Error::SignedLevelsOnUnsignedGrid { .. })
        ));
        assert_eq!(
            Codebook::uniform(Grid::I8, 9, Polarity::Unsigned),
            Err(Error::InvalidIndexBits { bits: 9 })
        );
        let tiny = Grid::signed(2).unwrap(); // -1..=1
        assert_eq!(
            Codebook::uniform(tiny, 2, Polarity::Signed)
                .unwrap()
                .levels(),
            &[-1, 0, 1]
        );
    }
}
