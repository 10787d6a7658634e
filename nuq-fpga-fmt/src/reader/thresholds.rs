//! The THRESHOLDS section: per channel, `2^b - 1` ascending `i32` MAC thresholds and a direction.

use super::table::{field, field_err, reserved_zero, SectionCtx, Table};
use crate::enums::Direction;
use crate::error::{ErrorKind, Result};
use crate::layout::{RawTableHead, RawThresholds, BYTE_BLOB_ALIGN, NUMERIC_BLOB_ALIGN};
use crate::le::I32Le;
use core::mem::size_of;

/// The validated THRESHOLDS section.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdsSection<'a> {
    table: Table<'a, RawThresholds>,
}

/// One validated threshold table, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds<'a> {
    bits: u8,
    values: &'a [I32Le],
    directions: &'a [u8],
}

impl<'a> ThresholdsSection<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawThresholds>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let channels = r.channels.get();
            ctx.channels(field!(i, ro, RawThresholds, channels), channels)?;
            ctx.code_bits(field!(i, ro, RawThresholds, bits), r.bits)?;
            reserved_zero(&ctx, Some(i), "reserved", ro + 5, &r.reserved)?;
            let per = (1u64 << r.bits) - 1;
            let lo = ro + core::mem::offset_of!(RawThresholds, values) as u64;
            let vb = blobs.take(
                Some(i),
                "values",
                lo,
                &r.values,
                NUMERIC_BLOB_ALIGN,
                Some(4 * per * u64::from(channels)),
            )?;
            let values: &[I32Le] = bytemuck::try_cast_slice(vb)
                .map_err(|_| field_err!(ctx, i, ro, RawThresholds, values, ErrorKind::Overflow))?;
            for (c, row) in values.chunks_exact(per as usize).enumerate() {
                if let Some(k) = row.windows(2).position(|w| w[1].get() < w[0].get()) {
                    let at = r.values.offset.get() + 4 * (c as u64 * per + k as u64 + 1);
                    return Err(ctx.err(
                        Some(i),
                        "values",
                        at,
                        ErrorKind::NotSorted {
                            index: c as u64 * per + k as u64 + 1,
                        },
                    ));
                }
            }
            let dlo = ro + core::mem::offset_of!(RawThresholds, directions) as u64;
            let dirs = blobs.take(
                Some(i),
                "directions",
                dlo,
                &r.directions,
                BYTE_BLOB_ALIGN,
                Some(channels.into()),
            )?;
            if let Some(c) = dirs.iter().position(|&d| Direction::from_raw(d).is_none()) {
                let at = r.directions.offset.get() + c as u64;
                return Err(ctx.err(
                    Some(i),
                    "directions",
                    at,
                    ErrorKind::Invalid {
                        found: dirs[c].into(),
                        expected: "0 (rising) or 1 (falling)",
                    },
                ));
            }
        }
        blobs.finish()?;
        Ok(ThresholdsSection { table })
    }

    /// Number of threshold tables.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Table `i`.
    pub fn get(&self, i: u32) -> Option<Thresholds<'a>> {
        let raw = self.table.get(i)?;
        Some(Thresholds {
            bits: raw.bits,
            values: bytemuck::try_cast_slice(self.table.blob_bytes(&raw.values)).ok()?,
            directions: self.table.blob_bytes(&raw.directions),
        })
    }

    /// All tables in order.
    pub fn iter(&self) -> impl Iterator<Item = Thresholds<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a> Thresholds<'a> {
    /// Output code bits `b`.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of channels.
    pub fn channels(&self) -> u32 {
        self.directions.len() as u32
    }

    /// Thresholds per channel (`2^b - 1`).
    pub fn per_channel(&self) -> usize {
        (1usize << self.bits) - 1
    }

    /// The ascending thresholds of channel `c`.
    pub fn channel(&self, c: u32) -> Option<&'a [I32Le]> {
        let per = self.per_channel();
        let start = (c as usize).checked_mul(per)?;
        self.values.get(start..start.checked_add(per)?)
    }

    /// The direction of channel `c`.
    pub fn direction(&self, c: u32) -> Option<Direction> {
        Direction::from_raw(*self.directions.get(c as usize)?)
    }

    /// All thresholds, channel-major.
    pub fn values(&self) -> &'a [I32Le] {
        self.values
    }

    /// The output code of channel `c` for accumulator `acc`.
    pub fn code(&self, c: u32, acc: i32) -> Option<u32> {
        self.code_wide(c, i64::from(acc))
    }

    /// The output code of channel `c` for a 64-bit sum (an `aligned_add`), comparing it with
    /// the sign-extended thresholds.
    pub fn code_wide(&self, c: u32, acc: i64) -> Option<u32> {
        let t = self.channel(c)?.iter().map(|v| i64::from(v.get()));
        Some(match self.direction(c)? {
            crate::Direction::Rising => t.filter(|&th| acc >= th).count() as u32,
            crate::Direction::Falling => t.filter(|&th| acc <= th).count() as u32,
        })
    }
}
