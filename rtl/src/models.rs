//! The test networks, built quickly through nuq-nn's real quantization path.
//!
//! A freshly initialised float network (seeded weights, random batch-norm statistics with
//! some negative scales, so both threshold directions occur) is quantized with
//! [`QuantizedNetwork`](nuq_nn::quant::QuantizedNetwork), its activation quantizers are
//! calibrated on seeded images and it is folded into the integer model
//! ([`nuq_nn::integer::random::random_model`]). Accuracy is irrelevant here: the point is
//! that the hardware computes exactly what the integer model computes.

use std::collections::BTreeMap;
use std::path::Path;

use nuq_nn::integer::random::{random_model, RandomModelSpec};
use nuq_nn::integer::{to_file_model, IntegerModel};
use nuq_nn::quant::Family;
use nuq_nn::ModelConfig;

use crate::RtlError;

/// The architectures of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// VGG-Small on Fashion-MNIST shapes (28×28×1).
    VggSmall,
    /// ResNet-20 on CIFAR shapes (32×32×3, input zero points, residual joins).
    ResNet20,
}

impl Arch {
    /// `vgg-small` or `resnet20`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::VggSmall => "vgg-small",
            Arch::ResNet20 => "resnet20",
        }
    }
}

/// One test model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// Architecture.
    pub arch: Arch,
    /// Channel width multiplier.
    pub width: f32,
    /// Inner weight and activation bits (first convolution and classifier: 8).
    pub bits: u8,
    /// Codebook family.
    pub family: Family,
}

impl ModelSpec {
    /// The report's widths: VGG-Small ×0.125 (the demo network), ResNet-20 ×0.25.
    pub fn standard(arch: Arch, bits: u8, family: Family) -> Self {
        let width = match arch {
            Arch::VggSmall => 0.125,
            Arch::ResNet20 => 0.25,
        };
        Self {
            arch,
            width,
            bits,
            family,
        }
    }

    /// All twelve report models: both architectures, 2/3/4 bits, k-quantile and uniform.
    pub fn all_standard() -> Vec<Self> {
        let mut v = Vec::new();
        for arch in [Arch::VggSmall, Arch::ResNet20] {
            for bits in [2, 3, 4] {
                for family in [Family::KQuantile, Family::Uniform] {
                    v.push(Self::standard(arch, bits, family));
                }
            }
        }
        v
    }

    /// The float network's configuration.
    pub fn config(&self) -> ModelConfig {
        match self.arch {
            Arch::VggSmall => ModelConfig::fashion_mnist(nuq_nn::Arch::VggSmall, self.width),
            Arch::ResNet20 => ModelConfig {
                width: self.width,
                ..ModelConfig::cifar10(nuq_nn::Arch::ResNet20)
            },
        }
    }

    /// Builds the integer model (the same seed gives the same model).
    ///
    /// # Errors
    /// [`RtlError::Model`] when nuq-nn rejects the configuration.
    pub fn build(&self, seed: u64) -> Result<IntegerModel, RtlError> {
        let spec = RandomModelSpec {
            config: self.config(),
            bits: self.bits,
            family: self.family,
            calibration_images: 8,
        };
        random_model(&spec, seed).map_err(|e| RtlError::Model(e.to_string()))
    }

    /// Builds the model and writes it as a `.nuq` file.
    ///
    /// # Errors
    /// As [`ModelSpec::build`]; [`RtlError::Model`] or [`RtlError::Io`] when the file cannot
    /// be written (its directory is created if missing).
    pub fn write(&self, path: &Path, seed: u64) -> Result<IntegerModel, RtlError> {
        let model = self.build(seed)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut meta = BTreeMap::new();
        meta.insert(
            "model".to_string(),
            format!("{} width {}", self.arch.name(), self.width),
        );
        meta.insert("source".to_string(), "nuq-rtl test model".to_string());
        let file =
            to_file_model(&model, self.family, meta).map_err(|e| RtlError::Model(e.to_string()))?;
        nuq_fpga_fmt::write_file(path, &file, &nuq_fpga_fmt::WriteOptions::default())
            .map_err(|e| RtlError::Model(format!("{}: {e}", path.display())))?;
        Ok(model)
    }
}
