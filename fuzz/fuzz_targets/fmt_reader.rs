//! Fuzzes the `.nuq` reader on arbitrary bytes, twice: as given (almost always stopped by a
//! checksum) and with every checksum recomputed, so the input reaches every check behind them.
//! Oracles: no panic; whatever is accepted without later-minor extensions is canonical
//! (re-encoding its model gives the same bytes, up to a later minor version and informational
//! flags), any accepted model round-trips, and the report and memory-image export work on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_fpga_fmt::{encode, memory, report, reseal, Model, NuqFile, WriteOptions};

fn check(bytes: &[u8]) {
    let Ok(file) = NuqFile::parse(bytes) else {
        return;
    };
    let model = Model::from_file(&file);
    if file.uses_extensions() {
        // A later minor version's file: its model must survive a round trip.
        let again = encode(&model, &WriteOptions::default()).expect("an accepted model re-encodes");
        assert_eq!(
            Model::from_file(&NuqFile::parse(&again).expect("re-encoded file reads")),
            model
        );
    } else {
        let again = encode(
            &model,
            &WriteOptions {
                alignment: file.alignment(),
            },
        )
        .expect("an accepted file re-encodes");
        let mut expect = bytes.to_vec();
        // The writer declares the lowest minor version that holds the model.
        expect[10..12].copy_from_slice(&model.minor_version().to_le_bytes());
        expect[20..24].fill(0);
        reseal(&mut expect);
        assert!(again == expect, "accepted a non-canonical file");
    }
    let mut text = String::new();
    report::write_report(&file, &mut text).expect("report");
    for img in memory::memories(&file, 64).expect("64-bit words fit every lane") {
        let _ = (img.to_readmemh(), img.to_coe(), img.to_mif());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    check(&sealed);
});
