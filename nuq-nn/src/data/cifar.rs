//! CIFAR-10 and CIFAR-100 binary versions.
//!
//! CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of one label
//! byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each row-major 32×32).
//! CIFAR-100: `train.bin` and `test.bin`, records of a coarse label byte, a fine label byte and
//! the same 3072 pixel bytes. Pixels are converted to NHWC.

use std::path::{Path, PathBuf};

use crate::data::{DataError, Dataset, Split};

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR-100 label to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 20 super-classes.
    Coarse,
    /// The 100 classes.
    Fine,
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            alternatives: Vec::new(),
        });
    }
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends the records of one file; `label_bytes` per record precede the pixels and the label
/// used is byte `label_index`.
fn append_records(
    path: &Path,
    bytes: &[u8],
    label_bytes: usize,
    label_index: usize,
    classes: usize,
    ds: &mut Dataset,
) -> Result<(), DataError> {
    let rec = label_bytes + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(DataError::Size {
            path: path.to_path_buf(),
            what: format!("a whole number of {rec}-byte records"),
            expected: (bytes.len() / rec).max(1) as u64 * rec as u64,
            found: bytes.len() as u64,
        });
    }
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[label_index] as usize;
        if label >= classes {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                message: format!("record {i}: label {label} not below {classes}"),
            });
        }
        ds.labels.push(label as u16);
        let px = &r[label_bytes..];
        for p in 0..1024 {
            ds.images
                .extend_from_slice(&[px[p], px[1024 + p], px[2048 + p]]);
        }
    }
    Ok(())
}

fn empty(classes: usize) -> Dataset {
    Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        height: 32,
        width: 32,
        channels: 3,
        classes,
    }
}

/// Reads CIFAR-10 (binary version) from `dir` (the folder holding the `.bin` files).
pub fn load_cifar10(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let files: Vec<PathBuf> = match split {
        Split::Train => (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test => vec![dir.join("test_batch.bin")],
    };
    let mut ds = empty(10);
    for f in files {
        let bytes = read(&f)?;
        let part = decode_cifar10(&f, &bytes)?;
        ds.images.extend_from_slice(&part.images);
        ds.labels.extend_from_slice(&part.labels);
    }
    Ok(ds)
}

/// Decodes one CIFAR-10 batch file's contents (`path` only names it in errors).
///
/// # Errors
/// [`DataError::Size`] for a length that is not a whole number of records,
/// [`DataError::Invalid`] for a label not below 10.
pub fn decode_cifar10(path: &Path, bytes: &[u8]) -> Result<Dataset, DataError> {
    let mut ds = empty(10);
    append_records(path, bytes, 1, 0, 10, &mut ds)?;
    Ok(ds)
}

/// Decodes a CIFAR-100 file's contents (`path` only names it in errors) with coarse or fine
/// labels.
///
/// # Errors
/// As [`decode_cifar10`] (labels below 20 or 100).
pub fn decode_cifar100(
    path: &Path,
    bytes: &[u8],
    labels: Cifar100Labels,
) -> Result<Dataset, DataError> {
    let (index, classes) = match labels {
        Cifar100Labels::Coarse => (0, 20),
        Cifar100Labels::Fine => (1, 100),
    };
    let mut ds = empty(classes);
    append_records(path, bytes, 2, index, classes, &mut ds)?;
    Ok(ds)
}

/// Reads CIFAR-100 (binary version) from `dir` with coarse or fine labels.
pub fn load_cifar100(
    dir: &Path,
    split: Split,
    labels: Cifar100Labels,
) -> Result<Dataset, DataError> {
    let f = dir.join(match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    });
    let bytes = read(&f)?;
    decode_cifar100(&f, &bytes, labels)
}
