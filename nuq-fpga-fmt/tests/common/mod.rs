//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nuq_fpga_fmt::{encode, reseal, samples, Model, NuqFile, SectionKind, WriteOptions};
use std::path::PathBuf;

/// `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

/// The committed golden files as `(stem, bytes, model)`.
pub fn goldens() -> Vec<(&'static str, Vec<u8>, Model)> {
    samples::all()
        .into_iter()
        .map(|(name, m)| {
            let path = golden_dir().join(format!("{name}.nuq"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; create the golden files with NUQ_BLESS=1 cargo test -p nuq-fpga-fmt --test golden", path.display())
            });
            (name, bytes, m)
        })
        .collect()
}

/// A freshly encoded sample.
pub fn sample_bytes(m: &Model) -> Vec<u8> {
    encode(m, &WriteOptions::default()).expect("sample encodes")
}

/// Absolute offset of the payload of section `kind`.
pub fn section_offset(bytes: &[u8], kind: SectionKind) -> usize {
    let f = NuqFile::parse(bytes).expect("valid file");
    let s = f
        .sections()
        .find(|s| s.kind == Some(kind))
        .expect("section present");
    s.offset as usize
}

/// Overwrites bytes at `rel` within section `kind` with `new`, then fixes every checksum.
pub fn patch(bytes: &[u8], kind: SectionKind, rel: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = section_offset(bytes, kind) + rel;
    out[at..at + new.len()].copy_from_slice(new);
    reseal(&mut out);
    out
}

/// Overwrites bytes at absolute offset `at`, then fixes every checksum.
pub fn patch_abs(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + new.len()].copy_from_slice(new);
    reseal(&mut out);
    out
}

/// Builds a file from raw section payloads the way a later minor version could: header of
/// `header_size` bytes, table entries of `entry_size` bytes, payloads at `alignment`.
pub fn relayout(
    minor: u16,
    header_size: usize,
    entry_size: usize,
    alignment: usize,
    sections: &[(u32, Vec<u8>)],
) -> Vec<u8> {
    let table_end = header_size + entry_size * sections.len();
    let mut out = vec![0u8; table_end];
    out[..8].copy_from_slice(&nuq_fpga_fmt::layout::MAGIC);
    out[8..10].copy_from_slice(&1u16.to_le_bytes());
    out[10..12].copy_from_slice(&minor.to_le_bytes());
    out[12..16].copy_from_slice(&0x0A0B_0C0Du32.to_le_bytes());
    out[16..20].copy_from_slice(&(header_size as u32).to_le_bytes());
    out[24..28].copy_from_slice(&(alignment as u32).to_le_bytes());
    out[28..32].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    out[44..48].copy_from_slice(&(header_size as u32).to_le_bytes());
    out[48..52].copy_from_slice(&(entry_size as u32).to_le_bytes());
    for (i, (kind, payload)) in sections.iter().enumerate() {
        while out.len() % alignment != 0 {
            out.push(0);
        }
        let e = header_size + i * entry_size;
        let offset = out.len() as u64;
        out[e..e + 4].copy_from_slice(&kind.to_le_bytes());
        out[e + 8..e + 16].copy_from_slice(&offset.to_le_bytes());
        out[e + 16..e + 24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
    }
    reseal(&mut out);
    out
}

/// The payloads of a valid file as `(kind, bytes)` in table order.
pub fn payloads(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let f = NuqFile::parse(bytes).expect("valid file");
    f.sections()
        .map(|s| {
            (
                s.kind_raw,
                bytes[s.offset as usize..(s.offset + s.length) as usize].to_vec(),
            )
        })
        .collect()
}
