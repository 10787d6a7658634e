//! [`Scale`]: the positive real step that maps integer levels to real values, per tensor or
//! per output channel, and its power-of-two hardware form.

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::fixed_point::FixedPointMultiplier;

/// A positive, finite, normal `f32`: `real value = scale × integer level`.
///
/// ```
/// use nuq_core::Scale;
/// let s = Scale::new(0.05)?;
/// assert_eq!(s.get(), 0.05);
/// assert!(Scale::new(0.0).is_err() && Scale::new(f32::NAN).is_err());
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Scale(f32);

impl Scale {
    /// The unit scale, levels read as real values.
    ///
    /// ```
    /// assert_eq!(nuq_core::Scale::ONE.get(), 1.0);
    /// ```
    pub const ONE: Scale = Scale(1.0);

    /// A scale; must be finite, positive and normal (`>= f32::MIN_POSITIVE`).
    ///
    /// # Errors
    /// [`Error::InvalidScale`].
    ///
    /// ```
    /// use nuq_core::{Error, Scale};
    /// assert_eq!(Scale::new(-1.0), Err(Error::InvalidScale { value: -1.0 }));
    /// ```
    pub fn new(value: f32) -> Result<Scale> {
        if value.is_finite() && value >= f32::MIN_POSITIVE {
            Ok(Scale(value))
        } else {
            Err(Error::InvalidScale {
                value: value as f64,
            })
        }
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(nuq_core::Scale::new(2.5)?.get(), 2.5);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn get(self) -> f32 {
        self.0
    }

    /// The nearest power of two, `2^e` with `|2^e - s| <= s/3` (nearest in linear distance;
    /// a tie at `s = 1.5·2^k` goes up). This bound is tight: `1.5` is `1/3` from both `1`
    /// and `2`. `e` lies in `-126..=128`.
    ///
    /// ```
    /// use nuq_core::Scale;
    /// assert_eq!(Scale::new(0.3)?.to_pow2().exponent(), -2);  // 0.25
    /// assert_eq!(Scale::new(0.4)?.to_pow2().exponent(), -1);  // 0.5
    /// assert_eq!(Scale::new(1.5)?.to_pow2().exponent(), 1);   // tie goes up
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn to_pow2(self) -> Pow2Scale {
        let bits = self.0.to_bits();
        let e = ((bits >> 23) & 0xFF) as i32 - 127;
        let round_up = (bits & 0x7F_FFFF) >= 1 << 22; // mantissa >= 1.5
        Pow2Scale {
            exponent: e + round_up as i32,
        }
    }

    /// The fixed-point form `M / 2^shift` (see [`FixedPointMultiplier`]), relative error at
    /// most `2^-31` for scales from `2^-32` up.
    ///
    /// # Errors
    /// [`Error::MultiplierOutOfRange`] for scales of at least `2^31 - 1/2`.
    ///
    /// ```
    /// let fp = nuq_core::Scale::new(0.75)?.to_fixed_point()?;
    /// assert_eq!((fp.multiplier(), fp.shift()), (3 << 29, 31));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn to_fixed_point(self) -> Result<FixedPointMultiplier> {
        FixedPointMultiplier::from_f64(self.0 as f64)
    }
}

/// A power-of-two scale `2^exponent`: requantizing with it is an arithmetic shift.
///
/// ```
/// use nuq_core::Pow2Scale;
/// let p = Pow2Scale::new(-3);
/// assert_eq!(p.value(), 0.125);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pow2Scale {
    exponent: i32,
}

impl Pow2Scale {
    /// `2^exponent`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Pow2Scale::new(4).exponent(), 4);
    /// ```
    pub fn new(exponent: i32) -> Pow2Scale {
        Pow2Scale { exponent }
    }

    /// The exponent `e`.
    ///
    /// ```
    /// assert_eq!(nuq_core::Pow2Scale::new(-1).exponent(), -1);
    /// ```
    pub fn exponent(self) -> i32 {
        self.exponent
    }

    /// `2^e` as `f64` (exact for `e` in `-1074..=1023`).
    ///
    /// ```
    /// assert_eq!(nuq_core::Pow2Scale::new(10).value(), 1024.0);
    /// ```
    pub fn value(self) -> f64 {
        libm::exp2(self.exponent as f64)
    }
}

/// The scales of one tensor: one for the whole tensor, or one per output channel (the first
/// dimension of the shape; a channel is a contiguous block of `len / shape[0]` elements).
///
/// ```
/// use nuq_core::{Scale, Scales};
/// let s = Scales::per_channel(vec![Scale::new(0.5)?, Scale::new(2.0)?]);
/// assert_eq!(s.channel(1), Scale::new(2.0)?);
/// assert_eq!(Scales::PerTensor(Scale::ONE).channel(7), Scale::ONE);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One scale for every element.
    PerTensor(Scale),
    /// One scale per output channel.
    PerChannel(Vec<Scale>),
}

impl Scales {
    /// Per-channel scales.
    ///
    /// ```
    /// let s = nuq_core::Scales::per_channel(vec![nuq_core::Scale::ONE; 3]);
    /// assert_eq!(s.as_slice().len(), 3);
    /// ```
    pub fn per_channel(scales: Vec<Scale>) -> Scales {
        Scales::PerChannel(scales)
    }

    /// The scale of channel `c` (the only scale when per tensor).
    ///
    /// ```
    /// let s = nuq_core::Scales::PerTensor(nuq_core::Scale::ONE);
    /// assert_eq!(s.channel(0).get(), 1.0);
    /// ```
    ///
    /// # Panics
    /// If per channel and `c` is out of range.
    pub fn channel(&self, c: usize) -> Scale {
        match self {
            Scales::PerTensor(s) => *s,
            Scales::PerChannel(v) => v[c],
        }
    }

    /// All scales as a slice (one element when per tensor).
    ///
    /// ```
    /// let s = nuq_core::Scales::PerTensor(nuq_core::Scale::ONE);
    /// assert_eq!(s.as_slice(), &[nuq_core::Scale::ONE]);
    /// ```
    pub fn as_slice(&self) -> &[Scale] {
        match self {
            Scales::PerTensor(s) => core::slice::from_ref(s),
            Scales::PerChannel(v) => v,
        }
    }

    /// Whether there is one scale per channel.
    ///
    /// ```
    /// assert!(!nuq_core::Scales::PerTensor(nuq_core::Scale::ONE).is_per_channel());
    /// ```
    pub fn is_per_channel(&self) -> bool {
        matches!(self, Scales::PerChannel(_))
    }
}

impl From<Scale> for Scales {
    /// A per-tensor scale.
    ///
    /// ```
    /// let s: nuq_core::Scales = nuq_core::Scale::ONE.into();
    /// assert!(!s.is_per_channel());
    /// ```
    fn from(s: Scale) -> Scales {
        Scales::PerTensor(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pow2_is_nearest_and_within_a_third(bits in 0x0080_0000u32..0x7F80_0000) {
            let s = f32::from_bits(bits);
            let p = Scale::new(s).unwrap().to_pow2();
            let v = p.value();
            let s = s as f64;
            prop_assert!((v - s).abs() <= s / 3.0 + 1e-300);
            // No other power of two is strictly nearer.
            let lower = libm::exp2((p.exponent() - 1) as f64);
            let upper = libm::exp2((p.exponent() + 1) as f64);
            prop_assert!((v - s).abs() <= (lower - s).abs());
            prop_assert!((v - s).abs() <= (upper - s).abs());
        }
    }

    #[test]
    fn rejects_non_normal_scales() {
        for bad in [
            0.0f32,
            -0.0,
            -1.0,
            f32::MIN_POSITIVE / 2.0,
            f32::INFINITY,
            f32::NAN,
        ] {
            assert!(Scale::new(bad).is_err(), "{bad}");
        }
        assert!(Scale::new(f32::MIN_POSITIVE).is_ok());
        assert!(Scale::new(f32::MAX).is_ok());
    }

    #[test]
    fn pow2_extremes() {
        assert_eq!(Scale::new(f32::MAX).unwrap().to_pow2().exponent(), 128);
        assert_eq!(
            Scale::new(f32::MIN_POSITIVE).unwrap().to_pow2().exponent(),
            -126
        );
        assert_eq!(Scale::new(1.0).unwrap().to_pow2().exponent(), 0);
    }
}
