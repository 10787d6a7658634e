//! Codebooks from an explicit list of levels, and the IQ4_NL table.

use crate::codebook::Codebook;
use crate::error::Result;
use crate::grid::Grid;

/// llama.cpp's IQ4_NL levels, already on the signed 8-bit grid.
const IQ4_NL: [i32; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

impl Codebook {
    /// A codebook from explicit integer levels: `1..=2^bits` of them, strictly increasing,
    /// every one on `grid`.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`](crate::Error::InvalidIndexBits),
    /// [`Error::NoLevels`](crate::Error::NoLevels),
    /// [`Error::TooManyLevels`](crate::Error::TooManyLevels),
    /// [`Error::LevelsNotIncreasing`](crate::Error::LevelsNotIncreasing) and
    /// [`Error::LevelOffGrid`](crate::Error::LevelOffGrid), each naming the offending level.
    ///
    /// ```
    /// use nuq_core::{Codebook, Error, Grid};
    /// let cb = Codebook::explicit(Grid::I8, 2, &[-90, -20, 20, 90])?;
    /// assert_eq!(cb.len(), 4);
    /// assert_eq!(
    ///     Codebook::explicit(Grid::I8, 2, &[0, 200]),
    ///     Err(Error::LevelOffGrid { index: 1, level: 200, min: -127, max: 127 })
    /// );
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn explicit(grid: Grid, bits: u8, levels: &[i32]) -> Result<Codebook> {
        Codebook::build(grid, bits, levels.to_vec())
    }

    /// llama.cpp's IQ4_NL non-linear 4-bit codebook on the signed 8-bit grid:
    /// `{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}`.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// assert_eq!((cb.bits(), cb.len()), (4, 16));
    /// ```
    pub fn iq4_nl() -> Codebook {
        Codebook::build(Grid::I8, 4, IQ4_NL.to_vec())
            .expect("IQ4_NL levels are valid")
            .with_family(crate::Family::Iq4Nl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn explicit_validates() {
        assert_eq!(Codebook::explicit(Grid::I8, 1, &[]), Err(Error::NoLevels));
        assert!(matches!(
            Codebook::explicit(Grid::I8, 1, &[1, 2, 3]),
            Err(Error::TooManyLevels { .. })
        ));
        assert!(matches!(
            Codebook::explicit(Grid::I8, 3, &[1, 3, 2]),
            Err(Error::LevelsNotIncreasing {
                index: 2,
                previous: 3,
                found: 2
            })
        ));
        assert_eq!(
            Codebook::explicit(Grid::I8, 8, &[7]).unwrap().levels(),
            &[7]
        );
    }

    #[test]
    fn iq4_nl_is_the_published_table() {
        assert_eq!(Codebook::iq4_nl().levels(), &IQ4_NL);
    }
}
