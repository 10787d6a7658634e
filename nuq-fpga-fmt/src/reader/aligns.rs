//! The ALIGNS section (format 1.1): per channel, the fixed-point factor
//! `multiplier / 2^shift` that brings the shortcut of an `aligned_add` layer into the units of
//! its main accumulator, and the left shift of that accumulator.

use super::table::{field, reserved_zero, SectionCtx, Table};
use crate::error::{ErrorKind, Result};
use crate::layout::{caps, RawAlign, RawTableHead, BYTE_BLOB_ALIGN, NUMERIC_BLOB_ALIGN};
use crate::le::I32Le;
use core::mem::{offset_of, size_of};
use nuq_core::FixedPointMultiplier;

/// The validated ALIGNS section (empty in a file declaring format 1.0).
#[derive(Debug, Clone, Copy)]
pub struct AlignsSection<'a> {
    table: Option<Table<'a, RawAlign>>,
}

/// One validated alignment table, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct AlignTable<'a> {
    main_shift: u8,
    multipliers: &'a [I32Le],
    shifts: &'a [u8],
}

impl<'a> AlignsSection<'a> {
    /// The section of a file that has none (declared version 1.0).
    pub(crate) fn absent() -> Self {
        AlignsSection { table: None }
    }

    /// Whether this section's head or records are larger than in 1.1 (a later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.is_some_and(|t| t.extended)
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawAlign>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let channels = r.channels.get();
            ctx.channels(field!(i, ro, RawAlign, channels), channels)?;
            ctx.ensure(
                r.main_shift <= caps::MAIN_SHIFT,
                field!(i, ro, RawAlign, main_shift),
                r.main_shift,
                "0..=30",
            )?;
            reserved_zero(&ctx, Some(i), "reserved", ro + 5, &r.reserved)?;
            let mo = ro + offset_of!(RawAlign, multipliers) as u64;
            blobs.take(
                Some(i),
                "multipliers",
                mo,
                &r.multipliers,
                NUMERIC_BLOB_ALIGN,
                Some(4 * u64::from(channels)),
            )?;
            let so = ro + offset_of!(RawAlign, shifts) as u64;
            let shifts = blobs.take(
                Some(i),
                "shifts",
                so,
                &r.shifts,
                BYTE_BLOB_ALIGN,
                Some(channels.into()),
            )?;
            if let Some(c) = shifts.iter().position(|&s| s > caps::ALIGN_SHIFT) {
                return Err(ctx.err(
                    Some(i),
                    "shifts",
                    r.shifts.offset.get() + c as u64,
                    ErrorKind::Invalid {
                        found: shifts[c].into(),
                        expected: "0..=62",
                    },
                ));
            }
        }
        blobs.finish()?;
        Ok(AlignsSection { table: Some(table) })
    }

    /// Number of alignment tables.
    pub fn len(&self) -> u32 {
        self.table.map_or(0, |t| t.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Table `i`.
    pub fn get(&self, i: u32) -> Option<AlignTable<'a>> {
        let table = self.table?;
        let raw = table.get(i)?;
        Some(AlignTable {
            main_shift: raw.main_shift,
            multipliers: bytemuck::try_cast_slice(table.blob_bytes(&raw.multipliers)).ok()?,
            shifts: table.blob_bytes(&raw.shifts),
        })
    }

    /// All tables in order.
    pub fn iter(&self) -> impl Iterator<Item = AlignTable<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a> AlignTable<'a> {
    /// Number of channels.
    pub fn channels(&self) -> u32 {
        self.shifts.len() as u32
    }

    /// Left shift of the main accumulator (0..=30).
    pub fn main_shift(&self) -> u8 {
        self.main_shift
    }

    /// The multipliers, one per channel.
    pub fn multipliers(&self) -> &'a [I32Le] {
        self.multipliers
    }

    /// The right shifts, one per channel.
    pub fn shifts(&self) -> &'a [u8] {
        self.shifts
    }

    /// `(multiplier, shift)` of channel `c`.
    pub fn factor(&self, c: u32) -> Option<(i32, u8)> {
        let c = c as usize;
        Some((self.multipliers.get(c)?.get(), *self.shifts.get(c)?))
    }

    /// The 64-bit sum an `aligned_add` forms in channel `c` before its thresholds:
    /// `(main << main_shift) + round_half_up(shortcut · multiplier_c / 2^shift_c)`, exact
    /// (`nuq-core`'s [`FixedPointMultiplier::apply`]); `None` for a channel out of range
    /// or a shift the format forbids.
    pub fn sum(&self, c: u32, main: i32, shortcut: i32) -> Option<i64> {
        let (m, s) = self.factor(c)?;
        let align = FixedPointMultiplier::new(m, s).ok()?;
        if self.main_shift > caps::MAIN_SHIFT {
            return None;
        }
        Some((i64::from(main) << self.main_shift) + align.apply(i64::from(shortcut)))
    }
}
