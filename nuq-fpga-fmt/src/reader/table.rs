//! Generic validation of a table section: its head, its fixed-size records and the blobs they
//! reference, which must follow the records in canonical order (each at the next multiple of its
//! alignment, zero padding in between, nothing after the last one).

use crate::error::{Error, ErrorKind, Location, Result};
use crate::layout::{caps, RawBlob, RawTableHead};
use bytemuck::Pod;
use core::marker::PhantomData;
use core::mem::size_of;

/// A section payload together with where it sits in the file, for error reporting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SectionCtx<'a> {
    pub location: Location,
    pub bytes: &'a [u8],
    /// Absolute offset of `bytes[0]` in the file.
    pub base: u64,
}

impl<'a> SectionCtx<'a> {
    pub fn err(
        &self,
        record: Option<u32>,
        field: &'static str,
        rel: u64,
        kind: ErrorKind,
    ) -> Error {
        Error {
            location: self.location,
            record,
            field,
            offset: self.base.saturating_add(rel),
            kind,
        }
    }

    /// `Ok` when `ok` holds, else an [`ErrorKind::Invalid`] error at `field` (from [`field!`])
    /// saying what was `found` and what the format `expected`: the check most record fields get.
    pub fn ensure(
        &self,
        ok: bool,
        field: Field,
        found: impl Into<u64>,
        expected: &'static str,
    ) -> Result<()> {
        if ok {
            return Ok(());
        }
        let kind = ErrorKind::Invalid {
            found: found.into(),
            expected,
        };
        Err(self.err(Some(field.record), field.name, field.at, kind))
    }

    /// A channel count at `field`, checked to be in `1..=2^24`.
    pub fn channels(&self, field: Field, channels: u32) -> Result<u32> {
        let ok = channels != 0 && channels <= caps::CHANNELS;
        self.ensure(ok, field, channels, "1..=2^24")?;
        Ok(channels)
    }

    /// A code width at `field`, checked to be in `1..=8` bits.
    pub fn code_bits(&self, field: Field, bits: u8) -> Result<u8> {
        self.ensure((1..=8).contains(&bits), field, bits, "1..=8")?;
        Ok(bits)
    }

    /// `bytes[rel .. rel + len]`, or a `Truncated`/`OutOfBounds` error naming `field`.
    pub fn slice(
        &self,
        record: Option<u32>,
        field: &'static str,
        rel: u64,
        len: u64,
    ) -> Result<&'a [u8]> {
        let limit = self.bytes.len() as u64;
        let end = rel
            .checked_add(len)
            .ok_or(self.err(record, field, rel, ErrorKind::Overflow))?;
        if end > limit {
            return Err(self.err(
                record,
                field,
                rel,
                ErrorKind::OutOfBounds {
                    offset: rel,
                    length: len,
                    limit,
                },
            ));
        }
        // Both bounds are <= bytes.len(), which is a usize.
        Ok(&self.bytes[rel as usize..end as usize])
    }

    /// A `Pod` value at `rel`.
    pub fn pod<T: Pod>(&self, record: Option<u32>, field: &'static str, rel: u64) -> Result<&'a T> {
        let s = self.slice(record, field, rel, size_of::<T>() as u64)?;
        bytemuck::try_from_bytes(s).map_err(|_| {
            self.err(
                record,
                field,
                rel,
                ErrorKind::Invalid {
                    found: rel,
                    expected: "an in-bounds record",
                },
            )
        })
    }

    /// Checks that `bytes[from..to]` are all zero.
    pub fn zeros(
        &self,
        record: Option<u32>,
        field: &'static str,
        from: u64,
        to: u64,
    ) -> Result<()> {
        let s = self.slice(record, field, from, to.saturating_sub(from))?;
        match s.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(i) => Err(self.err(
                record,
                field,
                from + i as u64,
                ErrorKind::NonZeroPadding { found: s[i] },
            )),
        }
    }
}

/// Rounds `v` up to a multiple of the power of two `a`, or `None` on overflow.
pub(crate) fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// A validated table section: a head of `head_size` bytes, then `count` records of
/// `record_size` bytes, of which this version reads the first `size_of::<R>()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table<'a, R> {
    pub ctx: SectionCtx<'a>,
    pub head_size: u64,
    pub record_size: u64,
    pub count: u32,
    /// Whether the head or the records are larger than in the declared version (a later minor
    /// version): then bytes may follow the last blob this version knows (blobs of the newer
    /// fields).
    pub extended: bool,
    _r: PhantomData<R>,
}

impl<'a, R: Pod> Table<'a, R> {
    /// Validates the common head (given the size of this kind's head in 1.0).
    pub fn parse(ctx: SectionCtx<'a>, min_head: u32) -> Result<Self> {
        Self::parse_sized(ctx, min_head, size_of::<R>() as u32)
    }

    /// As [`Table::parse`], with the smallest record size the declared version allows
    /// (`min_rec >= size_of::<R>()`: a later minor version may have grown the record).
    pub fn parse_sized(ctx: SectionCtx<'a>, min_head: u32, min_rec: u32) -> Result<Self> {
        let head: &RawTableHead = ctx.pod(None, "head", 0)?;
        let head_size = head.head_size.get();
        if head_size < min_head || head_size > caps::HEAD || !head_size.is_multiple_of(8) {
            return Err(ctx.err(
                None,
                "head_size",
                0,
                ErrorKind::Invalid {
                    found: head_size.into(),
                    expected: "a multiple of 8, at least this kind's head size, at most 4096",
                },
            ));
        }
        let record_size = head.record_size.get();
        if record_size < min_rec || record_size > caps::HEAD || !record_size.is_multiple_of(8) {
            return Err(ctx.err(
                None,
                "record_size",
                4,
                ErrorKind::Invalid {
                    found: record_size.into(),
                    expected: "a multiple of 8, at least this kind's record size in the declared version, at most 4096",
                },
            ));
        }
        let count = head.count.get();
        if count > caps::RECORDS {
            return Err(ctx.err(
                None,
                "count",
                8,
                ErrorKind::CountCap {
                    count: count.into(),
                    cap: caps::RECORDS.into(),
                },
            ));
        }
        if head.reserved.get() != 0 {
            return Err(ctx.err(
                None,
                "reserved",
                12,
                ErrorKind::Invalid {
                    found: head.reserved.get().into(),
                    expected: "0",
                },
            ));
        }
        let t = Table {
            ctx,
            head_size: head_size.into(),
            record_size: record_size.into(),
            count,
            extended: head_size > min_head || record_size > min_rec,
            _r: PhantomData,
        };
        // The records themselves must fit.
        let end = t.records_end();
        ctx.slice(None, "records", t.head_size, end - t.head_size)?;
        Ok(t)
    }

    /// Offset just past the last record (cannot overflow: both factors are capped).
    pub fn records_end(&self) -> u64 {
        self.head_size + self.record_size * u64::from(self.count)
    }

    /// Offset of record `i` from the section start.
    pub fn record_offset(&self, i: u32) -> u64 {
        self.head_size + self.record_size * u64::from(i)
    }

    /// Record `i`, or `None` when out of range.
    pub fn get(&self, i: u32) -> Option<&'a R> {
        if i >= self.count {
            return None;
        }
        self.ctx
            .pod::<R>(Some(i), "record", self.record_offset(i))
            .ok()
    }

    /// Record `i` for validation (errors name the record).
    pub fn record(&self, i: u32) -> Result<&'a R> {
        self.ctx.pod::<R>(Some(i), "record", self.record_offset(i))
    }

    /// A blob cursor positioned after the records.
    pub fn blobs(&self) -> BlobCursor<'a> {
        BlobCursor {
            ctx: self.ctx,
            cursor: self.records_end(),
            extended: self.extended,
        }
    }

    /// The bytes of a blob whose reference was validated when the section was parsed.
    pub fn blob_bytes(&self, blob: &RawBlob) -> &'a [u8] {
        self.ctx
            .slice(None, "blob", blob.offset.get(), blob.length.get())
            .unwrap_or(&[])
    }
}

/// Walks the blobs of a section in canonical order.
pub(crate) struct BlobCursor<'a> {
    ctx: SectionCtx<'a>,
    cursor: u64,
    extended: bool,
}

impl<'a> BlobCursor<'a> {
    /// Validates that `blob` (the reference stored at section offset `field_rel`) starts at the
    /// next multiple of `align` after the previous blob, that the padding is zero, that its
    /// length is `expected_len` (when given) and that it lies inside the section.
    pub fn take(
        &mut self,
        record: Option<u32>,
        field: &'static str,
        field_rel: u64,
        blob: &RawBlob,
        align: u64,
        expected_len: Option<u64>,
    ) -> Result<&'a [u8]> {
        let ctx = self.ctx;
        let offset = blob.offset.get();
        let length = blob.length.get();
        let expected = align_up(self.cursor, align).ok_or(ctx.err(
            record,
            field,
            field_rel,
            ErrorKind::Overflow,
        ))?;
        if offset != expected {
            return Err(ctx.err(
                record,
                field,
                field_rel,
                ErrorKind::Layout {
                    found: offset,
                    expected,
                },
            ));
        }
        if let Some(want) = expected_len {
            if length != want {
                return Err(ctx.err(
                    record,
                    field,
                    field_rel + 8,
                    ErrorKind::Mismatch {
                        found: length,
                        expected: want,
                    },
                ));
            }
        }
        ctx.zeros(record, "padding", self.cursor, offset)?;
        let data = ctx.slice(record, field, offset, length).map_err(|mut e| {
            e.offset = ctx.base.saturating_add(field_rel);
            e
        })?;
        self.cursor = offset + length;
        Ok(data)
    }

    /// Validates that nothing follows the last blob, unless the section is extended by a later
    /// minor version (whose blobs follow the ones this version knows).
    pub fn finish(self) -> Result<()> {
        let len = self.ctx.bytes.len() as u64;
        if self.cursor != len && !(self.extended && self.cursor < len) {
            return Err(self.ctx.err(
                None,
                "length",
                self.cursor,
                ErrorKind::Mismatch {
                    found: len,
                    expected: self.cursor,
                },
            ));
        }
        Ok(())
    }
}

/// A UTF-8 string blob of at most `caps::STRING` bytes.
pub(crate) fn string<'a>(
    ctx: &SectionCtx<'a>,
    record: Option<u32>,
    field: &'static str,
    rel: u64,
    bytes: &'a [u8],
) -> Result<&'a str> {
    if bytes.len() as u64 > caps::STRING {
        return Err(ctx.err(
            record,
            field,
            rel,
            ErrorKind::CountCap {
                count: bytes.len() as u64,
                cap: caps::STRING,
            },
        ));
    }
    core::str::from_utf8(bytes).map_err(|_| ctx.err(record, field, rel, ErrorKind::NotUtf8))
}

/// Checks a reserved field is zero.
pub(crate) fn reserved_zero(
    ctx: &SectionCtx<'_>,
    record: Option<u32>,
    field: &'static str,
    rel: u64,
    bytes: &[u8],
) -> Result<()> {
    match bytes.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(ctx.err(
            record,
            field,
            rel + i as u64,
            ErrorKind::NonZeroPadding { found: bytes[i] },
        )),
    }
}

/// A field of one record, for errors: the record's index, the field's name and its offset in
/// the section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub record: u32,
    pub name: &'static str,
    pub at: u64,
}

/// `field!(i, ro, RawType, name)`: field `name` of record `i` (of type `RawType`, at section
/// offset `ro`), as a [`Field`].
macro_rules! field {
    ($i:expr, $ro:expr, $ty:ty, $field:ident) => {
        $crate::reader::table::Field {
            record: $i,
            name: stringify!($field),
            at: $ro + core::mem::offset_of!($ty, $field) as u64,
        }
    };
}
pub(crate) use field;

/// Builds the error for field `$field` of record `$i` (at section offset `$ro`) of type `$ty`.
macro_rules! field_err {
    ($ctx:expr, $i:expr, $ro:expr, $ty:ty, $field:ident, $kind:expr) => {
        $ctx.err(
            Some($i),
            stringify!($field),
            $ro + core::mem::offset_of!($ty, $field) as u64,
            $kind,
        )
    };
}
pub(crate) use field_err;
