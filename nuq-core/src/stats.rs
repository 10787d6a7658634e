//! [`ErrorStats`]: how far a reconstruction is from the original.

use crate::codebook::check_len;
use crate::error::Result;

/// Error statistics of a reconstruction against its original, accumulated in `f64`.
///
/// `sqnr_db = 10·log10(signal_power / mse)`: `+inf` when the reconstruction is exact (also
/// for empty or all-zero input), `-inf` when the signal is all zero but the error is not.
///
/// ```
/// use nuq_core::ErrorStats;
/// let s = ErrorStats::between(&[1.0, -1.0, 2.0, 0.0], &[1.0, -1.0, 1.0, 0.0])?;
/// assert_eq!((s.count, s.mse, s.signal_power, s.max_abs_error), (4, 0.25, 1.5, 1.0));
/// assert!((s.sqnr_db - 7.7815).abs() < 1e-4);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive] // more fields may come: read them, do not build the struct
pub struct ErrorStats {
    /// Number of elements compared.
    pub count: usize,
    /// Mean squared error (0 when empty).
    pub mse: f64,
    /// Mean square of the original (0 when empty).
    pub signal_power: f64,
    /// Signal-to-quantization-noise ratio in decibels.
    pub sqnr_db: f64,
    /// Largest absolute error (0 when empty).
    pub max_abs_error: f64,
}

impl ErrorStats {
    /// Compares `reconstructed` with `original`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`](crate::Error::LengthMismatch) when the lengths differ;
    /// [`Error::NonFinite`](crate::Error::NonFinite) naming the first NaN or infinite
    /// original value.
    ///
    /// ```
    /// let s = nuq_core::ErrorStats::between(&[], &[])?;
    /// assert_eq!(s.count, 0);
    /// assert_eq!(s.sqnr_db, f64::INFINITY);
    /// assert!(nuq_core::ErrorStats::between(&[1.0], &[]).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn between(original: &[f32], reconstructed: &[f32]) -> Result<ErrorStats> {
        check_len(original.len(), reconstructed.len())?;
        crate::quantizer::check_finite(original, 0)?;
        let (mut se, mut sp, mut max) = (0.0f64, 0.0f64, 0.0f64);
        for (&a, &b) in original.iter().zip(reconstructed) {
            let e = a as f64 - b as f64;
            se += e * e;
            sp += a as f64 * a as f64;
            max = max.max(e.abs());
        }
        let n = original.len();
        let (mse, signal_power) = if n == 0 {
            (0.0, 0.0)
        } else {
            (se / n as f64, sp / n as f64)
        };
        let sqnr_db = if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * libm::log10(signal_power / mse)
        };
        Ok(ErrorStats {
            count: n,
            mse,
            signal_power,
            sqnr_db,
            max_abs_error: max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_signal_with_error_is_minus_infinity() {
        let s = ErrorStats::between(&[0.0, 0.0], &[0.5, 0.0]).unwrap();
        assert_eq!(s.sqnr_db, f64::NEG_INFINITY);
        assert_eq!(s.mse, 0.125);
    }

    #[test]
    fn non_finite_reconstruction_is_reported_not_hidden() {
        let s = ErrorStats::between(&[1.0], &[f32::INFINITY]).unwrap();
        assert_eq!(s.mse, f64::INFINITY);
        assert!(ErrorStats::between(&[f32::NAN], &[1.0]).is_err());
    }
}
