//! Damage never goes unnoticed: truncating, extending or changing any single byte of a golden
//! file is an error, and a damaged file whose checksums were recomputed is either refused or
//! read as exactly the model its bytes encode (the reader accepts only canonical encodings).

mod common;

use common::*;
use nuq_fpga_fmt::{encode, reseal, Model, NuqFile, WriteOptions};
use proptest::prelude::*;

#[test]
fn every_truncation_and_extension_is_an_error() {
    for (name, golden, _) in goldens() {
        for len in 0..golden.len() {
            assert!(
                NuqFile::parse(&golden[..len]).is_err(),
                "{name}: truncated to {len} bytes was accepted"
            );
        }
        for extra in [0u8, 0xFF] {
            let mut b = golden.clone();
            b.push(extra);
            assert!(
                NuqFile::parse(&b).is_err(),
                "{name}: extended by {extra:#x} was accepted"
            );
        }
    }
}

#[test]
fn every_single_byte_change_is_an_error() {
    for (name, golden, _) in goldens() {
        let mut b = golden.clone();
        for i in 0..b.len() {
            for x in [0x01u8, 0x80, 0xFF] {
                b[i] ^= x;
                assert!(
                    NuqFile::parse(&b).is_err(),
                    "{name}: byte {i} ^ {x:#x} was accepted"
                );
                b[i] ^= x;
            }
        }
    }
}

/// Canonical form: whatever the reader accepts without extensions of a later minor version
/// re-encodes to the same bytes (up to the minor version and the informational header flags,
/// which are not part of the model).
fn assert_canonical(bytes: &[u8], what: &str) {
    if let Ok(f) = NuqFile::parse(bytes) {
        let m = Model::from_file(&f);
        if f.uses_extensions() {
            // A later minor version's file: only its model must survive a round trip.
            let again = encode(&m, &WriteOptions::default()).unwrap();
            assert_eq!(
                Model::from_file(&NuqFile::parse(&again).unwrap()),
                m,
                "{what}"
            );
            return;
        }
        let opts = WriteOptions {
            alignment: f.alignment(),
        };
        let again = encode(&m, &opts)
            .unwrap_or_else(|e| panic!("{what}: accepted file does not re-encode: {e}"));
        let mut expect = bytes.to_vec();
        // The writer declares the lowest minor version that holds the model.
        expect[10..12].copy_from_slice(&m.minor_version().to_le_bytes());
        expect[20..24].copy_from_slice(&[0; 4]); // informational flags
        reseal(&mut expect);
        assert!(again == expect, "{what}: accepted a non-canonical file");
    }
}

#[test]
fn resealed_single_byte_changes_are_refused_or_read_exactly() {
    for (name, golden, _) in goldens() {
        let mut accepted = 0;
        for i in 0..golden.len() {
            for x in [0x01u8, 0x02, 0x80, 0xFF] {
                let mut b = golden.clone();
                b[i] ^= x;
                reseal(&mut b);
                if NuqFile::parse(&b).is_ok() {
                    accepted += 1;
                }
                assert_canonical(&b, &format!("{name}: byte {i} ^ {x:#x}"));
            }
        }
        // Payload values (indices, levels, thresholds, names) legitimately change the model.
        assert!(
            accepted > 0,
            "{name}: no resealed change was accepted: the test would be vacuous"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = NuqFile::parse(&bytes);
        let mut b = bytes.clone();
        reseal(&mut b);
        let _ = NuqFile::parse(&b);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        which in 0usize..4,
        body in proptest::collection::vec(any::<u8>(), 0..1500),
        keep in 0usize..3000,
    ) {
        let golden = &goldens()[which].1;
        let keep = keep.min(golden.len());
        let mut b = golden[..keep].to_vec();
        b.extend_from_slice(&body);
        reseal(&mut b);
        assert_canonical(&b, "spliced");
    }

    #[test]
    fn multi_byte_mutations_are_refused_or_read_exactly(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut b = goldens()[which].1.clone();
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] = *v;
        }
        reseal(&mut b);
        assert_canonical(&b, "mutated");
    }
}
