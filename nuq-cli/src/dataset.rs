//! Which dataset a command reads, where from, how its images are normalised and augmented,
//! and the errors that say how to get the data.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use nuq_nn::data::{
    load_cifar10, load_cifar100, load_mnist_like, Augment, Cifar100Labels, Dataset, Split,
};

use crate::exit::Failure;

/// Where Debian's `dataset-fashion-mnist` package puts the data.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A dataset nuq reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetKind {
    /// Fashion-MNIST IDX files (28×28×1, 10 classes).
    FashionMnist,
    /// MNIST IDX files (28×28×1, 10 classes).
    Mnist,
    /// CIFAR-10 binary batches (32×32×3, 10 classes).
    Cifar10,
    /// CIFAR-100 binary batches (32×32×3, 100 fine classes).
    Cifar100,
}

impl DatasetKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// The files the loader expects in the directory, for error messages.
    fn expected_files(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => {
                "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], \
                 t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
            }
            DatasetKind::Cifar10 => "data_batch_1.bin .. data_batch_5.bin, test_batch.bin",
            DatasetKind::Cifar100 => "train.bin, test.bin",
        }
    }

    /// The usual per-channel mean and standard deviation of the pixels scaled to `[0, 1]`.
    pub fn stats(self) -> (Vec<f32>, Vec<f32>) {
        match self {
            DatasetKind::FashionMnist => (vec![0.2860], vec![0.3530]),
            DatasetKind::Mnist => (vec![0.1307], vec![0.3081]),
            DatasetKind::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
            DatasetKind::Cifar100 => (vec![0.5071, 0.4865, 0.4409], vec![0.2673, 0.2564, 0.2762]),
        }
    }
}

/// The dataset options every data-reading command shares.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset format.
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMnist)]
    pub dataset: DatasetKind,
    /// Directory with the dataset files (default for Fashion-MNIST: where Debian's
    /// `dataset-fashion-mnist` installs it).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_train: Option<u64>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_test: Option<u64>,
    /// Per-channel mean subtracted from the pixels scaled to [0, 1] (comma list; default:
    /// the dataset's usual statistics).
    #[arg(long, value_delimiter = ',', value_name = "M")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation the pixels are divided by (comma list; default: the
    /// dataset's usual statistics).
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub std: Option<Vec<f32>>,
}

impl DataArgs {
    /// The data directory: `--data`, or Debian's location for Fashion-MNIST.
    pub fn dir(&self) -> Result<PathBuf, Failure> {
        match (&self.data, self.dataset) {
            (Some(d), _) => Ok(d.clone()),
            (None, DatasetKind::FashionMnist) => Ok(PathBuf::from(FASHION_MNIST_DIR)),
            (None, kind) => Err(Failure::new(format!(
                "--dataset {} needs --data DIR, the directory holding {}",
                kind.name(),
                kind.expected_files()
            ))),
        }
    }

    /// Reads one split, cut to `--limit-train` / `--limit-test`.
    pub fn load(&self, split: Split) -> Result<Dataset, Failure> {
        let dir = self.dir()?;
        let mut set = load_split(self.dataset, &dir, split)?;
        let limit = match split {
            Split::Train => self.limit_train,
            Split::Test => self.limit_test,
        };
        if let Some(n) = limit {
            set.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(set)
    }

    /// Mean and standard deviation per channel: the flags, else the dataset's statistics.
    /// Checked against the channel count of the images.
    pub fn normalisation(&self, channels: usize) -> Result<(Vec<f32>, Vec<f32>), Failure> {
        let (mean, std) = self.dataset.stats();
        let mean = self.mean.clone().unwrap_or(mean);
        let std = self.std.clone().unwrap_or(std);
        for (flag, v) in [("--mean", &mean), ("--std", &std)] {
            if v.len() != channels {
                return Err(Failure::new(format!(
                    "{flag} has {} values but the images have {channels} channels",
                    v.len()
                )));
            }
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Failure::new(format!("--std must be positive, got {s}")));
        }
        if let Some(m) = mean.iter().find(|m| !(0.0..=1.0).contains(*m)) {
            return Err(Failure::new(format!(
                "--mean must be in [0, 1] (pixels are scaled to [0, 1]), got {m}"
            )));
        }
        Ok((mean, std))
    }

    /// Training augmentation: random crop (2 pixels of padding for 28×28 data, 4 for CIFAR)
    /// and horizontal flip (not for digits), then normalisation.
    pub fn train_augment(&self, channels: usize) -> Result<Augment, Failure> {
        let (mean, std) = self.normalisation(channels)?;
        let (crop_padding, hflip) = match self.dataset {
            DatasetKind::FashionMnist => (2, true),
            DatasetKind::Mnist => (2, false),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => (4, true),
        };
        Ok(Augment {
            crop_padding,
            hflip,
            mean,
            std,
        })
    }

    /// Normalisation only (evaluation, calibration).
    pub fn eval_augment(&self, channels: usize) -> Result<Augment, Failure> {
        let (mean, std) = self.normalisation(channels)?;
        Ok(Augment::normalize_only(mean, std))
    }
}

/// Reads `split` of `kind` from `dir` with an error that says how to get the data.
pub fn load_split(kind: DatasetKind, dir: &Path, split: Split) -> Result<Dataset, Failure> {
    if !dir.is_dir() {
        let hint = if kind == DatasetKind::FashionMnist {
            "install it with `apt-get install dataset-fashion-mnist` or pass --data DIR".to_string()
        } else {
            format!(
                "pass --data DIR, the directory holding {}",
                kind.expected_files()
            )
        };
        return Err(Failure::new(format!(
            "{} not found: {} is not a directory; {hint}",
            kind.name(),
            dir.display()
        )));
    }
    let loaded = match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => load_mnist_like(dir, split),
        DatasetKind::Cifar10 => load_cifar10(dir, split),
        DatasetKind::Cifar100 => load_cifar100(dir, split, Cifar100Labels::Fine),
    };
    loaded.map_err(|e| {
        Failure::new(format!(
            "{e} (--dataset {} expects {} in {})",
            kind.name(),
            kind.expected_files(),
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: DatasetKind) -> DataArgs {
        DataArgs {
            dataset: kind,
            data: None,
            limit_train: None,
            limit_test: None,
            mean: None,
            std: None,
        }
    }

    #[test]
    fn only_fashion_mnist_has_a_default_directory() {
        assert_eq!(
            args(DatasetKind::FashionMnist).dir().unwrap(),
            PathBuf::from(FASHION_MNIST_DIR)
        );
        let err = args(DatasetKind::Cifar10).dir().unwrap_err().to_string();
        assert!(
            err.contains("--data DIR") && err.contains("test_batch.bin"),
            "{err}"
        );
    }

    #[test]
    fn normalisation_is_checked_against_the_channels() {
        let a = args(DatasetKind::Cifar10);
        assert_eq!(a.normalisation(3).unwrap().0.len(), 3);
        let err = a.normalisation(1).unwrap_err().to_string();
        assert!(
            err.contains("3 values") && err.contains("1 channels"),
            "{err}"
        );
        let mut b = args(DatasetKind::FashionMnist);
        b.std = Some(vec![0.0]);
        assert!(b
            .normalisation(1)
            .unwrap_err()
            .to_string()
            .contains("--std"));
        b.std = None;
        b.mean = Some(vec![2.0]);
        assert!(b
            .normalisation(1)
            .unwrap_err()
            .to_string()
            .contains("--mean"));
    }

    #[test]
    fn digits_are_not_flipped() {
        assert!(!args(DatasetKind::Mnist).train_augment(1).unwrap().hflip);
        assert!(
            args(DatasetKind::FashionMnist)
                .train_augment(1)
                .unwrap()
                .hflip
        );
        assert_eq!(
            args(DatasetKind::Cifar100)
                .train_augment(3)
                .unwrap()
                .crop_padding,
            4
        );
    }
}
