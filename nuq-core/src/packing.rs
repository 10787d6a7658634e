//! Bit packing of `b`-bit indices, `b` in `1..=8`.
//!
//! # Layout
//!
//! Indices form one little-endian bit stream, least significant bit first: index `i`
//! occupies stream bits `i·b .. (i+1)·b`, its least significant bit first, and stream bit `k`
//! is bit `k % 8` of byte `k / 8`. An index may straddle two bytes (`b` = 3, 5, 6, 7). Unused
//! high bits of the last byte are zero. `n` indices take `ceil(n·b / 8)` bytes; every group
//! of 8 indices fills exactly `b` bytes.
//!
//! Worked example, `b = 3`, indices `[5, 3, 6, 1]` (binary `101 011 110 001`):
//!
//! ```text
//! stream bit: 11 10  9 |  8  7  6 |  5  4  3 |  2  1  0
//! index:       [3]=001 |  [2]=110 |  [1]=011 |  [0]=101
//! byte 0 = bits 7..0  = 1 0 | 0 1 1 | 1 0 1 = 0b1001_1101 = 0x9D
//! byte 1 = bits 15..8 = 0000 (padding) 0 0 1 | 1 = 0b0000_0011 = 0x03
//! ```
//!
//! ```
//! use nuq_core::PackedIndices;
//! let p = PackedIndices::pack(&[5, 3, 6, 1], 3)?;
//! assert_eq!(p.as_bytes(), &[0x9D, 0x03]);
//! assert_eq!(p.unpack(), vec![5, 3, 6, 1]);
//! # Ok::<(), nuq_core::Error>(())
//! ```

use alloc::vec;
use alloc::vec::Vec;

use crate::codebook::check_index_bits;
use crate::error::{Error, Result};

/// Bytes needed for `count` indices of `bits` bits: `ceil(count · bits / 8)`, computed
/// without overflow.
///
/// ```
/// assert_eq!(nuq_core::packed_len(4, 3), 2);
/// assert_eq!(nuq_core::packed_len(9, 4), 5);
/// assert_eq!(nuq_core::packed_len(0, 7), 0);
/// ```
pub fn packed_len(count: usize, bits: u8) -> usize {
    let bits = bits as usize;
    (count / 8) * bits + ((count % 8) * bits).div_ceil(8)
}

/// `count` indices of `bits` bits packed in the documented layout (see the module docs).
///
/// ```
/// use nuq_core::PackedIndices;
/// let p = PackedIndices::pack(&[1, 2, 3, 0, 15], 4)?;
/// assert_eq!(p.as_bytes(), &[0x21, 0x03, 0x0F]);
/// assert_eq!((p.len(), p.bits()), (5, 4));
/// assert_eq!(p.get(4), Some(15));
/// # Ok::<(), nuq_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackedIndices {
    bits: u8,
    len: usize,
    bytes: Vec<u8>,
}

impl PackedIndices {
    /// Packs `indices`, each of which must fit in `bits` bits.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`]; [`Error::IndexOutOfRange`] naming the first index
    /// `>= 2^bits` (its `levels` field is `2^bits`).
    ///
    /// ```
    /// use nuq_core::{Error, PackedIndices};
    /// assert_eq!(
    ///     PackedIndices::pack(&[0, 4], 2),
    ///     Err(Error::IndexOutOfRange { position: 1, index: 4, levels: 4 })
    /// );
    /// ```
    pub fn pack(indices: &[u8], bits: u8) -> Result<PackedIndices> {
        check_index_bits(bits)?;
        if bits < 8 {
            if let Some(position) = indices.iter().position(|&i| i >> bits != 0) {
                return Err(Error::IndexOutOfRange {
                    position,
                    index: indices[position],
                    levels: 1 << bits,
                });
            }
        }
        let mut bytes = vec![0u8; packed_len(indices.len(), bits)];
        pack_into(indices, bits, &mut bytes);
        Ok(PackedIndices {
            bits,
            len: indices.len(),
            bytes,
        })
    }

    /// Adopts already packed bytes, checking their length and that padding bits are zero.
    ///
    /// # Errors
    /// [`Error::InvalidIndexBits`], [`Error::PackedLengthMismatch`], [`Error::NonZeroPadding`].
    ///
    /// ```
    /// use nuq_core::PackedIndices;
    /// let p = PackedIndices::from_bytes(3, 4, vec![0x9D, 0x03])?;
    /// assert_eq!(p.unpack(), vec![5, 3, 6, 1]);
    /// assert!(PackedIndices::from_bytes(3, 4, vec![0x9D, 0x13]).is_err()); // padding bit set
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_bytes(bits: u8, len: usize, bytes: Vec<u8>) -> Result<PackedIndices> {
        check_index_bits(bits)?;
        let expected = packed_len(len, bits);
        if bytes.len() != expected {
            return Err(Error::PackedLengthMismatch {
                count: len,
                bits,
                expected,
                found: bytes.len(),
            });
        }
        let used = (len % 8) * bits as usize % 8;
        if used != 0 {
            let last = bytes[expected - 1];
            if last >> used != 0 {
                return Err(Error::NonZeroPadding { byte: last });
            }
        }
        Ok(PackedIndices { bits, len, bytes })
    }

    /// Wraps bytes produced by [`pack_into`] with the right length.
    pub(crate) fn from_packed_unchecked(bits: u8, len: usize, bytes: Vec<u8>) -> PackedIndices {
        debug_assert_eq!(bytes.len(), packed_len(len, bits));
        PackedIndices { bits, len, bytes }
    }

    /// The index width in bits.
    ///
    /// ```
    /// assert_eq!(nuq_core::PackedIndices::pack(&[1], 5)?.bits(), 5);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The number of indices.
    ///
    /// ```
    /// assert_eq!(nuq_core::PackedIndices::pack(&[1, 0, 1], 1)?.len(), 3);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no indices.
    ///
    /// ```
    /// assert!(nuq_core::PackedIndices::pack(&[], 4)?.is_empty());
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes.
    ///
    /// ```
    /// assert_eq!(nuq_core::PackedIndices::pack(&[1, 1], 2)?.as_bytes(), &[0b0101]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The packed bytes, by value.
    ///
    /// ```
    /// assert_eq!(nuq_core::PackedIndices::pack(&[7], 8)?.into_bytes(), vec![7]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The `i`-th index, or `None` past the end.
    ///
    /// ```
    /// let p = nuq_core::PackedIndices::pack(&[100, 27], 7)?;
    /// assert_eq!((p.get(1), p.get(2)), (Some(27), None));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<u8> {
        (i < self.len).then(|| read_index(&self.bytes, self.bits, i))
    }

    /// All indices, unpacked.
    ///
    /// ```
    /// let p = nuq_core::PackedIndices::pack(&[3, 0, 2], 2)?;
    /// assert_eq!(p.unpack(), vec![3, 0, 2]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn unpack(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        unpack_from(&self.bytes, self.bits, &mut out);
        out
    }

    /// Unpacks into `out`, which must hold exactly `len()` indices.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`].
    ///
    /// ```
    /// let p = nuq_core::PackedIndices::pack(&[6, 1], 3)?;
    /// let mut out = [0u8; 2];
    /// p.unpack_into(&mut out)?;
    /// assert_eq!(out, [6, 1]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn unpack_into(&self, out: &mut [u8]) -> Result<()> {
        crate::codebook::check_len(self.len, out.len())?;
        unpack_from(&self.bytes, self.bits, out);
        Ok(())
    }

    /// Iterates over the indices in order.
    ///
    /// ```
    /// let p = nuq_core::PackedIndices::pack(&[1, 0, 1], 1)?;
    /// assert_eq!(p.iter().collect::<Vec<_>>(), vec![1, 0, 1]);
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u8> + '_ {
        (0..self.len).map(move |i| read_index(&self.bytes, self.bits, i))
    }
}

/// Reads index `i` straight from the bit stream.
#[inline]
fn read_index(bytes: &[u8], bits: u8, i: usize) -> u8 {
    let bit = i * bits as usize;
    let byte = bit / 8;
    let lo = bytes[byte] as u16;
    let hi = bytes.get(byte + 1).copied().unwrap_or(0) as u16;
    (((lo | hi << 8) >> (bit % 8)) & ((1u16 << bits) - 1)) as u8
}

/// Packs `indices` (each `< 2^bits`, not checked) into `out`, which must be exactly
/// `packed_len(indices.len(), bits)` bytes; every byte is overwritten.
pub(crate) fn pack_into(indices: &[u8], bits: u8, out: &mut [u8]) {
    debug_assert_eq!(out.len(), packed_len(indices.len(), bits));
    match bits {
        1 => pack_const::<1>(indices, out),
        2 => pack_const::<2>(indices, out),
        3 => pack_const::<3>(indices, out),
        4 => pack_nibbles(indices, out),
        5 => pack_const::<5>(indices, out),
        6 => pack_const::<6>(indices, out),
        7 => pack_const::<7>(indices, out),
        _ => out.copy_from_slice(indices),
    }
}

/// Unpacks `out.len()` indices from the start of `bytes`.
pub(crate) fn unpack_from(bytes: &[u8], bits: u8, out: &mut [u8]) {
    debug_assert!(bytes.len() >= packed_len(out.len(), bits));
    match bits {
        1 => unpack_const::<1>(bytes, out),
        2 => unpack_const::<2>(bytes, out),
        3 => unpack_const::<3>(bytes, out),
        4 => unpack_nibbles(bytes, out),
        5 => unpack_const::<5>(bytes, out),
        6 => unpack_const::<6>(bytes, out),
        7 => unpack_const::<7>(bytes, out),
        _ => out.copy_from_slice(&bytes[..out.len()]),
    }
}

#[inline]
fn group_word<const B: usize>(group: &[u8]) -> u64 {
    let mut word = 0u64;
    for (j, &i) in group.iter().enumerate() {
        word |= (i as u64) << (j * B);
    }
    word
}

fn pack_const<const B: usize>(indices: &[u8], out: &mut [u8]) {
    let mut groups = indices.chunks_exact(8);
    let mut dst = out.chunks_exact_mut(B);
    for (group, d) in (&mut groups).zip(&mut dst) {
        d.copy_from_slice(&group_word::<B>(group).to_le_bytes()[..B]);
    }
    let rest = groups.remainder();
    if !rest.is_empty() {
        // Not `dst.into_remainder()`: that is only what is left of whole `B`-byte chunks.
        let tail = &mut out[(indices.len() / 8) * B..];
        let n = tail.len();
        tail.copy_from_slice(&group_word::<B>(rest).to_le_bytes()[..n]);
    }
}

fn unpack_const<const B: usize>(bytes: &[u8], out: &mut [u8]) {
    let mask = (1u64 << B) - 1;
    let n = out.len();
    let mut groups = out.chunks_exact_mut(8);
    for (g, src) in (&mut groups).zip(bytes.chunks_exact(B)) {
        let mut le = [0u8; 8];
        le[..B].copy_from_slice(src);
        let word = u64::from_le_bytes(le);
        for (j, o) in g.iter_mut().enumerate() {
            *o = ((word >> (j * B)) & mask) as u8;
        }
    }
    let rest = groups.into_remainder();
    if !rest.is_empty() {
        let start = (n / 8) * B;
        let used = packed_len(rest.len(), B as u8);
        let mut le = [0u8; 8];
        le[..used].copy_from_slice(&bytes[start..start + used]);
        let word = u64::from_le_bytes(le);
        for (j, o) in rest.iter_mut().enumerate() {
            *o = ((word >> (j * B)) & mask) as u8;
        }
    }
}

fn pack_nibbles(indices: &[u8], out: &mut [u8]) {
    let mut pairs = indices.chunks_exact(2);
    for (o, p) in out.iter_mut().zip(&mut pairs) {
        *o = p[0] | p[1] << 4;
    }
    if let [last] = pairs.remainder() {
        out[out.len() - 1] = *last;
    }
}

fn unpack_nibbles(bytes: &[u8], out: &mut [u8]) {
    let half = out.len() / 2;
    let mut pairs = out.chunks_exact_mut(2);
    for (p, &b) in (&mut pairs).zip(bytes) {
        p[0] = b & 0x0F;
        p[1] = b >> 4;
    }
    let rest = pairs.into_remainder();
    if let [last] = rest {
        *last = bytes[half] & 0x0F;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        let p = PackedIndices::pack(&[5, 3, 6, 1], 3).unwrap();
        assert_eq!(p.as_bytes(), &[0x9D, 0x03]);
    }

    #[test]
    fn eight_indices_fill_b_bytes_exactly() {
        for bits in 1..=8u8 {
            let top = ((1u16 << bits) - 1) as u8;
            let p = PackedIndices::pack(&[top; 8], bits).unwrap();
            assert_eq!(p.as_bytes(), vec![0xFF; bits as usize].as_slice());
        }
    }

    #[test]
    fn rejects_bad_bytes() {
        assert_eq!(
            PackedIndices::from_bytes(4, 3, vec![0; 3]),
            Err(Error::PackedLengthMismatch {
                count: 3,
                bits: 4,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            PackedIndices::from_bytes(4, 3, vec![0, 0x10]),
            Err(Error::NonZeroPadding { byte: 0x10 })
        );
        assert_eq!(
            PackedIndices::pack(&[1], 0),
            Err(Error::InvalidIndexBits { bits: 0 })
        );
        assert!(PackedIndices::from_bytes(8, 2, vec![255, 255]).is_ok());
    }

    #[test]
    fn packed_len_never_overflows() {
        assert_eq!(packed_len(usize::MAX, 8), usize::MAX);
        assert_eq!(packed_len(usize::MAX, 1), usize::MAX / 8 + 1);
    }
}
