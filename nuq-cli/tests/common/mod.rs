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
