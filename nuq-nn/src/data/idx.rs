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

/// Largest IDX payload [`read_idx`] decompresses or reads (2^31 bytes; Fashion-MNIST's
/// training images are 47 MB): a crafted gzip stream cannot exhaust memory.
pub const MAX_IDX_BYTES: u64 = 1 << 31;

/// Reads an IDX file of unsigned bytes with `ndims` dimensions (gzip detected by content).
///
/// # Errors
/// [`DataError::Io`] for an unreadable file or a broken gzip stream; as [`parse_idx`].
pub fn read_idx(path: &Path, ndims: u8) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(path, &raw, ndims, MAX_IDX_BYTES)
}

/// Parses the contents `raw` of an IDX file (`path` only names it in errors), decompressing
/// gzip first; a payload of more than `max_bytes` bytes (after decompression) is refused.
///
/// # Errors
/// [`DataError::Io`] for a broken gzip stream, [`DataError::Magic`], [`DataError::Size`] for
/// a short header, a payload that does not match the dimensions or one above `max_bytes`.
pub fn parse_idx(
    path: &Path,
    raw: &[u8],
    ndims: u8,
    max_bytes: u64,
) -> Result<IdxArray, DataError> {
    let too_big = |found: u64| DataError::Size {
        path: path.to_path_buf(),
        what: "IDX file (the limit)".into(),
        expected: max_bytes,
        found,
    };
    let decompressed;
    let bytes: &[u8] = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        decompressed = out;
        &decompressed
    } else {
        raw
    };
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
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
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    // Each dimension is below 2^32, so the product of three fits in u128 exactly.
    let count: u128 = dims.iter().map(|&d| d as u128).product();
    let found = (bytes.len() - header) as u64;
    if count != u128::from(found) {
        return Err(DataError::Size {
            path: path.to_path_buf(),
            what: format!("IDX payload for dimensions {dims:?}"),
            expected: u64::try_from(count).unwrap_or(u64::MAX),
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
    mnist_from_arrays(&ip, images, &lp, labels)
}

/// Decodes MNIST-like images and labels from the contents of their IDX files (each plain or
/// gzipped, at most `max_bytes` after decompression), as [`load_mnist_like`] does.
///
/// # Errors
/// As [`parse_idx`], and [`DataError::Invalid`] for inconsistent files.
pub fn decode_mnist_like(
    images: &[u8],
    labels: &[u8],
    max_bytes: u64,
) -> Result<Dataset, DataError> {
    let (ip, lp) = (Path::new("images"), Path::new("labels"));
    let images = parse_idx(ip, images, 3, max_bytes)?;
    let labels = parse_idx(lp, labels, 1, max_bytes)?;
    mnist_from_arrays(ip, images, lp, labels)
}

fn mnist_from_arrays(
    ip: &Path,
    images: IdxArray,
    lp: &Path,
    labels: IdxArray,
) -> Result<Dataset, DataError> {
    if images.dims[1] == 0 || images.dims[2] == 0 {
        return Err(DataError::Invalid {
            path: ip.to_path_buf(),
            message: format!("images of {}×{} pixels", images.dims[1], images.dims[2]),
        });
    }
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::Invalid {
            path: lp.to_path_buf(),
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
            path: lp.to_path_buf(),
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
