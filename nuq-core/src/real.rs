//! [`Real`]: the floating-point element types nuq quantizes from and dequantizes to.

use half::{bf16, f16};
use num_traits::{AsPrimitive, Float};

/// A floating-point element type: `f32`, `f64`, [`half::f16`] or [`half::bf16`].
///
/// One bound for every generic quantize/dequantize entry point. The arithmetic of
/// quantization is `f32` (what the codebook thresholds and scales are); a value is converted
/// with [`num_traits::AsPrimitive`] on the way in (exact for `f16`/`bf16`, round to nearest for
/// `f64`) and on the way out. `f32` data is read and written in place, without a copy.
///
/// ```
/// use half::bf16;
/// use nuq_core::{Codebook, QuantizedTensor, Scale};
/// let cb = Codebook::iq4_nl();
/// let s = Scale::new(0.01)?;
/// let from_f64 = QuantizedTensor::quantize(&[0.3f64, -0.6], &[2], &cb, s)?;
/// let from_bf16 = QuantizedTensor::quantize(&[bf16::from_f32(0.3), bf16::from_f32(-0.6)], &[2], &cb, s)?;
/// assert_eq!(from_f64.integer_levels(), from_bf16.integer_levels());
/// let back: Vec<f64> = from_f64.dequantize_as();
/// assert_eq!(back.len(), 2);
/// # Ok::<(), nuq_core::Error>(())
/// ```
pub trait Real: Float + AsPrimitive<f32> + Send + Sync + 'static {
    /// The nearest value of this type to `v`.
    fn from_f32(v: f32) -> Self;

    /// `src` as `f32` slice when `Self` is `f32` (no conversion needed).
    fn as_f32(src: &[Self]) -> Option<&[f32]>;

    /// `dst` as a mutable `f32` slice when `Self` is `f32`.
    fn as_f32_mut(dst: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f32 {
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }

    fn as_f32(src: &[Self]) -> Option<&[f32]> {
        Some(src)
    }

    fn as_f32_mut(dst: &mut [Self]) -> Option<&mut [f32]> {
        Some(dst)
    }
}

macro_rules! converted_real {
    ($($t:ty),*) => {$(
        impl Real for $t {
            #[inline]
            fn from_f32(v: f32) -> Self {
                v.as_()
            }

            fn as_f32(_: &[Self]) -> Option<&[f32]> {
                None
            }

            fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
                None
            }
        }
    )*};
}

converted_real!(f64, f16, bf16);

/// `src` as `f32`: the slice itself for `f32`, else converted into `buf` (at least as long).
#[inline]
pub(crate) fn f32_view<'a, T: Real>(src: &'a [T], buf: &'a mut [f32]) -> &'a [f32] {
    match T::as_f32(src) {
        Some(s) => s,
        None => {
            let buf = &mut buf[..src.len()];
            for (d, &s) in buf.iter_mut().zip(src) {
                *d = s.as_();
            }
            buf
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_representable_values() {
        for v in [0.0f32, 1.5, -2.25, 1024.0] {
            let back: f32 = <f64 as Real>::from_f32(v).as_();
            assert_eq!(back, v);
            let back: f32 = <f16 as Real>::from_f32(v).as_();
            assert_eq!(back, v);
            let back: f32 = <bf16 as Real>::from_f32(v).as_();
            assert_eq!(back, v);
        }
        let mut buf = [0f32; 2];
        assert_eq!(f32_view(&[1.0f64, 2.0], &mut buf), &[1.0, 2.0]);
        let x = [3.0f32];
        assert!(core::ptr::eq(f32_view(&x, &mut buf).as_ptr(), x.as_ptr()));
    }
}
