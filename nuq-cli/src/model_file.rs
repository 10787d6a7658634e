//! Reading a `.nuq` file from disk and validating it, with failures phrased for the person at
//! the terminal: which file, what is wrong with it, and what to do about it.

use crate::exit::Failure;
use nuq_fpga_fmt::{CodebookKind, Error, ErrorKind, Location, Model, NuqFile, WriteError};
use nuq_nn::integer::{from_file_model, IntegerModel};
use nuq_nn::NnError;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The `--memory-limit` option of the commands that run a `.nuq` model.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Working memory the integer model may use (bytes, or with a K, M, G or T suffix, powers
    /// of 1024); a model or batch that needs more is refused before anything is allocated.
    #[arg(long, value_name = "BYTES", default_value = "8G", value_parser = parse_bytes)]
    pub memory_limit: u64,
}

impl MemoryArgs {
    /// Makes the limit the one the pipeline's evaluations use in this process.
    pub fn apply(&self) {
        nuq_nn::pipeline::set_memory_limit(self.memory_limit);
    }
}

/// Parses `8G`, `512M`, `64K`, `1T` or a plain byte count.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?}; use K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a byte count such as 8G or 512M, found {text:?}"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{text:?} is not a positive size below 2^64 bytes"))
}

/// Reads the whole file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    let shown = path.display();
    if path.is_dir() {
        return Err(Failure::new(format!(
            "{shown}: is a directory; pass the path of a .nuq model file"
        )));
    }
    std::fs::read(path).map_err(|e| {
        Failure::new(match e.kind() {
            io::ErrorKind::NotFound => format!("{shown}: no such file; check the path"),
            io::ErrorKind::PermissionDenied => {
                format!("{shown}: permission denied; check the file's permissions")
            }
            _ => format!("{shown}: cannot read the file: {e}"),
        })
    })
}

/// Validates `bytes` (the contents of `path`) as a `.nuq` file: header, every checksum, every
/// section and the graph's references.
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<NuqFile<'a>, Failure> {
    NuqFile::parse(bytes).map_err(|e| Failure::new(explain(path, bytes.len(), &e)))
}

/// Reads, validates and maps the `.nuq` file at `path` to the integer model it describes.
pub fn read_integer_model(path: &Path) -> Result<IntegerModel, Failure> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    from_file_model(&Model::from_file(&file)).map_err(|e| {
        Failure::new(format!(
            "{}: a valid .nuq file, but not an integer model nuq can run: {e}",
            path.display()
        ))
    })
}

/// Writes `model` to `path` (temporary file + rename: a failed run leaves no partial file)
/// and returns the file's size in bytes.
pub fn write_model(
    path: &Path,
    model: &IntegerModel,
    kind: CodebookKind,
    metadata: BTreeMap<String, String>,
) -> Result<u64, Failure> {
    nuq_nn::pipeline::write_model(path, model, kind, metadata).map_err(|e| {
        Failure::new(match e {
            NnError::Write(WriteError::Io { .. }) | NnError::Io { .. } => e.to_string(),
            NnError::Write(_) => format!("{}: {e}", path.display()),
            _ => format!(
                "{}: cannot express the model in the .nuq format: {e}",
                path.display()
            ),
        })
    })
}

/// One line that says what is wrong with the file at `path` (of `len` bytes) and what to do.
fn explain(path: &Path, len: usize, e: &Error) -> String {
    let shown = path.display();
    const REGENERATE: &str = "copy it again or regenerate it";
    match e.kind {
        ErrorKind::BadMagic => format!(
            "{shown}: not a .nuq file (it does not start with the .nuq magic bytes); pass a model written in the nuq format"
        ),
        ErrorKind::Truncated { .. } if e.location == Location::Header && len == 0 => {
            format!("{shown}: the file is empty, not a .nuq model; {REGENERATE}")
        }
        ErrorKind::Truncated { .. } if e.location == Location::Header => format!(
            "{shown}: only {len} bytes, too short to be a .nuq file (the header alone is 64 bytes); {REGENERATE}"
        ),
        ErrorKind::NewerMajor { .. } | ErrorKind::OlderMajor { .. } => {
            format!("{shown}: {}", e.kind)
        }
        ErrorKind::Crc { .. } => format!(
            "{shown}: corrupt file: checksum of the {} does not match ({e}); the bytes changed after the file was written: {REGENERATE}",
            match e.location {
                Location::Header => "whole file".to_string(),
                Location::SectionTable => match e.record {
                    Some(r) => format!("payload of section {r}"),
                    None => "section table".to_string(),
                },
                other => other.to_string(),
            }
        ),
        ErrorKind::Mismatch { .. } if e.field == "file_length" => format!(
            "{shown}: the file is {len} bytes, which does not match its header ({e}); it was truncated or extended after it was written: {REGENERATE}"
        ),
        ErrorKind::Truncated { .. } | ErrorKind::OutOfBounds { .. } => format!(
            "{shown}: truncated or damaged .nuq file ({e}); {REGENERATE}"
        ),
        _ => format!(
            "{shown}: invalid .nuq file ({e}); the file was edited or its writer is broken: regenerate it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_fpga_fmt::{encode, samples, WriteOptions};

    fn tiny() -> Vec<u8> {
        encode(&samples::tiny(), &WriteOptions::default()).expect("the tiny sample encodes")
    }

    fn message(bytes: &[u8]) -> String {
        match parse(Path::new("m.nuq"), bytes) {
            Ok(_) => panic!("expected a failure"),
            Err(f) => f.to_string(),
        }
    }

    #[test]
    fn valid_bytes_parse() {
        let bytes = tiny();
        assert!(parse(Path::new("m.nuq"), &bytes).is_ok());
    }

    #[test]
    fn explains_each_common_failure() {
        let bytes = tiny();
        assert!(message(&[]).contains("m.nuq: the file is empty"));
        assert!(message(b"hello").contains("only 5 bytes"));
        let mut magic = bytes.clone();
        magic[1] = b'X';
        assert!(message(&magic).contains("m.nuq: not a .nuq file"));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let m = message(&flipped);
        assert!(
            m.contains("corrupt file") && m.contains("whole file"),
            "{m}"
        );
        let cut = message(&bytes[..bytes.len() - 8]);
        assert!(cut.contains("truncated or extended"), "{cut}");
    }

    #[test]
    fn section_crc_failure_names_the_section() {
        let mut bytes = tiny();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        // Fix the whole-file CRC so that the per-section check is the one that fails.
        let crc = nuq_fpga_fmt::reader::file_crc(&bytes);
        bytes[40..44].copy_from_slice(&crc.to_le_bytes());
        let m = message(&bytes);
        assert!(m.contains("payload of section"), "{m}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e75_715f_636c_6901),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any damage (flipped bytes, a cut) is refused with one line that names the file.
        #[test]
        fn any_damage_is_one_line_naming_the_file(
            flips in proptest::collection::vec((0usize..4096, 1u8..=255), 1..4),
            cut in proptest::option::of(0usize..4096),
        ) {
            let mut bytes = tiny();
            for (at, x) in flips {
                let at = at % bytes.len();
                bytes[at] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c % bytes.len());
            }
            let m = message(&bytes);
            proptest::prop_assert!(m.starts_with("m.nuq: "), "{}", m);
            proptest::prop_assert!(!m.contains('\n'), "{}", m);
        }
    }

    #[test]
    fn missing_file_and_directory_are_explained() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = read(&dir.path().join("absent.nuq"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.ends_with("absent.nuq: no such file; check the path"),
            "{missing}"
        );
        let is_dir = read(dir.path()).unwrap_err().to_string();
        assert!(is_dir.contains("is a directory"), "{is_dir}");
    }
}
