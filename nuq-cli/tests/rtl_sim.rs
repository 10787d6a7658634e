//! End to end through the reference datapath in `rtl/`: a model built with the library
//! (float network, PTQ calibration, fold to integers) → `nuq export` → `nuq vectors` →
//! the Verilator simulation of the layer sequencer, compared layer by layer, bit for bit.
//! The unit testbenches run in Icarus Verilog on the same export.
//!
//! Under `CI=true` a missing simulator fails these tests; locally they say what is missing
//! and return.

use std::path::Path;

use nuq_nn::quant::Family;
use nuq_rtl::flow::{fashion_mnist_dir, Nuq};
use nuq_rtl::models::{Arch, ModelSpec};
use nuq_rtl::sim::{run_unit, unit_testbenches, SeqBuild, Simulator};
use nuq_rtl::RtlError;

fn simulator_present(sim: Simulator) -> bool {
    if sim.available() {
        return true;
    }
    let msg = format!(
        "{} is not installed: apt-get install -y verilator iverilog yosys",
        sim.name()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI must simulate)"
    );
    eprintln!("SKIPPED: {msg}");
    false
}

fn nuq() -> Nuq {
    Nuq::new(env!("CARGO_BIN_EXE_nuq"))
}

/// Writes, exports and makes vectors of `spec` in `dir`; returns (mem, vec).
fn prepare(spec: ModelSpec, dir: &Path, images: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("model.nuq");
    spec.write(&model, 3).expect("model builds");
    let (mem, vec) = (dir.join("mem"), dir.join("vec"));
    nuq().export(&model, &mem, 64).expect("nuq export");
    let data = if spec.arch == Arch::VggSmall {
        fashion_mnist_dir()
    } else {
        None
    };
    nuq()
        .vectors(&model, &vec, images, data.as_deref())
        .expect("nuq vectors");
    (mem, vec)
}

#[test]
fn vgg_and_resnet_run_bit_exact_on_the_sequencer() {
    if !simulator_present(Simulator::Verilator) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let build = SeqBuild::build(Simulator::Verilator, 16, 64, &dir.path().join("obj"))
        .expect("the sequencer testbench builds");
    for (i, spec) in [
        ModelSpec::standard(Arch::VggSmall, 4, Family::KQuantile),
        ModelSpec::standard(Arch::ResNet20, 3, Family::Uniform),
    ]
    .into_iter()
    .enumerate()
    {
        let d = dir.path().join(format!("m{i}"));
        let (mem, vec) = prepare(spec, &d, 4);
        let run = build.run(&mem, &vec, 4).expect("simulation runs");
        assert_eq!(run.mismatches, 0, "{:?}: {:?}", spec, run.first_mismatch);
        assert_eq!(run.images, 4);
        let expected_layers = if spec.arch == Arch::VggSmall { 12 } else { 33 };
        assert_eq!(run.layers, expected_layers, "{spec:?}");
        // every convolution did all its MACs, and the lanes were busy
        let model = spec.build(3).unwrap();
        let macs: u64 = run
            .per_layer
            .iter()
            .filter(|l| l.op == 2 || l.op == 3)
            .map(|l| l.macs)
            .sum();
        assert_eq!(macs, model.macs_per_image().unwrap(), "{spec:?}");
        assert!(
            run.conv_mac_util() >= 0.8,
            "{spec:?}: {}",
            run.conv_mac_util()
        );
    }

    // Bad input: a damaged vectors file, vectors of another model, a cycle limit.
    let mem0 = dir.path().join("m0/mem");
    let (mem1, vec1) = (dir.path().join("m1/mem"), dir.path().join("m1/vec"));
    let err = build.run(&mem0, &vec1, 4).unwrap_err();
    assert!(matches!(err, RtlError::BadInput(_)), "{err}");
    assert!(err.to_string().contains("different models"), "{err}");
    let err = build.run(&mem1, &vec1, 5).unwrap_err();
    assert!(err.to_string().contains("holds 4 images"), "{err}");
    let err = build.run_unchecked(&mem1, &vec1, 1, 1000).unwrap_err();
    assert!(err.to_string().contains("cycle limit"), "{err}");
    let levels = std::fs::read_dir(&vec1)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("05_conv_levels.hex"))
        .expect("a levels file");
    let text = std::fs::read_to_string(&levels).unwrap();
    std::fs::write(&levels, &text[..text.len() / 3]).unwrap();
    let err = build.run(&mem1, &vec1, 4).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    // a changed value is reported with its layer and position
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[7] = if lines[7] == "00" {
        "01".into()
    } else {
        "00".into()
    };
    std::fs::write(&levels, lines.join("\n") + "\n").unwrap();
    let run = build.run(&mem1, &vec1, 4).unwrap();
    assert_eq!(run.mismatches, 1);
    let first = run.first_mismatch.unwrap();
    assert!(
        first.contains("kind=levels") && first.contains("position=7"),
        "{first}"
    );
}

#[test]
fn unit_testbenches_pass_in_icarus_on_a_real_export() {
    if !simulator_present(Simulator::Icarus) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mem, vec) = prepare(
        ModelSpec::standard(Arch::ResNet20, 2, Family::KQuantile),
        &dir.path().join("m"),
        2,
    );
    let plus = [
        format!("+mem={}", mem.display()),
        format!("+vec={}", vec.display()),
        "+images=2".to_string(),
    ];
    let tbs = unit_testbenches().unwrap();
    assert!(tbs.len() >= 9, "{tbs:?}");
    for tb in tbs {
        let r = run_unit(Simulator::Icarus, &tb, &dir.path().join("units"), &plus).unwrap();
        assert!(r.passed, "{}: {}", r.name, r.detail);
    }
}
