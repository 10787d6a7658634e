//! `nuq inspect` end to end: the built binary on small models the tests write.

mod common;

use common::{fails, listing, nuq, ok, usage_error, write_model};
use nuq_fpga_fmt::{samples, NuqFile};
use serde_json::Value;
use std::fs;

#[test]
fn human_output_lists_every_part_of_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path(), "tiny.nuq", &samples::tiny());
    let bytes = fs::read(&path).expect("read");
    let crc = NuqFile::parse(&bytes).expect("valid").file_crc();
    let out = ok(&nuq(["inspect".as_ref(), path.as_os_str()]));
    let first = out.lines().next().expect("a first line");
    assert!(first.contains("nuq format 1.0"), "{first}");
    assert!(first.contains(&format!("{} bytes", bytes.len())), "{first}");
    assert!(
        first.contains(&format!("CRC-32C {crc:#010x} verified")),
        "{first}"
    );
    for heading in [
        "\nsections\n",
        "\nlayers\n",
        "\ncodebooks\n",
        "\nweights\n",
        "\nthresholds\n",
        "\nbiases\n",
        "\nscales\n",
        "\ntotals: 4 layers (2 with weights), 22 weights",
    ] {
        assert!(out.contains(heading), "missing {heading:?} in\n{out}");
    }
    let conv = out
        .lines()
        .find(|l| l.contains(" conv ") && l.contains("conv2d"))
        .expect("a conv row");
    for cell in ["2x4x4", "k3x3 s1 p1", "w0 wcb0 ws0 b0 t0 acb1 as1"] {
        assert!(conv.contains(cell), "{cell:?} missing in {conv:?}");
    }
    assert!(out.contains("k_quantile"), "{out}");
    assert!(out.contains("0 2 5 12"), "codebook levels shown:\n{out}");
    assert!(out.contains("metadata: model=tiny"), "{out}");
}

#[test]
fn json_output_is_one_object_with_the_documented_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut models = samples::all();
    models.push(("minimal", samples::minimal()));
    for (name, model) in models {
        let path = write_model(dir.path(), &format!("{name}.nuq"), &model);
        let bytes = fs::read(&path).expect("read");
        let file = NuqFile::parse(&bytes).expect("valid");
        let out = ok(&nuq([
            "inspect".as_ref(),
            path.as_os_str(),
            "--json".as_ref(),
        ]));
        assert_eq!(out.lines().count(), 1, "{name}: one line of JSON");
        let v: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            v["format_version"],
            format!("1.{}", model.minor_version()),
            "{name}"
        );
        assert_eq!(v["file_bytes"], bytes.len() as u64, "{name}");
        assert_eq!(v["crc32c"], file.file_crc(), "{name}");
        assert_eq!(v["crc_verified"], true, "{name}");
        assert!(v.get("plots").is_none(), "{name}: no plots without --plot");
        let sections = v["sections"].as_array().expect("sections");
        assert_eq!(sections.len(), file.sections().count(), "{name}");
        for (s, info) in sections.iter().zip(file.sections()) {
            assert_eq!(s["offset"], info.offset, "{name}");
            assert_eq!(s["length"], info.length, "{name}");
            assert_eq!(s["crc32c"], info.crc, "{name}");
        }
        let layers = v["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), model.layers.len(), "{name}");
        for (l, m) in layers.iter().zip(&model.layers) {
            assert_eq!(l["name"], m.name.as_str(), "{name}");
            assert_eq!(l["op"], m.op.name(), "{name}");
            assert_eq!(l["out_shape"], serde_json::json!(m.out_shape), "{name}");
            assert_eq!(
                l["tables"]["weights"],
                serde_json::json!(m.weights),
                "{name}"
            );
            assert_eq!(
                l["tables"]["thresholds"],
                serde_json::json!(m.thresholds),
                "{name}"
            );
            for key in ["inputs", "window", "weight_bits", "act_bits"] {
                assert!(l.get(key).is_some(), "{name}: layer key {key}");
            }
        }
        for (c, m) in v["codebooks"]
            .as_array()
            .expect("codebooks")
            .iter()
            .zip(&model.codebooks)
        {
            assert_eq!(c["levels"], serde_json::json!(m.levels), "{name}");
            assert_eq!(c["bits"], m.bits, "{name}");
            assert_eq!(c["grid_bits"], m.grid_bits, "{name}");
            assert_eq!(c["signed"], m.signed, "{name}");
        }
        for (w, m) in v["weights"]
            .as_array()
            .expect("weights")
            .iter()
            .zip(&model.weights)
        {
            assert_eq!(w["dims"], serde_json::json!(m.dims), "{name}");
            assert_eq!(w["elements"], m.indices.len(), "{name}");
            let counted: u64 = w["index_counts"]
                .as_array()
                .expect("counts")
                .iter()
                .map(|n| n.as_u64().expect("count"))
                .sum();
            assert_eq!(counted, m.indices.len() as u64, "{name}");
        }
        for (t, m) in v["thresholds"]
            .as_array()
            .expect("thresholds")
            .iter()
            .zip(&model.thresholds)
        {
            assert_eq!(
                t["min"],
                m.values().iter().copied().min().expect("values"),
                "{name}"
            );
            assert_eq!(
                t["max"],
                m.values().iter().copied().max().expect("values"),
                "{name}"
            );
            assert_eq!(t["channels"], m.directions().len(), "{name}");
            assert_eq!(
                t["channel_ranges"].as_array().expect("ranges").len(),
                m.directions().len(),
                "{name}"
            );
        }
        assert_eq!(
            v["scales"].as_array().expect("scales").len(),
            model.scales.len()
        );
        assert_eq!(v["metadata"]["producer"], model.metadata.producer.as_str());
        assert_eq!(
            v["metadata"]["entries"],
            serde_json::json!(model.metadata.entries),
            "{name}"
        );
        assert!(v["totals"]["weight_bytes"].as_u64().expect("bytes") > 0);
        let aligns = v["aligns"].as_array().expect("aligns");
        assert_eq!(aligns.len(), model.aligns.len(), "{name}");
        for (a, m) in aligns.iter().zip(&model.aligns) {
            assert_eq!(a["channels"], m.factors.len(), "{name}");
            assert_eq!(a["main_shift"], m.main_shift, "{name}");
            assert_eq!(
                a["negative"],
                m.factors.iter().filter(|f| f.multiplier() < 0).count(),
                "{name}"
            );
        }
        let zps = v["zero_points"].as_array().expect("zero_points");
        assert_eq!(zps.len(), model.zero_points.len(), "{name}");
        for (z, m) in zps.iter().zip(&model.zero_points) {
            assert_eq!(z["values"], serde_json::json!(m.values), "{name}");
        }
        for (l, m) in layers.iter().zip(&model.layers) {
            assert_eq!(l["tables"]["align"], serde_json::json!(m.align), "{name}");
            assert_eq!(
                l["tables"]["zero_point"],
                serde_json::json!(m.zero_point),
                "{name}"
            );
        }
    }
}

#[test]
fn a_format_1_1_file_shows_its_residual_alignments_and_zero_points() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path(), "int_resnet.nuq", &samples::int_resnet());
    let out = ok(&nuq(["inspect".as_ref(), path.as_os_str()]));
    let first = out.lines().next().expect("a first line");
    assert!(first.contains("nuq format 1.1"), "{first}");
    for heading in [
        "
residual alignments (multiplier / 2^shift)
",
        "
input zero points
",
        "ALIGNS",
        "ZERO_POINTS",
    ] {
        assert!(
            out.contains(heading),
            "missing {heading:?} in
{out}"
        );
    }
    let row = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no line with {needle:?} in
{out}"
                )
            })
            .to_string()
    };
    assert!(row("input_zp").contains("zp0"), "{out}");
    let join = row("down.add");
    assert!(
        join.contains("aligned_add") && join.contains("al1"),
        "{join}"
    );
    // Table 1: 6 channels, main shift 0, multipliers -2^31..7 (two negative), shifts 0..62.
    let table = out
        .lines()
        .skip_while(|l| !l.starts_with("residual alignments"))
        .find(|l| l.contains("down.add"))
        .expect("alignment row of down.add");
    for cell in ["-2147483648..7", "0..62", "down.add"] {
        assert!(table.contains(cell), "{cell:?} missing in {table:?}");
    }
    let zp = out
        .lines()
        .skip_while(|l| !l.starts_with("input zero points"))
        .nth(2)
        .expect("zero-point row");
    assert!(zp.contains("7 9") && zp.contains("input"), "{zp}");
}

#[test]
fn plots_are_written_for_each_weighted_layer_and_threshold_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = samples::conv_net();
    let path = write_model(dir.path(), "conv_net.nuq", &model);
    let plots = dir.path().join("plots").join("nested");
    let out = ok(&nuq([
        "inspect".as_ref(),
        path.as_os_str(),
        "--plot".as_ref(),
        plots.as_os_str(),
    ]));
    let expected = [
        "layer1_conv1_weights.svg",
        "layer3_conv2_weights.svg",
        "layer5_fc_weights.svg",
        "thresholds0.svg",
        "thresholds1.svg",
    ];
    assert_eq!(
        listing(&plots),
        expected,
        "no staging directory is left behind"
    );
    assert!(out.contains("wrote 5 plots"), "{out}");
    for f in expected {
        let svg = fs::read_to_string(plots.join(f)).expect("plot readable");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }
    let conv1 = fs::read_to_string(plots.join("layer1_conv1_weights.svg")).expect("read");
    assert!(
        conv1.contains("conv1: 72 weights, 3-bit lloyd_max codebook"),
        "{conv1}"
    );

    // With --json the plot paths are part of the object.
    let out = ok(&nuq([
        "inspect".as_ref(),
        path.as_os_str(),
        "--json".as_ref(),
        "--plot".as_ref(),
        plots.as_os_str(),
    ]));
    let v: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["plots"].as_array().expect("plots").len(), 5);
    assert_eq!(listing(&plots), expected, "rewriting replaces the plots");
}

#[test]
fn a_model_without_threshold_tables_gets_only_weight_plots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path(), "minimal.nuq", &samples::minimal());
    let plots = dir.path().join("plots");
    let out = ok(&nuq([
        "inspect".as_ref(),
        path.as_os_str(),
        "--plot".as_ref(),
        plots.as_os_str(),
    ]));
    assert_eq!(listing(&plots), ["layer1_fc_weights.svg"]);
    assert!(
        !out.contains("\nthresholds\n"),
        "no empty thresholds table:\n{out}"
    );
}

#[test]
fn plot_dir_that_is_a_file_fails_without_writing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path(), "tiny.nuq", &samples::tiny());
    let blocker = dir.path().join("plots");
    fs::write(&blocker, b"not a directory").expect("write");
    let err = fails(&nuq([
        "inspect".as_ref(),
        path.as_os_str(),
        "--plot".as_ref(),
        blocker.as_os_str(),
    ]));
    assert!(err.contains("exists and is not a directory"), "{err}");
    assert_eq!(listing(dir.path()), ["plots", "tiny.nuq"]);
}

#[test]
fn missing_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("absent.nuq");
    let err = fails(&nuq(["inspect".as_ref(), missing.as_os_str()]));
    assert!(err.contains("absent.nuq: no such file"), "{err}");
    let err = fails(&nuq(["inspect".as_ref(), dir.path().as_os_str()]));
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn a_file_of_another_format_is_named_as_such() {
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("image.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(200, 0);
    fs::write(&png, &bytes).expect("write");
    let err = fails(&nuq(["inspect".as_ref(), png.as_os_str()]));
    assert!(err.contains("image.png: not a .nuq file"), "{err}");
    let empty = dir.path().join("empty.nuq");
    fs::write(&empty, b"").expect("write");
    let err = fails(&nuq(["inspect".as_ref(), empty.as_os_str()]));
    assert!(err.contains("empty.nuq: the file is empty"), "{err}");
}

#[test]
fn corrupt_and_truncated_files_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = write_model(dir.path(), "good.nuq", &samples::residual());
    let bytes = fs::read(&good).expect("read");
    let bad = dir.path().join("bad.nuq");

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    fs::write(&bad, &flipped).expect("write");
    let err = fails(&nuq([
        "inspect".as_ref(),
        bad.as_os_str(),
        "--json".as_ref(),
    ]));
    assert!(
        err.contains("bad.nuq: corrupt file") && err.contains("CRC-32C"),
        "{err}"
    );

    // Every cut, from inside the header to one byte short, is refused with one line.
    for cut in [0, 7, 16, 63, 64, 100, bytes.len() / 2, bytes.len() - 1] {
        fs::write(&bad, &bytes[..cut]).expect("write");
        let err = fails(&nuq(["inspect".as_ref(), bad.as_os_str()]));
        assert!(err.contains("bad.nuq"), "cut {cut}: {err}");
    }
    fs::write(&bad, &bytes[..bytes.len() - 1]).expect("write");
    let err = fails(&nuq(["inspect".as_ref(), bad.as_os_str()]));
    assert!(err.contains("truncated or extended"), "{err}");
}

#[test]
fn a_reader_that_closes_stdout_early_is_not_an_error() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path(), "conv_net.nuq", &samples::conv_net());
    let mut child = Command::new(env!("CARGO_BIN_EXE_nuq"))
        .args(["inspect".as_ref(), path.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nuq binary runs");
    // Close the read end at once, like `nuq inspect m.nuq | head -0`.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("nuq ends");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_with_2_and_help_teaches() {
    usage_error(&nuq(["inspect"]));
    usage_error(&nuq(["inspect", "m.nuq", "--bogus"]));
    usage_error(&nuq(["frobnicate"]));
    let none = nuq(std::iter::empty::<&str>());
    assert_eq!(
        none.status.code(),
        Some(2),
        "no subcommand prints help, exit 2"
    );

    let help = ok(&nuq(["--help"]));
    assert!(
        help.contains("inspect") && help.contains("export"),
        "{help}"
    );
    assert!(help.contains("Exit status"), "{help}");
    let help = ok(&nuq(["inspect", "--help"]));
    assert!(
        help.contains("Examples:") && help.contains("--plot"),
        "{help}"
    );
    let version = ok(&nuq(["--version"]));
    assert!(version.starts_with("nuq "), "{version}");
}
