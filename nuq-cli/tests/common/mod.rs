//! Helpers shared by the integration tests: running the built `nuq` binary and writing small
//! `.nuq` models with the format crate's writer.
#![allow(dead_code)]

use nuq_fpga_fmt::{write_file, Model, WriteOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `nuq` binary with `args`.
pub fn nuq<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_nuq"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the nuq binary runs")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// Asserts a successful run with nothing on stderr; returns stdout.
pub fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(o));
    stdout(o)
}

/// Asserts a successful `--json` run: exit code 0 and stdout exactly one JSON document (the
/// whole of it parsed; human-readable text may go to stderr); returns the document.
pub fn json(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    let out = stdout(o);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e}): {out}"))
}

/// Asserts a runtime failure: exit code 1, nothing on stdout, exactly one `error: ` line on
/// stderr, no panic; returns that line.
pub fn fails(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    err.trim_end().to_string()
}

/// Asserts a usage error: exit code 2 and a clap message; returns stderr.
pub fn usage_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Writes `model` to `dir/name` with the format crate's writer.
pub fn write_model(dir: &Path, name: &str, model: &Model) -> PathBuf {
    let path = dir.join(name);
    write_file(&path, model, &WriteOptions::default()).expect("the model is written");
    path
}

/// Names in `dir`, sorted (hidden ones included).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readable directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An IDX file: magic, dimensions, data.
pub fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// Two easy classes (bright top half vs bright bottom half) among ten labels.
pub fn write_fashion_like(dir: &Path, train: usize, test: usize) {
    for (name, n) in [("train", train), ("t10k", test)] {
        let mut pixels = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i % 2) as u8;
            labels.push(class);
            for p in 0..784 {
                let top = p < 392;
                let bright = (class == 0) == top;
                pixels.push(if bright {
                    200 + (p % 50) as u8
                } else {
                    (p * 7 % 40) as u8
                });
            }
        }
        std::fs::write(
            dir.join(format!("{name}-images-idx3-ubyte")),
            idx(0x803, &[n as u32, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{name}-labels-idx1-ubyte")),
            idx(0x801, &[n as u32], &labels),
        )
        .unwrap();
    }
}

/// CIFAR-10 binary batches (`data_batch_1..5.bin`, `test_batch.bin`; records of a label byte
/// and 3072 channel-planar pixels): two easy classes, reddish vs bluish images, `per_batch`
/// images in each training batch and `test` in the test batch.
pub fn write_cifar10_like(dir: &Path, per_batch: usize, test: usize) {
    let record = |i: usize| {
        let class = (i % 2) as u8;
        let mut r = vec![class];
        // Per-image noise from a small xorshift generator seeded by the image index.
        let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 48) as u8
        };
        for plane in 0..3usize {
            for p in 0..1024usize {
                let strong = (class == 0 && plane == 0) || (class == 1 && plane == 2);
                r.push(if strong {
                    160 + (p % 48) as u8 + noise()
                } else {
                    ((p * 13 + plane * 7) % 48) as u8 + noise()
                });
            }
        }
        r
    };
    for b in 1..=5 {
        let bytes: Vec<u8> = (0..per_batch).flat_map(|i| record(i + b)).collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    let bytes: Vec<u8> = (0..test).flat_map(record).collect();
    std::fs::write(dir.join("test_batch.bin"), bytes).unwrap();
}

/// Trains a tiny VGG-Small float checkpoint with `nuq train` on the easy Fashion-MNIST-like
/// data in `data` (written by [`write_fashion_like`]) and returns its path.
pub fn train_tiny(data: &Path, out: &Path) -> PathBuf {
    let o = nuq([
        "train".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--width".as_ref(),
        "0.0625".as_ref(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--batch".as_ref(),
        "32".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    out.to_path_buf()
}

/// `args` as OS strings (paths and plain strings mixed).
pub fn os<const N: usize>(args: [&dyn AsRef<std::ffi::OsStr>; N]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// The arguments of a quick benchmark: `nuq bench MODEL --batch 2 --seconds 0.01 EXTRA..`.
pub fn quick_bench(model: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args = os([&"bench", &model, &"--batch", &"2", &"--seconds", &"0.01"]);
    args.extend(extra.iter().map(Into::into));
    args
}

/// A tiny 4-bit k-quantile `.nuq` model of the easy Fashion-MNIST-like data in `data`.
pub fn tiny_nuq(data: &Path) -> PathBuf {
    let ckpt = train_tiny(data, &data.join("float.safetensors"));
    let out = data.join("tiny.nuq");
    let o = nuq(os([
        &"quantize",
        &ckpt,
        &"--data",
        &data,
        &"--mean",
        &"0",
        &"--no-eval",
        &"--out",
        &out,
    ]));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    out
}
