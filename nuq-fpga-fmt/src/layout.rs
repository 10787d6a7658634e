//! The on-disk structures of format version 1.1 (and the 1.0 subset), as `bytemuck::Pod` types
//! of alignment 1.
//!
//! Sizes and field offsets are those of `FORMAT.md`; the tests at the bottom pin them.

use crate::le::{U16Le, U32Le, U64Le};
use bytemuck::{Pod, Zeroable};

/// The eight magic bytes every `.nuq` file starts with: `\x89 N U Q \r \n \x1a \n`.
/// (A non-ASCII first byte and the CR LF / LF pair catch text-mode transfer damage.)
pub const MAGIC: [u8; 8] = [0x89, b'N', b'U', b'Q', 0x0D, 0x0A, 0x1A, 0x0A];
/// The major version this crate reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// The newest minor version this crate reads by its own rules and writes. The writer declares
/// the lowest minor version whose features the model uses (0 or 1), see `Model::minor_version`.
pub const VERSION_MINOR: u16 = 1;
/// Size of a layer record in format 1.0.
pub const LAYER_RECORD_1_0: u32 = 128;
/// Size of a layer record in format 1.1 (the 1.0 record and [`RawLayerExt`]).
pub const LAYER_RECORD_1_1: u32 = 136;
/// The byte-order marker: written little-endian it reads `0D 0C 0B 0A`.
pub const BYTE_ORDER_MARK: u32 = 0x0A0B_0C0D;
/// Default payload alignment in bytes.
pub const DEFAULT_ALIGNMENT: u32 = 64;
/// Smallest legal payload alignment.
pub const MIN_ALIGNMENT: u32 = 8;
/// Largest legal payload alignment.
pub const MAX_ALIGNMENT: u32 = 65536;
/// Byte offset of the whole-file CRC field in the header.
pub const FILE_CRC_OFFSET: usize = 40;
/// Marker for "no reference" in `u32` index fields.
pub const NONE: u32 = 0xFFFF_FFFF;
/// Alignment (relative to the section start) of numeric blobs.
pub const NUMERIC_BLOB_ALIGN: u64 = 8;
/// Alignment (relative to the section start) of packed weight blobs.
pub const WEIGHT_BLOB_ALIGN: u64 = 64;
/// Alignment of string and direction blobs.
pub const BYTE_BLOB_ALIGN: u64 = 1;

/// Caps on counts, so that every size computation stays far from overflow.
pub mod caps {
    /// Maximum number of sections.
    pub const SECTIONS: u32 = 64;
    /// Maximum number of records in any table section.
    pub const RECORDS: u32 = 1 << 16;
    /// Maximum number of inputs of one layer.
    pub const LAYER_INPUTS: u32 = 4;
    /// Maximum value of one shape dimension, kernel size, stride, padding, dilation or group count.
    pub const DIM: u32 = 1 << 24;
    /// Maximum number of elements of a weight tensor.
    pub const ELEMENTS: u64 = 1 << 40;
    /// Maximum length of one string, in bytes.
    pub const STRING: u64 = 1 << 16;
    /// Maximum number of channels of a threshold table or entries of a bias vector.
    pub const CHANNELS: u32 = 1 << 24;
    /// Largest left shift of the main accumulator of an aligned residual join.
    pub const MAIN_SHIFT: u8 = 30;
    /// Largest right shift of an alignment factor.
    pub const ALIGN_SHIFT: u8 = nuq_core::FixedPointMultiplier::MAX_SHIFT;
    /// Maximum header size and head size a reader accepts.
    pub const HEAD: u32 = 4096;
}

/// The 64-byte file header at offset 0.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Major version.
    pub version_major: U16Le,
    /// Minor version.
    pub version_minor: U16Le,
    /// [`BYTE_ORDER_MARK`].
    pub byte_order: U32Le,
    /// Size of this header (64 in 1.0; a later minor may grow it).
    pub header_size: U32Le,
    /// Flags: bits 0..15 are required features (a reader rejects any it does not know; none are
    /// defined in 1.0), bits 16..31 are informational and ignored.
    pub flags: U32Le,
    /// Payload alignment: a power of two in `MIN_ALIGNMENT..=MAX_ALIGNMENT`.
    pub alignment: U32Le,
    /// Number of section-table entries.
    pub section_count: U32Le,
    /// Length of the whole file in bytes.
    pub file_length: U64Le,
    /// CRC-32C of the whole file with these four bytes taken as zero.
    pub file_crc: U32Le,
    /// Offset of the section table (a multiple of 8, at or after `header_size`).
    pub table_offset: U32Le,
    /// Size of one section-table entry (32 in 1.0).
    pub entry_size: U32Le,
    /// Zero.
    pub reserved: [u8; 12],
}

/// One 32-byte section-table entry.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawSectionEntry {
    /// Section kind (see `SectionKind`).
    pub kind: U32Le,
    /// Zero in 1.0.
    pub flags: U32Le,
    /// Offset of the payload from the start of the file.
    pub offset: U64Le,
    /// Length of the payload in bytes.
    pub length: U64Le,
    /// CRC-32C of the payload bytes.
    pub crc: U32Le,
    /// Zero.
    pub reserved: U32Le,
}

/// The 16-byte head common to every table section of 1.0.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawTableHead {
    /// Size of the section head (records start here); a multiple of 8.
    pub head_size: U32Le,
    /// Size of one record; a multiple of 8.
    pub record_size: U32Le,
    /// Number of records.
    pub count: U32Le,
    /// Zero.
    pub reserved: U32Le,
}

/// A reference to a blob inside the same section: offset from the section start, length.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawBlob {
    /// Offset from the start of the section payload.
    pub offset: U64Le,
    /// Length in bytes.
    pub length: U64Le,
}

/// A 128-byte layer record of the GRAPH section.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawLayer {
    /// `LayerOp`.
    pub op: U16Le,
    /// Bits of the weight indices (0 when the layer has no weights).
    pub weight_bits: u8,
    /// Bits of the output codes (0 when the output is not requantized).
    pub act_bits: u8,
    /// Number of used entries of `inputs`.
    pub input_count: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// Indices of earlier layers feeding this one; unused entries are `NONE`.
    pub inputs: [U32Le; 4],
    /// Output shape `[c, h, w]`.
    pub out_shape: [U32Le; 3],
    /// Kernel `[kh, kw]`.
    pub kernel: [U32Le; 2],
    /// Stride `[sh, sw]`.
    pub stride: [U32Le; 2],
    /// Padding `[top, left, bottom, right]`.
    pub padding: [U32Le; 4],
    /// Dilation `[dh, dw]`.
    pub dilation: [U32Le; 2],
    /// Group count.
    pub groups: U32Le,
    /// WEIGHTS tensor index or `NONE`.
    pub weights: U32Le,
    /// CODEBOOKS index of the weight codebook or `NONE`.
    pub weight_codebook: U32Le,
    /// SCALES index of the weight scale or `NONE`.
    pub weight_scale: U32Le,
    /// BIASES index or `NONE`.
    pub bias: U32Le,
    /// THRESHOLDS index or `NONE`.
    pub thresholds: U32Le,
    /// CODEBOOKS index of the output-code codebook or `NONE`.
    pub act_codebook: U32Le,
    /// SCALES index of the output scale or `NONE`.
    pub act_scale: U32Le,
    /// Zero.
    pub reserved1: U32Le,
    /// The layer name (UTF-8).
    pub name: RawBlob,
}

/// The 8 bytes format 1.1 appends to a layer record (offsets 128..136).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawLayerExt {
    /// ALIGNS index (required by `aligned_add`, `NONE` for every other op).
    pub align: U32Le,
    /// ZERO_POINTS index (required by `input_zp`, `NONE` for every other op).
    pub zero_point: U32Le,
}

/// A 40-byte record of the ALIGNS section (format 1.1).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawAlign {
    /// Number of channels `C`.
    pub channels: U32Le,
    /// Left shift of the main accumulator (0..=30).
    pub main_shift: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// `C` `i32` multipliers.
    pub multipliers: RawBlob,
    /// `C` right shifts (`u8`, 0..=62).
    pub shifts: RawBlob,
}

/// A 24-byte record of the ZERO_POINTS section (format 1.1).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawZeroPoints {
    /// Number of channels `C`.
    pub channels: U32Le,
    /// Code bits `b` (1..=8); every zero point is a code `< 2^b`.
    pub bits: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// `C` zero-point codes (`u8`).
    pub values: RawBlob,
}

/// A 32-byte codebook record.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawCodebook {
    /// `CodebookKind` (informational; unknown values are kept, not rejected).
    pub kind: u8,
    /// Index bits `b` (1..=8).
    pub bits: u8,
    /// Grid width in bits.
    pub grid_bits: u8,
    /// 1 when levels are signed two's-complement grid values, 0 when unsigned.
    pub signed: u8,
    /// `ElementType` of the level list.
    pub elem_type: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// Number of levels (= 2^bits).
    pub level_count: U32Le,
    /// Zero.
    pub reserved1: U32Le,
    /// The levels, ascending.
    pub levels: RawBlob,
}

/// A 64-byte weight-tensor record.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawWeights {
    /// Index bits `b` (1..=8).
    pub bits: u8,
    /// `TileOrder`.
    pub order: u8,
    /// Word width: 32, 64, 128, 256 or 512.
    pub word_bits: U16Le,
    /// Number of used dimensions (1..=4).
    pub rank: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// Dimensions, outermost first; unused entries 0.
    pub dims: [U32Le; 4],
    /// Product of the dimensions.
    pub element_count: U64Le,
    /// Number of words in the blob.
    pub word_count: U64Le,
    /// Zero.
    pub reserved1: U64Le,
    /// The packed words.
    pub data: RawBlob,
}

/// A 24-byte bias-vector record.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawBias {
    /// Number of `i32` values.
    pub count: U32Le,
    /// Zero.
    pub reserved: U32Le,
    /// The values.
    pub values: RawBlob,
}

/// A 40-byte threshold-table record.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawThresholds {
    /// Number of channels.
    pub channels: U32Le,
    /// Output code bits `b`: each channel has `2^b - 1` thresholds.
    pub bits: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// `channels * (2^b - 1)` `i32` thresholds, channel-major, each channel ascending.
    pub values: RawBlob,
    /// `channels` direction bytes (`Direction`).
    pub directions: RawBlob,
}

/// A 24-byte scale record.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawScale {
    /// IEEE-754 binary32 bits of the real scale (finite, > 0).
    pub value: U32Le,
    /// Bit 0: `exponent` is valid; bit 1: `multiplier`/`shift` are valid.
    pub forms: u8,
    /// Right shift of the multiplier form (0..=63).
    pub shift: u8,
    /// Zero.
    pub reserved0: [u8; 2],
    /// `value == 2^exponent` exactly (when bit 0 of `forms` is set).
    pub exponent: U32Le,
    /// `value ~= multiplier / 2^shift` (when bit 1 of `forms` is set); an `i32`, > 0.
    pub multiplier: U32Le,
    /// Zero.
    pub reserved1: U64Le,
}

/// The 48-byte head of the METADATA section.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawMetaHead {
    /// The common head.
    pub table: RawTableHead,
    /// Name of the producing tool (UTF-8).
    pub producer: RawBlob,
    /// Version of the producing tool (UTF-8).
    pub producer_version: RawBlob,
}

/// A 32-byte metadata entry.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct RawMetaEntry {
    /// Key (UTF-8, non-empty, entries sorted by key bytes, keys unique).
    pub key: RawBlob,
    /// Value (UTF-8).
    pub value: RawBlob,
}

/// Scale form bit: the power-of-two exponent is valid.
pub const SCALE_FORM_POW2: u8 = 1;
/// Scale form bit: the multiplier and shift are valid.
pub const SCALE_FORM_MULSHIFT: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn sizes_and_offsets_match_the_spec() {
        assert_eq!(size_of::<RawHeader>(), 64);
        assert_eq!(offset_of!(RawHeader, file_crc), FILE_CRC_OFFSET);
        assert_eq!(offset_of!(RawHeader, file_length), 32);
        assert_eq!(offset_of!(RawHeader, table_offset), 44);
        assert_eq!(size_of::<RawSectionEntry>(), 32);
        assert_eq!(size_of::<RawTableHead>(), 16);
        assert_eq!(size_of::<RawBlob>(), 16);
        assert_eq!(size_of::<RawLayer>(), 128);
        assert_eq!(offset_of!(RawLayer, out_shape), 24);
        assert_eq!(offset_of!(RawLayer, weights), 80);
        assert_eq!(offset_of!(RawLayer, name), 112);
        assert_eq!(size_of::<RawCodebook>(), 32);
        assert_eq!(size_of::<RawWeights>(), 64);
        assert_eq!(offset_of!(RawWeights, data), 48);
        assert_eq!(size_of::<RawBias>(), 24);
        assert_eq!(size_of::<RawThresholds>(), 40);
        assert_eq!(size_of::<RawScale>(), 24);
        assert_eq!(size_of::<RawMetaHead>(), 48);
        assert_eq!(size_of::<RawMetaEntry>(), 32);
        assert_eq!(size_of::<RawLayer>() as u32, LAYER_RECORD_1_0);
        assert_eq!(
            (size_of::<RawLayer>() + size_of::<RawLayerExt>()) as u32,
            LAYER_RECORD_1_1
        );
        assert_eq!(size_of::<RawAlign>(), 40);
        assert_eq!(offset_of!(RawAlign, multipliers), 8);
        assert_eq!(offset_of!(RawAlign, shifts), 24);
        assert_eq!(size_of::<RawZeroPoints>(), 24);
        assert_eq!(offset_of!(RawZeroPoints, values), 8);
        assert_eq!(align_of::<RawHeader>(), 1);
        assert_eq!(align_of::<RawLayer>(), 1);
        assert_eq!(align_of::<RawWeights>(), 1);
    }
}
