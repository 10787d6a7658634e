//! The BIASES section: `i32` vectors, one entry per output channel of the layer using them.

use super::table::{field, field_err, SectionCtx, Table};
use crate::error::{ErrorKind, Result};
use crate::layout::{caps, RawBias, RawTableHead, NUMERIC_BLOB_ALIGN};
use crate::le::I32Le;
use core::mem::size_of;

/// The validated BIASES section.
#[derive(Debug, Clone, Copy)]
pub struct Biases<'a> {
    table: Table<'a, RawBias>,
}

impl<'a> Biases<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawBias>::parse(ctx, size_of::<RawTableHead>() as u32)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let n = r.count.get();
            if n > caps::CHANNELS {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawBias,
                    count,
                    ErrorKind::CountCap {
                        count: n.into(),
                        cap: caps::CHANNELS.into()
                    }
                ));
            }
            ctx.ensure(
                r.reserved.get() == 0,
                field!(i, ro, RawBias, reserved),
                r.reserved.get(),
                "0",
            )?;
            let lo = ro + core::mem::offset_of!(RawBias, values) as u64;
            blobs.take(
                Some(i),
                "values",
                lo,
                &r.values,
                NUMERIC_BLOB_ALIGN,
                Some(4 * u64::from(n)),
            )?;
        }
        blobs.finish()?;
        Ok(Biases { table })
    }

    /// Number of bias vectors.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Bias vector `i`, zero-copy (`I32Le::get` reads a value).
    pub fn get(&self, i: u32) -> Option<&'a [I32Le]> {
        let raw = self.table.get(i)?;
        bytemuck::try_cast_slice(self.table.blob_bytes(&raw.values)).ok()
    }

    /// All bias vectors in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [I32Le]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}
