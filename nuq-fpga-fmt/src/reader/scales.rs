//! The SCALES section: real scales (`f32`) with their optional hardware forms.

use super::table::{field, reserved_zero, SectionCtx, Table};
use crate::error::Result;
use crate::layout::{RawScale, RawTableHead, SCALE_FORM_MULSHIFT, SCALE_FORM_POW2};
use core::mem::size_of;

/// The validated SCALES section.
#[derive(Debug, Clone, Copy)]
pub struct Scales<'a> {
    table: Table<'a, RawScale>,
}

/// One scale: `real = value × integer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// The real scale (finite, > 0).
    pub value: f32,
    /// `Some(e)` when `value == 2^e` exactly and the producer marked the power-of-two form.
    pub exponent: Option<i32>,
    /// `Some((m, s))` when the producer gave the fixed-point form `value ≈ m / 2^s`.
    pub multiplier_shift: Option<(i32, u8)>,
}

/// The record of a `nuq-core` scale: its value, no hardware forms.
impl From<nuq_core::Scale> for Scale {
    fn from(s: nuq_core::Scale) -> Scale {
        Scale {
            value: s.get(),
            exponent: None,
            multiplier_shift: None,
        }
    }
}

/// `2^e` as an `f32` for a normal exponent `e` in `-126..=127`.
pub fn pow2_f32(e: i32) -> Option<f32> {
    if !(-126..=127).contains(&e) {
        return None;
    }
    Some(f32::from_bits(((e + 127) as u32) << 23))
}

impl<'a> Scales<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawScale>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let v = f32::from_bits(r.value.get());
            ctx.ensure(
                v.is_finite() && v > 0.0,
                field!(i, ro, RawScale, value),
                r.value.get(),
                "the bits of a finite f32 > 0",
            )?;
            ctx.ensure(
                r.forms & !(SCALE_FORM_POW2 | SCALE_FORM_MULSHIFT) == 0,
                field!(i, ro, RawScale, forms),
                r.forms,
                "a combination of bit 0 (exponent) and bit 1 (multiplier/shift)",
            )?;
            let e = r.exponent.get() as i32;
            if r.forms & SCALE_FORM_POW2 != 0 {
                ctx.ensure(
                    pow2_f32(e).map(f32::to_bits) == Some(r.value.get()),
                    field!(i, ro, RawScale, exponent),
                    r.exponent.get(),
                    "e in -126..=127 with value == 2^e exactly",
                )?;
            } else {
                ctx.ensure(
                    e == 0,
                    field!(i, ro, RawScale, exponent),
                    r.exponent.get(),
                    "0 when the exponent form is absent",
                )?;
            }
            let m = r.multiplier.get() as i32;
            if r.forms & SCALE_FORM_MULSHIFT != 0 {
                ctx.ensure(
                    m > 0,
                    field!(i, ro, RawScale, multiplier),
                    r.multiplier.get(),
                    "an i32 > 0",
                )?;
                ctx.ensure(
                    r.shift <= 63,
                    field!(i, ro, RawScale, shift),
                    r.shift,
                    "0..=63",
                )?;
            } else {
                ctx.ensure(
                    m == 0 && r.shift == 0,
                    field!(i, ro, RawScale, multiplier),
                    r.multiplier.get(),
                    "multiplier and shift 0 when the multiplier form is absent",
                )?;
            }
            reserved_zero(&ctx, Some(i), "reserved0", ro + 6, &r.reserved0)?;
            reserved_zero(&ctx, Some(i), "reserved1", ro + 16, &r.reserved1.0)?;
        }
        table.blobs().finish()?;
        Ok(Scales { table })
    }

    /// Number of scales.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Scale `i`.
    pub fn get(&self, i: u32) -> Option<Scale> {
        let r = self.table.get(i)?;
        Some(Scale {
            value: f32::from_bits(r.value.get()),
            exponent: (r.forms & SCALE_FORM_POW2 != 0).then_some(r.exponent.get() as i32),
            multiplier_shift: (r.forms & SCALE_FORM_MULSHIFT != 0)
                .then_some((r.multiplier.get() as i32, r.shift)),
        })
    }

    /// All scales in order.
    pub fn iter(&self) -> impl Iterator<Item = Scale> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}
