//! The METADATA section: producer, producer version and free key/value pairs (UTF-8), sorted by
//! key.

use super::table::{field_err, string, SectionCtx, Table};
use crate::error::{ErrorKind, Result};
use crate::layout::{RawMetaEntry, RawMetaHead, BYTE_BLOB_ALIGN};
use core::mem::{offset_of, size_of};

/// The validated METADATA section.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    table: Table<'a, RawMetaEntry>,
    producer: &'a str,
    producer_version: &'a str,
}

impl<'a> Metadata<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    pub(crate) fn parse(ctx: SectionCtx<'a>) -> Result<Self> {
        let table = Table::<RawMetaEntry>::parse(ctx, size_of::<RawMetaHead>() as u32)?;
        let head: &RawMetaHead = ctx.pod(None, "head", 0)?;
        let mut blobs = table.blobs();
        let po = offset_of!(RawMetaHead, producer) as u64;
        let pb = blobs.take(None, "producer", po, &head.producer, BYTE_BLOB_ALIGN, None)?;
        let producer = string(&ctx, None, "producer", po, pb)?;
        let vo = offset_of!(RawMetaHead, producer_version) as u64;
        let vb = blobs.take(
            None,
            "producer_version",
            vo,
            &head.producer_version,
            BYTE_BLOB_ALIGN,
            None,
        )?;
        let producer_version = string(&ctx, None, "producer_version", vo, vb)?;
        let mut prev: Option<&[u8]> = None;
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let ko = ro + offset_of!(RawMetaEntry, key) as u64;
            let key = blobs.take(Some(i), "key", ko, &r.key, BYTE_BLOB_ALIGN, None)?;
            string(&ctx, Some(i), "key", ko, key)?;
            if key.is_empty() {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawMetaEntry,
                    key,
                    ErrorKind::Invalid {
                        found: 0,
                        expected: "a non-empty key"
                    }
                ));
            }
            if prev.is_some_and(|p| p >= key) {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawMetaEntry,
                    key,
                    ErrorKind::NotSorted { index: i.into() }
                ));
            }
            prev = Some(key);
            let vo = ro + offset_of!(RawMetaEntry, value) as u64;
            let value = blobs.take(Some(i), "value", vo, &r.value, BYTE_BLOB_ALIGN, None)?;
            string(&ctx, Some(i), "value", vo, value)?;
        }
        blobs.finish()?;
        Ok(Metadata {
            table,
            producer,
            producer_version,
        })
    }

    /// Name of the producing tool.
    pub fn producer(&self) -> &'a str {
        self.producer
    }

    /// Version of the producing tool.
    pub fn producer_version(&self) -> &'a str {
        self.producer_version
    }

    /// Number of key/value entries.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Entry `i` as `(key, value)`.
    pub fn entry(&self, i: u32) -> Option<(&'a str, &'a str)> {
        let r = self.table.get(i)?;
        let k = core::str::from_utf8(self.table.blob_bytes(&r.key)).ok()?;
        let v = core::str::from_utf8(self.table.blob_bytes(&r.value)).ok()?;
        Some((k, v))
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        (0..self.len()).filter_map(|i| self.entry(i))
    }

    /// The value for `key` (binary search: keys are sorted).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let (mut lo, mut hi) = (0u32, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, v) = self.entry(mid)?;
            match k.as_bytes().cmp(key.as_bytes()) {
                core::cmp::Ordering::Equal => return Some(v),
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }
}
