//! Reader errors. Every error names where it was found: the section (or header / section
//! table), the record index inside a table section when there is one, the field, and the
//! absolute byte offset in the file of the offending field or byte.

use crate::enums::SectionKind;
use core::fmt;

/// Where in the file an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The 64-byte file header.
    Header,
    /// The section table.
    SectionTable,
    /// The payload of a section of a known kind.
    Section(SectionKind),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => f.write_str("header"),
            Location::SectionTable => f.write_str("section table"),
            Location::Section(k) => write!(f, "section {k}"),
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The data ends before a structure does.
    #[error("needs {needed} bytes, only {available} available")]
    Truncated {
        /// Bytes the structure needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The file does not start with the magic bytes.
    #[error("bad magic: not a .nuq file")]
    BadMagic,
    /// The byte-order marker does not read 0x0A0B0C0D little-endian.
    #[error("byte-order marker is {found:#010x}, expected 0x0a0b0c0d (file is not little-endian)")]
    ByteOrder {
        /// The marker as read.
        found: u32,
    },
    /// The file's major version is newer than this reader.
    #[error("format version {major}.{minor} is newer than this reader (reads major {supported}); upgrade the reader")]
    NewerMajor {
        /// Major version in the file.
        major: u16,
        /// Minor version in the file.
        minor: u16,
        /// The major version this reader reads.
        supported: u16,
    },
    /// The file's major version is older than any this reader knows (0).
    #[error("format major version {major} is not supported (this reader reads major {supported})")]
    OlderMajor {
        /// Major version in the file.
        major: u16,
        /// The major version this reader reads.
        supported: u16,
    },
    /// A checksum does not match.
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A value is not what the format requires.
    #[error("value {found} is invalid: expected {expected}")]
    Invalid {
        /// The value found.
        found: u64,
        /// What the format requires.
        expected: &'static str,
    },
    /// A value differs from the one the rest of the file implies.
    #[error("value {found} does not match the expected {expected}")]
    Mismatch {
        /// The value found.
        found: u64,
        /// The value implied by the rest of the file.
        expected: u64,
    },
    /// A signed value is out of its allowed range.
    #[error("value {found} is outside {min}..={max}")]
    OutOfRange {
        /// The value found.
        found: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A region lies (partly) outside its container.
    #[error("region {offset}+{length} exceeds the {limit} available bytes")]
    OutOfBounds {
        /// Start of the region.
        offset: u64,
        /// Length of the region.
        length: u64,
        /// Size of the container.
        limit: u64,
    },
    /// A region does not start where the canonical layout puts it (overlap or gap).
    #[error("region starts at {found}, expected {expected} (regions must be packed in order without overlap)")]
    Layout {
        /// Where the region starts.
        found: u64,
        /// Where the canonical layout puts it.
        expected: u64,
    },
    /// A count exceeds its cap.
    #[error("count {count} exceeds the cap {cap}")]
    CountCap {
        /// The count.
        count: u64,
        /// The cap.
        cap: u64,
    },
    /// A byte that must be zero (reserved field or padding) is not.
    #[error("reserved or padding byte is {found:#04x}, must be zero")]
    NonZeroPadding {
        /// The byte found.
        found: u8,
    },
    /// A section kind this version defines appears twice.
    #[error("section appears twice")]
    DuplicateSection,
    /// A section every file of its declared version must have is missing.
    #[error("required section is missing")]
    MissingSection,
    /// A reference points past the end of the table it names, or to a later layer.
    #[error("reference {found} is out of range: must be below {limit}")]
    BadReference {
        /// The reference.
        found: u64,
        /// The exclusive upper bound.
        limit: u64,
    },
    /// A string is not UTF-8.
    #[error("string is not valid UTF-8")]
    NotUtf8,
    /// A list that must be sorted is not.
    #[error("element {index} breaks the required ascending order")]
    NotSorted {
        /// Index of the first element out of order.
        index: u64,
    },
    /// Size arithmetic overflowed.
    #[error("size computation overflows")]
    Overflow,
}

impl ErrorKind {
    /// A stable short name of the kind (the C loader reports the same names).
    pub const fn name(&self) -> &'static str {
        match self {
            ErrorKind::Truncated { .. } => "truncated",
            ErrorKind::BadMagic => "bad_magic",
            ErrorKind::ByteOrder { .. } => "byte_order",
            ErrorKind::NewerMajor { .. } => "newer_major",
            ErrorKind::OlderMajor { .. } => "older_major",
            ErrorKind::Crc { .. } => "crc",
            ErrorKind::Invalid { .. } => "invalid",
            ErrorKind::Mismatch { .. } => "mismatch",
            ErrorKind::OutOfRange { .. } => "out_of_range",
            ErrorKind::OutOfBounds { .. } => "out_of_bounds",
            ErrorKind::Layout { .. } => "layout",
            ErrorKind::CountCap { .. } => "count_cap",
            ErrorKind::NonZeroPadding { .. } => "nonzero_padding",
            ErrorKind::DuplicateSection => "duplicate_section",
            ErrorKind::MissingSection => "missing_section",
            ErrorKind::BadReference { .. } => "bad_reference",
            ErrorKind::NotUtf8 => "not_utf8",
            ErrorKind::NotSorted { .. } => "not_sorted",
            ErrorKind::Overflow => "overflow",
        }
    }
}

/// A reader error: what is wrong, and exactly where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The part of the file.
    pub location: Location,
    /// Index of the record in a table section, if the error is inside one.
    pub record: Option<u32>,
    /// Name of the field (as in `FORMAT.md`).
    pub field: &'static str,
    /// Absolute byte offset in the file of the field or byte at fault.
    pub offset: u64,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.location)?;
        if let Some(r) = self.record {
            write!(f, ", record {r}")?;
        }
        write!(
            f,
            ", field `{}` at byte {}: {}",
            self.field, self.offset, self.kind
        )
    }
}

impl core::error::Error for Error {}

/// Reader result.
pub type Result<T> = core::result::Result<T, Error>;
