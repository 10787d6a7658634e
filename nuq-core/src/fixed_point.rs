//! [`FixedPointMultiplier`]: a real multiplier as an `i32` mantissa and a right shift, the
//! form integer hardware uses to requantize accumulators.

use crate::error::{Error, Result};

/// A real multiplier `m ≈ M / 2^shift`: a signed `i32` mantissa `M` and a right shift in
/// `0..=62` — the one fixed-point form of every nuq crate (requantization factors, the
/// alignment of a residual shortcut, the fixed-point form of a scale, the `.nuq` file's
/// alignment tables).
///
/// [`from_f64`](Self::from_f64) chooses the **largest shift `≤ 62` with `|M| < 2^31`** and
/// rounds `m · 2^shift` to nearest (ties away from zero): for `2^-32 ≤ |m|` the mantissa has
/// 31 significant bits (`|M|` in `[2^30, 2^31)`), so the relative error is at most `2^-31`;
/// below, the shift stays at 62 and the error is at most `2^-63` in absolute terms.
/// [`new`](Self::new) takes any stored pair (a file may hold any `i32`).
///
/// Two ways to apply it:
/// * [`apply`](Self::apply): exact, `(v·M + 2^(shift−1)) >> shift` in `i64` (round half up;
///   no rounding term at shift 0) — what the integer model, the kernels and the `.nuq` file's
///   aligned join compute. Error versus the exact `v·m`: at most `1/2 + |v|·|m|·2^-31`.
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
/// let g = FixedPointMultiplier::from_f64(-0.5)?;
/// assert_eq!((g.multiplier(), g.shift(), g.apply(3)), (-(1 << 30), 31, -1));
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedPointMultiplier {
    multiplier: i32,
    shift: u8,
}

/// Bound above `|m|`: `m · 2^0` must round to `|M| < 2^31`.
const MAX_VALUE: f64 = (1u64 << 31) as f64 - 0.5;

impl FixedPointMultiplier {
    /// The largest right shift.
    pub const MAX_SHIFT: u8 = 62;

    /// The multiplier `multiplier / 2^shift`, as stored (any `i32`).
    ///
    /// # Errors
    /// [`Error::ShiftOutOfRange`] for `shift > 62`.
    ///
    /// ```
    /// use nuq_core::FixedPointMultiplier;
    /// assert_eq!(FixedPointMultiplier::new(-3, 2)?.value(), -0.75);
    /// assert!(FixedPointMultiplier::new(1, 63).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn new(multiplier: i32, shift: u8) -> Result<FixedPointMultiplier> {
        if shift > Self::MAX_SHIFT {
            return Err(Error::ShiftOutOfRange {
                shift,
                max: Self::MAX_SHIFT,
            });
        }
        Ok(FixedPointMultiplier { multiplier, shift })
    }

    /// The nearest fixed-point form of `m` with the largest shift `≤ 62` that keeps
    /// `|M| < 2^31` (see the type's docs); zero is `0 / 2^62`.
    ///
    /// # Errors
    /// [`Error::MultiplierOutOfRange`] unless `m` is finite and `|m| < 2^31 - 1/2`.
    ///
    /// ```
    /// use nuq_core::FixedPointMultiplier;
    /// let f = FixedPointMultiplier::from_f64(1.0)?;
    /// assert_eq!((f.multiplier(), f.shift()), (1 << 30, 30));
    /// let tiny = FixedPointMultiplier::from_f64(2f64.powi(-40))?;
    /// assert_eq!((tiny.multiplier(), tiny.shift()), (1 << 22, 62));
    /// assert!(FixedPointMultiplier::from_f64(3.0e9).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_f64(m: f64) -> Result<FixedPointMultiplier> {
        // NaN fails the range test too.
        if !(-MAX_VALUE < m && m < MAX_VALUE) {
            return Err(Error::MultiplierOutOfRange {
                value: m,
                min: -MAX_VALUE,
                max: MAX_VALUE,
            });
        }
        // |m| = f · 2^e with f in [0.5, 1): |m| · 2^(31 - e) = f · 2^31 is in [2^30, 2^31),
        // the largest shift with |M| < 2^31 unless it rounds up to 2^31 (then one less) or
        // exceeds 62 (|m| < 2^-32: then 62, and |M| <= 2^30). Scaling by a power of two is
        // exact, so this is one rounding of m · 2^shift.
        let (f, e) = libm::frexp(m);
        if m == 0.0 || e < -31 {
            let mant = libm::round(m * libm::exp2(62.0)) as i32;
            return Ok(FixedPointMultiplier {
                multiplier: mant,
                shift: Self::MAX_SHIFT,
            });
        }
        let mut shift = 31 - e;
        let mut mant = libm::round(f * (1u64 << 31) as f64) as i64;
        if mant.abs() == 1 << 31 {
            mant /= 2;
            shift -= 1;
        }
        // e >= -31 gives shift <= 62; |m| < 2^31 - 1/2 gives e <= 31, so shift >= 0, and at
        // shift 0 it rounds to at most 2^31 - 1, so the carry only happens at shifts above 0.
        debug_assert!((0..=62).contains(&shift));
        Ok(FixedPointMultiplier {
            multiplier: mant as i32,
            shift: shift as u8,
        })
    }

    /// `M`.
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(0.5)?;
    /// assert_eq!(f.multiplier(), 1 << 30);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn multiplier(self) -> i32 {
        self.multiplier
    }

    /// The right shift, in `0..=62`: the value is `M / 2^shift`.
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

    /// `round_half_up(v · M / 2^shift)`: `(v·M + 2^(shift−1)) >> shift` in `i64` (no rounding
    /// term at shift 0), exact while `|v·M| < 2^62` (an `i32` or `u8` operand always is).
    ///
    /// ```
    /// let f = nuq_core::FixedPointMultiplier::from_f64(1000.25)?;
    /// assert_eq!(f.apply(4), 4001);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    #[inline]
    pub fn apply(self, v: i64) -> i64 {
        let p = v * i64::from(self.multiplier);
        if self.shift == 0 {
            p
        } else {
            (p + (1i64 << (self.shift - 1))) >> self.shift
        }
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

    /// nuq-nn's former `Align::from_f64`, verbatim: the largest shift from 62 down whose
    /// rounded mantissa stays below `2^31` in magnitude. `from_f64` must agree with it on
    /// every input (the committed `.nuq` files were written with it).
    fn reference(r: f64) -> Option<(i32, u8)> {
        if !r.is_finite() || r.abs() >= 2f64.powi(31) {
            return None;
        }
        let mut shift = 62u8;
        loop {
            let m = (r * 2f64.powi(i32::from(shift))).round();
            if m.abs() < 2f64.powi(31) {
                return Some((m as i32, shift));
            }
            if shift == 0 {
                return None;
            }
            shift -= 1;
        }
    }

    fn agrees(r: f64) -> core::result::Result<(), TestCaseError> {
        let ours = FixedPointMultiplier::from_f64(r)
            .ok()
            .map(|f| (f.multiplier(), f.shift()));
        prop_assert_eq!(ours, reference(r), "r = {:e}", r);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Log-uniform magnitudes over the whole range and both tails, either sign.
        #[test]
        fn from_f64_agrees_with_the_reference(e in -1100.0f64..32.0, f in 0.5f64..1.0, neg in any::<bool>()) {
            let r = f * libm::exp2(libm::floor(e));
            agrees(if neg { -r } else { r })?;
        }

        /// The carry: just below a power of two, `f · 2^31` rounds up to `2^31`.
        #[test]
        fn from_f64_agrees_at_the_carry(e in -70i32..32, ulps in 0u64..4096, neg in any::<bool>()) {
            let r = f64::from_bits(libm::exp2(f64::from(e)).to_bits() - ulps);
            agrees(if neg { -r } else { r })?;
        }

        /// Every bit pattern (NaN, infinities, subnormals included).
        #[test]
        fn from_f64_agrees_on_any_bits(bits in any::<u64>()) {
            agrees(f64::from_bits(bits))?;
        }

        #[test]
        fn conversion_error_is_below_two_to_minus_31(m in 2.4e-10f64..2.1e9, neg in any::<bool>()) {
            let m = if neg { -m } else { m };
            let f = FixedPointMultiplier::from_f64(m).unwrap();
            prop_assert!((1u32 << 30..1u32 << 31).contains(&f.multiplier().unsigned_abs()));
            prop_assert!(f.shift() <= 62);
            prop_assert!((f.value() - m).abs() <= m.abs() * libm::exp2(-31.0));
        }

        #[test]
        fn apply_is_within_half_plus_conversion_error(m in 1e-6f64..1e3, a in -(1i64 << 31)..(1i64 << 31)) {
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
        fn apply_is_round_half_up_of_the_stored_pair(m in any::<i32>(), s in 0u8..=62, v in -(1i64 << 31)..(1i64 << 31)) {
            let f = FixedPointMultiplier::new(m, s).unwrap();
            // Exact in i128: floor((v·M + 2^(s−1)) / 2^s).
            let p = i128::from(v) * i128::from(m);
            let want = if s == 0 { p } else { (p + (1i128 << (s - 1))) >> s };
            prop_assert_eq!(i128::from(f.apply(v)), want);
        }

        #[test]
        fn shifts_above_62_are_refused(m in any::<i32>(), s in 63u8..) {
            prop_assert!(FixedPointMultiplier::new(m, s).is_err());
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
        let edges = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
            libm::exp2(-32.0),
            libm::exp2(-32.0) * (1.0 - f64::EPSILON),
            libm::exp2(-33.0),
            libm::exp2(-63.0),
            libm::exp2(-64.0),
            1.5 * libm::exp2(-64.0),
            MAX_VALUE,
            MAX_VALUE * (1.0 - 1e-12),
            libm::exp2(31.0),
            f64::INFINITY,
            f64::NAN,
        ];
        for r in edges {
            agrees(r).unwrap();
            agrees(-r).unwrap();
        }
        assert!(FixedPointMultiplier::from_f64(MAX_VALUE).is_err());
        assert!(FixedPointMultiplier::from_f64(-MAX_VALUE).is_err());
        let top = FixedPointMultiplier::from_f64(MAX_VALUE * (1.0 - 1e-12)).unwrap();
        assert_eq!(top.shift(), 0);
        // Rounding carry: just below 1, rounds to exactly 1.
        let one = FixedPointMultiplier::from_f64(1.0 - 1e-12).unwrap();
        assert_eq!((one.multiplier(), one.shift()), (1 << 30, 30));
        let zero = FixedPointMultiplier::from_f64(0.0).unwrap();
        assert_eq!((zero.multiplier(), zero.shift()), (0, 62));
        assert_eq!(
            FixedPointMultiplier::new(1, 63),
            Err(Error::ShiftOutOfRange { shift: 63, max: 62 })
        );
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
