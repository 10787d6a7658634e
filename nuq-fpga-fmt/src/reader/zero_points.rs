//! The ZERO_POINTS section (format 1.1): per channel, the input code that stands for a real
//! zero (the padding value of an `input_zp` layer).

use super::table::{field, reserved_zero, SectionCtx, Table};
use crate::error::{ErrorKind, Result};
use crate::layout::{RawTableHead, RawZeroPoints, BYTE_BLOB_ALIGN};
use core::mem::{offset_of, size_of};

/// The validated ZERO_POINTS section (empty in a file declaring format 1.0).
#[derive(Debug, Clone, Copy)]
pub struct ZeroPointsSection<'a> {
    table: Option<Table<'a, RawZeroPoints>>,
}

/// One validated zero-point table, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct ZeroPoints<'a> {
    bits: u8,
    values: &'a [u8],
}

impl<'a> ZeroPointsSection<'a> {
    /// The section of a file that has none (declared version 1.0).
    pub(crate) fn absent() -> Self {
        ZeroPointsSection { table: None }
    }

    /// Whether this section's head or records are larger than in 1.1 (a later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.is_some_and(|t| t.extended)
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawZeroPoints>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let channels = r.channels.get();
            ctx.channels(field!(i, ro, RawZeroPoints, channels), channels)?;
            ctx.code_bits(field!(i, ro, RawZeroPoints, bits), r.bits)?;
            reserved_zero(&ctx, Some(i), "reserved", ro + 5, &r.reserved)?;
            let vo = ro + offset_of!(RawZeroPoints, values) as u64;
            let values = blobs.take(
                Some(i),
                "values",
                vo,
                &r.values,
                BYTE_BLOB_ALIGN,
                Some(channels.into()),
            )?;
            if let Some(c) = values.iter().position(|&v| u32::from(v) >> r.bits != 0) {
                return Err(ctx.err(
                    Some(i),
                    "values",
                    r.values.offset.get() + c as u64,
                    ErrorKind::OutOfRange {
                        found: values[c].into(),
                        min: 0,
                        max: (1i64 << r.bits) - 1,
                    },
                ));
            }
        }
        blobs.finish()?;
        Ok(ZeroPointsSection { table: Some(table) })
    }

    /// Number of zero-point tables.
    pub fn len(&self) -> u32 {
        self.table.map_or(0, |t| t.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Table `i`.
    pub fn get(&self, i: u32) -> Option<ZeroPoints<'a>> {
        let table = self.table?;
        let raw = table.get(i)?;
        Some(ZeroPoints {
            bits: raw.bits,
            values: table.blob_bytes(&raw.values),
        })
    }

    /// All tables in order.
    pub fn iter(&self) -> impl Iterator<Item = ZeroPoints<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a> ZeroPoints<'a> {
    /// Code bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of channels.
    pub fn channels(&self) -> u32 {
        self.values.len() as u32
    }

    /// The zero-point codes, one per channel.
    pub fn values(&self) -> &'a [u8] {
        self.values
    }
}
