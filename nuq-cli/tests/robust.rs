//! Every input a user can hand `nuq`: crafted `.nuq` files are refused with one clear error
//! line (exit 1) before anything is allocated, never a panic or an abort; crafted datasets
//! likewise; and `--json` makes stdout exactly one JSON document for every subcommand.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{fails, json, nuq, os, quick_bench, stderr, tiny_nuq, write_fashion_like};
use serde_json::Value;

/// A crafted model committed as a fuzz seed (written by `nuq-nn/tests/crafted_files.rs`).
fn crafted(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/integer_model_loader")
        .join(format!("crafted_{name}.nuq"))
}

#[test]
fn a_2_to_the_48_element_input_is_refused_by_every_command_that_runs_models() {
    let dir = tempfile::tempdir().unwrap();
    let model = crafted("input_2p24_squared");
    for args in [
        os([&"bench", &model, &"--seconds", &"0.01"]),
        os([&"vectors", &model, &"--random", &"--out", &dir.path()]),
        os([&"eval", &model, &"--data", &dir.path()]),
    ] {
        let err = fails(&nuq(&args));
        assert!(
            err.contains("not an integer model nuq can run") && err.contains("size too large"),
            "{args:?}: {err}"
        );
    }
    // Nothing was left behind by `vectors`.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_working_set_above_the_memory_limit_is_refused_with_the_flag_to_raise_it() {
    let dir = tempfile::tempdir().unwrap();
    // 2^28 input bytes per image.
    let model = crafted("input_2p14_squared");
    for args in [
        os([
            &"bench",
            &model,
            &"--memory-limit",
            &"64M",
            &"--seconds",
            &"0.01",
        ]),
        os([
            &"vectors",
            &model,
            &"--random",
            &"--memory-limit",
            &"64M",
            &"--out",
            &dir.path().join("v"),
        ]),
        // Within the default limit for one image, not for a batch of 64.
        os([&"bench", &model, &"--batch", &"64", &"--seconds", &"0.01"]),
    ] {
        let err = fails(&nuq(&args));
        assert!(
            err.contains("working memory") && err.contains("--memory-limit"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("v").exists());
    // A malformed limit is a usage error.
    let o = nuq(os([&"bench", &model, &"--memory-limit", &"lots"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn unsupported_fields_are_refused_naming_layer_and_field() {
    for (name, layer, field) in [
        ("dilated_conv", "layer 1 (conv)", "dilation"),
        ("input_codebook", "layer 0 (input)", "act_codebook"),
        ("input_4_bits", "layer 0 (input)", "act_bits"),
        ("requantized_logits", "layer 3 (fc)", "act_bits"),
    ] {
        let err = fails(&nuq(os([&"bench", &crafted(name), &"--seconds", &"0.01"])));
        assert!(
            err.contains(layer) && err.contains(field) && err.contains("not supported"),
            "{name}: {err}"
        );
    }
    // A codebook that repeats a level runs.
    let o = nuq(os([
        &"bench",
        &crafted("repeated_levels"),
        &"--seconds",
        &"0.01",
        &"--json",
    ]));
    assert_eq!(json(&o)["results"].as_array().unwrap().len(), 2);
}

#[test]
fn crafted_datasets_are_refused_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = crafted("pool_4x4");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    // Dimensions whose product overflows 64 bits.
    write(
        "t10k-images-idx3-ubyte",
        &common::idx(0x803, &[u32::MAX; 3], &[0; 16]),
    );
    write("t10k-labels-idx1-ubyte", &common::idx(0x801, &[1], &[0]));
    let err = fails(&nuq(os([&"eval", &model, &"--data", &dir.path()])));
    assert!(err.contains("IDX payload"), "{err}");
    // Images of zero pixels.
    write(
        "t10k-images-idx3-ubyte",
        &common::idx(0x803, &[1, 0, 4], &[]),
    );
    let err = fails(&nuq(os([&"eval", &model, &"--data", &dir.path()])));
    assert!(err.contains("0×4"), "{err}");
    // CIFAR-10 with a truncated record.
    write("test_batch.bin", &[1; 3000]);
    let err = fails(&nuq(os([
        &"eval",
        &model,
        &"--dataset",
        &"cifar10",
        &"--data",
        &dir.path(),
    ])));
    assert!(err.contains("3073-byte records"), "{err}");
}

/// Parses stdout as one JSON document with Python's parser too, where Python is installed
/// (the acceptance check `nuq <cmd> --json | python3 -m json.tool`).
fn python_accepts(stdout: &[u8]) -> bool {
    let Ok(mut child) = Command::new("python3")
        .args(["-m", "json.tool"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return true;
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdout).unwrap();
    child.wait().unwrap().success()
}

fn json_run(args: &[std::ffi::OsString]) -> Value {
    let o = nuq(args);
    let v = json(&o);
    assert!(
        python_accepts(&o.stdout),
        "{args:?}: python3 -m json.tool refuses stdout"
    );
    v
}

#[test]
fn every_subcommand_prints_exactly_one_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_fashion_like(d, 256, 40);
    let model = tiny_nuq(d);
    let ckpt = d.join("float.safetensors");
    let v = json_run(&os([
        &"train",
        &"--data",
        &d,
        &"--width",
        &"0.0625",
        &"--epochs",
        &"1",
        &"--batch",
        &"32",
        &"--out",
        &d.join("t.safetensors"),
        &"--json",
    ]));
    assert!(v["history"].is_array(), "{v}");
    let v = json_run(&os([
        &"quantize",
        &ckpt,
        &"--data",
        &d,
        &"--mean",
        &"0",
        &"--no-eval",
        &"--out",
        &d.join("q.nuq"),
        &"--json",
    ]));
    assert!(v["model_bytes"].as_u64().unwrap() > 0, "{v}");
    let v = json_run(&os([&"eval", &model, &"--data", &d, &"--json"]));
    assert_eq!(v["images"], 40);
    let v = json_run(&os([&"inspect", &model, &"--json"]));
    assert!(v["layers"].is_array(), "{v}");
    let v = json_run(&os([
        &"vectors",
        &model,
        &"--data",
        &d,
        &"--out",
        &d.join("vec"),
        &"--json",
    ]));
    assert!(v["tensors"].is_array(), "{v}");
    let v = json_run(&os([
        &"export",
        &model,
        &"--out",
        &d.join("mem"),
        &"--word-bits",
        &"64",
        &"--json",
    ]));
    assert!(v["memories"].is_array(), "{v}");
    let v = json_run(&quick_bench(&model, &["--json"]));
    assert!(v["results"].is_array(), "{v}");
    let v = json_run(&os([
        &"demo",
        &"--data",
        &d,
        &"--epochs",
        &"1",
        &"--width",
        &"0.0625",
        &"--qat-images",
        &"64",
        &"--out",
        &d.join("demo.nuq"),
        &"--json",
    ]));
    assert!(v["int_acc"].is_number(), "{v}");
}
