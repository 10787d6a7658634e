//! `nuq export` and `nuq vectors` on a model: the files the testbenches read.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::RtlError;

/// The `nuq` binary.
#[derive(Debug, Clone)]
pub struct Nuq {
    exe: PathBuf,
}

impl Nuq {
    /// A given `nuq` executable.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self { exe: exe.into() }
    }

    /// Finds `nuq`: `$NUQ_BIN`, else next to the running executable (the same cargo target
    /// directory, also from `deps/`), else on `PATH`.
    ///
    /// # Errors
    /// [`RtlError::MissingTool`] saying how to build it.
    pub fn locate() -> Result<Self, RtlError> {
        if let Some(p) = std::env::var_os("NUQ_BIN") {
            return Ok(Self::new(p));
        }
        if let Ok(me) = std::env::current_exe() {
            for dir in me.ancestors().skip(1).take(2) {
                let cand = dir.join(format!("nuq{}", std::env::consts::EXE_SUFFIX));
                if cand.is_file() {
                    return Ok(Self::new(cand));
                }
            }
        }
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let cand = dir.join("nuq");
                if cand.is_file() {
                    return Ok(Self::new(cand));
                }
            }
        }
        Err(RtlError::MissingTool(
            "the nuq binary was not found: build it with `cargo build --release -p nuq-cli` or \
             set NUQ_BIN"
                .into(),
        ))
    }

    /// The executable.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<String, RtlError> {
        let out = Command::new(&self.exe).args(args).output().map_err(|e| {
            RtlError::MissingTool(format!("cannot run {}: {e}", self.exe.display()))
        })?;
        if !out.status.success() {
            return Err(RtlError::Tool {
                tool: format!("nuq {}", args[0].to_string_lossy()),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `nuq export MODEL --out DIR --word-bits W`.
    ///
    /// # Errors
    /// [`RtlError::Tool`] with nuq's message.
    pub fn export(&self, model: &Path, out: &Path, word_bits: u32) -> Result<(), RtlError> {
        let w = word_bits.to_string();
        self.run(&[
            "export".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--word-bits".as_ref(),
            w.as_ref(),
        ])
        .map(drop)
    }

    /// `nuq vectors MODEL --out DIR --count N --accumulators`, on the test images of the
    /// dataset in `data` (Fashion-MNIST layout) or, without one, on seeded random images.
    ///
    /// # Errors
    /// [`RtlError::Tool`] with nuq's message.
    pub fn vectors(
        &self,
        model: &Path,
        out: &Path,
        images: usize,
        data: Option<&Path>,
    ) -> Result<(), RtlError> {
        let n = images.to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "vectors".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--count".as_ref(),
            n.as_ref(),
            "--accumulators".as_ref(),
        ];
        match data {
            Some(d) => {
                args.push("--data".as_ref());
                args.push(d.as_os_str());
            }
            None => {
                args.push("--random".as_ref());
                args.push("--seed".as_ref());
                args.push("7".as_ref());
            }
        }
        self.run(&args).map(drop)
    }
}

/// The Debian Fashion-MNIST directory, when the package is installed.
pub fn fashion_mnist_dir() -> Option<PathBuf> {
    let d = PathBuf::from("/usr/share/datasets/fashion-mnist");
    d.join("t10k-images-idx3-ubyte.gz").is_file().then_some(d)
}

/// Reads a `nuq export` or `nuq vectors` manifest.
///
/// # Errors
/// [`RtlError::BadInput`] when it is missing or not JSON.
pub fn manifest(dir: &Path) -> Result<serde_json::Value, RtlError> {
    let p = dir.join("manifest.json");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| RtlError::BadInput(format!("{}: {e}", p.display())))?;
    serde_json::from_str(&text).map_err(|e| RtlError::BadInput(format!("{}: {e}", p.display())))
}

/// Checks that an export and a vectors directory come from the same model file (the CRC-32C
/// of the export's source against the vectors' model file) and that the vectors hold at
/// least `images` images.
///
/// # Errors
/// [`RtlError::BadInput`] naming the mismatch.
pub fn check_pair(mem: &Path, vec: &Path, images: usize) -> Result<(), RtlError> {
    let m = manifest(mem)?;
    let v = manifest(vec)?;
    let crc = m["source_crc32c"].as_u64();
    let vmodel = v["model"].as_str().unwrap_or_default();
    if let (Some(crc), Ok(bytes)) = (crc, std::fs::read(vmodel)) {
        let vcrc = nuq_fpga_fmt::reader::file_crc(&bytes);
        if u64::from(vcrc) != crc {
            return Err(RtlError::BadInput(format!(
                "{} and {} come from different models (export CRC-32C {crc:#010x}, vectors model {vmodel} {vcrc:#010x})",
                mem.display(),
                vec.display()
            )));
        }
    }
    let have = v["images"].as_u64().unwrap_or(0) as usize;
    if have < images {
        return Err(RtlError::BadInput(format!(
            "{} holds {have} images, {images} requested",
            vec.display()
        )));
    }
    Ok(())
}
