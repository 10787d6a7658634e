//! [`FixedPointMultiplier`]: a real multiplier as an `i32` mantissa and a right shift, the
//! form integer hardware uses to requantize accumulators.

use crate::error::{Error, Result};

/// A positive real multiplier `m ≈ M / 2^shift` with `M` in `[2^30, 2^31)` (an `i32` with its
/// top bit as the leading one) and `shift` in `0..=62`.
///
/// Conversion rounds `m · 2^shift` to the nearest integer, so the relative error is at most
/// `2^-31`. Representable multipliers lie in `[2^-32, 2^31 - 1/2)`.
///
/// Two ways to apply it to an `i32` accumulator `a`:
/// * [`apply`](Self::apply): one exact rounding, `floor(a·M / 2^shift + 1/2)` (round half up,
///   i.e. add `2^(shift-1)` and shift right arithmetically), computed in `i64`, saturated to
///   `i32`. Error versus the exact `a·m`: at most `1/2 + |a|·m·2^-31`.
/// * [`apply_gemmlowp`](Self::apply_gemmlowp): gemmlowp/TFLite's two-step form,
///   `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(a << left, M), right)`, bit-exact
///   with those libraries. It rounds twice: the high multiply to nearest (ties towards +inf, as
///   gemmlowp's nudge-and-truncate gives), then the shift to nearest (ties away from zero), so
///   its error is at most `1 + |a|·m·2^-31`.
///
/// ```
/// use nuq_core::FixedPointMultiplier;
/// let f = FixedPointMultiplier::from_f64(0.1)?;
/// assert_eq!(f.apply(1000), 100);
/// assert_eq!(f.apply(-15), -1);        // -1.5 rounds half up to -1
/// assert_eq!(f.apply_gemmlowp(-15), -2); // gemmlowp rounds half away from zero
/// assert!((f.value() - 0.1).abs() <= 0.1 * 2f64.powi(-31));
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedPointMultiplier {
    multiplier: i32,
    shift: u8,
}

const MIN_VALUE: f64 = 1.0 / (1u64 << 32) as f64;
const MAX_VALUE: f64 = (1u64 << 31) as f64 - 0.5;

impl FixedPointMultiplier {
    /// The nearest fixed-point form of `m`.
    ///
    /// # Errors
    /// [`Error::MultiplierOutOfRange`] unless `m` is finite and in `[2^-32, 2^31 - 1/2)`.
    ///
    /// ```
    /// use nuq_core::FixedPointMultiplier;
    /// let f = FixedPointMultiplier::from_f64(1.0)?;
    /// assert_eq!((f.multiplier(), f.shift()), (1 << 30, 30));
    /// assert!(FixedPointMultiplier::from_f64(0.0).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_f64(m: f64) -> Result<FixedPointMultiplier> {
        // NaN fails the range test too.
        if !(MIN_VALUE..MAX_VALUE).contains(&m) {
            return Err(Error::MultiplierOutOfRange {
                value: m,
                min: MIN_VALUE,
                max: MAX_VALUE,
            });
        }
        // m = f · 2^e with f in [0.5, 1): then m · 2^(31 - e) = f · 2^31 is in [2^30, 2^31).
        let (f, e) = libm::frexp(m);
        let mut shift = 31 - e;
        let mut mant = libm::round(f * (1u64 << 31) as f64) as i64;
        if mant == 1 << 31 {
            mant = 1 << 30;
            shift -= 1;
        }
        // m >= 2^-32 gives e >= -31, so shift <= 62; m < 2^31 - 1/2 gives e <= 31, so
        // shift >= 0, and at shift 0 it rounds to at most 2^31 - 1, so the carry (which lowers
        // the shift) only happens at shifts above 0.
        debug_assert!((0..=62).contains(&shift));
        Ok(FixedPointMultiplier {
            multiplier: mant as i32,
            shift: shift as u8,
        })
    }

    /// `M`, in `[2^30, 2^31)`.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.5)?;
    /// assert_eq!(f.multiplier(), 1 << 30);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn multiplier(self) -> i32 {
        self.multiplier
    }

    /// The total right shift, in `0..=62`: the value is `M / 2^shift`.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.5)?;
    /// assert_eq!(f.shift(), 31);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn shift(self) -> u8 {
        self.shift
    }

    /// The represented value `M / 2^shift`, exactly.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.25)?;
    /// assert_eq!(f.value(), 0.25);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn value(self) -> f64 {
        self.multiplier as f64 / libm::exp2(self.shift as f64)
    }

    /// `round_half_up(a · M / 2^shift)` with one exact rounding, saturated to `i32`.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.5)?;
    /// assert_eq!([f.apply(3), f.apply(-3), f.apply(i32::MIN)], [2, -1, -(1 << 30)]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn apply(self, a: i32) -> i32 {
        // |a · M| <= 2^31 · (2^31 - 1) < 2^62, and adding 2^61 stays below 2^63.
        let prod = a as i64 * self.multiplier as i64;
        let rounded = if self.shift == 0 {
            prod
        } else {
            (prod + (1i64 << (self.shift - 1))) >> self.shift
        };
        rounded.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }

    /// gemmlowp's `MultiplyByQuantizedMultiplier`: with `left = max(0, 31 - shift)` and
    /// `right = max(0, shift - 31)`, computes
    /// `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(a · 2^left, M), right)`; the
    /// left shift saturates to `i32`.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.5)?;
    /// assert_eq!([f.apply_gemmlowp(3), f.apply_gemmlowp(-3), f.apply_gemmlowp(-5)], [2, -1, -2]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn apply_gemmlowp(self, a: i32) -> i32 {
        let left = 31u32.saturating_sub(self.shift as u32);
        let right = (self.shift as u32).saturating_sub(31);
        let x = ((a as i64) << left).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x, self.multiplier),
            right,
        )
    }
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `a·b / 2^31` rounded to nearest; the
/// nudge-then-truncate form sends ties towards +inf.
fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // gemmlowp divides with truncation towards zero.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `round(x / 2^e)`, ties away from zero.
fn rounding_divide_by_pot(x: i32, e: u32) -> i32 {
    if e == 0 {
        return x;
    }
    let mask = (1i64 << e) - 1;
    let remainder = x as i64 & mask;
    let threshold = (mask >> 1) + (x < 0) as i64;
    ((x as i64 >> e) + (remainder > threshold) as i64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn conversion_error_is_below_two_to_minus_31(m in 2.4e-10f64..2.1e9) {
            let f = FixedPointMultiplier::from_f64(m).unwrap();
            prop_assert!((1 << 30..=i32::MAX).contains(&f.multiplier()));
            prop_assert!(f.shift() <= 62);
            prop_assert!((f.value() - m).abs() <= m * libm::exp2(-31.0));
        }

        #[test]
        fn apply_is_within_half_plus_conversion_error(m in 1e-6f64..1e3, a in any::<i32>()) {
            let f = FixedPointMultiplier::from_f64(m).unwrap();
            let exact = a as f64 * m;
            if exact.abs() < 2.0e9 {
                let bound = 0.5 + (a as f64).abs() * m * libm::exp2(-31.0) + 1e-9;
                prop_assert!((f.apply(a) as f64 - exact).abs() <= bound);
                // Exactly round-half-up of the represented value.
                let represented = a as f64 * f.value();
                prop_assert_eq!(f.apply(a) as f64, libm::floor(represented + 0.5));
            }
        }

        #[test]
        fn gemmlowp_is_within_one_plus_conversion_error(m in 1e-6f64..1e3, a in any::<i32>()) {
            let f = FixedPointMultiplier::from_f64(m).unwrap();
            let exact = a as f64 * m;
            // The left shift saturates for large |a| with m >= 1; stay below that.
            if exact.abs() < 2.0e9 && (a as f64).abs() * libm::exp2(31.0 - f.shift() as f64) < 2.1e9 {
                let bound = 1.0 + (a as f64).abs() * m * libm::exp2(-31.0) + 1e-9;
                prop_assert!((f.apply_gemmlowp(a) as f64 - exact).abs() <= bound);
            }
        }
    }

    #[test]
    fn range_edges() {
        assert!(FixedPointMultiplier::from_f64(MIN_VALUE).is_ok());
        assert!(FixedPointMultiplier::from_f64(MIN_VALUE * 0.999).is_err());
        assert!(FixedPointMultiplier::from_f64(MAX_VALUE).is_err());
        let top = FixedPointMultiplier::from_f64(MAX_VALUE * (1.0 - 1e-12)).unwrap();
        assert_eq!(top.shift(), 0);
        // Rounding carry: just below 1, rounds to exactly 1.
        let one = FixedPointMultiplier::from_f64(1.0 - 1e-12).unwrap();
        assert_eq!((one.multiplier(), one.shift()), (1 << 30, 30));
        assert!(FixedPointMultiplier::from_f64(f64::NAN).is_err());
    }

    #[test]
    fn gemmlowp_reference_values() {
        // Shift 31: the whole rounding happens in the high multiply, ties towards +inf.
        let half = FixedPointMultiplier::from_f64(0.5).unwrap();
        assert_eq!(half.apply_gemmlowp(5), 3);
        assert_eq!(half.apply_gemmlowp(-5), -2);
        // Shift 33: the high multiply is exact here, the shift rounds ties away from zero.
        let eighth = FixedPointMultiplier::from_f64(0.125).unwrap();
        assert_eq!(eighth.apply_gemmlowp(12), 2);
        assert_eq!(eighth.apply_gemmlowp(-12), -2);
        assert_eq!(eighth.apply_gemmlowp(-11), -1);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        assert_eq!(rounding_divide_by_pot(-5, 2), -1);
    }
}
