//! Threshold requantization (the paper's MAC thresholds).

use nuq_core::{MacThresholds, Scale};

use crate::error::ModelProblem;

/// Requantization of an accumulator to a code by integer compares ([`MacThresholds`]: per
/// channel `#{j : acc >= T[c][j]}` rising, `#{j : acc <= T[c][j]}` falling — a channel whose
/// folded batch-norm scale is negative), and the code's activation level (what the next
/// layer multiplies with): `levels[code]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Requant {
    /// The MAC thresholds, one row and direction per output channel.
    pub thresholds: MacThresholds,
    /// The output codebook: `2^bits` non-decreasing unsigned levels (a level may repeat).
    pub levels: Vec<u8>,
    /// Real value of one output level (informative; inference never uses it).
    pub scale: Scale,
}

impl Requant {
    /// Code bits.
    pub fn bits(&self) -> u8 {
        self.thresholds.bits()
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
        if self.levels.len() != n || self.levels.windows(2).any(|p| p[0] > p[1]) {
            return Err(ModelProblem::OutputLevels {
                expected: n,
                found: self.levels.clone(),
            });
        }
        Ok(())
    }

    /// The code of accumulator `acc` in channel `c`.
    #[inline]
    pub fn code(&self, c: usize, acc: i64) -> u8 {
        self.thresholds.code(c, acc)
    }

    /// Requantizes `acc` (`[pixel][channel]`) into levels and, when given, codes.
    pub fn apply(
        &self,
        acc: &[i64],
        channels: usize,
        levels: &mut [u8],
        mut codes: Option<&mut [u8]>,
    ) {
        for (p, (a, l)) in acc
            .chunks_exact(channels)
            .zip(levels.chunks_exact_mut(channels))
            .enumerate()
        {
            for c in 0..channels {
                let code = self.code(c, a[c]);
                l[c] = self.levels[usize::from(code)];
                if let Some(codes) = codes.as_deref_mut() {
                    codes[p * channels + c] = code;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_core::Direction;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rising_code_counts_reached_thresholds(acc in -1000i64..1000, mut t in proptest::collection::vec(-1000i32..1000, 3)) {
            t.sort();
            let mac = |d| MacThresholds::new(2, t.clone(), vec![d]).unwrap();
            let r = Requant { thresholds: mac(Direction::Rising), levels: vec![0, 1, 2, 3], scale: Scale::ONE };
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
            levels: vec![0, 1, 1, 3],
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
        let r = Requant {
            levels: vec![0, 2, 1, 3],
            ..r
        };
        // ... a decreasing one is not.
        assert!(matches!(
            r.validate(1),
            Err(ModelProblem::OutputLevels { expected: 4, .. })
        ));
    }
}
