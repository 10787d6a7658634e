//! Fixed-point multiplier + shift requantization with gemmlowp's rounding.
//!
//! A real scale `s > 0` is stored as `s ≈ M · 2^-31 · 2^shift` with the Q31 multiplier
//! `M ∈ [2^30, 2^31)`. Applying it to `x`:
//!
//! 1. `shift > 0`: `x ← x · 2^shift`, saturating at the `i32` range
//!    (gemmlowp `SaturatingRoundingMultiplyByPOT` with a positive exponent);
//! 2. `x ← SaturatingRoundingDoublingHighMul(x, M)` = `round(x·M / 2^31)` to nearest with
//!    ties towards +∞ (gemmlowp adds a nudge of `2^30` or `1 − 2^30` and truncates), with
//!    the single overflow case `i32::MIN · i32::MIN` saturating to `i32::MAX`;
//! 3. `shift < 0`: `x ← RoundingDivideByPOT(x, −shift)` = `x / 2^e` rounded to nearest,
//!    halves away from zero.
//!
//! This is TFLite's `MultiplyByQuantizedMultiplier`. [`Requantizer`] adds a per-channel
//! bias and an output zero point and clamps to `[min, max]` (uniform `u8` outputs);
//! [`crate::residual`] uses the same multipliers to bring two branches to one scale.

use crate::{KernelError, KernelPath};

/// `round(a·b / 2^31)` to nearest, ties towards +∞ (gemmlowp's nudge-and-truncate);
/// `MIN·MIN` saturates to `MAX`.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest, halves away from zero (`exponent ≤ 31`).
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `x · 2^exponent`, saturating (`exponent ≤ 31`).
pub fn saturating_shift_left(x: i32, exponent: u32) -> i32 {
    let v = i64::from(x) << exponent;
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// A scale as Q31 multiplier + power-of-two shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedPointMultiplier {
    /// Q31 multiplier in `[2^30, 2^31)` (or 0 for a zero scale).
    pub multiplier: i32,
    /// Power-of-two exponent, `-31 ..= 30`.
    pub shift: i32,
}

impl FixedPointMultiplier {
    /// Nearest representation of `scale`.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] when `scale` is negative, not finite, or outside
    /// `[2^-32, 2^30)` (the range the shift covers); `0.0` gives the zero multiplier.
    pub fn from_scale(scale: f64) -> Result<Self, KernelError> {
        let bad = |allowed| KernelError::Unsupported {
            what: "scale (as f64 bits)",
            value: scale.to_bits() as i64,
            allowed,
        };
        if !scale.is_finite() || scale < 0.0 {
            return Err(bad("a finite non-negative real"));
        }
        if scale == 0.0 {
            return Ok(FixedPointMultiplier {
                multiplier: 0,
                shift: 0,
            });
        }
        // scale = q · 2^e with q ∈ [0.5, 1).
        let mut e = scale.log2().floor() as i32 + 1;
        let mut q = scale / 2f64.powi(e);
        if q >= 1.0 {
            q /= 2.0;
            e += 1;
        } else if q < 0.5 {
            q *= 2.0;
            e -= 1;
        }
        let mut m = (q * 2f64.powi(31)).round() as i64;
        if m == 1i64 << 31 {
            m /= 2;
            e += 1;
        }
        if !(-31..=30).contains(&e) {
            return Err(bad("a scale in [2^-32, 2^30)"));
        }
        Ok(FixedPointMultiplier {
            multiplier: m as i32,
            shift: e,
        })
    }

    /// Applies the scale to `x` (steps 1–3 of the [module docs](self)).
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0) as u32;
        let right = (-self.shift).max(0) as u32;
        let x = saturating_shift_left(x, left);
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x, self.multiplier),
            right,
        )
    }

    fn validate(self) -> Result<(), KernelError> {
        if !(-31..=30).contains(&self.shift) {
            return Err(KernelError::Unsupported {
                what: "shift",
                value: i64::from(self.shift),
                allowed: "-31 ..= 30",
            });
        }
        if self.multiplier < 0 {
            return Err(KernelError::Unsupported {
                what: "multiplier",
                value: i64::from(self.multiplier),
                allowed: "non-negative (Q31)",
            });
        }
        Ok(())
    }
}

/// Uniform requantization `out = clamp(M_c(acc + bias_c) + zero_point, min, max)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requantizer {
    multipliers: Vec<FixedPointMultiplier>,
    bias: Vec<i32>,
    zero_point: i32,
    min: u8,
    max: u8,
}

impl Requantizer {
    /// `multipliers` and `bias` hold one entry per channel, or one shared entry
    /// (`bias` may also be empty for none).
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for an invalid multiplier or `min > max`,
    /// [`KernelError::ShapeMismatch`] when the two per-channel lists disagree in length.
    pub fn new(
        multipliers: &[FixedPointMultiplier],
        bias: &[i32],
        zero_point: i32,
        min: u8,
        max: u8,
    ) -> Result<Self, KernelError> {
        if multipliers.is_empty() {
            return Err(KernelError::Unsupported {
                what: "multipliers",
                value: 0,
                allowed: "at least one",
            });
        }
        for m in multipliers {
            m.validate()?;
        }
        if bias.len() > 1 && multipliers.len() > 1 && bias.len() != multipliers.len() {
            return Err(KernelError::ShapeMismatch {
                what: "bias length (one per channel)",
                expected: multipliers.len(),
                found: bias.len(),
            });
        }
        if min > max {
            return Err(KernelError::Unsupported {
                what: "min",
                value: i64::from(min),
                allowed: "at most max",
            });
        }
        Ok(Requantizer {
            multipliers: multipliers.to_vec(),
            bias: bias.to_vec(),
            zero_point,
            min,
            max,
        })
    }

    /// Channels the parameters are given for (1 = shared).
    fn channels(&self) -> usize {
        self.multipliers.len().max(self.bias.len())
    }

    /// One output value of channel `c` (the scalar definition).
    pub fn quantize_one(&self, c: usize, acc: i32) -> u8 {
        let m = self.multipliers[c % self.multipliers.len()];
        let b = if self.bias.is_empty() {
            0
        } else {
            self.bias[c % self.bias.len()]
        };
        let v = m
            .apply(acc.saturating_add(b))
            .saturating_add(self.zero_point);
        v.clamp(i32::from(self.min), i32::from(self.max)) as u8
    }

    /// Requantizes `acc` (`[rows][channels]`) into `out`.
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] when `channels` does not match per-channel parameters
    /// or the lengths are not whole rows; [`KernelError::SliceTooShort`] for a short `out`;
    /// [`KernelError::PathUnavailable`].
    pub fn apply(
        &self,
        path: KernelPath,
        acc: &[i32],
        channels: usize,
        out: &mut [u8],
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        let per = self.channels();
        if per > 1 && per != channels {
            return Err(KernelError::ShapeMismatch {
                what: "channels (requantizer is per channel)",
                expected: per,
                found: channels,
            });
        }
        if channels == 0 || !acc.len().is_multiple_of(channels) {
            return Err(KernelError::ShapeMismatch {
                what: "accumulator length (whole rows of channels)",
                expected: acc.len().div_ceil(channels.max(1)) * channels.max(1),
                found: acc.len(),
            });
        }
        if out.len() < acc.len() {
            return Err(KernelError::SliceTooShort {
                what: "requantized output",
                expected: acc.len(),
                found: out.len(),
            });
        }
        match path {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512Vnni => {
                let params = x86::ChannelParams::new(self, channels);
                for (a, o) in acc
                    .chunks_exact(channels)
                    .zip(out.chunks_exact_mut(channels))
                {
                    // SAFETY: AVX-512 availability was checked by `ensure_available`.
                    unsafe { x86::requantize_row(&params, a, o) };
                }
            }
            // The scalar definition also serves the portable and AVX2 paths: on those
            // targets a 64-bit arithmetic shift is not a single instruction, and this step
            // costs O(m·n) against the GEMM's O(m·n·k).
            _ => {
                for (a, o) in acc
                    .chunks_exact(channels)
                    .zip(out.chunks_exact_mut(channels))
                {
                    for (c, (&v, d)) in a.iter().zip(o.iter_mut()).enumerate() {
                        *d = self.quantize_one(c, v);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! AVX-512 versions of the three fixed-point steps, 16 lanes at a time.
    use super::Requantizer;
    use std::arch::x86_64::*;

    /// `round(a·b / 2^31)` per lane, as [`super::saturating_rounding_doubling_high_mul`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn srdhm(a: __m512i, b: __m512i) -> __m512i {
        let round = |p: __m512i| {
            // nudge = 2^30 for p ≥ 0, 1 − 2^30 for p < 0
            let neg = _mm512_srai_epi64::<63>(p);
            let nudge = _mm512_add_epi64(
                _mm512_set1_epi64(1 << 30),
                _mm512_and_si512(neg, _mm512_set1_epi64(1 - (1i64 << 31))),
            );
            let x = _mm512_add_epi64(p, nudge);
            // truncating division by 2^31: add 2^31 − 1 to negative values first
            let xneg = _mm512_srai_epi64::<63>(x);
            _mm512_srai_epi64::<31>(_mm512_add_epi64(
                x,
                _mm512_and_si512(xneg, _mm512_set1_epi64((1i64 << 31) - 1)),
            ))
        };
        let even = round(_mm512_mul_epi32(a, b));
        let odd = round(_mm512_mul_epi32(
            _mm512_srli_epi64::<32>(a),
            _mm512_srli_epi64::<32>(b),
        ));
        let merged = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
        let min = _mm512_set1_epi32(i32::MIN);
        let both_min = _mm512_cmpeq_epi32_mask(a, min) & _mm512_cmpeq_epi32_mask(b, min);
        _mm512_mask_mov_epi32(merged, both_min, _mm512_set1_epi32(i32::MAX))
    }

    /// Per-lane [`super::rounding_divide_by_pot`] with exponents `e ∈ 0..=31`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn rdbp(x: __m512i, e: __m512i) -> __m512i {
        let one = _mm512_set1_epi32(1);
        // mask = 2^e − 1 (for e = 31 the shift gives i32::MIN and the subtraction wraps to MAX)
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
        let remainder = _mm512_and_si512(x, mask);
        let neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
        let threshold = _mm512_mask_add_epi32(
            _mm512_srai_epi32::<1>(mask),
            neg,
            _mm512_srai_epi32::<1>(mask),
            one,
        );
        let up = _mm512_cmpgt_epi32_mask(remainder, threshold);
        let shifted = _mm512_srav_epi32(x, e);
        _mm512_mask_add_epi32(shifted, up, shifted, one)
    }

    /// Per-lane [`super::saturating_shift_left`] with exponents `e ∈ 0..=31`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn sat_shl(x: __m512i, e: __m512i) -> __m512i {
        let hi = _mm512_srav_epi32(_mm512_set1_epi32(i32::MAX), e);
        let lo = _mm512_srav_epi32(_mm512_set1_epi32(i32::MIN), e);
        let shifted = _mm512_sllv_epi32(x, e);
        let over = _mm512_cmpgt_epi32_mask(x, hi);
        let under = _mm512_cmplt_epi32_mask(x, lo);
        let r = _mm512_mask_mov_epi32(shifted, over, _mm512_set1_epi32(i32::MAX));
        _mm512_mask_mov_epi32(r, under, _mm512_set1_epi32(i32::MIN))
    }

    /// Parameters expanded to one entry per channel.
    pub(crate) struct ChannelParams {
        mult: Vec<i32>,
        left: Vec<i32>,
        right: Vec<i32>,
        bias: Vec<i32>,
        zero_point: i32,
        min: i32,
        max: i32,
    }

    impl ChannelParams {
        pub(crate) fn new(r: &Requantizer, channels: usize) -> Self {
            let m = |c: usize| r.multipliers[c % r.multipliers.len()];
            ChannelParams {
                mult: (0..channels).map(|c| m(c).multiplier).collect(),
                left: (0..channels).map(|c| m(c).shift.max(0)).collect(),
                right: (0..channels).map(|c| (-m(c).shift).max(0)).collect(),
                bias: (0..channels)
                    .map(|c| {
                        if r.bias.is_empty() {
                            0
                        } else {
                            r.bias[c % r.bias.len()]
                        }
                    })
                    .collect(),
                zero_point: r.zero_point,
                min: i32::from(r.min),
                max: i32::from(r.max),
            }
        }
    }

    /// One row of `channels` accumulators.
    ///
    /// # Safety
    /// AVX-512 F must be available; `acc`, `out` and the parameter vectors have the same
    /// length.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn requantize_row(p: &ChannelParams, acc: &[i32], out: &mut [u8]) {
        let n = acc.len();
        let mut c = 0;
        while c < n {
            let lanes = (n - c).min(16);
            let k: __mmask16 = if lanes == 16 {
                0xFFFF
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: the masked loads and store touch lanes `c .. c + lanes`, all inside the
            // slices (each of length `n`).
            unsafe {
                let load = |v: &[i32]| _mm512_maskz_loadu_epi32(k, v.as_ptr().add(c));
                let x = adds_epi32(load(acc), load(&p.bias));
                let x = sat_shl(x, load(&p.left));
                let x = rdbp(srdhm(x, load(&p.mult)), load(&p.right));
                let x = adds_epi32(x, _mm512_set1_epi32(p.zero_point));
                let x = _mm512_max_epi32(
                    _mm512_min_epi32(x, _mm512_set1_epi32(p.max)),
                    _mm512_set1_epi32(p.min),
                );
                _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(c).cast(), k, x);
            }
            c += lanes;
        }
    }

    /// Saturating `i32` addition (AVX-512 has none): overflow iff both operands share a
    /// sign that the wrapped sum lacks.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn adds_epi32(a: __m512i, b: __m512i) -> __m512i {
        let s = _mm512_add_epi32(a, b);
        // overflow lanes: (a ^ s) & (b ^ s) has the sign bit set
        let ov = sign_mask(_mm512_and_si512(
            _mm512_xor_si512(a, s),
            _mm512_xor_si512(b, s),
        ));
        // saturate towards the sign of a: MAX if a ≥ 0, MIN otherwise = MAX ^ (a >> 31)
        let sat = _mm512_xor_si512(_mm512_set1_epi32(i32::MAX), _mm512_srai_epi32::<31>(a));
        _mm512_mask_mov_epi32(s, ov, sat)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sign_mask(v: __m512i) -> __mmask16 {
        _mm512_cmplt_epi32_mask(v, _mm512_setzero_si512())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemmlowp_reference_values() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        // 0.5 · 0.5 = 0.25 in Q31
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // ties round towards +∞ (gemmlowp's nudge), not away from zero
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 2), 2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(saturating_shift_left(1 << 30, 2), i32::MAX);
        assert_eq!(saturating_shift_left(-(1 << 30), 1), i32::MIN);
    }

    #[test]
    fn multiplier_approximates_scale() {
        for &s in &[1e-9, 0.000_37, 0.25, 0.5, 0.999_999_9, 1.0, 3.7, 1000.0] {
            let m = FixedPointMultiplier::from_scale(s).unwrap();
            assert!((1 << 30..=i32::MAX).contains(&m.multiplier), "{s}: {m:?}");
            let back = f64::from(m.multiplier) / 2f64.powi(31) * 2f64.powi(m.shift);
            assert!((back - s).abs() <= s * 1e-9, "{s} vs {back}");
            let x = 123_456;
            let want = (f64::from(x) * s).round();
            assert!((f64::from(m.apply(x)) - want).abs() <= 1.0, "{s}");
        }
        assert!(FixedPointMultiplier::from_scale(-1.0).is_err());
        assert!(FixedPointMultiplier::from_scale(f64::NAN).is_err());
        assert!(FixedPointMultiplier::from_scale(1e-12).is_err());
    }
}
