//! MAC thresholds: the requantizer of the paper, as integer compares against an accumulator.

use alloc::vec::Vec;

use crate::error::{Error, Result};

/// How a channel's accumulator maps to a code through its thresholds.
///
/// A channel whose folded scale (batch-norm `γ/σ` times the input and weight scales) is
/// non-negative is **rising**: a larger accumulator means a larger activation. A negative
/// folded scale reverses the order and the channel is **falling**. Thresholds are stored
/// ascending either way; only the compare changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Direction {
    /// `code = #{k : acc ≥ T[k]}`.
    #[default]
    Rising = 0,
    /// `code = #{k : acc ≤ T[k]}`.
    Falling = 1,
}

impl Direction {
    /// Both directions, in the order of their codes.
    pub const ALL: &'static [Direction] = &[Direction::Rising, Direction::Falling];

    /// The direction of a one-byte code (`0` rising, `1` falling; the `.nuq` file's encoding),
    /// `None` for any other byte.
    ///
    /// ```
    /// use nuq_core::Direction;
    /// assert_eq!(Direction::from_raw(1), Some(Direction::Falling));
    /// assert_eq!(Direction::from_raw(2), None);
    /// assert_eq!(Direction::Falling.raw(), 1);
    /// ```
    pub const fn from_raw(raw: u8) -> Option<Direction> {
        match raw {
            0 => Some(Direction::Rising),
            1 => Some(Direction::Falling),
            _ => None,
        }
    }

    /// The one-byte code.
    pub const fn raw(self) -> u8 {
        self as u8
    }

    /// `"rising"` or `"falling"`.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Rising => "rising",
            Direction::Falling => "falling",
        }
    }

    /// The direction of a channel whose folded scale has the given sign.
    ///
    /// ```
    /// use nuq_core::Direction;
    /// assert_eq!(Direction::of_scale(-0.5), Direction::Falling);
    /// assert_eq!(Direction::of_scale(0.0), Direction::Rising);
    /// ```
    pub fn of_scale(scale: f64) -> Direction {
        if scale < 0.0 {
            Direction::Falling
        } else {
            Direction::Rising
        }
    }

    /// Whether the direction is [`Direction::Falling`].
    pub fn is_falling(self) -> bool {
        self == Direction::Falling
    }

    /// The code of `acc` against one channel's thresholds (any order).
    ///
    /// ```
    /// use nuq_core::Direction;
    /// assert_eq!(Direction::Rising.code(5, &[-1, 5, 9]), 2);
    /// assert_eq!(Direction::Falling.code(5, &[-1, 5, 9]), 2);
    /// ```
    pub fn code(self, acc: i64, thresholds: &[i32]) -> u8 {
        let n = match self {
            Direction::Rising => thresholds.iter().filter(|&&t| acc >= i64::from(t)).count(),
            Direction::Falling => thresholds.iter().filter(|&&t| acc <= i64::from(t)).count(),
        };
        n as u8
    }
}

impl core::fmt::Display for Direction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-channel integer thresholds that requantize an accumulator to a `bits`-bit code — the
/// paper's MAC thresholds, with batch-norm and every scale folded in.
///
/// Channel `c` owns `2^bits − 1` thresholds, stored **ascending** (channel-major), and a
/// [`Direction`]; its code for accumulator `acc` is the number of thresholds `acc` reaches
/// (`acc ≥ T` rising, `acc ≤ T` falling), so a value exactly on a threshold goes to the code
/// above it in the channel's own order. Equal neighbouring thresholds are allowed (an empty
/// bin). This one table is what the model holds, what the kernels compile and what the
/// `.nuq` file stores.
///
/// ```
/// use nuq_core::{Direction, MacThresholds};
/// let t = MacThresholds::new(2, vec![-10, 0, 10, -10, 0, 10], vec![Direction::Rising, Direction::Falling])?;
/// assert_eq!((t.channels(), t.per_channel()), (2, 3));
/// assert_eq!(t.code(0, 0), 2);  // reaches -10 and 0
/// assert_eq!(t.code(1, 0), 2);  // at or below 0 and 10
/// assert_eq!(t.code(1, 11), 0);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacThresholds {
    bits: u8,
    values: Vec<i32>,
    directions: Vec<Direction>,
}

impl MacThresholds {
    /// Checks and wraps a table: `values` is `[channel][2^bits − 1]`, ascending within each
    /// channel; one direction per channel.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`] for `bits ∉ 1..=8`, [`Error::NoChannels`],
    /// [`Error::ThresholdCount`], [`Error::ThresholdsNotAscending`].
    pub fn new(bits: u8, values: Vec<i32>, directions: Vec<Direction>) -> Result<MacThresholds> {
        if !(1..=8).contains(&bits) {
            return Err(Error::InvalidIndexBits { bits });
        }
        if directions.is_empty() {
            return Err(Error::NoChannels);
        }
        let per = (1usize << bits) - 1;
        let expected = directions.len() * per;
        if values.len() != expected {
            return Err(Error::ThresholdCount {
                channels: directions.len(),
                bits,
                expected,
                found: values.len(),
            });
        }
        for (channel, row) in values.chunks_exact(per).enumerate() {
            if let Some(i) = row.windows(2).position(|p| p[1] < p[0]) {
                return Err(Error::ThresholdsNotAscending {
                    channel,
                    index: i + 1,
                    value: row[i + 1],
                    previous: row[i],
                });
            }
        }
        Ok(MacThresholds {
            bits,
            values,
            directions,
        })
    }

    /// Code bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.directions.len()
    }

    /// Thresholds per channel, `2^bits − 1`.
    pub fn per_channel(&self) -> usize {
        (1usize << self.bits) - 1
    }

    /// Every threshold, `[channel][2^bits − 1]`, ascending within a channel.
    pub fn values(&self) -> &[i32] {
        &self.values
    }

    /// The direction of every channel.
    pub fn directions(&self) -> &[Direction] {
        &self.directions
    }

    /// Channel `c`'s thresholds, ascending.
    ///
    /// # Panics
    /// When `c ≥ channels()`.
    pub fn row(&self, c: usize) -> &[i32] {
        let per = self.per_channel();
        &self.values[c * per..(c + 1) * per]
    }

    /// The code of accumulator `acc` in channel `c` (exact in 64 bits).
    ///
    /// # Panics
    /// When `c ≥ channels()`.
    #[inline]
    pub fn code(&self, c: usize, acc: i64) -> u8 {
        self.directions[c].code(acc, self.row(c))
    }

    /// The thresholds an accumulator *before* a per-channel bias is compared against:
    /// `T[c][k] − bias[c]`, clamped to the `i32` range.
    ///
    /// The clamp keeps every code of an accumulator `a` with `i32::MIN < a < i32::MAX`: a
    /// threshold clamped to `i32::MIN` is reached by every such `a` (rising) exactly like the
    /// unclamped one, and one clamped to `i32::MAX` by none (mirrored for falling channels).
    ///
    /// ```
    /// use nuq_core::{Direction, MacThresholds};
    /// let t = MacThresholds::new(1, vec![i32::MIN + 1, 7], vec![Direction::Rising; 2])?;
    /// let f = t.offset(&[5, -3])?;
    /// assert_eq!(f.values(), &[i32::MIN, 10]);
    /// assert_eq!(f.code(1, 9), t.code(1, 9 - 3));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless there is one bias per channel.
    pub fn offset(&self, bias: &[i32]) -> Result<MacThresholds> {
        if bias.len() != self.channels() {
            return Err(Error::LengthMismatch {
                expected: self.channels(),
                found: bias.len(),
            });
        }
        let per = self.per_channel();
        let values = self
            .values
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                (i64::from(t) - i64::from(bias[i / per]))
                    .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
            })
            .collect();
        Ok(MacThresholds {
            bits: self.bits,
            values,
            directions: self.directions.clone(),
        })
    }

    /// The table's parts: bits, thresholds and directions.
    pub fn into_parts(self) -> (u8, Vec<i32>, Vec<Direction>) {
        (self.bits, self.values, self.directions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn new_names_each_problem() {
        assert_eq!(
            MacThresholds::new(0, vec![], vec![Direction::Rising]),
            Err(Error::InvalidIndexBits { bits: 0 })
        );
        assert_eq!(
            MacThresholds::new(1, vec![], vec![]),
            Err(Error::NoChannels)
        );
        assert!(matches!(
            MacThresholds::new(2, vec![0, 1], vec![Direction::Rising]),
            Err(Error::ThresholdCount {
                expected: 3,
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            MacThresholds::new(2, vec![0, 2, 1], vec![Direction::Falling]),
            Err(Error::ThresholdsNotAscending {
                channel: 0,
                index: 2,
                ..
            })
        ));
        assert!(MacThresholds::new(2, vec![1, 1, 1], vec![Direction::Falling]).is_ok());
    }

    #[test]
    fn offset_is_exact_inside_the_i32_range() {
        let t = MacThresholds::new(
            2,
            vec![i32::MIN, -4, i32::MAX, -3, 0, 3],
            vec![Direction::Rising, Direction::Falling],
        )
        .unwrap();
        let bias = [7, -2_000_000_000];
        let f = t.offset(&bias).unwrap();
        for acc in [i32::MIN + 1, -10, -4, 0, 3, 99, i32::MAX - 1] {
            for (c, &b) in bias.iter().enumerate() {
                let v = i64::from(acc) + i64::from(b);
                assert_eq!(f.code(c, i64::from(acc)), t.code(c, v), "c={c} acc={acc}");
            }
        }
        assert!(t.offset(&[1]).is_err());
    }
}
