//! Writer → reader round trips: the samples and proptest-generated models come back equal, the
//! writer is deterministic, and the reader accepts input at any alignment.

mod common;

use nuq_fpga_fmt::model::{Codebook, WeightTensor};
use nuq_fpga_fmt::{encode, samples, CodebookKind, Model, NuqFile, TileOrder, WriteOptions};
use proptest::prelude::*;

#[test]
fn samples_round_trip_exactly() {
    for (name, m) in samples::all() {
        let bytes = encode(&m, &WriteOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = NuqFile::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Model::from_file(&file), m, "{name}");
        assert_eq!(
            encode(&m, &WriteOptions::default()).unwrap(),
            bytes,
            "{name}: deterministic"
        );
    }
}

#[test]
fn every_alignment_round_trips_and_places_payloads() {
    let m = samples::residual();
    for shift in 3..=16 {
        let a = 1u32 << shift;
        let bytes = encode(&m, &WriteOptions { alignment: a }).unwrap();
        let file = NuqFile::parse(&bytes).unwrap();
        assert_eq!(file.alignment(), a);
        for s in file.sections() {
            assert_eq!(s.offset % u64::from(a), 0);
        }
        assert_eq!(Model::from_file(&file), m);
    }
    for bad in [0, 4, 7, 12, 1 << 17] {
        assert!(
            encode(&m, &WriteOptions { alignment: bad }).is_err(),
            "alignment {bad}"
        );
    }
}

#[test]
fn unaligned_input_buffers_are_read_in_place() {
    let bytes = encode(&samples::conv_net(), &WriteOptions::default()).unwrap();
    for shift in 1..8 {
        let mut buf = vec![0u8; bytes.len() + shift];
        buf[shift..].copy_from_slice(&bytes);
        let file = NuqFile::parse(&buf[shift..]).unwrap();
        assert_eq!(Model::from_file(&file), samples::conv_net());
    }
}

#[test]
fn weight_indices_sit_where_the_spec_says() {
    // 3-bit indices in 32-bit words: 10 lanes per word, bits 30..31 unused; element 0 in the low bits.
    let mut m = samples::tiny();
    m.codebooks[0] = Codebook::new(
        CodebookKind::Uniform,
        4,
        true,
        vec![-7, -5, -3, -1, 1, 3, 5, 7],
    );
    m.layers[1].weight_bits = 3;
    m.layers[3].weight_bits = 3;
    let idx: Vec<u8> = (0..18).map(|i| (i % 8) as u8).collect();
    m.weights[0] = WeightTensor {
        bits: 3,
        word_bits: 32,
        order: TileOrder::RowPerOutput,
        dims: vec![2, 1, 3, 3],
        indices: idx.clone(),
    };
    m.weights[1].bits = 3;
    let bytes = encode(&m, &WriteOptions::default()).unwrap();
    let file = NuqFile::parse(&bytes).unwrap();
    let w = file.weights().get(0).unwrap();
    // Row per output: 9 elements per channel fit one 32-bit word each.
    assert_eq!(w.word_count(), 2);
    let word0 = u32::from_le_bytes(w.word(0).unwrap().try_into().unwrap());
    let expect0: u32 = (0..9).map(|j| (idx[j] as u32) << (3 * j)).sum();
    assert_eq!(word0, expect0);
    let word1 = u32::from_le_bytes(w.word(1).unwrap().try_into().unwrap());
    let expect1: u32 = (0..9).map(|j| (idx[9 + j] as u32) << (3 * j)).sum();
    assert_eq!(word1, expect1);
    assert_eq!(w.indices().collect::<Vec<_>>(), idx);
}

#[test]
fn threshold_codes_follow_the_direction() {
    let bytes = encode(&samples::tiny(), &WriteOptions::default()).unwrap();
    let file = NuqFile::parse(&bytes).unwrap();
    let t = file.thresholds().get(0).unwrap();
    // Channel 0 rising over [-4, 3, 11]; channel 1 falling over [-2, 6, 9].
    assert_eq!(
        [-5, -4, 2, 3, 10, 11, 99].map(|a| t.code(0, a).unwrap()),
        [0, 1, 1, 2, 2, 3, 3]
    );
    assert_eq!(
        [-3, -2, 5, 6, 8, 9, 10].map(|a| t.code(1, a).unwrap()),
        [3, 3, 2, 2, 1, 1, 0]
    );
}

/// A random but valid chain model: input → (conv | pool | relu)* → gap → linear, with an
/// optional residual add.
fn arb_model() -> impl Strategy<Value = Model> {
    (
        1u32..4,
        3u32..9,
        proptest::collection::vec((0u8..4, 1u8..=8, 1u32..5, 0usize..5, 0u8..2), 1..5),
        any::<u64>(),
        proptest::collection::btree_map("[a-z]{1,6}", "[ -~]{0,8}", 0..4),
        any::<bool>(),
    )
        .prop_map(|(c0, hw, steps, seed, entries, residual)| {
            common::build(c0, hw, &steps, seed, entries, residual)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e75_7166), ..ProptestConfig::default() })]

    #[test]
    fn random_models_round_trip(m in arb_model()) {
        let bytes = encode(&m, &WriteOptions::default()).unwrap();
        let file = NuqFile::parse(&bytes).unwrap();
        prop_assert_eq!(Model::from_file(&file), m.clone());
        prop_assert_eq!(encode(&m, &WriteOptions::default()).unwrap(), bytes);
    }
}

#[test]
fn the_reserved_none_value_is_not_a_reference() {
    // Found by the fmt_roundtrip fuzzer: Some(0xffffffff) used to be written as "no reference".
    let mut m = samples::tiny();
    m.layers[2].act_scale = Some(u32::MAX);
    let e = encode(&m, &WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("layers[2].act_scale"), "{e}");
}
