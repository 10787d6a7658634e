//! Every error names the section, record, field and absolute byte offset at fault. Each test
//! damages one field of a valid file (and recomputes the checksums, so the damage reaches the
//! check under test) and asserts the exact error.

mod common;

use common::*;
use nuq_fpga_fmt::crc32c::crc32c;
use nuq_fpga_fmt::{reseal, samples, Error, ErrorKind, Location, NuqFile, SectionKind};

const HEAD: usize = 16;
const LAYER: usize = 128;

fn err(b: &[u8]) -> Error {
    NuqFile::parse(b).expect_err("damaged file must be refused")
}

fn tiny() -> Vec<u8> {
    sample_bytes(&samples::tiny())
}

fn at(b: &[u8], kind: SectionKind, rel: usize) -> u64 {
    (section_offset(b, kind) + rel) as u64
}

#[test]
fn header_errors() {
    let b = tiny();
    let e = err(&patch_abs(&b, 0, b"GGUF"));
    assert_eq!(
        (e.location, e.field, e.offset, e.kind),
        (Location::Header, "magic", 0, ErrorKind::BadMagic)
    );
    let e = err(&patch_abs(&b, 12, &0x0A0B_0C0Du32.to_be_bytes()));
    assert_eq!(
        (e.field, e.offset, e.kind),
        (
            "byte_order",
            12,
            ErrorKind::ByteOrder { found: 0x0D0C_0B0A }
        )
    );
    assert!(e.to_string().contains("not little-endian"), "{e}");
    let e = err(&patch_abs(&b, 24, &48u32.to_le_bytes()));
    assert_eq!((e.field, e.offset), ("alignment", 24));
    let e = err(&patch_abs(&b, 28, &65u32.to_le_bytes()));
    assert_eq!(
        (e.field, e.kind),
        ("section_count", ErrorKind::CountCap { count: 65, cap: 64 })
    );
    let e = err(&patch_abs(&b, 55, &[1]));
    assert_eq!(
        (e.field, e.offset, e.kind),
        ("reserved", 55, ErrorKind::NonZeroPadding { found: 1 })
    );
    let e = err(&patch_abs(&b, 44, &72u32.to_le_bytes()));
    assert_eq!(
        (e.field, e.kind),
        (
            "table_offset",
            ErrorKind::Mismatch {
                found: 72,
                expected: 64
            }
        )
    );
    let e = err(&b[..100]);
    assert_eq!(
        (e.field, e.offset, e.kind),
        (
            "file_length",
            32,
            ErrorKind::Mismatch {
                found: b.len() as u64,
                expected: 100
            }
        )
    );
    let e = err(&b[..10]);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            needed: 16,
            available: 10
        }
    );
}

#[test]
fn checksum_errors_name_the_checksum() {
    let b = tiny();
    let mut d = b.clone();
    let i = section_offset(&b, SectionKind::Weights) + 70;
    d[i] ^= 0x10;
    let e = err(&d);
    assert_eq!(
        (e.location, e.field, e.offset),
        (Location::Header, "file_crc", 40)
    );
    assert!(matches!(e.kind, ErrorKind::Crc { .. }));
    // With the file CRC fixed, the section CRC still catches it.
    let crc = nuq_fpga_fmt::reader::file_crc(&d);
    d[40..44].copy_from_slice(&crc.to_le_bytes());
    let e = err(&d);
    assert_eq!(
        (e.location, e.record, e.field, e.offset),
        (Location::SectionTable, Some(2), "crc", 64 + 2 * 32 + 24)
    );
    let stored = u32::from_le_bytes(b[64 + 2 * 32 + 24..][..4].try_into().unwrap());
    let s = NuqFile::parse(&b).unwrap().section(2).unwrap();
    let computed = crc32c(&d[s.offset as usize..(s.offset + s.length) as usize]);
    assert_eq!(e.kind, ErrorKind::Crc { stored, computed });
}

#[test]
fn section_table_errors() {
    let b = tiny();
    // Section 1 moved by 8 bytes: misplaced (would overlap or leave a gap).
    let s1 = NuqFile::parse(&b).unwrap().section(1).unwrap();
    let e = err(&patch_abs(&b, 64 + 32 + 8, &(s1.offset + 64).to_le_bytes()));
    assert_eq!(
        (e.location, e.record, e.field, e.offset),
        (Location::SectionTable, Some(1), "offset", 64 + 32 + 8)
    );
    assert_eq!(
        e.kind,
        ErrorKind::Layout {
            found: s1.offset + 64,
            expected: s1.offset
        }
    );
    // Section 0 made longer, so that it overlaps section 1.
    let s0 = NuqFile::parse(&b).unwrap().section(0).unwrap();
    let e = err(&patch_abs(&b, 64 + 16, &(s0.length + 200).to_le_bytes()));
    assert_eq!((e.record, e.field), (Some(1), "offset"));
    assert!(matches!(e.kind, ErrorKind::Layout { .. }), "{e}");
    // Last section running past the end of the file.
    let s6 = NuqFile::parse(&b).unwrap().section(6).unwrap();
    let e = err(&patch_abs(
        &b,
        64 + 6 * 32 + 16,
        &(s6.length + 1).to_le_bytes(),
    ));
    assert_eq!(
        (e.record, e.field, e.kind),
        (
            Some(6),
            "length",
            ErrorKind::OutOfBounds {
                offset: s6.offset,
                length: s6.length + 1,
                limit: b.len() as u64
            }
        )
    );
    // Reserved entry flags.
    let e = err(&patch_abs(&b, 64 + 3 * 32 + 4, &[1]));
    assert_eq!((e.record, e.field), (Some(3), "flags"));
}

#[test]
fn graph_errors() {
    let b = tiny();
    let l1 = HEAD + LAYER;
    let e = err(&patch(&b, SectionKind::Graph, l1, &77u16.to_le_bytes()));
    assert_eq!(
        (e.location, e.record, e.field, e.offset),
        (
            Location::Section(SectionKind::Graph),
            Some(1),
            "op",
            at(&b, SectionKind::Graph, l1)
        )
    );
    assert_eq!(
        e.to_string(),
        format!(
            "section GRAPH, record 1, field `op` at byte {}: value 77 is invalid: expected a layer op defined by format 1.0 (1..=9; declare version 1.1 for 10, 11)",
            e.offset
        )
    );
    let e = err(&patch(&b, SectionKind::Graph, l1 + 8, &1u32.to_le_bytes()));
    assert_eq!(
        (e.record, e.field, e.kind),
        (
            Some(1),
            "inputs",
            ErrorKind::BadReference { found: 1, limit: 1 }
        )
    );
    let e = err(&patch(&b, SectionKind::Graph, l1 + 28, &5u32.to_le_bytes()));
    assert_eq!(
        (e.record, e.field, e.offset, e.kind),
        (
            Some(1),
            "out_shape",
            at(&b, SectionKind::Graph, l1 + 28),
            ErrorKind::Mismatch {
                found: 5,
                expected: 4
            }
        )
    );
    // Weights reference out of range.
    let e = err(&patch(&b, SectionKind::Graph, l1 + 80, &7u32.to_le_bytes()));
    assert_eq!(
        (e.record, e.field, e.kind),
        (
            Some(1),
            "weights",
            ErrorKind::BadReference { found: 7, limit: 2 }
        )
    );
    // A global pool may not name a weight tensor.
    let l2 = HEAD + 2 * LAYER;
    let e = err(&patch(&b, SectionKind::Graph, l2 + 80, &0u32.to_le_bytes()));
    assert_eq!((e.record, e.field), (Some(2), "weights"));
    // The layer's weight bits must match its tensor's.
    let e = err(&patch(&b, SectionKind::Graph, l1 + 2, &[3]));
    assert_eq!((e.record, e.field), (Some(1), "weight_bits"));
    // Layer name not UTF-8 (layer 0 is named "in", its blob is the first after the records).
    let e = err(&patch(
        &b,
        SectionKind::Graph,
        HEAD + 4 * LAYER,
        &[0xFF, 0xFE],
    ));
    assert_eq!(
        (e.record, e.field, e.kind),
        (Some(0), "name", ErrorKind::NotUtf8)
    );
    // A pooling layer with a dilation other than 1 is refused.
    let c = sample_bytes(&samples::conv_net());
    let pool = HEAD + 2 * LAYER;
    let e = err(&patch(
        &c,
        SectionKind::Graph,
        pool + 68,
        &2u32.to_le_bytes(),
    ));
    assert_eq!((e.record, e.field), (Some(2), "dilation"));
    // A flatten whose input has more than 2^64 elements (2^64 + 26) is over the cap, not a
    // 64-bit product wrapped to 26.
    let wrapping = wrapping_flatten();
    // The file is a fuzz seed of both reader targets (`NUQ_BLESS=1` rewrites them).
    for target in ["fmt_reader", "fmt_c_loader"] {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target)
            .join("wrapping_flatten.nuq");
        if std::env::var_os("NUQ_BLESS").is_some() {
            std::fs::write(&seed, &wrapping).expect("write the seed");
        }
        let committed = std::fs::read(&seed).expect("the committed seed (NUQ_BLESS=1 writes it)");
        assert!(committed == wrapping, "{} is out of date", seed.display());
    }
    let e = err(&wrapping);
    assert_eq!(
        (e.record, e.field, e.kind),
        (
            Some(1),
            "out_shape",
            ErrorKind::CountCap {
                count: u64::MAX,
                cap: 1 << 24
            }
        )
    );
}

#[test]
fn table_section_errors() {
    let b = tiny();
    // Codebook 0 is [-3, -1, 1, 3] as i16 on a signed 4-bit grid; its levels follow 2 records.
    let levels = HEAD + 2 * 32;
    let e = err(&patch(
        &b,
        SectionKind::Codebooks,
        levels + 2,
        &(-5i16).to_le_bytes(),
    ));
    assert_eq!(
        (e.location, e.record, e.field, e.kind),
        (
            Location::Section(SectionKind::Codebooks),
            Some(0),
            "levels",
            ErrorKind::NotSorted { index: 1 }
        )
    );
    assert_eq!(e.offset, at(&b, SectionKind::Codebooks, levels + 2));
    let e = err(&patch(
        &b,
        SectionKind::Codebooks,
        levels + 6,
        &9i16.to_le_bytes(),
    ));
    assert_eq!(
        e.kind,
        ErrorKind::OutOfRange {
            found: 9,
            min: -8,
            max: 7
        }
    );
    let e = err(&patch(&b, SectionKind::Codebooks, HEAD + 1, &[9]));
    assert_eq!((e.record, e.field), (Some(0), "bits"));
    // Weights 0: 18 two-bit indices in 32-bit words: word 1 uses only its low 4 bits.
    let data = HEAD + 2 * 64 + 64 - (HEAD + 2 * 64) % 64;
    let e = err(&patch(&b, SectionKind::Weights, data + 4 + 3, &[0x80]));
    assert_eq!(
        (e.location, e.record, e.field, e.kind),
        (
            Location::Section(SectionKind::Weights),
            Some(0),
            "data",
            ErrorKind::NonZeroPadding { found: 0x80 }
        )
    );
    let e = err(&patch(
        &b,
        SectionKind::Weights,
        HEAD + 2,
        &48u16.to_le_bytes(),
    ));
    assert_eq!((e.record, e.field), (Some(0), "word_bits"));
    // Thresholds 0: [-4, 3, 11, -2, 6, 9], then directions [0, 1].
    let values = HEAD + 40;
    let e = err(&patch(
        &b,
        SectionKind::Thresholds,
        values + 4,
        &20i32.to_le_bytes(),
    ));
    assert_eq!(
        (e.record, e.field, e.kind),
        (Some(0), "values", ErrorKind::NotSorted { index: 2 })
    );
    let e = err(&patch(&b, SectionKind::Thresholds, values + 24, &[2]));
    assert_eq!(
        (e.record, e.field, e.offset),
        (
            Some(0),
            "directions",
            at(&b, SectionKind::Thresholds, values + 24)
        )
    );
    // Scales: NaN, and an exponent that does not match the value.
    let e = err(&patch(
        &b,
        SectionKind::Scales,
        HEAD,
        &f32::NAN.to_bits().to_le_bytes(),
    ));
    assert_eq!(
        (e.location, e.record, e.field),
        (Location::Section(SectionKind::Scales), Some(0), "value")
    );
    let e = err(&patch(
        &b,
        SectionKind::Scales,
        HEAD + 8,
        &(-2i32).to_le_bytes(),
    ));
    assert_eq!((e.record, e.field), (Some(0), "exponent"));
    // Biases: count no longer matches the blob length.
    let e = err(&patch(&b, SectionKind::Biases, HEAD, &3u32.to_le_bytes()));
    assert_eq!(
        (e.location, e.record, e.field),
        (Location::Section(SectionKind::Biases), Some(0), "values")
    );
    assert_eq!(
        e.kind,
        ErrorKind::Mismatch {
            found: 8,
            expected: 12
        }
    );
    // Record count beyond what the section holds.
    let e = err(&patch(&b, SectionKind::Biases, 8, &1000u32.to_le_bytes()));
    assert_eq!((e.field, e.record), ("records", None));
    assert!(matches!(e.kind, ErrorKind::OutOfBounds { .. }), "{e}");
}

#[test]
fn metadata_errors() {
    let c = sample_bytes(&samples::conv_net());
    // Entries "accuracy" and "model": the key blobs follow the producer strings.
    let f = NuqFile::parse(&c).unwrap();
    assert_eq!(f.metadata().get("accuracy"), Some("0.9012"));
    assert_eq!(f.metadata().get("model"), Some("conv_net"));
    assert_eq!(f.metadata().get("missing"), None);
    let producer_len = "nuq-fpga-fmt samples".len() + "1".len();
    let key0 = 48 + 2 * 32 + producer_len;
    let e = err(&patch(&c, SectionKind::Metadata, key0, b"z"));
    assert_eq!(
        (e.location, e.record, e.field, e.kind),
        (
            Location::Section(SectionKind::Metadata),
            Some(1),
            "key",
            ErrorKind::NotSorted { index: 1 }
        )
    );
    let e = err(&patch(&c, SectionKind::Metadata, key0, &[0xC3]));
    assert_eq!(
        (e.record, e.field, e.kind),
        (Some(0), "key", ErrorKind::NotUtf8)
    );
}

#[test]
fn reseal_never_panics_on_short_or_odd_buffers() {
    for n in 0..80 {
        let mut b = vec![0xA5u8; n];
        reseal(&mut b);
        let _ = NuqFile::parse(&b);
    }
}
