//! Format 1.1: the aligned residual join (`aligned_add`, ALIGNS) and the input zero point
//! (`input_zp`, ZERO_POINTS). Every new rule is refused with its exact error; a file is read by
//! the rules of the version it declares; the join's 64-bit arithmetic is exact.

mod common;

use common::*;
use nuq_fpga_fmt::{
    encode, reseal, samples, Error, ErrorKind, LayerOp, Location, Model, NuqFile, SectionKind,
    WriteError, WriteOptions,
};

/// The reader error the writer's self-check reports for an invalid model.
fn refused(m: &Model) -> Error {
    match encode(m, &WriteOptions::default()) {
        Err(WriteError::Invalid(e)) => e,
        other => panic!("expected a reader error, got {other:?}"),
    }
}

fn graph_err(e: &Error) -> (Option<u32>, &'static str, ErrorKind) {
    assert_eq!(e.location, Location::Section(SectionKind::Graph), "{e}");
    (e.record, e.field, e.kind)
}

#[test]
fn the_writer_declares_the_lowest_version_that_holds_the_model() {
    for (name, m) in samples::all() {
        let f_bytes = sample_bytes(&m);
        let f = NuqFile::parse(&f_bytes).unwrap();
        let want = if name == "int_resnet" { 1 } else { 0 };
        assert_eq!(
            (m.minor_version(), f.version()),
            (want, (1, want)),
            "{name}"
        );
        assert_eq!(f.sections().count(), 7 + 2 * usize::from(want), "{name}");
        assert!(!f.uses_extensions(), "{name}");
    }
    // A 1.0 model with an unused alignment table needs 1.1.
    let mut m = samples::tiny();
    m.aligns = samples::int_resnet().aligns;
    let f_bytes = sample_bytes(&m);
    assert_eq!(NuqFile::parse(&f_bytes).unwrap().version(), (1, 1));
}

#[test]
fn new_tables_are_validated() {
    let base = samples::int_resnet();
    let mut m = base.clone();
    m.aligns[0].main_shift = 31;
    let e = refused(&m);
    assert_eq!(
        (e.location, e.record, e.field, e.kind),
        (
            Location::Section(SectionKind::Aligns),
            Some(0),
            "main_shift",
            ErrorKind::Invalid {
                found: 31,
                expected: "0..=30"
            }
        )
    );
    // A shift above 62 or a shift list shorter than the multipliers cannot be built through
    // the owned model (its factors are nuq-core's `FixedPointMultiplier`s): patch the bytes.
    let bytes = sample_bytes(&base);
    let shift_at = {
        let f = NuqFile::parse(&bytes).unwrap();
        f.aligns().get(1).unwrap().shifts().as_ptr() as usize - bytes.as_ptr() as usize + 2
    };
    let e = NuqFile::parse(&patch_abs(&bytes, shift_at, &[63])).unwrap_err();
    assert_eq!((e.record, e.field), (Some(1), "shifts"));
    assert!(matches!(e.kind, ErrorKind::Invalid { found: 63, .. }));
    // Record 0 (16-byte head, then 40-byte records): the shifts blob's length at 24 + 8.
    let channels = base.aligns[0].factors.len() as u64;
    let short = patch(
        &bytes,
        SectionKind::Aligns,
        16 + 32,
        &(channels - 1).to_le_bytes(),
    );
    let e = NuqFile::parse(&short).unwrap_err();
    assert_eq!((e.record, e.field), (Some(0), "shifts"), "{e}");
    let mut m = base.clone();
    m.zero_points[0].values[1] = 16;
    let e = refused(&m);
    assert_eq!(
        (e.location, e.field, e.kind),
        (
            Location::Section(SectionKind::ZeroPoints),
            "values",
            ErrorKind::OutOfRange {
                found: 16,
                min: 0,
                max: 15
            }
        )
    );
    let mut m = base;
    m.zero_points[0].bits = 9;
    let e = refused(&m);
    assert_eq!((e.field, e.record), ("bits", Some(0)));
}

#[test]
fn new_layer_fields_are_validated() {
    let base = samples::int_resnet();
    // The alignment table must have one factor per output channel.
    let mut m = base.clone();
    m.layers[4].align = Some(1);
    assert_eq!(
        graph_err(&refused(&m)),
        (
            Some(4),
            "align",
            ErrorKind::Mismatch {
                found: 6,
                expected: 4
            }
        )
    );
    let mut m = base.clone();
    m.layers[4].align = Some(2);
    assert_eq!(
        graph_err(&refused(&m)),
        (
            Some(4),
            "align",
            ErrorKind::BadReference { found: 2, limit: 2 }
        )
    );
    let mut m = base.clone();
    m.layers[4].align = None;
    assert_eq!(graph_err(&refused(&m)).1, "align");
    // Only aligned_add may name an alignment table, only input_zp a zero-point table.
    let mut m = base.clone();
    m.layers[1].align = Some(0);
    assert_eq!(graph_err(&refused(&m)).0, Some(1));
    assert_eq!(graph_err(&refused(&m)).1, "align");
    let mut m = base.clone();
    m.layers[9].zero_point = Some(0);
    assert_eq!(graph_err(&refused(&m)).1, "zero_point");
    // An aligned_add needs thresholds: its 64-bit sum is never an output.
    let mut m = base.clone();
    m.layers[4].thresholds = None;
    assert_eq!(graph_err(&refused(&m)).1, "thresholds");
    // Its main input must be an accumulator (a conv2d or linear layer with act_bits 0).
    let mut m = base.clone();
    m.layers[4].inputs = vec![1, 3];
    assert_eq!(
        graph_err(&refused(&m)),
        (
            Some(4),
            "inputs",
            ErrorKind::Invalid {
                found: LayerOp::Conv2d.raw().into(),
                expected:
                    "a conv2d or linear layer with act_bits 0 (an accumulator) as the main input"
            }
        )
    );
    // Both inputs have the same shape.
    let mut m = base.clone();
    m.layers[8].inputs = vec![6, 3];
    assert_eq!(graph_err(&refused(&m)).1, "inputs");
    // input_zp: a table of the input's channels and code bits.
    let mut m = base.clone();
    m.layers[0].zero_point = None;
    assert_eq!(graph_err(&refused(&m)).1, "zero_point");
    let mut m = base.clone();
    m.zero_points[0].values.push(3);
    assert_eq!(
        graph_err(&refused(&m)),
        (
            Some(0),
            "zero_point",
            ErrorKind::Mismatch {
                found: 3,
                expected: 2
            }
        )
    );
    let mut m = base;
    m.zero_points[0].bits = 5;
    assert_eq!(
        graph_err(&refused(&m)),
        (
            Some(0),
            "zero_point",
            ErrorKind::Mismatch {
                found: 5,
                expected: 4
            }
        )
    );
}

#[test]
fn a_file_is_read_by_the_rules_of_the_version_it_declares() {
    let golden = sample_bytes(&samples::int_resnet());
    // Declaring 1.0, the 1.1 file is what a 1.0 reader sees: its first layer's op is unknown
    // (the new sections are skipped and the larger records are a later minor's).
    let mut b = golden.clone();
    b[10..12].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    let e = NuqFile::parse(&b).unwrap_err();
    assert_eq!(graph_err(&e).0, Some(0));
    assert_eq!(e.field, "op");
    assert!(e.to_string().contains("declare version 1.1"), "{e}");
    // Declaring 1.1, a file must have the 1.1 layer records ...
    let tiny = sample_bytes(&samples::tiny());
    let mut b = tiny.clone();
    b[10..12].copy_from_slice(&1u16.to_le_bytes());
    reseal(&mut b);
    let e = NuqFile::parse(&b).unwrap_err();
    assert_eq!(
        (e.location, e.field),
        (Location::Section(SectionKind::Graph), "record_size")
    );
    // ... and both 1.1 sections.
    let secs = as_1_1(&payloads(&tiny));
    let e = NuqFile::parse(&relayout(1, 64, 32, 64, &secs[..8])).unwrap_err();
    assert_eq!(
        (e.location, e.kind),
        (
            Location::Section(SectionKind::ZeroPoints),
            ErrorKind::MissingSection
        )
    );
    let f_bytes = relayout(1, 64, 32, 64, &secs);
    let f = NuqFile::parse(&f_bytes).unwrap();
    assert_eq!(Model::from_file(&f), samples::tiny());
    // The 1.1 layout for a model without 1.1 features is not what the writer emits.
    assert!(f.uses_extensions());
    // A 1.0 file may carry sections of kinds 8 and 9: unknown to 1.0, they are skipped
    // unread, even when their contents would be invalid under 1.1.
    let mut secs = payloads(&tiny);
    secs.push((SectionKind::Aligns.raw(), b"not a table".to_vec()));
    let b = relayout(0, 64, 32, 64, &secs);
    let f = NuqFile::parse(&b).unwrap();
    assert_eq!(f.sections().filter(|s| s.kind.is_none()).count(), 1);
    assert!(f.aligns().is_empty());
    assert_eq!(Model::from_file(&f), samples::tiny());
    // A 1.1 reader applies 1.1 rules to a file declaring a later minor version.
    let mut b = golden;
    b[10..12].copy_from_slice(&5u16.to_le_bytes());
    reseal(&mut b);
    let f = NuqFile::parse(&b).unwrap();
    assert_eq!((f.version(), f.rules_minor()), ((1, 5), 1));
    assert_eq!(Model::from_file(&f), samples::int_resnet());
}

#[test]
fn the_join_arithmetic_rounds_half_up_exactly() {
    let f_bytes = sample_bytes(&samples::int_resnet());
    let f = NuqFile::parse(&f_bytes).unwrap();
    let a = f.aligns().get(1).unwrap();
    // Channel 0: multiplier 3, shift 1, main shift 0: 5·3/2 = 7.5 → 8; −5·3/2 = −7.5 → −7.
    assert_eq!(a.sum(0, 10, 5), Some(18));
    assert_eq!(a.sum(0, 10, -5), Some(3));
    // Channel 2: shift 0 is a plain product; channel 4: multiplier 0 drops the shortcut.
    assert_eq!(a.sum(2, 1, -3), Some(-20));
    assert_eq!(a.sum(4, -9, 1000), Some(-9));
    // Extremes stay exact in 64 bits.
    assert_eq!(
        a.sum(5, i32::MIN, i32::MIN),
        Some(i64::from(i32::MIN) + (1i64 << 22))
    );
    let b = f.aligns().get(0).unwrap();
    assert_eq!(b.main_shift(), 4);
    assert_eq!(b.sum(0, 1, 0), Some(16));
    assert_eq!(a.sum(6, 0, 0), None);
}

/// The computation FORMAT.md walks through for `samples::minimal_1_1()`, done from the file.
#[test]
fn the_worked_example_computes_as_the_spec_says() {
    let bytes = encode(&samples::minimal_1_1(), &WriteOptions { alignment: 8 }).unwrap();
    let f = NuqFile::parse(&bytes).unwrap();
    let input_levels = f.codebooks().get(0).unwrap();
    let weight_levels = f.codebooks().get(1).unwrap();
    let w = f.weights().get(0).unwrap();
    let bias = f.biases().get(0).unwrap();
    let x: Vec<i32> = [1usize, 3]
        .iter()
        .map(|&c| input_levels.level(c).unwrap())
        .collect();
    let acc: Vec<i32> = (0..2u64)
        .map(|o| {
            bias[o as usize].get()
                + (0..2u64)
                    .map(|i| {
                        let k = usize::from(w.index(o * 2 + i).unwrap());
                        weight_levels.level(k).unwrap() * x[i as usize]
                    })
                    .sum::<i32>()
        })
        .collect();
    assert_eq!(acc, [5, 3]);
    let join = f.graph().get(2).unwrap();
    let align = f.aligns().get(join.align().unwrap()).unwrap();
    let sums: Vec<i64> = (0..2u32)
        .map(|c| align.sum(c, acc[c as usize], x[c as usize]).unwrap())
        .collect();
    assert_eq!(sums, [22, 9]);
    let t = f.thresholds().get(join.thresholds().unwrap()).unwrap();
    let codes: Vec<u32> = (0..2u32)
        .map(|c| t.code_wide(c, sums[c as usize]).unwrap())
        .collect();
    assert_eq!(codes, [1, 1]);
    assert_eq!(
        f.zero_points().get(0).unwrap().values(),
        [1, 2],
        "zero points of the input_zp layer"
    );
}
