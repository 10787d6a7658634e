//! Datasets (CIFAR-10/100 binary batches, MNIST/Fashion-MNIST IDX), augmentation and a
//! prefetching mini-batch loader.

mod augment;
mod cifar;
mod idx;
mod loader;

use std::path::PathBuf;

use thiserror::Error;

pub use augment::Augment;
pub use cifar::{decode_cifar10, decode_cifar100, load_cifar10, load_cifar100, Cifar100Labels};
pub use idx::{
    decode_mnist_like, load_mnist_like, parse_idx, read_idx, IdxArray, FASHION_MNIST_DIR,
    MAX_IDX_BYTES,
};
pub use loader::{Batch, BatchLoader};

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

/// Errors from reading datasets.
#[derive(Debug, Error)]
pub enum DataError {
    /// A required file is not there.
    #[error("dataset file missing: {} (also tried {})", path.display(), alternatives.join(", "))]
    Missing {
        /// The first path tried.
        path: PathBuf,
        /// Other names tried.
        alternatives: Vec<String>,
    },
    /// Reading a file failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file has the wrong size.
    #[error("{}: {what}: expected {expected} bytes, found {found}", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// What was being checked.
        what: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        found: u64,
    },
    /// An IDX file starts with the wrong magic number.
    #[error("{}: bad IDX magic: expected {expected:#010x}, found {found:#010x}", path.display())]
    Magic {
        /// The file.
        path: PathBuf,
        /// Expected magic.
        expected: u32,
        /// Magic found.
        found: u32,
    },
    /// Contents are inconsistent (e.g. image and label counts differ, label out of range).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// An image classification dataset held as bytes, images in NHWC order.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Pixels, `[n][h][w][c]`, 0–255.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u16>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Pixels of image `i`.
    ///
    /// # Panics
    /// If `i` is not below [`Dataset::len`].
    pub fn image(&self, i: usize) -> &[u8] {
        let l = self.image_len();
        &self.images[i * l..(i + 1) * l]
    }

    /// Keeps only the first `n` images (for quick runs).
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.image_len());
        }
    }
}
