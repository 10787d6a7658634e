//! MNIST / Fashion-MNIST IDX files, gzipped or plain.
//!
//! IDX: a big-endian magic `0x0000 08 NN` (type 08 = unsigned byte, NN = number of
//! dimensions), NN big-endian `u32` sizes, then the bytes. Images are `idx3` (`n × rows ×
//! cols`), labels `idx1` (`n`).

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::data::{DataError, Dataset, Split};

/// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A parsed IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// Finds `name.gz` or `name` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        return Ok(gz);
    }
    let plain = dir.join(name);
    if plain.exists() {
        return Ok(plain);
    }
    Err(DataError::Missing {
        path: gz,
        alternatives: vec![plain.display().to_string()],
    })
}

/// Reads an IDX file of unsigned bytes with `ndims` dimensions (gzip detected by content).
pub fn read_idx(path: &Path, ndims: u8) -> Result<IdxArray, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        out
    } else {
        raw
    };
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        return Err(DataError::Size {
            path: path.to_path_buf(),
            what: "IDX header".into(),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = 0x0000_0800 | ndims as u32;
    if magic != expected {
        return Err(DataError::Magic {
            path: path.to_path_buf(),
            expected,
            found: magic,
        });
    }
    let dims: Vec<usize> = (0..ndims as usize)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count: u64 = dims.iter().map(|&d| d as u64).product();
    let found = (bytes.len() - header) as u64;
    if found != count {
        return Err(DataError::Size {
            path: path.to_path_buf(),
            what: format!("IDX payload for dimensions {dims:?}"),
            expected: count,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads MNIST or Fashion-MNIST (`train-*` or `t10k-*` `images-idx3-ubyte` /
/// `labels-idx1-ubyte`, each optionally `.gz`) from `dir`.
pub fn load_mnist_like(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let ip = locate(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = locate(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&ip, 3)?;
    let labels = read_idx(&lp, 1)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::Invalid {
            path: lp,
            message: format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                ip.display()
            ),
        });
    }
    if let Some((i, &l)) = labels.data.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(DataError::Invalid {
            path: lp,
            message: format!("label {l} at index {i} is not below 10"),
        });
    }
    Ok(Dataset {
        images: images.data,
        labels: labels.data.iter().map(|&l| l as u16).collect(),
        height: images.dims[1],
        width: images.dims[2],
        channels: 1,
        classes: 10,
    })
}
