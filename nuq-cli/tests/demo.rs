//! `nuq demo` end to end on tiny Fashion-MNIST-shaped IDX files the test writes.

mod common;

use common::{fails, json, nuq, ok, stderr, usage_error, write_fashion_like};
use serde_json::Value;
use std::fs;

#[test]
fn demo_trains_quantizes_and_writes_a_readable_model() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 200);
    let out = dir.path().join("demo.nuq");
    let o = nuq([
        "demo".as_ref(),
        "--data".as_ref(),
        dir.path().as_os_str(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--width".as_ref(),
        "0.0625".as_ref(),
        "--qat-images".as_ref(),
        "256".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    // Progress notes and the table go to stderr; stdout is exactly one JSON document.
    let v: Value = json(&o);
    assert!(stderr(&o).contains("float test accuracy"), "{}", stderr(&o));
    assert!(stderr(&o).contains("integer-only"), "{}", stderr(&o));
    let json = v.to_string();
    for key in [
        "float_acc",
        "int_acc",
        "uniform_int_acc",
        "model_bytes",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {json}");
    }
    // The two classes are trivially separable: even one short epoch learns them, and the
    // integer models must keep it.
    assert!(v["float_acc"].as_f64().unwrap() > 0.9, "{json}");
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{json}");
    assert_eq!(
        v["model_bytes"].as_u64().unwrap(),
        fs::metadata(&out).unwrap().len()
    );
    let text = stderr(&o);
    assert!(text.contains("k-quantile"), "{text}");
    // The written model is a valid .nuq that inspect reads.
    let listing = ok(&nuq(["inspect".as_ref(), out.as_os_str()]));
    assert!(
        listing.contains("conv2d") && listing.contains("k_quantile"),
        "{listing}"
    );
}

#[test]
fn missing_data_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = fails(&nuq([
        "demo".as_ref(),
        "--data".as_ref(),
        missing.as_os_str(),
    ]));
    assert!(
        err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
    assert!(!dir.path().join("demo.nuq").exists());
    // A directory without the files names the missing file.
    let err = fails(&nuq([
        "demo".as_ref(),
        "--data".as_ref(),
        dir.path().as_os_str(),
    ]));
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn impossible_settings_are_usage_errors() {
    usage_error(&nuq(["demo", "--bits", "9"]));
    usage_error(&nuq(["demo", "--epochs", "0"]));
}
