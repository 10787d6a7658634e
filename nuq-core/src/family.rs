//! [`Family`]: how a codebook's levels were designed — the one family enum of every nuq crate
//! (the `.nuq` file stores it as its one-byte code, `CodebookKind` in `nuq-fpga-fmt`).

/// How a codebook's levels were designed (informational: the levels themselves are what
/// quantization uses). The one-byte codes are the `.nuq` format's and are frozen; a later
/// version may only add values.
///
/// ```
/// use nuq_core::{Codebook, Family, Grid, Polarity};
/// assert_eq!(Codebook::apot(Grid::I8, 4, Polarity::Signed)?.family(), Family::Apot);
/// assert_eq!(Family::from_raw(5), Some(Family::KQuantile));
/// assert_eq!((Family::KQuantile.raw(), Family::KQuantile.name()), (5, "k_quantile"));
/// assert_eq!(Family::from_raw(200), None);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// Levels given explicitly with no named family ([`Codebook::explicit`](crate::Codebook::explicit)).
    Custom = 0,
    /// Uniform levels.
    Uniform = 1,
    /// Powers of two.
    PowerOfTwo = 2,
    /// Additive powers of two (APoT).
    Apot = 3,
    /// mu-law companded levels.
    MuLaw = 4,
    /// k-quantile (equal-mass) levels, fitted to data.
    KQuantile = 5,
    /// Lloyd-Max (minimum mean squared error) levels, fitted to data.
    LloydMax = 6,
    /// The NF4 levels snapped to the grid.
    Nf4 = 7,
    /// The IQ4_NL levels.
    Iq4Nl = 8,
}

impl Family {
    /// Every family, in the order of their codes.
    pub const ALL: &'static [Family] = &[
        Family::Custom,
        Family::Uniform,
        Family::PowerOfTwo,
        Family::Apot,
        Family::MuLaw,
        Family::KQuantile,
        Family::LloydMax,
        Family::Nf4,
        Family::Iq4Nl,
    ];

    /// The family of a one-byte code, `None` for a code this version does not define.
    pub const fn from_raw(raw: u8) -> Option<Family> {
        match raw {
            0 => Some(Family::Custom),
            1 => Some(Family::Uniform),
            2 => Some(Family::PowerOfTwo),
            3 => Some(Family::Apot),
            4 => Some(Family::MuLaw),
            5 => Some(Family::KQuantile),
            6 => Some(Family::LloydMax),
            7 => Some(Family::Nf4),
            8 => Some(Family::Iq4Nl),
            _ => None,
        }
    }

    /// The one-byte code.
    pub const fn raw(self) -> u8 {
        self as u8
    }

    /// The format's name (`"k_quantile"`, `"lloyd_max"`, ...), as reports print it.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Custom => "custom",
            Family::Uniform => "uniform",
            Family::PowerOfTwo => "power_of_two",
            Family::Apot => "apot",
            Family::MuLaw => "mu_law",
            Family::KQuantile => "k_quantile",
            Family::LloydMax => "lloyd_max",
            Family::Nf4 => "nf4",
            Family::Iq4Nl => "iq4_nl",
        }
    }
}

impl core::fmt::Display for Family {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every code either names a family that gives it back, or none.
        #[test]
        fn raw_round_trips(raw in any::<u8>()) {
            match Family::from_raw(raw) {
                Some(f) => prop_assert_eq!(f.raw(), raw),
                None => prop_assert!(usize::from(raw) >= Family::ALL.len()),
            }
        }
    }

    #[test]
    fn all_is_in_code_order() {
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(usize::from(f.raw()), i);
        }
    }
}
