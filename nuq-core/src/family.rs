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
    pub fn from_raw(raw: u8) -> Option<Family> {
        Family::ALL.get(usize::from(raw)).copied()
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
    fn constructors_name_their_family() {
        use crate::{
            Codebook as C, EmpiricalDistribution, Grid, LloydMaxOptions, Polarity::Signed,
        };
        const I8: Grid = Grid::I8;
        let d = EmpiricalDistribution::from_values(&[-1.0, -0.4, 0.0, 0.3, 1.0]).unwrap();
        let books = [
            (C::explicit(I8, 2, &[-1, 1]).unwrap(), Family::Custom),
            (C::uniform(I8, 2, Signed).unwrap(), Family::Uniform),
            (C::power_of_two(I8, 3, Signed).unwrap(), Family::PowerOfTwo),
            (C::apot(I8, 3, Signed).unwrap(), Family::Apot),
            (C::mu_law(I8, 3, Signed, 255.0).unwrap(), Family::MuLaw),
            (
                C::k_quantile(I8, 2, &d).unwrap().codebook,
                Family::KQuantile,
            ),
            (
                C::lloyd_max(I8, 2, &d, &LloydMaxOptions::default())
                    .unwrap()
                    .codebook,
                Family::LloydMax,
            ),
            (C::normal_float(I8, 4).unwrap(), Family::Nf4),
            (C::iq4_nl(), Family::Iq4Nl),
        ];
        for (book, family) in books {
            assert_eq!(book.family(), family);
        }
    }
}
