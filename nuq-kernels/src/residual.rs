//! Residual add of two branches at different scales.
//!
//! `out = sat(M_a(a) + M_b(b))` where `M_a`, `M_b` are [`FixedPointMultiplier`]s that map
//! each branch to the common output scale (gemmlowp rounding, see
//! [`crate::fixed_point`]) and the sum saturates at the `i32` range. The result feeds
//! a [`crate::threshold::Thresholds`] or [`crate::fixed_point::Requantizer`].

use crate::fixed_point::FixedPointMultiplier;
use crate::{KernelError, KernelPath};

/// Adds `a` and `b` elementwise after aligning their scales.
///
/// # Errors
/// [`KernelError::ShapeMismatch`] when `a` and `b` differ in length,
/// [`KernelError::SliceTooShort`] for a short `out`, [`KernelError::PathUnavailable`],
/// [`KernelError::Unsupported`] for an invalid multiplier.
pub fn residual_add(
    path: KernelPath,
    a: &[i32],
    scale_a: FixedPointMultiplier,
    b: &[i32],
    scale_b: FixedPointMultiplier,
    out: &mut [i32],
) -> Result<(), KernelError> {
    path.ensure_available()?;
    for m in [scale_a, scale_b] {
        if !(-31..=30).contains(&m.shift) || m.multiplier < 0 {
            return Err(KernelError::Unsupported {
                what: "residual multiplier shift",
                value: i64::from(m.shift),
                allowed: "shift in -31 ..= 30 with a non-negative Q31 multiplier",
            });
        }
    }
    if a.len() != b.len() {
        return Err(KernelError::ShapeMismatch {
            what: "residual branch lengths",
            expected: a.len(),
            found: b.len(),
        });
    }
    if out.len() < a.len() {
        return Err(KernelError::SliceTooShort {
            what: "residual output",
            expected: a.len(),
            found: out.len(),
        });
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F availability was checked by `ensure_available`.
        KernelPath::Avx512Vnni => unsafe { x86::add(a, scale_a, b, scale_b, out) },
        // The scalar definition serves the other paths (see `fixed_point::Requantizer`).
        _ => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = scale_a.apply(x).saturating_add(scale_b.apply(y));
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::fixed_point::x86::{adds_epi32, rdbp, sat_shl, srdhm};
    use crate::fixed_point::FixedPointMultiplier;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn scale(x: __m512i, m: FixedPointMultiplier) -> __m512i {
        let left = _mm512_set1_epi32(m.shift.max(0));
        let right = _mm512_set1_epi32((-m.shift).max(0));
        rdbp(
            srdhm(sat_shl(x, left), _mm512_set1_epi32(m.multiplier)),
            right,
        )
    }

    /// # Safety
    /// AVX-512 F must be available; `b` and `out` are at least as long as `a`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add(
        a: &[i32],
        ma: FixedPointMultiplier,
        b: &[i32],
        mb: FixedPointMultiplier,
        out: &mut [i32],
    ) {
        let n = a.len();
        let mut i = 0;
        while i < n {
            let lanes = (n - i).min(16);
            let k: __mmask16 = if lanes == 16 {
                0xFFFF
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: masked loads/stores touch elements `i .. i + lanes`, inside all three
            // slices.
            unsafe {
                let x = scale(_mm512_maskz_loadu_epi32(k, a.as_ptr().add(i)), ma);
                let y = scale(_mm512_maskz_loadu_epi32(k, b.as_ptr().add(i)), mb);
                _mm512_mask_storeu_epi32(out.as_mut_ptr().add(i), k, adds_epi32(x, y));
            }
            i += lanes;
        }
    }
}
