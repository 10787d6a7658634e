//! `nuq quantize`/`nuq eval` on ONNX files (the fixtures of nuq-nn/tests/fixtures/onnx):
//! the file kind is recognised, a supported network quantizes and its `.nuq` evaluates
//! identically, an unsupported one is refused naming the node, a wrong input size is explained.

mod common;

use common::{fails, json, nuq, os, write_fashion_like};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../nuq-nn/tests/fixtures/onnx")
        .join(name)
}

#[test]
fn an_onnx_resnet_quantizes_and_its_model_evaluates_identically() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 256, 64);
    let onnx = fixture("resnet_tiny.onnx");
    let float = json(&nuq(os([
        &"eval",
        &onnx,
        &"--data",
        &dir.path(),
        &"--json",
    ])));
    assert_eq!(float["kind"], "float");
    let out = dir.path().join("r.nuq");
    let v = json(&nuq(os([
        &"quantize",
        &onnx,
        &"--data",
        &dir.path(),
        &"--bits",
        &"4",
        &"--calib-images",
        &"64",
        &"--out",
        &out,
        &"--json",
    ])));
    assert_eq!(v["model"], "onnx");
    assert_eq!(v["float_acc"], float["accuracy"]);
    assert!(v["twin_agreement"].as_f64().unwrap() >= 0.98, "{v}");
    let e = json(&nuq(os([&"eval", &out, &"--data", &dir.path(), &"--json"])));
    assert_eq!(e["kind"], "integer");
    assert_eq!(e["accuracy"], v["int_acc"]);
    // Quantization-aware training starts from the ONNX file too.
    let qat = dir.path().join("qat.nuq");
    let t = json(&nuq(os([
        &"train",
        &"--data",
        &dir.path(),
        &"--bits",
        &"4",
        &"--init",
        &onnx,
        &"--epochs",
        &"1",
        &"--out",
        &qat,
        &"--json",
    ])));
    let e = json(&nuq(os([&"eval", &qat, &"--data", &dir.path(), &"--json"])));
    assert_eq!(
        Some(e["accuracy"].as_f64().unwrap()),
        t["int_acc"].as_f64(),
        "{t}"
    );
}

#[test]
fn unsupported_and_mismatched_onnx_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 16, 16);
    let err = fails(&nuq(os([
        &"eval",
        &fixture("unsupported_leaky_relu.onnx"),
        &"--data",
        &dir.path(),
    ])));
    assert!(
        err.contains("LeakyRelu") && err.contains("/act/LeakyRelu") && err.contains("graph.node["),
        "{err}"
    );
    // 12×12 images into 5 classes, not Fashion-MNIST's 28×28 into 10.
    let err = fails(&nuq(os([
        &"eval",
        &fixture("chain_bn.onnx"),
        &"--data",
        &dir.path(),
    ])));
    assert!(err.contains("12x12x1") && err.contains("28x28x1"), "{err}");
    // --model does not apply to an ONNX file.
    let err = fails(&nuq(os([
        &"eval",
        &fixture("resnet_tiny.onnx"),
        &"--data",
        &dir.path(),
        &"--model",
        &"resnet18",
    ])));
    assert!(err.contains("drop --model"), "{err}");
    // A truncated file is an error, not a panic.
    let bytes = std::fs::read(fixture("resnet_tiny.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&nuq(os([&"eval", &cut, &"--data", &dir.path()])));
    assert!(err.contains("not a valid ONNX file"), "{err}");
}
