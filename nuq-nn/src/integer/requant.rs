//! Threshold requantization (the paper's MAC thresholds).

use nuq_core::{Codebook, MacThresholds, Scale};

use crate::error::ModelProblem;

/// Requantization of an accumulator to a code by integer compares ([`MacThresholds`]: per
/// channel `#{j : acc >= T[c][j]}` rising, `#{j : acc <= T[c][j]}` falling — a channel whose
/// folded batch-norm scale is negative), and the code's activation level (what the next
/// layer multiplies with): `codebook.levels()[code]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Requant {
    /// The MAC thresholds, one row and direction per output channel.
    pub thresholds: MacThresholds,
    /// The output codebook: `2^bits` levels on an unsigned grid of at most 8 bits (a
    /// [`Codebook::table`] read from a file may repeat a level).
    pub codebook: Codebook,
    /// Real value of one output level (informative; inference never uses it).
    pub scale: Scale,
}

impl Requant {
    /// Code bits.
    pub fn bits(&self) -> u8 {
        self.thresholds.bits()
    }

    /// The levels as the `u8` lookup table the kernels write (validation keeps the grid
    /// within `u8`).
    pub fn lut(&self) -> Vec<u8> {
        self.codebook
            .levels()
            .iter()
            .map(|&l| l.clamp(0, 255) as u8)
            .collect()
    }

    /// Checks the table against a channel count.
    pub(crate) fn validate(&self, channels: usize) -> Result<(), ModelProblem> {
        if self.thresholds.channels() != channels {
            return Err(ModelProblem::Count {
                what: "threshold rows",
                expected: channels,
                found: self.thresholds.channels(),
            });
        }
        let n = self.thresholds.per_channel() + 1;
        let grid = self.codebook.grid();
        if self.codebook.len() != n || grid.is_signed() || grid.bits() > 8 {
            return Err(ModelProblem::OutputLevels {
                expected: n,
                found: self.codebook.levels().to_vec(),
            });
        }
        Ok(())
    }

    /// The code of accumulator `acc` in channel `c`.
    #[inline]
    pub fn code(&self, c: usize, acc: i64) -> u8 {
        self.thresholds.code(c, acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_core::{Direction, Grid};
    use proptest::prelude::*;

    fn table(levels: &[i32]) -> Codebook {
        Codebook::table(Grid::U8, 2, levels).unwrap()
    }

    proptest! {
        #[test]
        fn rising_code_counts_reached_thresholds(acc in -1000i64..1000, mut t in proptest::collection::vec(-1000i32..1000, 3)) {
            t.sort();
            let mac = |d| MacThresholds::new(2, t.clone(), vec![d]).unwrap();
            let r = Requant { thresholds: mac(Direction::Rising), codebook: table(&[0, 1, 2, 3]), scale: Scale::ONE };
            let code = r.code(0, acc);
            prop_assert_eq!(usize::from(code), t.iter().filter(|&&x| acc >= i64::from(x)).count());
            // Monotone in the accumulator.
            prop_assert!(r.code(0, acc + 1) >= code);
            let f = Requant { thresholds: mac(Direction::Falling), ..r };
            prop_assert!(f.code(0, acc + 1) <= f.code(0, acc));
        }
    }

    #[test]
    fn validate_names_the_problem() {
        let r = Requant {
            thresholds: MacThresholds::new(2, vec![1, 2, 3], vec![Direction::Rising]).unwrap(),
            codebook: table(&[0, 1, 1, 3]),
            scale: Scale::ONE,
        };
        assert!(matches!(
            r.validate(2),
            Err(ModelProblem::Count {
                expected: 2,
                found: 1,
                ..
            })
        ));
        // A repeated level is allowed (the format's codebooks are non-decreasing) ...
        assert!(r.validate(1).is_ok());
        // ... a decreasing one is not a codebook at all ...
        assert!(Codebook::table(Grid::U8, 2, &[0, 2, 1, 3]).is_err());
        // ... and a short or signed one is not an output codebook.
        for codebook in [
            table(&[0, 1, 3]),
            Codebook::table(Grid::I8, 2, &[-1, 0, 1, 2]).unwrap(),
        ] {
            let r = Requant {
                codebook,
                ..r.clone()
            };
            assert!(matches!(
                r.validate(1),
                Err(ModelProblem::OutputLevels { expected: 4, .. })
            ));
        }
    }
}
