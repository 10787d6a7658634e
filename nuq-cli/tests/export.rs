//! `nuq export` end to end: the built binary on small models the tests write; the images are
//! decoded back and compared with the model they came from.

mod common;

use common::{fails, listing, nuq, ok, usage_error, write_model};
use nuq_fpga_fmt::{samples, Direction, Model, TileOrder};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

const WIDTHS: [u32; 5] = [32, 64, 128, 256, 512];

fn export(model: &Path, out: &Path, format: &str, word_bits: u32) -> std::process::Output {
    nuq([
        "export".as_ref(),
        model.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
        "--word-bits".as_ref(),
        word_bits.to_string().as_ref(),
    ])
}

/// The hex words of an image file, in address order, whatever its format.
fn words(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("image readable");
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "mem" => text
            .lines()
            .filter(|l| !l.starts_with("//"))
            .map(str::to_string)
            .collect(),
        "coe" => text
            .lines()
            .skip_while(|l| !l.starts_with("memory_initialization_vector="))
            .skip(1)
            .map(|l| l.trim_end_matches([',', ';']).to_string())
            .collect(),
        "mif" => text
            .lines()
            .filter_map(|l| l.trim().split_once(" : "))
            .map(|(_, w)| w.trim_end_matches(';').to_ascii_lowercase())
            .collect(),
        other => panic!("unexpected extension {other}"),
    }
}

/// Lane `k` of `lane_bits` bits of a hex word (lane 0 in the low bits).
fn lane(word: &str, k: usize, lane_bits: usize) -> u64 {
    let digits: Vec<u32> = word
        .chars()
        .rev()
        .map(|c| c.to_digit(16).expect("hex digit"))
        .collect();
    (0..lane_bits).fold(0u64, |acc, b| {
        let bit = k * lane_bits + b;
        let set = (digits[bit / 4] >> (bit % 4)) & 1;
        acc | (u64::from(set) << b)
    })
}

/// Decodes rows of `row_len` lanes (each row starting a new word) from `words`.
fn rows(
    words: &[String],
    word_bits: usize,
    lane_bits: usize,
    row_len: usize,
    n: usize,
) -> Vec<Vec<u64>> {
    let lanes = word_bits / lane_bits;
    let per_row = row_len.div_ceil(lanes);
    assert_eq!(words.len(), per_row * n, "depth");
    (0..n)
        .map(|r| {
            (0..row_len)
                .map(|j| lane(&words[r * per_row + j / lanes], j % lanes, lane_bits))
                .collect()
        })
        .collect()
}

fn signed(v: u64, bits: usize) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Checks every image in `out` against `model`.
fn check_images(model: &Model, out: &Path, ext: &str, word_bits: usize) {
    let file = |name: &str| out.join(format!("{name}.{ext}"));
    for (i, w) in model.weights.iter().enumerate() {
        let (n, row_len) = match w.order {
            TileOrder::Flat => (1, w.indices.len()),
            TileOrder::RowPerOutput => (w.dims[0] as usize, w.indices.len() / w.dims[0] as usize),
        };
        let got: Vec<u64> = rows(
            &words(&file(&format!("weights{i}"))),
            word_bits,
            w.bits.into(),
            row_len,
            n,
        )
        .concat();
        let want: Vec<u64> = w.indices.iter().map(|&x| u64::from(x)).collect();
        assert_eq!(got, want, "weights{i} at {word_bits} bits");
    }
    for (i, c) in model.codebooks.iter().enumerate() {
        let g = usize::from(c.grid_bits);
        let got: Vec<i64> = rows(
            &words(&file(&format!("codebook{i}"))),
            word_bits,
            g,
            c.levels.len(),
            1,
        )
        .concat()
        .into_iter()
        .map(|v| if c.signed { signed(v, g) } else { v as i64 })
        .collect();
        let want: Vec<i64> = c.levels.iter().map(|&l| i64::from(l)).collect();
        assert_eq!(got, want, "codebook{i} at {word_bits} bits");
    }
    for (i, t) in model.thresholds.iter().enumerate() {
        let per = (1usize << t.bits()) - 1;
        let got: Vec<i64> = rows(
            &words(&file(&format!("thresholds{i}"))),
            word_bits,
            32,
            per,
            t.directions().len(),
        )
        .concat()
        .into_iter()
        .map(|v| signed(v, 32))
        .collect();
        let want: Vec<i64> = t.values().iter().map(|&v| i64::from(v)).collect();
        assert_eq!(got, want, "thresholds{i} at {word_bits} bits");
        let dirs = rows(
            &words(&file(&format!("thresholds{i}_dir"))),
            word_bits,
            1,
            t.directions().len(),
            1,
        )
        .concat();
        let want: Vec<u64> = t
            .directions()
            .iter()
            .map(|&d| u64::from(d == Direction::Falling))
            .collect();
        assert_eq!(dirs, want, "thresholds{i}_dir at {word_bits} bits");
    }
    for (i, b) in model.biases.iter().enumerate() {
        let got: Vec<i64> = rows(
            &words(&file(&format!("bias{i}"))),
            word_bits,
            32,
            b.len(),
            1,
        )
        .concat()
        .into_iter()
        .map(|v| signed(v, 32))
        .collect();
        let want: Vec<i64> = b.iter().map(|&v| i64::from(v)).collect();
        assert_eq!(got, want, "bias{i} at {word_bits} bits");
    }
}

fn sample_file(dir: &Path, name: &str, model: &Model) -> PathBuf {
    write_model(dir, &format!("{name}.nuq"), model)
}

#[test]
fn mem_images_decode_back_to_the_model_at_every_width() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut models = samples::all();
    models.push(("minimal", samples::minimal()));
    for (name, model) in models {
        let path = sample_file(dir.path(), name, &model);
        for bits in WIDTHS {
            let out = dir.path().join(format!("{name}-{bits}"));
            let text = ok(&export(&path, &out, "mem", bits));
            assert!(text.contains(&format!("with {bits}-bit words")), "{text}");
            check_images(&model, &out, "mem", bits as usize);
        }
    }
}

#[test]
fn coe_and_mif_hold_the_same_words_as_mem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = samples::conv_net();
    let path = sample_file(dir.path(), "conv_net", &model);
    let mem = dir.path().join("mem");
    ok(&export(&path, &mem, "mem", 128));
    for ext in ["coe", "mif"] {
        let out = dir.path().join(ext);
        ok(&export(&path, &out, ext, 128));
        check_images(&model, &out, ext, 128);
        let manifest: Value =
            serde_json::from_slice(&fs::read(out.join("manifest.json")).expect("manifest"))
                .expect("JSON");
        for m in manifest["memories"].as_array().expect("memories") {
            let name = m["name"].as_str().expect("name");
            let file = out.join(m["file"].as_str().expect("file"));
            assert_eq!(
                words(&file),
                words(&mem.join(format!("{name}.mem"))),
                "{name}.{ext}"
            );
        }
    }
    let mif = fs::read_to_string(dir.path().join("mif/weights1.mif")).expect("mif");
    assert!(
        mif.contains("WIDTH=128;") && mif.contains("DEPTH=36;"),
        "{mif}"
    );
    let coe = fs::read_to_string(dir.path().join("coe/weights1.coe")).expect("coe");
    assert!(coe.contains("memory_initialization_radix=16;"), "{coe}");
}

#[test]
fn manifest_lists_exactly_the_files_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = samples::residual();
    let path = sample_file(dir.path(), "residual", &model);
    let out = dir.path().join("out");
    let printed = ok(&nuq([
        "export".as_ref(),
        path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--word-bits".as_ref(),
        "256".as_ref(),
        "--json".as_ref(),
    ]));
    let printed: Value = serde_json::from_str(&printed).expect("one JSON object");
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(printed, manifest, "--json prints the manifest");
    assert_eq!(manifest["format"], "mem", "mem is the default format");
    assert_eq!(manifest["word_bits"], 256);
    let bytes = fs::read(&path).expect("read");
    assert_eq!(manifest["source_bytes"], bytes.len());
    let mut files: Vec<String> = manifest["memories"]
        .as_array()
        .expect("memories")
        .iter()
        .map(|m| {
            let depth = m["depth"].as_u64().expect("depth") as usize;
            let file = m["file"].as_str().expect("file").to_string();
            assert_eq!(words(&out.join(&file)).len(), depth, "{file}");
            assert!(
                m["lanes_per_word"].as_u64().expect("lanes")
                    * m["lane_bits"].as_u64().expect("bits")
                    <= 256
            );
            file
        })
        .collect();
    // 3 weight tensors, 2 codebooks, 2 threshold tables (values + directions), 2 biases.
    assert_eq!(files.len(), 3 + 2 + 2 * 2 + 2);
    files.push("manifest.json".into());
    files.sort();
    assert_eq!(listing(&out), files, "nothing else, no staging directory");
}

#[test]
fn re_export_replaces_files_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = sample_file(dir.path(), "tiny", &samples::tiny());
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    fs::write(out.join("notes.txt"), b"keep me").expect("write");
    fs::write(out.join("bias0.mem"), b"stale").expect("write");
    ok(&export(&path, &out, "mem", 32));
    ok(&export(&path, &out, "mem", 64));
    assert_eq!(fs::read(out.join("notes.txt")).expect("read"), b"keep me");
    let bias = fs::read_to_string(out.join("bias0.mem")).expect("read");
    assert!(bias.starts_with("// bias0: 1 words of 64 bits"), "{bias}");
    assert!(
        !listing(&out).iter().any(|n| n.starts_with('.')),
        "{:?}",
        listing(&out)
    );
}

#[test]
fn impossible_word_width_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = sample_file(dir.path(), "tiny", &samples::tiny());
    let out = dir.path().join("out");
    for bad in [0, 8, 48, 1024] {
        let err = usage_error(&export(&path, &out, "mem", bad));
        assert!(err.contains("32, 64, 128, 256, 512"), "{err}");
    }
    let err = usage_error(&export(&path, &out, "hex", 32));
    assert!(
        err.contains("mem") && err.contains("coe") && err.contains("mif"),
        "{err}"
    );
    usage_error(&nuq([
        "export".as_ref(),
        path.as_os_str(),
        "--word-bits".as_ref(),
        "32".as_ref(),
    ]));
    assert!(!out.exists(), "a usage error writes nothing");
}

#[test]
fn bad_input_fails_and_leaves_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = sample_file(dir.path(), "good", &samples::conv_net());
    let bytes = fs::read(&good).expect("read");
    let out = dir.path().join("out");

    let missing = dir.path().join("missing.nuq");
    let err = fails(&export(&missing, &out, "mem", 64));
    assert!(err.contains("missing.nuq: no such file"), "{err}");

    let corrupt = dir.path().join("corrupt.nuq");
    let mut flipped = bytes.clone();
    flipped[bytes.len() - 3] ^= 0x01;
    fs::write(&corrupt, &flipped).expect("write");
    let err = fails(&export(&corrupt, &out, "coe", 64));
    assert!(err.contains("corrupt.nuq: corrupt file"), "{err}");

    let truncated = dir.path().join("truncated.nuq");
    fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    let err = fails(&export(&truncated, &out, "mif", 64));
    assert!(err.contains("truncated.nuq"), "{err}");

    let text = dir.path().join("text.nuq");
    fs::write(
        &text,
        "this is not a model, just some text that is long enough ".repeat(4),
    )
    .expect("write");
    let err = fails(&export(&text, &out, "mem", 64));
    assert!(err.contains("text.nuq: not a .nuq file"), "{err}");

    assert!(!out.exists(), "failed runs create no output directory");
}

#[test]
fn a_failure_while_writing_leaves_no_partial_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = sample_file(dir.path(), "conv_net", &samples::conv_net());
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    // A directory where the last image must go: the earlier images are already staged
    // when the export finds it.
    fs::create_dir(out.join("bias2.mem")).expect("mkdir");
    let err = fails(&export(&path, &out, "mem", 64));
    assert!(err.contains("bias2.mem: exists and is not a file"), "{err}");
    assert_eq!(
        listing(&out),
        ["bias2.mem"],
        "no image, no manifest, no staging directory"
    );
}

/// A small random ResNet-20 (residual joins, 4-bit k-quantile) written as a `.nuq` file.
fn runnable_resnet(dir: &Path) -> PathBuf {
    use nuq_nn::integer::random::{random_model, RandomModelSpec};
    let mut spec = RandomModelSpec::cifar(nuq_nn::Arch::ResNet20, 4);
    spec.config.width = 0.125;
    let model = random_model(&spec, 1).expect("random model");
    let path = dir.join("resnet20.nuq");
    nuq_nn::pipeline::write_model(
        &path,
        &model,
        nuq_fpga_fmt::CodebookKind::KQuantile,
        Default::default(),
    )
    .expect("write");
    path
}

#[test]
fn onnx_and_qonnx_exports_write_one_file_each_and_report_exactness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = runnable_resnet(dir.path());
    let onnx = dir.path().join("m.onnx");
    let qonnx = dir.path().join("m.qonnx.onnx");
    let o = nuq(common::os([
        &"export", &path, &"--onnx", &onnx, &"--qonnx", &qonnx, &"--batch", &"4", &"--json",
    ]));
    let reports = common::json(&o);
    let reports = reports.as_array().expect("a list of reports");
    assert_eq!(reports.len(), 2);
    for (r, flavour, file) in [(&reports[0], "onnx", &onnx), (&reports[1], "qonnx", &qonnx)] {
        assert_eq!(r["flavour"], flavour);
        assert_eq!(r["batch"], 4);
        assert_eq!(
            r["bytes"].as_u64(),
            Some(fs::metadata(file).expect("written").len())
        );
        assert!(r["nodes"].as_u64().expect("nodes") > 5);
        assert!(r["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .any(|l| l["op"] == "add"));
        assert_eq!(r["exact"], true);
    }
    // Text output; the symbolic batch by default.
    let text = ok(&nuq(common::os([&"export", &path, &"--onnx", &onnx])));
    assert!(
        text.contains("onnx flavour") && text.contains("batch symbolic"),
        "{text}"
    );
    assert!(text.contains("exact"), "{text}");
}

#[test]
fn onnx_export_refuses_mixed_requests_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = runnable_resnet(dir.path());
    let onnx = dir.path().join("m.onnx");
    let e = fails(&nuq(common::os([
        &"export",
        &path,
        &"--onnx",
        &onnx,
        &"--out",
        &dir.path().join("mem"),
    ])));
    assert!(e.contains("separate exports"), "{e}");
    assert!(!onnx.exists());
    // Neither images nor a graph asked for.
    let e = usage_error(&nuq(common::os([&"export", &path])));
    assert!(e.contains("--out") || e.contains("--word-bits"), "{e}");
    let e = usage_error(&nuq(common::os([
        &"export", &path, &"--onnx", &onnx, &"--batch", &"0",
    ])));
    assert!(e.contains("batch"), "{e}");
    // A file that is not a model is named.
    let bad = dir.path().join("bad.nuq");
    fs::write(&bad, b"not a model").expect("write");
    let e = fails(&nuq(common::os([&"export", &bad, &"--onnx", &onnx])));
    assert!(e.contains("bad.nuq"), "{e}");
    assert!(!onnx.exists());
}
