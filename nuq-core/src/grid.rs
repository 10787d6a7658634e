//! The integer grid every codebook level lives on.

use crate::error::{Error, Result};

/// An integer grid of `bits` bits: the set of integers a codebook level may take.
///
/// * **signed** grids are *symmetric*: `-(2^(bits-1) - 1) ..= 2^(bits-1) - 1`, so an 8-bit
///   signed grid is `-127..=127`. The value `-2^(bits-1)` (`-128`) is left out on purpose: every
///   grid value can be negated without overflow, symmetric codebooks stay symmetric, and a
///   product of two grid values never reaches the one asymmetric corner of two's complement.
/// * **unsigned** grids are `0 ..= 2^bits - 1` (`0..=255` at 8 bits), e.g. post-ReLU activations.
///
/// Widths are `2..=16`; every grid value fits an `i32`, and an 8-bit grid value fits an `i8`
/// (signed) or `u8` (unsigned), which is what integer hardware multiplies.
///
/// ```
/// use nuq_core::Grid;
/// let g = Grid::signed(8)?;
/// assert_eq!((g.min(), g.max()), (-127, 127));
/// let u = Grid::unsigned(4)?;
/// assert_eq!((u.min(), u.max(), u.size()), (0, 15, 16));
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grid {
    bits: u8,
    signed: bool,
}

impl Grid {
    /// The 8-bit signed grid `-127..=127`, the usual home of weight codebooks.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::I8.max(), 127);
    /// ```
    pub const I8: Grid = Grid {
        bits: 8,
        signed: true,
    };

    /// The 8-bit unsigned grid `0..=255`, the usual home of post-ReLU activation codebooks.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::U8.max(), 255);
    /// ```
    pub const U8: Grid = Grid {
        bits: 8,
        signed: false,
    };

    /// A grid of `bits` bits (`2..=16`), signed (symmetric) or unsigned.
    ///
    /// ```
    /// use nuq_core::{Error, Grid};
    /// assert_eq!(Grid::new(8, true)?, Grid::I8);
    /// assert_eq!(Grid::new(17, false), Err(Error::InvalidGridBits { bits: 17 }));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn new(bits: u8, signed: bool) -> Result<Grid> {
        if !(2..=16).contains(&bits) {
            return Err(Error::InvalidGridBits { bits });
        }
        Ok(Grid { bits, signed })
    }

    /// A signed (symmetric) grid of `bits` bits.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::signed(4)?.min(), -7);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn signed(bits: u8) -> Result<Grid> {
        Grid::new(bits, true)
    }

    /// An unsigned grid of `bits` bits.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::unsigned(16)?.max(), 65535);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn unsigned(bits: u8) -> Result<Grid> {
        Grid::new(bits, false)
    }

    /// The grid width in bits.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::I8.bits(), 8);
    /// ```
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Whether the grid is signed (symmetric around zero).
    ///
    /// ```
    /// assert!(nuq_core::Grid::I8.is_signed());
    /// ```
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// The smallest grid value: `-(2^(bits-1) - 1)` when signed, else `0`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::I8.min(), -127);
    /// ```
    pub fn min(&self) -> i32 {
        if self.signed {
            -self.max()
        } else {
            0
        }
    }

    /// The largest grid value: `2^(bits-1) - 1` when signed, else `2^bits - 1`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::U8.max(), 255);
    /// ```
    pub fn max(&self) -> i32 {
        if self.signed {
            (1i32 << (self.bits - 1)) - 1
        } else {
            (1i32 << self.bits) - 1
        }
    }

    /// The number of grid values, `max - min + 1`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::I8.size(), 255);
    /// ```
    pub fn size(&self) -> usize {
        (self.max() - self.min()) as usize + 1
    }

    /// Whether `v` is a grid value.
    ///
    /// ```
    /// assert!(!nuq_core::Grid::I8.contains(-128));
    /// ```
    pub fn contains(&self, v: i32) -> bool {
        (self.min()..=self.max()).contains(&v)
    }

    /// `v` clamped into the grid range.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::U8.clamp(-3), 0);
    /// ```
    pub fn clamp(&self, v: i32) -> i32 {
        v.clamp(self.min(), self.max())
    }
}

impl core::fmt::Display for Grid {
    /// `i8`-style names: `i8` for the signed 8-bit grid, `u4` for the unsigned 4-bit one.
    ///
    /// ```
    /// assert_eq!(nuq_core::Grid::I8.to_string(), "i8");
    /// ```
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}{}", if self.signed { 'i' } else { 'u' }, self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_at_every_width() {
        for bits in 2..=16u8 {
            let s = Grid::signed(bits).unwrap();
            assert_eq!(s.max(), (1 << (bits - 1)) - 1);
            assert_eq!(s.min(), -s.max());
            assert_eq!(s.size(), (1usize << bits) - 1);
            let u = Grid::unsigned(bits).unwrap();
            assert_eq!(u.min(), 0);
            assert_eq!(u.size(), 1usize << bits);
        }
    }

    #[test]
    fn rejects_bad_widths() {
        for bits in [0u8, 1, 17, 255] {
            assert_eq!(Grid::new(bits, true), Err(Error::InvalidGridBits { bits }));
        }
    }

    #[test]
    fn contains_and_clamp() {
        let g = Grid::signed(3).unwrap();
        assert!(g.contains(-3) && g.contains(3) && !g.contains(4) && !g.contains(-4));
        assert_eq!(g.clamp(9), 3);
        assert_eq!(Grid::unsigned(2).unwrap().to_string(), "u2");
    }
}
