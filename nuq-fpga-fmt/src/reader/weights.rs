//! The WEIGHTS section: packed `b`-bit indices in hardware words.
//!
//! A word of `W` bits holds `lanes = floor(W / b)` elements; element `j` of a word occupies bits
//! `j*b .. (j+1)*b` (element 0 in the low bits); a word is stored as `W/8` bytes little-endian.
//! Unused high bits and unused lanes are zero. See [`TileOrder`] for which element goes where.

use super::table::{field, field_err, reserved_zero, SectionCtx, Table};
use crate::enums::TileOrder;
use crate::error::{ErrorKind, Result};
use crate::layout::{caps, RawTableHead, RawWeights, WEIGHT_BLOB_ALIGN};
use core::mem::size_of;

/// Word widths a tensor may use.
pub const WORD_BITS: [u16; 5] = [32, 64, 128, 256, 512];

/// The geometry of a packed tensor: everything needed to locate an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Bits per element.
    pub bits: u32,
    /// Bits per word.
    pub word_bits: u32,
    /// Tile order.
    pub order: TileOrder,
    /// Number of elements.
    pub elements: u64,
    /// Elements per row (the product of all dimensions but the first) for
    /// [`TileOrder::RowPerOutput`]; `elements` for [`TileOrder::Flat`].
    pub row_len: u64,
}

impl Packing {
    /// Elements per word.
    pub fn lanes(&self) -> u64 {
        u64::from(self.word_bits / self.bits)
    }

    /// Words per row.
    pub fn words_per_row(&self) -> u64 {
        self.row_len.div_ceil(self.lanes())
    }

    /// Total number of words.
    pub fn word_count(&self) -> u64 {
        if self.row_len == 0 {
            return 0;
        }
        (self.elements / self.row_len) * self.words_per_row()
    }

    /// `(word, lane)` of element `i`.
    pub fn position(&self, i: u64) -> (u64, u64) {
        let lanes = self.lanes();
        let row = i / self.row_len.max(1);
        let j = i % self.row_len.max(1);
        (row * self.words_per_row() + j / lanes, j % lanes)
    }

    /// Number of lanes holding elements in word `w`.
    pub fn used_lanes(&self, w: u64) -> u64 {
        let wpr = self.words_per_row().max(1);
        let k = w % wpr;
        let lanes = self.lanes();
        self.row_len.saturating_sub(k * lanes).min(lanes)
    }
}

/// The validated WEIGHTS section.
#[derive(Debug, Clone, Copy)]
pub struct WeightsSection<'a> {
    table: Table<'a, RawWeights>,
}

/// One validated packed tensor, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    raw: &'a RawWeights,
    data: &'a [u8],
    packing: Packing,
}

fn packing_of(r: &RawWeights) -> Option<Packing> {
    let rank = usize::from(r.rank);
    let dims = r.dims.get(..rank)?;
    let first = u64::from(dims.first()?.get());
    let elements = dims
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(u64::from(d.get())))?;
    let order = TileOrder::from_raw(r.order)?;
    let row_len = match order {
        TileOrder::Flat => elements,
        TileOrder::RowPerOutput => elements.checked_div(first)?,
    };
    Some(Packing {
        bits: r.bits.into(),
        word_bits: r.word_bits.get().into(),
        order,
        elements,
        row_len,
    })
}

impl<'a> WeightsSection<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawWeights>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            ctx.code_bits(field!(i, ro, RawWeights, bits), r.bits)?;
            ctx.ensure(
                TileOrder::from_raw(r.order).is_some(),
                field!(i, ro, RawWeights, order),
                r.order,
                "0 (flat) or 1 (row_per_output)",
            )?;
            ctx.ensure(
                WORD_BITS.contains(&r.word_bits.get()),
                field!(i, ro, RawWeights, word_bits),
                r.word_bits.get(),
                "32, 64, 128, 256 or 512",
            )?;
            ctx.ensure(
                (1..=4).contains(&r.rank),
                field!(i, ro, RawWeights, rank),
                r.rank,
                "1..=4",
            )?;
            reserved_zero(&ctx, Some(i), "reserved0", ro + 5, &r.reserved0)?;
            for (k, d) in r.dims.iter().enumerate() {
                let at = ro + core::mem::offset_of!(RawWeights, dims) as u64 + 4 * k as u64;
                let d = d.get();
                let ok = if k < usize::from(r.rank) {
                    (1..=caps::DIM).contains(&d)
                } else {
                    d == 0
                };
                if !ok {
                    return Err(ctx.err(
                        Some(i),
                        "dims",
                        at,
                        ErrorKind::Invalid {
                            found: d.into(),
                            expected: "1..=2^24 for used dimensions, 0 for unused ones",
                        },
                    ));
                }
            }
            let Some(p) = packing_of(r) else {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawWeights,
                    dims,
                    ErrorKind::Overflow
                ));
            };
            if p.elements > caps::ELEMENTS {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawWeights,
                    dims,
                    ErrorKind::CountCap {
                        count: p.elements,
                        cap: caps::ELEMENTS
                    }
                ));
            }
            if r.element_count.get() != p.elements {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawWeights,
                    element_count,
                    ErrorKind::Mismatch {
                        found: r.element_count.get(),
                        expected: p.elements
                    }
                ));
            }
            if r.word_count.get() != p.word_count() {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawWeights,
                    word_count,
                    ErrorKind::Mismatch {
                        found: r.word_count.get(),
                        expected: p.word_count()
                    }
                ));
            }
            if r.reserved1.get() != 0 {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawWeights,
                    reserved1,
                    ErrorKind::Invalid {
                        found: r.reserved1.get(),
                        expected: "0"
                    }
                ));
            }
            let word_bytes = u64::from(p.word_bits / 8);
            let lo = ro + core::mem::offset_of!(RawWeights, data) as u64;
            let len = p.word_count().checked_mul(word_bytes).ok_or(field_err!(
                ctx,
                i,
                ro,
                RawWeights,
                word_count,
                ErrorKind::Overflow
            ))?;
            let data = blobs.take(Some(i), "data", lo, &r.data, WEIGHT_BLOB_ALIGN, Some(len))?;
            // Unused bits of every word must be zero.
            for (w, word) in data.chunks_exact(word_bytes as usize).enumerate() {
                let used_bits = p.used_lanes(w as u64) * u64::from(p.bits);
                if let Some(bad) = first_set_bit_from(word, used_bits) {
                    let at = r.data.offset.get() + w as u64 * word_bytes + bad as u64;
                    return Err(ctx.err(
                        Some(i),
                        "data",
                        at,
                        ErrorKind::NonZeroPadding { found: word[bad] },
                    ));
                }
            }
        }
        blobs.finish()?;
        Ok(WeightsSection { table })
    }

    /// Number of tensors.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Tensor `i`.
    pub fn get(&self, i: u32) -> Option<Weights<'a>> {
        let raw = self.table.get(i)?;
        Some(Weights {
            raw,
            data: self.table.blob_bytes(&raw.data),
            packing: packing_of(raw)?,
        })
    }

    /// All tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = Weights<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Index of the first byte of `word` that has a set bit at or above bit `from`.
fn first_set_bit_from(word: &[u8], from: u64) -> Option<usize> {
    word.iter().enumerate().position(|(k, &b)| {
        let lo = 8 * k as u64;
        let mask: u8 = if from <= lo {
            0xFF
        } else if from >= lo + 8 {
            0
        } else {
            0xFFu8 << (from - lo)
        };
        b & mask != 0
    })
}

impl<'a> Weights<'a> {
    /// Bits per index.
    pub fn bits(&self) -> u8 {
        self.raw.bits
    }

    /// Word width in bits.
    pub fn word_bits(&self) -> u16 {
        self.raw.word_bits.get()
    }

    /// Tile order.
    pub fn order(&self) -> TileOrder {
        TileOrder::from_raw(self.raw.order).unwrap_or(TileOrder::Flat)
    }

    /// The used dimensions, outermost first.
    pub fn dims(&self) -> &'a [crate::le::U32Le] {
        self.raw
            .dims
            .get(..usize::from(self.raw.rank))
            .unwrap_or(&[])
    }

    /// Number of elements.
    pub fn element_count(&self) -> u64 {
        self.raw.element_count.get()
    }

    /// Number of words.
    pub fn word_count(&self) -> u64 {
        self.raw.word_count.get()
    }

    /// The packing geometry.
    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// The packed words as stored (`word_count * word_bits / 8` bytes).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The bytes of word `w` (little-endian).
    pub fn word(&self, w: u64) -> Option<&'a [u8]> {
        let wb = usize::from(self.word_bits() / 8);
        let start = usize::try_from(w).ok()?.checked_mul(wb)?;
        self.data.get(start..start.checked_add(wb)?)
    }

    /// Index `i` in row-major order of the dimensions.
    pub fn index(&self, i: u64) -> Option<u8> {
        if i >= self.element_count() {
            return None;
        }
        let (w, lane) = self.packing.position(i);
        self.lane(w, lane)
    }

    /// Lane `lane` of word `w`.
    fn lane(&self, w: u64, lane: u64) -> Option<u8> {
        let bits = self.packing.bits;
        let word = self.word(w)?;
        let bit = lane * u64::from(bits);
        let byte = usize::try_from(bit / 8).ok()?;
        let lo = u16::from(*word.get(byte)?);
        let hi = u16::from(word.get(byte + 1).copied().unwrap_or(0));
        let v = ((hi << 8) | lo) >> (bit % 8);
        Some((v & ((1u16 << bits) - 1)) as u8)
    }

    /// All indices in row-major order (a sequential walk over rows, words and lanes).
    pub fn indices(&self) -> impl Iterator<Item = u8> + '_ {
        let p = self.packing;
        let (lanes, wpr) = (p.lanes(), p.words_per_row());
        let rows = p.elements.checked_div(p.row_len).unwrap_or(0);
        (0..rows).flat_map(move |r| {
            (0..p.row_len).filter_map(move |j| self.lane(r * wpr + j / lanes, j % lanes))
        })
    }
}
