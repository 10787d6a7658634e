//! `nuq train`: float training with checkpoints and resume, and quantization-aware training
//! to a `.nuq` model, on tiny data the tests write.

mod common;

use common::{fails, json, nuq, os, stderr, train_tiny, usage_error, write_fashion_like};
use std::ffi::OsString;
use std::path::Path;

/// The arguments of a tiny float run: `nuq train --data DATA --width 0.0625 --batch 32
/// --epochs EPOCHS --out OUT --json`.
fn train_args(data: &Path, epochs: &str, out: &Path) -> Vec<OsString> {
    os([
        &"train",
        &"--data",
        &data,
        &"--width",
        &"0.0625",
        &"--batch",
        &"32",
        &"--epochs",
        &epochs,
        &"--out",
        &out,
        &"--json",
    ])
}

#[test]
fn float_training_checkpoints_every_epoch_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 100);
    let ckpt = dir.path().join("vgg.safetensors");
    let base = |epochs: &str| train_args(dir.path(), epochs, &ckpt);
    let mut first = base("2");
    first.extend(["--stop-after".into(), "1".into()]);
    let o = nuq(&first);
    // With --json stdout is one JSON document; the progress lines go to stderr.
    let v = json(&o);
    let text = stderr(&o);
    assert!(
        text.contains("epoch   1/2") && text.contains("stopped after epoch 1 of 2"),
        "{text}"
    );
    assert!(v["test_acc"].as_f64().unwrap() > 0.9, "{text}");
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    assert!(ckpt.is_file());
    assert!(dir.path().join("vgg.safetensors.state").is_file());

    // A second run with --resume continues at epoch 2 of 2.
    let mut args = base("2");
    args.push("--resume".into());
    let o = nuq(&args);
    json(&o);
    let text = stderr(&o);
    assert!(
        text.contains("epoch   2/2") && !text.contains("epoch   1/2"),
        "{text}"
    );
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));

    // Resuming a finished run, or with other settings, is refused.
    let err = fails(&nuq(&args));
    assert!(err.contains("already finished 2 of 2 epochs"), "{err}");
    let refused = [
        (["--seed", "9"], ["seed", "same settings"]),
        (["--model", "resnet20"], ["vgg-small", "--model"]),
    ];
    for (setting, said) in refused {
        let mut other = base("2");
        other.push("--resume".into());
        other.extend(setting.map(OsString::from));
        let err = fails(&nuq(&other));
        assert!(said.iter().all(|w| err.contains(w)), "{err}");
    }
}

#[test]
fn quantization_aware_training_writes_an_integer_model() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, 100);
    let ckpt = train_tiny(dir.path(), &dir.path().join("f.safetensors"));
    let out = dir.path().join("w3a3.nuq");
    let o = nuq(os([
        &"train",
        &"--data",
        &dir.path(),
        &"--bits",
        &"3",
        &"--family",
        &"lloyd",
        &"--init",
        &ckpt,
        &"--epochs",
        &"1",
        &"--mean",
        &"0",
        &"--out",
        &out,
        &"--json",
    ]));
    let v = json(&o);
    let text = v.to_string();
    assert!(v["int_acc"].as_f64().unwrap() > 0.9, "{text}");
    assert!(
        v["quantizer"]
            .as_str()
            .unwrap()
            .contains("W3/A3 lloyd/lloyd"),
        "{text}"
    );
    assert_eq!(
        v["model_bytes"].as_u64().unwrap(),
        std::fs::metadata(&out).unwrap().len()
    );
}

#[test]
fn bad_requests_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 64, 10);
    let out = dir.path().join("m.safetensors");
    // Usage errors.
    usage_error(&nuq(os([&"train", &"--out", &out, &"--bits", &"4"])));
    usage_error(&nuq(os([
        &"train", &"--out", &out, &"--bits", &"9", &"--init", &out,
    ])));
    usage_error(&nuq(os([&"train", &"--out", &out, &"--model", &"alexnet"])));
    usage_error(&nuq(os([&"train", &"--out", &out, &"--width", &"0"])));
    usage_error(&nuq(["train"]));
    // Runtime failures name the problem and leave no file behind.
    let data = dir.path();
    let failures = [
        (
            os([&"--data", &data.join("missing"), &"--out", &out]),
            &["missing", "--data"][..],
        ),
        (
            os([&"--data", &data, &"--out", &data.join("m.nuq")]),
            &[".safetensors"],
        ),
        (
            os([&"--data", &data, &"--batch", &"1000", &"--out", &out]),
            &["fewer than one batch"],
        ),
        (
            os([
                &"--data",
                &data,
                &"--batch",
                &"32",
                &"--out",
                &out,
                &"--resume",
            ]),
            &["start the run without --resume"],
        ),
        (
            os([&"--dataset", &"cifar10", &"--out", &out]),
            &["--data DIR"],
        ),
    ];
    for (args, said) in failures {
        let err = fails(&nuq(std::iter::once(OsString::from("train")).chain(args)));
        assert!(said.iter().all(|w| err.contains(w)), "{err}");
    }
    assert!(!out.exists());
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_same_checkpoint_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 1024, 50);
    let args = |out: &Path| {
        let mut args = train_args(dir.path(), "3", out);
        args.extend(["--threads".into(), "2".into()]);
        args
    };
    // The uninterrupted run.
    let whole = dir.path().join("whole.safetensors");
    let v = json(&nuq(args(&whole)));
    let epoch_seconds = v["history"][1]["seconds"].as_f64().unwrap();

    // The same run, killed (SIGKILL) half-way through epoch 2.
    let killed = dir.path().join("killed.safetensors");
    let state = dir.path().join("killed.safetensors.state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nuq"))
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !state.exists() {
        assert!(start.elapsed().as_secs() < 120, "epoch 1 never finished");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_secs_f64(epoch_seconds / 2.0));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed");
    // Nothing half-written is left next to the checkpoint.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.len() <= 2, "{leftovers:?}");

    let mut resume = args(&killed);
    resume.push("--resume".into());
    let o = nuq(&resume);
    json(&o);
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    assert!(
        std::fs::read(&whole).unwrap() == std::fs::read(&killed).unwrap(),
        "the resumed run's checkpoint differs from the uninterrupted run's"
    );
}
