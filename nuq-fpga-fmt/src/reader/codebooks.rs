//! The CODEBOOKS section: per codebook, `2^b` integer levels on a `g`-bit grid.

use super::table::{field, field_err, reserved_zero, SectionCtx, Table};
use crate::enums::{CodebookKind, ElementType};
use crate::error::{ErrorKind, Result};
use crate::layout::{RawCodebook, RawTableHead, NUMERIC_BLOB_ALIGN};
use core::mem::size_of;

/// The validated CODEBOOKS section.
#[derive(Debug, Clone, Copy)]
pub struct Codebooks<'a> {
    table: Table<'a, RawCodebook>,
}

/// One validated codebook, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct Codebook<'a> {
    raw: &'a RawCodebook,
    levels: &'a [u8],
}

/// The inclusive range of a `g`-bit grid.
pub fn grid_range(grid_bits: u8, signed: bool) -> (i64, i64) {
    let g = u32::from(grid_bits);
    if signed {
        (-(1i64 << (g - 1)), (1i64 << (g - 1)) - 1)
    } else {
        (0, (1i64 << g) - 1)
    }
}

impl<'a> Codebooks<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawCodebook>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            ctx.code_bits(field!(i, ro, RawCodebook, bits), r.bits)?;
            ctx.ensure(
                r.signed <= 1,
                field!(i, ro, RawCodebook, signed),
                r.signed,
                "0 or 1",
            )?;
            let signed = r.signed == 1;
            let grid_ok = if signed {
                (2..=32).contains(&r.grid_bits)
            } else {
                (1..=31).contains(&r.grid_bits)
            };
            ctx.ensure(
                grid_ok,
                field!(i, ro, RawCodebook, grid_bits),
                r.grid_bits,
                "2..=32 when signed, 1..=31 when unsigned",
            )?;
            let Some(elem) = ElementType::from_raw(r.elem_type) else {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawCodebook,
                    elem_type,
                    ErrorKind::Invalid {
                        found: r.elem_type.into(),
                        expected: "1 (i16) or 2 (i32)"
                    }
                ));
            };
            if elem == ElementType::I16 && r.grid_bits > if signed { 16 } else { 15 } {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawCodebook,
                    elem_type,
                    ErrorKind::Invalid {
                        found: r.elem_type.into(),
                        expected: "2 (i32): the grid does not fit i16"
                    }
                ));
            }
            reserved_zero(&ctx, Some(i), "reserved0", ro + 5, &r.reserved0)?;
            ctx.ensure(
                r.reserved1.get() == 0,
                field!(i, ro, RawCodebook, reserved1),
                r.reserved1.get(),
                "0",
            )?;
            let n = 1u32 << r.bits;
            if r.level_count.get() != n {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawCodebook,
                    level_count,
                    ErrorKind::Mismatch {
                        found: r.level_count.get().into(),
                        expected: n.into()
                    }
                ));
            }
            let lo = ro + core::mem::offset_of!(RawCodebook, levels) as u64;
            let bytes = blobs.take(
                Some(i),
                "levels",
                lo,
                &r.levels,
                NUMERIC_BLOB_ALIGN,
                Some(u64::from(n) * elem.size() as u64),
            )?;
            let (min, max) = grid_range(r.grid_bits, signed);
            let cb = Codebook {
                raw: r,
                levels: bytes,
            };
            let mut prev = i64::MIN;
            for k in 0..n as usize {
                let v = i64::from(cb.level(k).unwrap_or(0));
                let at = r.levels.offset.get() + (k * elem.size()) as u64;
                if v < min || v > max {
                    return Err(ctx.err(
                        Some(i),
                        "levels",
                        at,
                        ErrorKind::OutOfRange { found: v, min, max },
                    ));
                }
                if v < prev {
                    return Err(ctx.err(
                        Some(i),
                        "levels",
                        at,
                        ErrorKind::NotSorted { index: k as u64 },
                    ));
                }
                prev = v;
            }
        }
        blobs.finish()?;
        Ok(Codebooks { table })
    }

    /// Number of codebooks.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are no codebooks.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Codebook `i`.
    pub fn get(&self, i: u32) -> Option<Codebook<'a>> {
        let raw = self.table.get(i)?;
        Some(Codebook {
            raw,
            levels: self.table.blob_bytes(&raw.levels),
        })
    }

    /// All codebooks in order.
    pub fn iter(&self) -> impl Iterator<Item = Codebook<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a> Codebook<'a> {
    /// The design family, or `None` for a value this version does not define.
    pub fn kind(&self) -> Option<CodebookKind> {
        CodebookKind::from_raw(self.raw.kind)
    }

    /// The raw `kind` byte.
    pub fn kind_raw(&self) -> u8 {
        self.raw.kind
    }

    /// Index bits `b`.
    pub fn bits(&self) -> u8 {
        self.raw.bits
    }

    /// Grid width `g` in bits.
    pub fn grid_bits(&self) -> u8 {
        self.raw.grid_bits
    }

    /// Whether levels are signed.
    pub fn signed(&self) -> bool {
        self.raw.signed == 1
    }

    /// Element type of the stored list.
    pub fn elem_type(&self) -> ElementType {
        ElementType::from_raw(self.raw.elem_type).unwrap_or(ElementType::I32)
    }

    /// Number of levels (`2^b`).
    pub fn len(&self) -> usize {
        1usize << self.raw.bits
    }

    /// Always false: a codebook has at least two levels.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Level `k` (the level that index `k` decodes to).
    pub fn level(&self, k: usize) -> Option<i32> {
        let size = self.elem_type().size();
        let start = k.checked_mul(size)?;
        let b = self.levels.get(start..start.checked_add(size)?)?;
        Some(match *b {
            [lo, hi] => i32::from(i16::from_le_bytes([lo, hi])),
            [a, b, c, d] => i32::from_le_bytes([a, b, c, d]),
            _ => return None,
        })
    }

    /// All levels in index order.
    pub fn levels(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.len()).filter_map(|k| self.level(k))
    }

    /// The raw little-endian level bytes, as stored.
    pub fn level_bytes(&self) -> &'a [u8] {
        self.levels
    }
}
