//! The zero-copy reader: [`NuqFile::parse`] validates a whole file and then hands out borrowed
//! views of its sections. `no_std`, no allocation, never panics.
//!
//! Every on-disk type has alignment 1 (see [`crate::le`]), so the input buffer may sit at any
//! address: nothing is copied and nothing is rejected for alignment.

mod aligns;
mod biases;
mod codebooks;
mod graph;
mod metadata;
mod scales;
mod table;
mod thresholds;
mod weights;
mod zero_points;

pub use aligns::{AlignTable, AlignsSection};
pub use biases::Biases;
pub use codebooks::{grid_range, Codebook, Codebooks};
pub use graph::{has_weights, input_arity, is_spatial, window_out, Graph, Layer};
pub use metadata::Metadata;
pub use scales::{pow2_f32, Scale, Scales};
pub use thresholds::{Thresholds, ThresholdsSection};
pub use weights::{Packing, Weights, WeightsSection, WORD_BITS};
pub use zero_points::{ZeroPoints, ZeroPointsSection};

use crate::crc32c::Crc32c;
use crate::enums::SectionKind;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::layout::{
    caps, RawHeader, RawSectionEntry, BYTE_ORDER_MARK, FILE_CRC_OFFSET, MAGIC, MAX_ALIGNMENT,
    MIN_ALIGNMENT, VERSION_MAJOR, VERSION_MINOR,
};
use core::mem::{offset_of, size_of};
use table::{align_up, SectionCtx};

/// One section-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionInfo {
    /// The raw kind.
    pub kind_raw: u32,
    /// The kind, or `None` for a kind the file's declared version does not define (such
    /// sections are skipped).
    pub kind: Option<SectionKind>,
    /// Offset of the payload in the file.
    pub offset: u64,
    /// Length of the payload.
    pub length: u64,
    /// CRC-32C of the payload.
    pub crc: u32,
}

/// A validated `.nuq` file.
#[derive(Debug, Clone, Copy)]
pub struct NuqFile<'a> {
    bytes: &'a [u8],
    header: &'a RawHeader,
    table: &'a [u8],
    entry_size: usize,
    graph: Graph<'a>,
    codebooks: Codebooks<'a>,
    weights: WeightsSection<'a>,
    biases: Biases<'a>,
    thresholds: ThresholdsSection<'a>,
    scales: Scales<'a>,
    metadata: Metadata<'a>,
    aligns: AlignsSection<'a>,
    zero_points: ZeroPointsSection<'a>,
}

fn herr(field: &'static str, offset: usize, kind: ErrorKind) -> Error {
    Error {
        location: Location::Header,
        record: None,
        field,
        offset: offset as u64,
        kind,
    }
}

fn terr(i: u32, field: &'static str, offset: u64, kind: ErrorKind) -> Error {
    Error {
        location: Location::SectionTable,
        record: Some(i),
        field,
        offset,
        kind,
    }
}

/// Checks that the magic, byte-order marker and version of `bytes` are ones this reader accepts:
/// the first 16 bytes mean the same in every major version.
pub fn check_identity(bytes: &[u8]) -> Result<(u16, u16)> {
    if bytes.len() < 16 {
        return Err(herr(
            "magic",
            0,
            ErrorKind::Truncated {
                needed: 16,
                available: bytes.len() as u64,
            },
        ));
    }
    if bytes[..8] != MAGIC {
        return Err(herr("magic", 0, ErrorKind::BadMagic));
    }
    let bom = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bom != BYTE_ORDER_MARK {
        return Err(herr("byte_order", 12, ErrorKind::ByteOrder { found: bom }));
    }
    let major = u16::from_le_bytes([bytes[8], bytes[9]]);
    let minor = u16::from_le_bytes([bytes[10], bytes[11]]);
    if major > VERSION_MAJOR {
        return Err(herr(
            "version_major",
            8,
            ErrorKind::NewerMajor {
                major,
                minor,
                supported: VERSION_MAJOR,
            },
        ));
    }
    if major < VERSION_MAJOR {
        return Err(herr(
            "version_major",
            8,
            ErrorKind::OlderMajor {
                major,
                supported: VERSION_MAJOR,
            },
        ));
    }
    Ok((major, minor))
}

/// The CRC-32C of a whole file as the header's `file_crc` field defines it: over every byte,
/// with the four bytes of the field itself taken as zero. `bytes` must be at least 44 bytes.
pub fn file_crc(bytes: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    let (head, rest) = bytes.split_at(FILE_CRC_OFFSET.min(bytes.len()));
    c.update(head);
    c.update_zeros(4.min(rest.len()));
    c.update(rest.get(4..).unwrap_or(&[]));
    c.finish()
}

impl<'a> NuqFile<'a> {
    /// Validates `bytes` completely: header, whole-file CRC, section table, every section's CRC,
    /// every section's records and blobs, and the graph's references and shapes.
    ///
    /// The rules applied are those of the minor version the file declares, up to 1.1: a file
    /// declaring 1.0 is read exactly as a 1.0 reader reads it (sections and ops of 1.1 are
    /// unknown to it), a file declaring 1.1 or later must follow the 1.1 rules.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (_, declared) = check_identity(bytes)?;
        let minor = declared.min(VERSION_MINOR);
        let hsize = size_of::<RawHeader>();
        let len = bytes.len() as u64;
        if bytes.len() < hsize {
            return Err(herr(
                "header",
                0,
                ErrorKind::Truncated {
                    needed: hsize as u64,
                    available: len,
                },
            ));
        }
        let header: &RawHeader = bytemuck::from_bytes(&bytes[..hsize]);
        if header.file_length.get() != len {
            return Err(herr(
                "file_length",
                offset_of!(RawHeader, file_length),
                ErrorKind::Mismatch {
                    found: header.file_length.get(),
                    expected: len,
                },
            ));
        }
        let computed = file_crc(bytes);
        if header.file_crc.get() != computed {
            return Err(herr(
                "file_crc",
                FILE_CRC_OFFSET,
                ErrorKind::Crc {
                    stored: header.file_crc.get(),
                    computed,
                },
            ));
        }
        let header_size = header.header_size.get();
        if header_size < hsize as u32
            || header_size > caps::HEAD
            || !header_size.is_multiple_of(8)
            || u64::from(header_size) > len
        {
            return Err(herr(
                "header_size",
                offset_of!(RawHeader, header_size),
                ErrorKind::Invalid {
                    found: header_size.into(),
                    expected: "a multiple of 8 in 64..=4096 within the file",
                },
            ));
        }
        if let Some(k) = header.reserved.iter().position(|&b| b != 0) {
            return Err(herr(
                "reserved",
                offset_of!(RawHeader, reserved) + k,
                ErrorKind::NonZeroPadding {
                    found: header.reserved[k],
                },
            ));
        }
        let flags = header.flags.get();
        if flags & 0xFFFF != 0 {
            return Err(herr(
                "flags",
                offset_of!(RawHeader, flags),
                ErrorKind::Invalid {
                    found: flags.into(),
                    expected: "no required-feature bits (0..15) set: none is defined in 1.x",
                },
            ));
        }
        let alignment = header.alignment.get();
        if !alignment.is_power_of_two() || !(MIN_ALIGNMENT..=MAX_ALIGNMENT).contains(&alignment) {
            return Err(herr(
                "alignment",
                offset_of!(RawHeader, alignment),
                ErrorKind::Invalid {
                    found: alignment.into(),
                    expected: "a power of two in 8..=65536",
                },
            ));
        }
        let count = header.section_count.get();
        if count > caps::SECTIONS {
            return Err(herr(
                "section_count",
                offset_of!(RawHeader, section_count),
                ErrorKind::CountCap {
                    count: count.into(),
                    cap: caps::SECTIONS.into(),
                },
            ));
        }
        if header.table_offset.get() != header_size {
            return Err(herr(
                "table_offset",
                offset_of!(RawHeader, table_offset),
                ErrorKind::Mismatch {
                    found: header.table_offset.get().into(),
                    expected: header_size.into(),
                },
            ));
        }
        let entry_size = header.entry_size.get();
        if entry_size < size_of::<RawSectionEntry>() as u32
            || entry_size > caps::HEAD
            || !entry_size.is_multiple_of(8)
        {
            return Err(herr(
                "entry_size",
                offset_of!(RawHeader, entry_size),
                ErrorKind::Invalid {
                    found: entry_size.into(),
                    expected: "a multiple of 8 in 32..=4096",
                },
            ));
        }
        let table_start = u64::from(header_size);
        let table_end = table_start + u64::from(count) * u64::from(entry_size);
        if table_end > len {
            return Err(herr(
                "section_count",
                offset_of!(RawHeader, section_count),
                ErrorKind::OutOfBounds {
                    offset: table_start,
                    length: table_end - table_start,
                    limit: len,
                },
            ));
        }
        let table = &bytes[table_start as usize..table_end as usize];
        let entry_size = entry_size as usize;

        // Walk the table: canonical placement, CRCs, known kinds at most once.
        let mut cursor = table_end;
        let mut found: [Option<SectionCtx<'a>>; 10] = [None; 10];
        for i in 0..count {
            let eo = table_start + u64::from(i) * entry_size as u64;
            let e: &RawSectionEntry = bytemuck::from_bytes(
                &table[i as usize * entry_size..][..size_of::<RawSectionEntry>()],
            );
            let kind_raw = e.kind.get();
            if e.flags.get() != 0 {
                return Err(terr(
                    i,
                    "flags",
                    eo + 4,
                    ErrorKind::Invalid {
                        found: e.flags.get().into(),
                        expected: "0",
                    },
                ));
            }
            if e.reserved.get() != 0 {
                return Err(terr(
                    i,
                    "reserved",
                    eo + 28,
                    ErrorKind::Invalid {
                        found: e.reserved.get().into(),
                        expected: "0",
                    },
                ));
            }
            let offset = e.offset.get();
            let length = e.length.get();
            let expected = align_up(cursor, alignment.into()).ok_or(terr(
                i,
                "offset",
                eo + 8,
                ErrorKind::Overflow,
            ))?;
            if offset != expected {
                return Err(terr(
                    i,
                    "offset",
                    eo + 8,
                    ErrorKind::Layout {
                        found: offset,
                        expected,
                    },
                ));
            }
            let end = offset.checked_add(length).ok_or(terr(
                i,
                "length",
                eo + 16,
                ErrorKind::Overflow,
            ))?;
            if end > len {
                return Err(terr(
                    i,
                    "length",
                    eo + 16,
                    ErrorKind::OutOfBounds {
                        offset,
                        length,
                        limit: len,
                    },
                ));
            }
            if let Some(k) = bytes[cursor as usize..offset as usize]
                .iter()
                .position(|&b| b != 0)
            {
                return Err(terr(
                    i,
                    "padding",
                    cursor + k as u64,
                    ErrorKind::NonZeroPadding {
                        found: bytes[cursor as usize + k],
                    },
                ));
            }
            let payload = &bytes[offset as usize..end as usize];
            let mut c = Crc32c::new();
            c.update(payload);
            if c.finish() != e.crc.get() {
                return Err(terr(
                    i,
                    "crc",
                    eo + 24,
                    ErrorKind::Crc {
                        stored: e.crc.get(),
                        computed: c.finish(),
                    },
                ));
            }
            if let Some(kind) = SectionKind::from_raw_in(kind_raw, minor) {
                let slot = &mut found[kind_raw as usize];
                if slot.is_some() {
                    return Err(terr(i, "kind", eo, ErrorKind::DuplicateSection));
                }
                *slot = Some(SectionCtx {
                    location: Location::Section(kind),
                    bytes: payload,
                    base: offset,
                });
            }
            cursor = end;
        }
        if cursor != len {
            return Err(herr(
                "file_length",
                offset_of!(RawHeader, file_length),
                ErrorKind::Mismatch {
                    found: len,
                    expected: cursor,
                },
            ));
        }
        let need = |kind: SectionKind| -> Result<SectionCtx<'a>> {
            found[kind.raw() as usize].ok_or(Error {
                location: Location::Section(kind),
                record: None,
                field: "kind",
                offset: table_start,
                kind: ErrorKind::MissingSection,
            })
        };
        let graph = Graph::parse(need(SectionKind::Graph)?, minor)?;
        let codebooks = Codebooks::parse(need(SectionKind::Codebooks)?)?;
        let weights = WeightsSection::parse(need(SectionKind::Weights)?)?;
        let biases = Biases::parse(need(SectionKind::Biases)?)?;
        let thresholds = ThresholdsSection::parse(need(SectionKind::Thresholds)?)?;
        let scales = Scales::parse(need(SectionKind::Scales)?)?;
        let metadata = Metadata::parse(need(SectionKind::Metadata)?)?;
        let (aligns, zero_points) = if minor >= 1 {
            (
                AlignsSection::parse(need(SectionKind::Aligns)?)?,
                ZeroPointsSection::parse(need(SectionKind::ZeroPoints)?)?,
            )
        } else {
            (AlignsSection::absent(), ZeroPointsSection::absent())
        };
        graph::validate_references(
            &graph,
            &graph::Tables {
                aligns: &aligns,
                zero_points: &zero_points,
                codebooks: &codebooks,
                weights: &weights,
                biases: &biases,
                thresholds: &thresholds,
                scales: &scales,
            },
        )?;
        Ok(NuqFile {
            bytes,
            header,
            table,
            entry_size,
            graph,
            codebooks,
            weights,
            biases,
            thresholds,
            scales,
            metadata,
            aligns,
            zero_points,
        })
    }

    /// The minor version whose rules this reader applied: the declared one, at most 1.
    pub fn rules_minor(&self) -> u16 {
        self.header.version_minor.get().min(VERSION_MINOR)
    }

    /// Whether the file has structure that [`crate::encode`] does not write for its model: a
    /// header, table entry, section head or record larger than in the version whose rules apply,
    /// a section of a kind that version does not know (both from a later minor version, read by
    /// skipping what is unknown), or the 1.1 layout for a model that uses no 1.1 feature (the
    /// writer declares 1.0 for such a model). A file without extensions is exactly what
    /// [`crate::encode`] writes for its model, up to the minor version number when it declares
    /// a later one and the informational header flags.
    pub fn uses_extensions(&self) -> bool {
        let minor = self.rules_minor();
        let uses_1_1 = !self.aligns.is_empty()
            || !self.zero_points.is_empty()
            || self.graph.iter().any(|l| l.op().since_minor() >= 1);
        (minor >= 1 && !uses_1_1)
            || self.header.header_size.get() as usize > size_of::<RawHeader>()
            || self.entry_size > size_of::<RawSectionEntry>()
            || self.sections().any(|s| s.kind.is_none())
            || self.graph.extended()
            || self.codebooks.extended()
            || self.weights.extended()
            || self.biases.extended()
            || self.thresholds.extended()
            || self.scales.extended()
            || self.metadata.extended()
            || self.aligns.extended()
            || self.zero_points.extended()
    }

    /// The file bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// `(major, minor)` version.
    pub fn version(&self) -> (u16, u16) {
        (
            self.header.version_major.get(),
            self.header.version_minor.get(),
        )
    }

    /// Header flags (only informational bits 16..31 can be set).
    pub fn flags(&self) -> u32 {
        self.header.flags.get()
    }

    /// Payload alignment.
    pub fn alignment(&self) -> u32 {
        self.header.alignment.get()
    }

    /// The stored whole-file CRC-32C.
    pub fn file_crc(&self) -> u32 {
        self.header.file_crc.get()
    }

    /// Number of sections, including skipped unknown ones.
    pub fn section_count(&self) -> u32 {
        self.header.section_count.get()
    }

    /// Section-table entry `i`.
    pub fn section(&self, i: u32) -> Option<SectionInfo> {
        let start = (i as usize).checked_mul(self.entry_size)?;
        let raw = self
            .table
            .get(start..start.checked_add(size_of::<RawSectionEntry>())?)?;
        let e: &RawSectionEntry = bytemuck::try_from_bytes(raw).ok()?;
        Some(SectionInfo {
            kind_raw: e.kind.get(),
            kind: SectionKind::from_raw_in(e.kind.get(), self.rules_minor()),
            offset: e.offset.get(),
            length: e.length.get(),
            crc: e.crc.get(),
        })
    }

    /// All section-table entries in table order.
    pub fn sections(&self) -> impl Iterator<Item = SectionInfo> + '_ {
        (0..self.section_count()).filter_map(|i| self.section(i))
    }

    /// The layer graph.
    pub fn graph(&self) -> &Graph<'a> {
        &self.graph
    }

    /// The codebooks.
    pub fn codebooks(&self) -> &Codebooks<'a> {
        &self.codebooks
    }

    /// The packed weight tensors.
    pub fn weights(&self) -> &WeightsSection<'a> {
        &self.weights
    }

    /// The bias vectors.
    pub fn biases(&self) -> &Biases<'a> {
        &self.biases
    }

    /// The threshold tables.
    pub fn thresholds(&self) -> &ThresholdsSection<'a> {
        &self.thresholds
    }

    /// The scales.
    pub fn scales(&self) -> &Scales<'a> {
        &self.scales
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata<'a> {
        &self.metadata
    }

    /// The alignment tables of residual joins (empty in a file declaring 1.0).
    pub fn aligns(&self) -> &AlignsSection<'a> {
        &self.aligns
    }

    /// The input zero-point tables (empty in a file declaring 1.0).
    pub fn zero_points(&self) -> &ZeroPointsSection<'a> {
        &self.zero_points
    }
}
