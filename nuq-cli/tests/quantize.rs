//! `nuq quantize` and `nuq eval` on tiny data the tests write: float checkpoint in, verified
//! integer model out, accuracies that `nuq eval` reproduces.

mod common;

use common::{
    fails, json, listing, nuq, ok, os, stderr, train_tiny, usage_error, write_fashion_like,
};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// `nuq quantize CKPT --data DATA --out OUT EXTRA..`.
fn quantize_run(ckpt: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = os([&"quantize", &ckpt, &"--data", &data, &"--out", &out]);
    args.extend(extra.iter().map(Into::into));
    nuq(&args)
}

/// The JSON report of `nuq quantize CKPT --data DATA --out OUT --json EXTRA..`.
fn quantize(data: &Path, ckpt: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut extra = extra.to_vec();
    extra.insert(0, "--json");
    json(&quantize_run(ckpt, data, out, &extra))
}

#[test]
fn quantized_models_keep_the_accuracy_and_eval_agrees() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 100);
    let ckpt = train_tiny(dir.path(), &dir.path().join("f.safetensors"));
    for (family, bits) in [("kquantile", "4"), ("apot", "3"), ("uniform", "2")] {
        let out = dir.path().join(format!("{family}.nuq"));
        let v = quantize(
            dir.path(),
            &ckpt,
            &out,
            &[
                "--mean",
                "0",
                "--family",
                family,
                "--bits",
                bits,
                "--qat-epochs",
                "0.5",
            ],
        );
        let int_acc = v["int_acc"].as_f64().unwrap();
        assert!(int_acc > 0.9, "{family}: {v}");
        assert!(v["float_acc"].as_f64().unwrap() > 0.9, "{v}");
        assert!(v["twin_agreement"].as_f64().unwrap() >= 0.99, "{v}");
        assert!(
            v["quantizer"]
                .as_str()
                .unwrap()
                .starts_with(&format!("W{bits}/A{bits} {family}/{family}")),
            "{v}"
        );
        // `nuq eval` runs the written file with integers only and finds the same accuracy.
        let e = nuq(os([&"eval", &out, &"--data", &dir.path(), &"--json"]));
        let e = json(&e);
        assert_eq!(e["kind"], "integer");
        assert_eq!(e["accuracy"].as_f64().unwrap(), int_acc, "{family}");
        assert_eq!(e["images"], 100);
    }
    // Progressive reduction with periodic recalibration reaches 2 bits.
    let out = dir.path().join("progressive.nuq");
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &[
            "--mean",
            "0",
            "--bits",
            "2",
            "--progressive",
            "4,3",
            "--qat-epochs",
            "0.75",
            "--recalib-every",
            "1",
        ],
    );
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{v}");
    let q = v["quantizer"].as_str().unwrap();
    assert!(q.contains("W2/A2") && q.contains("progressive 4→3"), "{v}");
    // The faithful k-quantile's options: nearest-level assignment, median levels, fixed
    // quantiles, UNIQ noise; the report names them and the seed.
    let out = dir.path().join("uniq.nuq");
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &[
            "--mean",
            "0",
            "--bits",
            "3",
            "--qat-epochs",
            "0.5",
            "--bin-level",
            "median",
            "--fixed-quantiles",
            "--uniq-noise",
            "0.5",
            "--seed",
            "7",
        ],
    );
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{v}");
    assert!(v["twin_agreement"].as_f64().unwrap() >= 0.99, "{v}");
    assert_eq!(v["seed"], 7, "{v}");
    let q = v["quantizer"].as_str().unwrap();
    for want in [
        "quantile weights (median levels, fixed quantiles)",
        "UNIQ noise for 0.5 of QAT",
    ] {
        assert!(q.contains(want), "{want}: {v}");
    }
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &["--mean", "0", "--bits", "3", "--assign", "nearest"],
    );
    assert!(
        v["quantizer"].as_str().unwrap().contains("nearest weights"),
        "{v}"
    );
    // UNIQ's gradual schedule, with noise: reported, and the fold agrees with the twin.
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &[
            "--mean",
            "0",
            "--bits",
            "3",
            "--qat-epochs",
            "0.5",
            "--gradual",
            "3",
            "--uniq-noise",
            "0.5",
        ],
    );
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{v}");
    assert!(v["twin_agreement"].as_f64().unwrap() >= 0.99, "{v}");
    assert_eq!(v["gradual"], 3, "{v}");
    assert_eq!(v["gradual_frozen"], true, "{v}");
    assert_eq!(v["uniq_noise"], 0.5, "{v}");
    assert!(
        v["quantizer"]
            .as_str()
            .unwrap()
            .contains("gradual in 3 stages (frozen done blocks)"),
        "{v}"
    );
    let e = usage_error(&nuq(os([
        &"quantize",
        &"x.safetensors",
        &"--out",
        &"x.nuq",
        &"--uniq-noise",
        &"2",
    ])));
    assert!(e.contains("share in [0, 1]"), "{e}");
    // Learned clips, weight normalisation and per-channel k-quantile thresholds together.
    let out = dir.path().join("learned.nuq");
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &[
            "--mean",
            "0",
            "--bits",
            "3",
            "--qat-epochs",
            "0.5",
            "--learn-clip",
            "--weight-norm",
            "--act-per-channel",
        ],
    );
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{v}");
    assert!(v["twin_agreement"].as_f64().unwrap() >= 0.99, "{v}");
    let q = v["quantizer"].as_str().unwrap();
    for want in [
        "per-channel activation thresholds",
        "learned clips",
        "weight normalisation",
    ] {
        assert!(q.contains(want), "{want}: {v}");
    }
    for (flags, want) in [
        (
            &["--progressive", "3,4", "--qat-epochs", "0.5"][..],
            "descending",
        ),
        (&["--progressive", "8"][..], "--qat-epochs"),
        (
            &["--progressive", "4", "--bits", "4", "--qat-epochs", "0.5"][..],
            "not wider",
        ),
        (&["--gradual", "2"][..], "--gradual needs fine-tuning"),
        (
            &[
                "--gradual",
                "2",
                "--progressive",
                "8",
                "--qat-epochs",
                "0.5",
            ][..],
            "cannot be combined",
        ),
        (
            &["--gradual", "99", "--qat-epochs", "0.5"][..],
            "gradual stages",
        ),
    ] {
        let mut args = os([
            &"quantize",
            &ckpt,
            &"--data",
            &dir.path(),
            &"--mean",
            &"0",
            &"--out",
            &dir.path().join("x.nuq"),
        ]);
        args.extend(flags.iter().map(Into::into));
        let err = fails(&nuq(&args));
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    // The float checkpoint evaluates in float.
    let e = json(&nuq(os([
        &"eval",
        &ckpt,
        &"--data",
        &dir.path(),
        &"--json",
    ])));
    assert_eq!(e["kind"], "float");
    assert!(e["accuracy"].as_f64().unwrap() > 0.9, "{e}");
}

#[test]
fn pytorch_checkpoints_need_the_model_named() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 100);
    let ckpt = train_tiny(dir.path(), &dir.path().join("f.safetensors"));
    // The same tensors without nuq's metadata, as PyTorch's safetensors writer leaves them.
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plain = dir.path().join("torch.safetensors");
    std::fs::write(&plain, safetensors::serialize(st.tensors(), None).unwrap()).unwrap();
    let out = dir.path().join("m.nuq");
    let err = fails(&quantize_run(&plain, dir.path(), &out, &[]));
    assert!(
        err.contains("--model") && err.contains("no nuq metadata"),
        "{err}"
    );
    assert!(!out.exists());
    // Named, it quantizes; the wrong width is refused with the tensor that does not fit.
    let v = quantize(
        dir.path(),
        &plain,
        &out,
        &[
            "--model",
            "vgg-small",
            "--width",
            "0.0625",
            "--mean",
            "0",
            "--no-eval",
        ],
    );
    assert!(
        v["int_acc"].is_null() && v["model_bytes"].as_u64().unwrap() > 0,
        "{v}"
    );
    let err = fails(&quantize_run(
        &plain,
        dir.path(),
        &dir.path().join("w.nuq"),
        &["--model", "vgg-small", "--width", "0.125"],
    ));
    assert!(
        err.contains("features.0.weight") || err.contains("shape"),
        "{err}"
    );
    // A nuq checkpoint contradicting --model is refused.
    let err = fails(&quantize_run(
        &ckpt,
        dir.path(),
        &dir.path().join("r.nuq"),
        &["--model", "resnet18"],
    ));
    assert!(err.contains("holds vgg-small"), "{err}");

    // As PyTorch users save it: under DataParallel (`module.`), in half precision, without
    // the batch counts. It quantizes; a renamed tensor is refused with both names.
    let torch_style = |rename: Option<(&str, &str)>| -> Vec<u8> {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .map(|(n, t)| {
                let n = match rename {
                    Some((from, to)) if n == from => to.to_string(),
                    _ => n,
                };
                let half: Vec<u8> = t
                    .data()
                    .chunks_exact(4)
                    .flat_map(|b| {
                        half::f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes()
                    })
                    .collect();
                (format!("module.{n}"), t.shape().to_vec(), half)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, s, b)| {
                let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, s.clone(), b);
                (n.clone(), v.unwrap())
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    };
    let wrapped = dir.path().join("dp-f16.safetensors");
    std::fs::write(&wrapped, torch_style(None)).unwrap();
    let v = quantize(
        dir.path(),
        &wrapped,
        &dir.path().join("dp.nuq"),
        &[
            "--model",
            "vgg-small",
            "--width",
            "0.0625",
            "--mean",
            "0",
            "--no-eval",
        ],
    );
    assert!(v["model_bytes"].as_u64().unwrap() > 0, "{v}");
    std::fs::write(
        &wrapped,
        torch_style(Some(("classifier.bias", "head.bias"))),
    )
    .unwrap();
    let err = fails(&nuq(os([
        &"quantize",
        &wrapped,
        &"--data",
        &dir.path(),
        &"--model",
        &"vgg-small",
        &"--width",
        &"0.0625",
        &"--out",
        &dir.path().join("bad.nuq"),
    ])));
    assert!(
        err.contains(r#"1 missing ("classifier.bias")"#)
            && err.contains(r#"1 unexpected ("module.head.bias")"#),
        "{err}"
    );
}

#[test]
fn bad_input_gets_one_line_and_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 64, 10);
    let out = dir.path().join("m.nuq");
    let missing = dir.path().join("absent.safetensors");
    let err = fails(&quantize_run(&missing, dir.path(), &out, &[]));
    assert!(
        err.contains("absent.safetensors") && err.contains("no such"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not safetensors").unwrap();
    let err = fails(&quantize_run(&garbage, dir.path(), &out, &[]));
    assert!(err.contains("garbage.safetensors"), "{err}");
    assert!(!out.exists());
    for (option, value) in [
        ("--bits", "1"),
        ("--family", "fancy"),
        ("--qat-epochs", "-1"),
    ] {
        usage_error(&nuq(os([
            &"quantize",
            &garbage,
            &"--out",
            &out,
            &option,
            &value,
        ])));
    }
    usage_error(&nuq(os([&"quantize", &garbage])));
    // eval: missing, corrupt and wrong-shape inputs.
    let err = fails(&nuq(os([
        &"eval",
        &dir.path().join("none.nuq"),
        &"--data",
        &dir.path(),
    ])));
    assert!(
        err.contains("none.nuq") && err.contains("no such file"),
        "{err}"
    );
    let corrupt = dir.path().join("corrupt.nuq");
    std::fs::write(&corrupt, b"\x89NUQ\r\n\x1a\nbut then nothing sensible").unwrap();
    let err = fails(&nuq(os([&"eval", &corrupt, &"--data", &dir.path()])));
    assert!(err.contains("corrupt.nuq"), "{err}");
}

/// The same pipeline on data in the CIFAR-10 binary layout, with a residual network and the
/// dataset's own normalisation (input zero points): train → quantize → eval.
#[test]
fn cifar_layout_resnet_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    common::write_cifar10_like(dir.path(), 96, 100);
    let ckpt = dir.path().join("r20.safetensors");
    let o = nuq(os([
        &"train",
        &"--dataset",
        &"cifar10",
        &"--data",
        &dir.path(),
        &"--model",
        &"resnet20",
        &"--width",
        &"0.25",
        &"--epochs",
        &"2",
        &"--batch",
        &"32",
        &"--out",
        &ckpt,
    ]));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = dir.path().join("r20.nuq");
    let mut args = os([
        &"quantize",
        &ckpt,
        &"--dataset",
        &"cifar10",
        &"--data",
        &dir.path(),
        &"--out",
        &out,
        &"--json",
    ]);
    let figs = dir.path().join("figs");
    args.extend(["--qat-epochs", "1", "--plot"].iter().map(Into::into));
    args.push(figs.clone().into());
    let v = json(&nuq(&args));
    assert!(v["float_acc"].as_f64().unwrap() > 0.9, "{v}");
    // --plot draws the residual joins too (their i64 join sums), 4-bit: 15 thresholds each.
    let names = common::listing(&figs);
    let adds: Vec<&String> = names.iter().filter(|n| n.starts_with("add")).collect();
    assert!(!adds.is_empty(), "{names:?}");
    for a in adds {
        let svg = std::fs::read_to_string(figs.join(a)).unwrap();
        assert_eq!(svg.matches("<!-- nuq-threshold k=").count(), 15, "{a}");
    }
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{v}");
    let e = json(&nuq(os([
        &"eval",
        &out,
        &"--dataset",
        &"cifar10",
        &"--data",
        &dir.path(),
        &"--json",
    ])));
    assert_eq!(e["accuracy"], v["int_acc"]);
    // The file holds the residual joins and the input zero points (format 1.1).
    let listing = ok(&nuq(os([&"inspect", &out])));
    assert!(
        listing.contains("aligned_add") && listing.contains("input_zp"),
        "{listing}"
    );
    // A Fashion-MNIST model does not take CIFAR images.
    let fm = dir.path().join("fm");
    std::fs::create_dir(&fm).unwrap();
    write_fashion_like(&fm, 512, 10);
    let err = fails(&nuq(os([&"eval", &out, &"--data", &fm])));
    assert!(err.contains("32x32x3") && err.contains("28x28x1"), "{err}");
}

#[test]
fn an_interrupted_quantize_leaves_no_partial_model() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 50);
    let ckpt = train_tiny(dir.path(), &dir.path().join("f.safetensors"));
    let out = dir.path().join("q.nuq");
    let args = os([
        &"quantize",
        &ckpt,
        &"--data",
        &dir.path(),
        &"--mean",
        &"0",
        &"--qat-epochs",
        &"0.5",
        &"--out",
        &out,
    ]);
    // Kill (SIGKILL) the run at growing delays: whenever it dies, the output path either does
    // not exist or holds a complete, valid model.
    let mut killed = 0;
    for delay_ms in [50u64, 200, 400, 800, 1200, 1600, 2400] {
        let _ = std::fs::remove_file(&out);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nuq"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        if out.exists() {
            let bytes = std::fs::read(&out).unwrap();
            nuq_fpga_fmt::NuqFile::parse(&bytes).expect("a complete model or none");
        }
    }
    assert!(killed >= 3, "only {killed} runs were interrupted");
}

#[test]
fn plot_draws_one_mac_cdf_per_requantized_layer() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 256, 20);
    let ckpt = train_tiny(dir.path(), &dir.path().join("f.safetensors"));
    let out = dir.path().join("q.nuq");
    let plots = dir.path().join("figs").join("nested");
    let plot_arg = plots.to_str().unwrap();
    let v = quantize(
        dir.path(),
        &ckpt,
        &out,
        &[
            "--mean",
            "0",
            "--bits",
            "2",
            "--no-eval",
            "--plot",
            plot_arg,
        ],
    );
    // One figure per layer with MAC thresholds in the written model, plus the index.
    let bytes = std::fs::read(&out).unwrap();
    let file = nuq_fpga_fmt::NuqFile::parse(&bytes).unwrap();
    let requantized = nuq_fpga_fmt::Model::from_file(&file)
        .layers
        .iter()
        .filter(|l| l.thresholds.is_some())
        .count();
    assert!(requantized >= 2, "{requantized}");
    let names = listing(&plots);
    let svgs: Vec<&String> = names.iter().filter(|n| n.ends_with(".svg")).collect();
    assert_eq!(svgs.len(), requantized, "{names:?}");
    assert_eq!(names.len(), requantized + 1, "{names:?}");
    assert_eq!(v["plots"].as_array().unwrap().len(), requantized + 1, "{v}");
    let index = std::fs::read_to_string(plots.join("index.md")).unwrap();
    for svg in &svgs {
        assert!(index.contains(&format!("({svg})")), "{index}");
        let text = std::fs::read_to_string(plots.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") || text.starts_with("<?xml"),
            "{svg}"
        );
        assert!(text.trim_end().ends_with("</svg>"), "{svg}");
        // 2-bit codes: three thresholds, each marked; every drawn one is a polyline beside
        // the CDF and the boundaries.
        let marks = text.matches("<!-- nuq-threshold k=").count();
        assert_eq!(marks, 3, "{svg}");
        let drawn = marks - text.matches("off-plot").count();
        assert!(text.matches("<polyline").count() > drawn + 3, "{svg}");
        assert!(
            text.contains("channel "),
            "{svg}: caption names the channel"
        );
    }
    // The model is the same with and without --plot.
    let plain = dir.path().join("plain.nuq");
    quantize(
        dir.path(),
        &ckpt,
        &plain,
        &["--mean", "0", "--bits", "2", "--no-eval"],
    );
    assert_eq!(std::fs::read(&plain).unwrap(), bytes);

    // A --plot path under a regular file: a clear error naming it, no model, no figures.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = blocker.join("figs");
    let out2 = dir.path().join("q2.nuq");
    let o = quantize_run(
        &ckpt,
        dir.path(),
        &out2,
        &[
            "--mean",
            "0",
            "--bits",
            "2",
            "--no-eval",
            "--plot",
            bad.to_str().unwrap(),
        ],
    );
    let err = fails(&o);
    assert!(err.contains("blocker"), "{err}");
    assert!(!out2.exists());
    assert!(!bad.exists());
}
