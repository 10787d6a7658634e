//! [`QuantizedTensor`]: shape, codebook, scale(s) and bit-packed indices.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::codebook::{check_len, Codebook};
use crate::error::{Error, Result};
use crate::packing::{pack_into, packed_len, unpack_from, PackedIndices};
use crate::quantizer::{check_finite, Quantizer, BLOCK};
use crate::real::{f32_view, Real};
use crate::scale::Scales;
use crate::stats::ErrorStats;

/// A tensor quantized onto a codebook: every element is a `b`-bit index whose level, times
/// its scale, is the element's real value.
///
/// * `shape`: row-major dimensions; `[]` is a scalar (one element), a zero dimension makes
///   the tensor empty (empty tensors work everywhere).
/// * `scales`: per tensor, or per output channel — channel `c` is the `c`-th contiguous block
///   of `len / shape[0]` elements.
/// * indices: bit-packed at the codebook's width
///   (LSB-first, little-endian bytes; see [the packing layout](crate#packing-layout)).
///
/// Element `i` encodes to `codebook.nearest(x[i] / scale)` and decodes to
/// `level as f32 * scale`.
///
/// ```
/// use nuq_core::{Calibration, Codebook, Grid, Polarity, QuantizedTensor};
/// let data = [0.1f32, -0.45, 0.25, 1.0, -1.0, 0.0];
/// let cb = Codebook::uniform(Grid::I8, 4, Polarity::Signed)?;
/// let scale = Calibration::MaxAbs.scale(&data, &cb)?;
/// let q = QuantizedTensor::quantize(&data, &[2, 3], &cb, scale)?;
/// assert_eq!(q.shape(), &[2, 3]);
/// assert_eq!(q.indices().as_bytes().len(), 3); // 6 × 4 bits
/// assert_eq!(q.integer_levels(), vec![18, -54, 36, 126, -126, 0]);
/// let stats = q.error_stats(&data)?;
/// assert!(stats.sqnr_db > 25.0);
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    shape: Vec<usize>,
    codebook: Codebook,
    scales: Scales,
    indices: PackedIndices,
}

/// The element count of `shape`, checked.
fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::ShapeOverflow {
            shape: shape.to_vec(),
        })
}

/// Checks `scales` against `shape`; returns the number of elements per scale block.
fn block_len(shape: &[usize], len: usize, scales: &Scales) -> Result<usize> {
    match scales {
        Scales::PerTensor(_) => Ok(len.max(1)),
        Scales::PerChannel(v) => {
            let channels = shape.first().copied().unwrap_or(1);
            if v.len() != channels {
                return Err(Error::ChannelCountMismatch {
                    channels,
                    scales: v.len(),
                });
            }
            // Zero channels means zero elements; any positive block length will do.
            Ok(len.checked_div(channels).unwrap_or(0).max(1))
        }
    }
}

impl QuantizedTensor {
    /// Quantizes `data` of `shape` onto `codebook` with `scales`; `data` may be `f32`, `f64`,
    /// `half::f16` or `half::bf16` ([`Real`]: converted to `f32`, exactly for the half types).
    ///
    /// # Errors
    /// [`Error::ShapeOverflow`], [`Error::ShapeMismatch`] (data length vs shape),
    /// [`Error::ChannelCountMismatch`] (per-channel scales vs `shape[0]`),
    /// [`Error::NonFinite`] naming the first NaN or infinite element.
    ///
    /// ```
    /// use half::{bf16, f16};
    /// use nuq_core::{Codebook, Error, QuantizedTensor, Scale};
    /// let cb = Codebook::iq4_nl();
    /// let err = QuantizedTensor::quantize(&[1.0, f32::NAN], &[2], &cb, Scale::ONE).unwrap_err();
    /// assert!(matches!(err, Error::NonFinite { index: 1, .. }));
    /// let empty = QuantizedTensor::quantize(&[0f32; 0], &[0, 3], &cb, Scale::ONE)?;
    /// assert!(empty.is_empty() && empty.dequantize().is_empty());
    /// let half = [f16::from_f32(0.5), f16::from_f32(-1.0)];
    /// let q = QuantizedTensor::quantize(&half, &[2], &cb, Scale::new(0.01)?)?;
    /// assert_eq!(q.integer_levels(), vec![53, -104]);
    /// let bad = [bf16::from_f32(1.0), bf16::INFINITY];
    /// assert!(QuantizedTensor::quantize(&bad, &[2], &cb, Scale::ONE).is_err());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn quantize<T: Real>(
        data: &[T],
        shape: &[usize],
        codebook: &Codebook,
        scales: impl Into<Scales>,
    ) -> Result<QuantizedTensor> {
        let scales = scales.into();
        let input = data;
        let n = element_count(shape)?;
        if input.len() != n {
            return Err(Error::ShapeMismatch {
                shape: shape.to_vec(),
                expected: n,
                found: input.len(),
            });
        }
        let per = block_len(shape, n, &scales)?;
        let bits = codebook.bits();
        let mut bytes = vec![0u8; packed_len(n, bits)];
        let mut fbuf = [0f32; BLOCK];
        let mut ibuf = [0u8; BLOCK];
        let mut current: Option<(usize, Quantizer<'_>)> = None;
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let xs = f32_view(&input[start..end], &mut fbuf);
            check_finite(xs, start)?;
            // Split the block at channel boundaries.
            let mut i = start;
            while i < end {
                let c = i / per;
                let q = match &mut current {
                    Some((cc, q)) if *cc == c => q,
                    slot => {
                        &mut slot
                            .insert((c, Quantizer::new(codebook, scales.channel(c))))
                            .1
                    }
                };
                let seg_end = ((c + 1) * per).min(end);
                let (a, b) = (i - start, seg_end - start);
                q.encode_block(&xs[a..b], &mut ibuf[a..b]);
                i = seg_end;
            }
            // `start` is a multiple of BLOCK (hence of 8): byte-aligned at every width.
            let b0 = start / 8 * bits as usize;
            let b1 = b0 + packed_len(end - start, bits);
            pack_into(&ibuf[..end - start], bits, &mut bytes[b0..b1]);
            start = end;
        }
        Ok(QuantizedTensor {
            shape: shape.to_vec(),
            codebook: codebook.clone(),
            scales,
            indices: PackedIndices::from_packed_unchecked(bits, n, bytes),
        })
    }

    /// Assembles a tensor from its parts (e.g. read from a file), validating all of them.
    ///
    /// # Errors
    /// [`Error::ShapeOverflow`]; [`Error::IndexBitsMismatch`] when the indices' width is not
    /// the codebook's; [`Error::ShapeMismatch`] when the index count differs from the shape's;
    /// [`Error::ChannelCountMismatch`]; [`Error::IndexOutOfRange`] naming the first index
    /// without a level.
    ///
    /// ```
    /// use nuq_core::{Codebook, PackedIndices, QuantizedTensor, Scale};
    /// let cb = Codebook::iq4_nl();
    /// let idx = PackedIndices::pack(&[0, 15, 8], 4)?;
    /// let q = QuantizedTensor::from_parts(vec![3], cb, Scale::ONE.into(), idx)?;
    /// assert_eq!(q.dequantize(), vec![-127.0, 113.0, 1.0]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_parts(
        shape: Vec<usize>,
        codebook: Codebook,
        scales: Scales,
        indices: PackedIndices,
    ) -> Result<QuantizedTensor> {
        let n = element_count(&shape)?;
        if indices.bits() != codebook.bits() {
            return Err(Error::IndexBitsMismatch {
                expected: codebook.bits(),
                found: indices.bits(),
            });
        }
        if indices.len() != n {
            return Err(Error::ShapeMismatch {
                shape,
                expected: n,
                found: indices.len(),
            });
        }
        block_len(&shape, n, &scales)?;
        if codebook.len() < 1 << codebook.bits() {
            let mut buf = [0u8; BLOCK];
            let mut start = 0;
            while start < n {
                let end = (start + BLOCK).min(n);
                let b0 = start / 8 * codebook.bits() as usize;
                unpack_from(
                    &indices.as_bytes()[b0..],
                    codebook.bits(),
                    &mut buf[..end - start],
                );
                if let Some(p) = buf[..end - start]
                    .iter()
                    .position(|&i| i as usize >= codebook.len())
                {
                    return Err(Error::IndexOutOfRange {
                        position: start + p,
                        index: buf[p],
                        levels: codebook.len(),
                    });
                }
                start = end;
            }
        }
        Ok(QuantizedTensor {
            shape,
            codebook,
            scales,
            indices,
        })
    }

    /// Splits the tensor into `(shape, codebook, scales, indices)`.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[1.0], &[], &Codebook::iq4_nl(), Scale::ONE)?;
    /// let (shape, _, _, idx) = q.into_parts();
    /// assert_eq!((shape.len(), idx.len()), (0, 1));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn into_parts(self) -> (Vec<usize>, Codebook, Scales, PackedIndices) {
        (self.shape, self.codebook, self.scales, self.indices)
    }

    /// The shape.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0.0; 6], &[3, 2], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!(q.shape(), &[3, 2]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0.0; 6], &[3, 2], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!(q.len(), 6);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the tensor has no elements.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0f32; 0], &[0], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert!(q.is_empty());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The codebook.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0.0], &[1], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!(q.codebook(), &Codebook::iq4_nl());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn codebook(&self) -> &Codebook {
        &self.codebook
    }

    /// The scales.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale, Scales};
    /// let q = QuantizedTensor::quantize(&[0.0], &[1], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!(q.scales(), &Scales::PerTensor(Scale::ONE));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn scales(&self) -> &Scales {
        &self.scales
    }

    /// The packed indices.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[-127.0, 113.0], &[2], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!(q.indices().as_bytes(), &[0xF0]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn indices(&self) -> &PackedIndices {
        &self.indices
    }

    /// The index of element `i`, or `None` past the end.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[-127.0, 113.0], &[2], &Codebook::iq4_nl(), Scale::ONE)?;
    /// assert_eq!((q.index(1), q.index(2)), (Some(15), None));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn index(&self, i: usize) -> Option<u8> {
        self.indices.get(i)
    }

    /// Walks the tensor in blocks: `f(range, indices, scale)` for every maximal run of
    /// elements inside one `BLOCK` and one channel.
    fn for_each_run(&self, mut f: impl FnMut(Range<usize>, &[u8], &Quantizer<'_>)) {
        let n = self.len();
        let bits = self.codebook.bits();
        let per = block_len(&self.shape, n, &self.scales).expect("validated at construction");
        let mut ibuf = [0u8; BLOCK];
        let mut current: Option<(usize, Quantizer<'_>)> = None;
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let b0 = start / 8 * bits as usize;
            unpack_from(
                &self.indices.as_bytes()[b0..],
                bits,
                &mut ibuf[..end - start],
            );
            let mut i = start;
            while i < end {
                let c = i / per;
                let q = match &mut current {
                    Some((cc, q)) if *cc == c => q,
                    slot => {
                        &mut slot
                            .insert((c, Quantizer::new(&self.codebook, self.scales.channel(c))))
                            .1
                    }
                };
                let seg_end = ((c + 1) * per).min(end);
                f(i..seg_end, &ibuf[i - start..seg_end - start], q);
                i = seg_end;
            }
            start = end;
        }
    }

    /// The real values, `level as f32 * scale` per element.
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0.3, -0.6], &[2], &Codebook::iq4_nl(), Scale::new(0.01)?)?;
    /// assert_eq!(q.dequantize(), vec![25.0f32 * 0.01, -65.0f32 * 0.01]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.len()];
        self.decode_all(&mut out);
        out
    }

    /// Dequantizes into `out` (of length `len()`). Nibble-packed tensors whose scale blocks
    /// start on byte boundaries decode a byte at a time through a 256-entry table of value
    /// pairs; everything else unpacks a block and reads the level table.
    fn decode_all(&self, out: &mut [f32]) {
        let n = self.len();
        let per = block_len(&self.shape, n, &self.scales).expect("validated at construction");
        let pairs_pay = per >= 256 && (per.is_multiple_of(2) || per == n);
        if self.codebook.bits() != 4 || !pairs_pay {
            self.for_each_run(|r, idx, q| q.decode_block(idx, &mut out[r]));
            return;
        }
        let bytes = self.indices.as_bytes();
        for (c, block) in out.chunks_mut(per).enumerate() {
            let q = Quantizer::new(&self.codebook, self.scales.channel(c));
            let pairs = q.pair_table();
            let b0 = c * per / 2;
            let mut halves = block.chunks_exact_mut(2);
            for (o, &b) in (&mut halves).zip(&bytes[b0..]) {
                o.copy_from_slice(&pairs[b as usize]);
            }
            if let [last] = halves.into_remainder() {
                *last = pairs[bytes[b0 + per / 2] as usize][0];
            }
        }
    }

    /// Dequantizes into `out`, which must hold exactly `len()` values of any [`Real`] type
    /// (`f32` is written in place; other types are converted from the `f32` values).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`].
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[1.0f32], &[1], &Codebook::iq4_nl(), Scale::ONE)?;
    /// let mut out = [0f32; 1];
    /// q.dequantize_into(&mut out)?;
    /// assert_eq!(out, [1.0]);
    /// let mut wide = [0f64; 1];
    /// q.dequantize_into(&mut wide)?;
    /// assert_eq!(wide, [1.0]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn dequantize_into<T: Real>(&self, out: &mut [T]) -> Result<()> {
        check_len(self.len(), out.len())?;
        match T::as_f32_mut(out) {
            Some(out) => self.decode_all(out),
            None => {
                let values = self.dequantize();
                for (o, v) in out.iter_mut().zip(values) {
                    *o = T::from_f32(v);
                }
            }
        }
        Ok(())
    }

    /// The real values as any [`Real`] type.
    ///
    /// ```
    /// use half::f16;
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[6.5f32], &[1], &Codebook::iq4_nl(), Scale::new(0.5)?)?;
    /// assert_eq!(q.dequantize_as::<f16>(), vec![f16::from_f32(6.5)]); // level 13
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn dequantize_as<T: Real>(&self) -> alloc::vec::Vec<T> {
        let mut out = vec![T::zero(); self.len()];
        self.dequantize_into(&mut out)
            .expect("the buffer has len() values");
        out
    }

    /// The integer level of every element (what integer hardware multiplies).
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let q = QuantizedTensor::quantize(&[0.3, -0.6], &[2], &Codebook::iq4_nl(), Scale::new(0.01)?)?;
    /// assert_eq!(q.integer_levels(), vec![25, -65]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn integer_levels(&self) -> Vec<i32> {
        let levels = self.codebook.levels();
        self.indices.iter().map(|i| levels[i as usize]).collect()
    }

    /// Error statistics of the dequantized tensor against `original`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::NonFinite`] (in `original`).
    ///
    /// ```
    /// use nuq_core::{Codebook, QuantizedTensor, Scale};
    /// let data = [1.0f32, 2.0];
    /// let q = QuantizedTensor::quantize(&data, &[2], &Codebook::iq4_nl(), Scale::ONE)?;
    /// let s = q.error_stats(&data)?;
    /// assert_eq!(s.mse, 0.5); // 1 -> 1, 2 -> 1
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn error_stats(&self, original: &[f32]) -> Result<ErrorStats> {
        check_len(self.len(), original.len())?;
        ErrorStats::between(original, &self.dequantize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grid, Polarity, Scale};
    use half::{bf16, f16};

    #[test]
    fn per_channel_scales_apply_to_contiguous_blocks() {
        let cb = Codebook::uniform(Grid::I8, 3, Polarity::Signed).unwrap(); // ±126 step 42
        let data = [42.0f32, -84.0, 0.0, 4.2, -8.4, 12.6];
        let scales = Scales::per_channel(vec![Scale::ONE, Scale::new(0.1).unwrap()]);
        let q = QuantizedTensor::quantize(&data, &[2, 3], &cb, scales).unwrap();
        assert_eq!(q.integer_levels(), vec![42, -84, 0, 42, -84, 126]);
        let back = q.dequantize();
        for (a, b) in back.iter().zip(data) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn channel_boundaries_inside_blocks_and_across_bytes() {
        // 3-bit indices, channels of 7 elements: boundaries fall mid-byte and mid-block.
        let cb = Codebook::uniform(Grid::I8, 3, Polarity::SignedMidrise).unwrap();
        let channels = 150;
        let per = 7;
        let mut rng = crate::Rng::new(1);
        let data: Vec<f32> = (0..channels * per).map(|_| rng.normal() as f32).collect();
        let scales: Vec<Scale> = (0..channels)
            .map(|c| Scale::new(0.01 + c as f32 * 0.001).unwrap())
            .collect();
        let q = QuantizedTensor::quantize(
            &data,
            &[channels, per],
            &cb,
            Scales::per_channel(scales.clone()),
        )
        .unwrap();
        let idx = q.indices().unpack();
        let back = q.dequantize();
        for (i, &x) in data.iter().enumerate() {
            let s = scales[i / per].get();
            assert_eq!(idx[i], cb.nearest(x / s));
            assert_eq!(back[i], cb.levels()[idx[i] as usize] as f32 * s);
        }
    }

    #[test]
    fn nibble_pair_decoding_matches_the_level_table() {
        let cb = Codebook::iq4_nl();
        let mut rng = crate::Rng::new(12);
        // Per tensor with an odd length; per channel with even blocks long enough for pairs;
        // per channel with odd blocks (general path).
        for (shape, channels) in [(vec![1001], 0usize), (vec![3, 300], 3), (vec![2, 301], 2)] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.5) as f32).collect();
            let scales = if channels == 0 {
                Scales::PerTensor(Scale::new(0.004).unwrap())
            } else {
                Scales::per_channel(
                    (0..channels)
                        .map(|c| Scale::new(0.003 + 0.001 * c as f32).unwrap())
                        .collect(),
                )
            };
            let q = QuantizedTensor::quantize(&data, &shape, &cb, scales.clone()).unwrap();
            let per = n / channels.max(1);
            let want: Vec<f32> = q
                .indices()
                .iter()
                .enumerate()
                .map(|(i, idx)| cb.levels()[idx as usize] as f32 * scales.channel(i / per).get())
                .collect();
            assert_eq!(q.dequantize(), want, "shape {shape:?}");
        }
    }

    #[test]
    fn shape_and_scale_errors() {
        let cb = Codebook::iq4_nl();
        assert!(matches!(
            QuantizedTensor::quantize(&[1.0; 5], &[2, 3], &cb, Scale::ONE),
            Err(Error::ShapeMismatch {
                expected: 6,
                found: 5,
                ..
            })
        ));
        assert!(matches!(
            QuantizedTensor::quantize(&[0f32; 0], &[usize::MAX, 2], &cb, Scale::ONE),
            Err(Error::ShapeOverflow { .. })
        ));
        assert_eq!(
            QuantizedTensor::quantize(
                &[1.0; 6],
                &[2, 3],
                &cb,
                Scales::per_channel(vec![Scale::ONE])
            ),
            Err(Error::ChannelCountMismatch {
                channels: 2,
                scales: 1
            })
        );
        // Per-channel scalar: one channel.
        assert!(
            QuantizedTensor::quantize(&[1.0], &[], &cb, Scales::per_channel(vec![Scale::ONE]))
                .is_ok()
        );
        // Empty per-channel tensor with zero channels.
        assert!(
            QuantizedTensor::quantize(&[0f32; 0], &[0, 4], &cb, Scales::per_channel(vec![]))
                .is_ok()
        );
    }

    #[test]
    fn from_parts_validates() {
        let cb = Codebook::explicit(Grid::I8, 2, &[-1, 0, 1]).unwrap();
        let idx = PackedIndices::pack(&[0, 1, 2, 3], 2).unwrap();
        assert_eq!(
            QuantizedTensor::from_parts(vec![4], cb.clone(), Scale::ONE.into(), idx),
            Err(Error::IndexOutOfRange {
                position: 3,
                index: 3,
                levels: 3
            })
        );
        let idx = PackedIndices::pack(&[0, 1], 3).unwrap();
        assert_eq!(
            QuantizedTensor::from_parts(vec![2], cb.clone(), Scale::ONE.into(), idx),
            Err(Error::IndexBitsMismatch {
                expected: 2,
                found: 3
            })
        );
        let idx = PackedIndices::pack(&[0, 1], 2).unwrap();
        assert!(matches!(
            QuantizedTensor::from_parts(vec![3], cb, Scale::ONE.into(), idx),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn half_inputs_match_f32_inputs() {
        let mut rng = crate::Rng::new(4);
        let raw: Vec<f32> = (0..1500).map(|_| rng.normal() as f32).collect();
        let h: Vec<f16> = raw.iter().map(|&x| f16::from_f32(x)).collect();
        let b: Vec<bf16> = raw.iter().map(|&x| bf16::from_f32(x)).collect();
        let hf: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
        let bf: Vec<f32> = b.iter().map(|x| x.to_f32()).collect();
        let cb = Codebook::iq4_nl();
        let s = Scale::new(0.02).unwrap();
        let n = [raw.len()];
        assert_eq!(
            QuantizedTensor::quantize(&h, &n, &cb, s).unwrap(),
            QuantizedTensor::quantize(&hf, &n, &cb, s).unwrap()
        );
        assert_eq!(
            QuantizedTensor::quantize(&b, &n, &cb, s).unwrap(),
            QuantizedTensor::quantize(&bf, &n, &cb, s).unwrap()
        );
        let mut bad = h.clone();
        bad[1234] = f16::NAN;
        assert!(matches!(
            QuantizedTensor::quantize(&bad, &n, &cb, s),
            Err(Error::NonFinite { index: 1234, .. })
        ));
    }
}
