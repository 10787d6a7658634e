//! [`Quantizer`]: a codebook bound to one scale, with the fast encode/decode loops that
//! [`QuantizedTensor`](crate::QuantizedTensor) runs.
//!
//! Encoding divides by the scale and counts the thresholds reached. For `b <= 4` it counts
//! against all `2^b - 1` padded thresholds branch-free (a fixed-length compare-and-add loop
//! the compiler vectorises across elements); wider codebooks use the branch-free binary search
//! of [`Codebook::nearest`]. Both give exactly `codebook.nearest(x / scale)`.

use crate::codebook::{check_len, Codebook};
use crate::error::{Error, Result};
use crate::scale::Scale;

/// Elements processed per block: a multiple of 8, so every block starts on a byte boundary of
/// the packed stream at every index width.
pub(crate) const BLOCK: usize = 512;

/// Returns [`Error::NonFinite`] for the first NaN or infinite value; `offset` is added to the
/// reported index.
pub(crate) fn check_finite(xs: &[f32], offset: usize) -> Result<()> {
    // Branch-free scan first (vectorises); locate only on failure.
    let bad = xs.iter().fold(false, |acc, x| {
        acc | (x.to_bits() & 0x7F80_0000 == 0x7F80_0000)
    });
    if bad {
        let index = xs.iter().position(|x| !x.is_finite()).expect("a bad value");
        return Err(Error::NonFinite {
            index: offset + index,
            value: xs[index],
        });
    }
    Ok(())
}

/// A codebook bound to a scale: real values in, indices out, and back.
///
/// `quantize` gives `codebook.nearest(x / scale)` for every `x`; `dequantize` gives
/// `level as f32 * scale` (one rounding). Quantizing a dequantized value returns the same
/// index (the error of the two roundings is far below half a grid step).
///
/// ```
/// use nuq_core::{Codebook, Quantizer, Scale};
/// let cb = Codebook::iq4_nl();
/// let q = Quantizer::new(&cb, Scale::new(0.01)?);
/// let mut idx = [0u8; 3];
/// q.quantize(&[-1.3, 0.0, 0.4], &mut idx)?;
/// assert_eq!(idx, [0, 8, 11]);
/// let mut back = [0f32; 3];
/// q.dequantize(&idx, &mut back)?;
/// assert_eq!(back, [-1.27, 0.01, 0.38]);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Quantizer<'a> {
    codebook: &'a Codebook,
    scale: f32,
    /// The thresholds padded with +inf to 15 entries (count path, `b <= 4`).
    count: [f32; 15],
    /// `level * scale`, padded with the last value to 256 entries.
    lut: [f32; 256],
}

impl<'a> Quantizer<'a> {
    /// Binds `codebook` to `scale`.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// assert_eq!(q.scale().get(), 1.0);
    /// ```
    pub fn new(codebook: &'a Codebook, scale: Scale) -> Quantizer<'a> {
        let s = scale.get();
        let mut count = [f32::INFINITY; 15];
        if codebook.bits() <= 4 {
            let t = codebook.thresholds();
            count[..t.len()].copy_from_slice(t);
        }
        let levels = codebook.levels();
        let last = *levels.last().expect("codebooks have a level") as f32 * s;
        let mut lut = [last; 256];
        for (l, &v) in lut.iter_mut().zip(levels) {
            *l = v as f32 * s;
        }
        Quantizer {
            codebook,
            scale: s,
            count,
            lut,
        }
    }

    /// The codebook.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// assert_eq!(q.codebook().len(), 16);
    /// ```
    pub fn codebook(&self) -> &'a Codebook {
        self.codebook
    }

    /// The scale.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let s = nuq_core::Scale::new(0.5)?;
    /// assert_eq!(nuq_core::Quantizer::new(&cb, s).scale(), s);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn scale(&self) -> Scale {
        Scale::new(self.scale).expect("built from a valid scale")
    }

    /// Real values to indices, `out[i] = codebook.nearest(xs[i] / scale)`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]; [`Error::NonFinite`] naming the first NaN or infinite
    /// value (nothing is guaranteed about `out` then).
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::ONE);
    /// let mut idx = [0u8; 2];
    /// assert!(q.quantize(&[0.0, f32::INFINITY], &mut idx).is_err());
    /// ```
    pub fn quantize(&self, xs: &[f32], out: &mut [u8]) -> Result<()> {
        check_len(xs.len(), out.len())?;
        for (k, (x, o)) in xs.chunks(BLOCK).zip(out.chunks_mut(BLOCK)).enumerate() {
            check_finite(x, k * BLOCK)?;
            self.encode_block(x, o);
        }
        Ok(())
    }

    /// Indices to real values, `out[i] = level(idx[i]) as f32 * scale`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`]; [`Error::IndexOutOfRange`] naming the first index
    /// that addresses no level.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::new(2.0)?);
    /// let mut out = [0f32; 2];
    /// q.dequantize(&[7, 8], &mut out)?;
    /// assert_eq!(out, [-20.0, 2.0]);
    /// assert!(q.dequantize(&[16, 0], &mut out).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn dequantize(&self, indices: &[u8], out: &mut [f32]) -> Result<()> {
        check_len(indices.len(), out.len())?;
        let n = self.codebook.len();
        if let Some(position) = indices.iter().position(|&i| i as usize >= n) {
            return Err(Error::IndexOutOfRange {
                position,
                index: indices[position],
                levels: n,
            });
        }
        self.decode_block(indices, out);
        Ok(())
    }

    /// Quantize-dequantize in place ("fake quantization", as in quantization-aware
    /// training): every value becomes `scale × nearest level`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first NaN or infinite value; values before it are
    /// already replaced, the rest untouched.
    ///
    /// ```
    /// let cb = nuq_core::Codebook::iq4_nl();
    /// let q = nuq_core::Quantizer::new(&cb, nuq_core::Scale::new(0.5)?);
    /// let mut v = [3.0f32, -70.0];
    /// q.fake_quantize(&mut v)?;
    /// assert_eq!(v, [0.5, -63.5]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn fake_quantize(&self, xs: &mut [f32]) -> Result<()> {
        let mut idx = [0u8; BLOCK];
        for (k, x) in xs.chunks_mut(BLOCK).enumerate() {
            check_finite(x, k * BLOCK)?;
            let idx = &mut idx[..x.len()];
            self.encode_block(x, idx);
            self.decode_block(idx, x);
        }
        Ok(())
    }

    /// Encodes finite values (not checked).
    #[inline]
    pub(crate) fn encode_block(&self, xs: &[f32], out: &mut [u8]) {
        let last = (self.codebook.len() - 1) as u8;
        match self.codebook.bits() {
            1 => count_thresholds::<1>(
                self.count[..1].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            2 => count_thresholds::<3>(
                self.count[..3].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            3 => count_thresholds::<7>(
                self.count[..7].try_into().unwrap(),
                self.scale,
                last,
                xs,
                out,
            ),
            4 => count_thresholds::<15>(&self.count, self.scale, last, xs, out),
            _ => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = self.codebook.nearest(x / self.scale);
                }
            }
        }
    }

    /// Decodes valid indices (not checked).
    #[inline]
    pub(crate) fn decode_block(&self, indices: &[u8], out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(indices) {
            *o = self.lut[i as usize];
        }
    }
}

/// `out[i] = min(#{t in thr : xs[i] / scale >= t}, last)`; written so that the compiler
/// vectorises across elements (fixed trip count, no early exit).
#[inline]
fn count_thresholds<const N: usize>(
    thr: &[f32; N],
    scale: f32,
    last: u8,
    xs: &[f32],
    out: &mut [u8],
) {
    for (o, &x) in out.iter_mut().zip(xs) {
        let u = x / scale;
        let mut c = 0u32;
        for &t in thr {
            c += (u >= t) as u32;
        }
        *o = c.min(last as u32) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grid, Polarity};
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn fast_paths_match_nearest_at_every_width() {
        let mut rng = crate::Rng::new(11);
        for bits in 1..=8u8 {
            let cb = Codebook::uniform(Grid::signed(12).unwrap(), bits, Polarity::SignedMidrise)
                .unwrap();
            let s = Scale::new(0.003).unwrap();
            let q = Quantizer::new(&cb, s);
            let xs: Vec<f32> = (0..2000).map(|_| (rng.normal() * 3.0) as f32).collect();
            let mut idx = vec![0u8; xs.len()];
            q.quantize(&xs, &mut idx).unwrap();
            for (&x, &i) in xs.iter().zip(&idx) {
                assert_eq!(i, cb.nearest(x / s.get()), "bits {bits} x {x}");
            }
        }
    }

    #[test]
    fn non_finite_error_names_the_global_index() {
        let cb = Codebook::iq4_nl();
        let q = Quantizer::new(&cb, Scale::ONE);
        let mut xs = vec![0.0f32; 3 * BLOCK];
        xs[BLOCK + 17] = f32::NAN;
        xs[2 * BLOCK] = f32::INFINITY;
        let mut idx = vec![0u8; xs.len()];
        match q.quantize(&xs, &mut idx) {
            Err(Error::NonFinite { index, value }) => {
                assert_eq!(index, BLOCK + 17);
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        assert_eq!(
            q.quantize(&xs, &mut idx[1..]),
            Err(Error::LengthMismatch {
                expected: 3 * BLOCK,
                found: 3 * BLOCK - 1
            })
        );
    }

    #[test]
    fn huge_values_clamp_to_the_outer_levels() {
        let cb = Codebook::explicit(Grid::I8, 3, &[-3, 0, 3]).unwrap();
        let q = Quantizer::new(&cb, Scale::new(f32::MIN_POSITIVE).unwrap());
        let mut idx = [9u8; 2];
        q.quantize(&[f32::MAX, -f32::MAX], &mut idx).unwrap();
        assert_eq!(idx, [2, 0]);
    }
}
