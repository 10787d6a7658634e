//! Stability: today's writer reproduces the committed golden files byte for byte and today's
//! reader reads them back into the same models; version rules are enforced.
//!
//! The golden files are only ever rewritten explicitly: `NUQ_BLESS=1 cargo test -p nuq-fpga-fmt
//! --test golden`.

mod common;

use common::*;
use nuq_fpga_fmt::{
    reseal, samples, write_file, ErrorKind, Location, Model, NuqFile, WriteOptions,
};

#[test]
fn golden_files_are_reproduced_and_read() {
    if std::env::var("NUQ_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        for (name, m) in samples::all() {
            let path = golden_dir().join(format!("{name}.nuq"));
            write_file(&path, &m, &WriteOptions::default()).unwrap();
            eprintln!("NUQ_BLESS=1: rewrote {}", path.display());
        }
    }
    for (name, golden, model) in goldens() {
        let fresh = sample_bytes(&model);
        if fresh != golden {
            let at = fresh
                .iter()
                .zip(&golden)
                .position(|(a, b)| a != b)
                .unwrap_or(fresh.len().min(golden.len()));
            panic!(
                "{name}: today's writer differs from tests/golden/{name}.nuq at byte {at} (lengths {} vs {}); \
                 if the change is intended, bump the format version and run NUQ_BLESS=1",
                fresh.len(),
                golden.len()
            );
        }
        let file = NuqFile::parse(&golden).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(file.version(), (1, model.minor_version()));
        assert!(!file.uses_extensions());
        assert_eq!(Model::from_file(&file), model, "{name}");
    }
}

#[test]
fn write_file_is_atomic_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.nuq");
    std::fs::write(&path, b"old contents").unwrap();
    write_file(&path, &samples::tiny(), &WriteOptions::default()).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        sample_bytes(&samples::tiny())
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // An invalid model fails before anything is written.
    let mut bad = samples::tiny();
    bad.layers[1].weights = Some(9);
    let err = write_file(&path, &bad, &WriteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("weights"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        sample_bytes(&samples::tiny())
    );
}

#[test]
fn newer_major_is_refused_with_a_clear_error() {
    for (_, golden, _) in goldens() {
        let mut b = golden.clone();
        b[8..10].copy_from_slice(&2u16.to_le_bytes());
        b[10..12].copy_from_slice(&3u16.to_le_bytes());
        reseal(&mut b);
        let e = NuqFile::parse(&b).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::NewerMajor {
                major: 2,
                minor: 3,
                supported: 1
            }
        );
        assert_eq!(
            (e.location, e.field, e.offset),
            (Location::Header, "version_major", 8)
        );
        let msg = e.to_string();
        assert!(
            msg.contains("2.3 is newer than this reader") && msg.contains("upgrade"),
            "{msg}"
        );
        // Also when the rest of the file is garbage: the version is checked first.
        let mut g = b[..16].to_vec();
        g.extend_from_slice(&[0xEE; 100]);
        assert!(matches!(
            NuqFile::parse(&g).unwrap_err().kind,
            ErrorKind::NewerMajor { .. }
        ));
        // Major 0 is refused too.
        b[8..10].copy_from_slice(&0u16.to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            NuqFile::parse(&b).unwrap_err().kind,
            ErrorKind::OlderMajor { major: 0, .. }
        ));
    }
}

#[test]
fn a_newer_minor_with_unknown_sections_larger_structures_and_new_blobs_is_read() {
    for (name, golden, model) in goldens() {
        // A file declaring 1.7 follows the 1.1 rules, plus what 1.7 adds.
        let mut secs = as_1_1(&payloads(&golden));
        secs[0].1 = extend_graph(&secs[0].1);
        secs.insert(3, (99, b"a section from the future".to_vec()));
        secs.push((1000, Vec::new()));
        let b = relayout(7, 72, 40, 128, &secs);
        let f = NuqFile::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.version(), (1, 7));
        assert!(f.uses_extensions());
        assert_eq!(f.section_count(), 11);
        assert_eq!(f.sections().filter(|s| s.kind.is_none()).count(), 2);
        assert_eq!(Model::from_file(&f), model, "{name}");
        // Informational flags (bits 16..31) are ignored, required-feature flags refused.
        let mut fl = b.clone();
        fl[20..24].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        reseal(&mut fl);
        assert_eq!(Model::from_file(&NuqFile::parse(&fl).unwrap()), model);
        fl[20..24].copy_from_slice(&0x0000_0001u32.to_le_bytes());
        reseal(&mut fl);
        assert_eq!(NuqFile::parse(&fl).unwrap_err().field, "flags");
    }
}

#[test]
fn missing_and_duplicate_sections_are_refused() {
    let golden = &goldens()[0].1;
    let secs = payloads(golden);
    let mut missing = secs.clone();
    missing.remove(4);
    let e = NuqFile::parse(&relayout(0, 64, 32, 64, &missing)).unwrap_err();
    assert_eq!(
        (e.location, e.kind),
        (
            Location::Section(nuq_fpga_fmt::SectionKind::Thresholds),
            ErrorKind::MissingSection
        )
    );
    let mut dup = secs.clone();
    dup.push(secs[2].clone());
    let e = NuqFile::parse(&relayout(0, 64, 32, 64, &dup)).unwrap_err();
    assert_eq!(
        (e.location, e.record, e.field, e.kind),
        (
            Location::SectionTable,
            Some(7),
            "kind",
            ErrorKind::DuplicateSection
        )
    );
}

#[test]
fn trailing_bytes_are_refused_unless_structures_grew() {
    let golden = &goldens()[1].1;
    let mut secs = payloads(golden);
    secs[0].1.extend_from_slice(b"junk");
    let e = NuqFile::parse(&relayout(0, 64, 32, 64, &secs)).unwrap_err();
    assert_eq!(
        (e.location, e.field),
        (
            Location::Section(nuq_fpga_fmt::SectionKind::Graph),
            "length"
        )
    );
}
