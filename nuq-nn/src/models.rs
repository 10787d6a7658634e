//! The CIFAR-style networks of the paper's experiments and torchvision's ImageNet-style
//! ResNets, with PyTorch parameter names.
//!
//! | model | layout | names |
//! |---|---|---|
//! | ResNet-18 | conv3×3(64)–BN–ReLU, 4 stages × 2 BasicBlocks (64/128/256/512, stride 2 at stages 2–4, 1×1 conv+BN projection), global average pool, FC | torchvision: `conv1`, `bn1`, `layer{1-4}.{0,1}.{conv1,bn1,conv2,bn2}`, `layer{2-4}.0.downsample.{0,1}`, `fc` |
//! | ResNet-20 | conv3×3(16)–BN–ReLU, 3 stages × 3 BasicBlocks (16/32/64), projection shortcuts (option B), global average pool, FC | as ResNet-18, `layer1`–`layer3` |
//! | ResNet-18 ImageNet (`resnet18-imagenet`) | torchvision `resnet18`: conv7×7(64, stride 2, padding 3)–BN–ReLU–maxpool3×3(stride 2, padding 1), then as ResNet-18 | as ResNet-18 (the pools have no tensors) |
//! | ResNet-34 ImageNet (`resnet34-imagenet`) | torchvision `resnet34`: the ImageNet stem, 4 stages × 3/4/6/3 BasicBlocks (64/128/256/512) | as ResNet-18 |
//! | VGG-Small | 2×conv128 – maxpool – 2×conv256 – maxpool – 2×conv512 – maxpool – FC, every conv 3×3 + BN + ReLU, no conv bias | PyTorch `nn.Sequential` indices counting ReLU and pool modules: convs `features.{0,3,7,10,14,17}`, BNs `features.{1,4,8,11,15,18}`, pools 6/13/20, `classifier` |
//!
//! The CIFAR stem has no max-pool. The ImageNet stem divides the input side by 4 before the
//! first stage and every later stage halves it again (rounding up), so a 224×224 input ends at
//! 7×7 and a 28×28 Fashion-MNIST image at 1×1; like torchvision's (which ends in an adaptive
//! average pool) these networks take any input size, and every layer has a non-empty output
//! from 1×1 up. Their max-pool has padding, which the integer model does not express yet:
//! they train and fine-tune, but folding them is refused with [`NnError::NoIntegerForm`]. A model trained in PyTorch with the kuangliu
//! `pytorch-cifar` names loads after renaming `shortcut` → `downsample` and `linear` → `fc`.
//! The width multiplier scales every hidden channel count (rounded, at least 1); input channels
//! and classes are parameters, so the same code serves 32×32×3 CIFAR and 28×28×1 Fashion-MNIST.

use std::fmt;
use std::str::FromStr;

use crate::error::NnError;
use crate::layer::{Layer, Mode};
use crate::layers::{
    basic_block, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Linear, MaxPool2d,
    Sequential,
};
use crate::param::{BufferMut, Param};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// ResNet-18, CIFAR variant.
    ResNet18,
    /// ResNet-20.
    ResNet20,
    /// VGG-Small.
    VggSmall,
    /// ResNet-18 with torchvision's ImageNet stem (7×7 stride-2 conv and a 3×3 stride-2
    /// max-pool).
    ResNet18ImageNet,
    /// ResNet-34 with torchvision's ImageNet stem.
    ResNet34ImageNet,
    /// A network read from an ONNX file by [`crate::onnx::import`]: its layers come from the
    /// file, so [`Network::new`] cannot build it and it is not in [`Arch::ALL`] (a checkpoint
    /// saved from it records `onnx`, which names no buildable network: keep the `.onnx` file).
    Onnx,
    /// A network built by code outside nuq's builders and handed to [`Network::from_body`]
    /// (not in [`Arch::ALL`]; a checkpoint saved from it records `custom`).
    Custom,
}

impl Arch {
    /// The canonical name (`resnet18`, `resnet20`, `vgg-small`, `resnet18-imagenet`,
    /// `resnet34-imagenet`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet20 => "resnet20",
            Arch::VggSmall => "vgg-small",
            Arch::ResNet18ImageNet => "resnet18-imagenet",
            Arch::ResNet34ImageNet => "resnet34-imagenet",
            Arch::Onnx => "onnx",
            Arch::Custom => "custom",
        }
    }

    /// Every architecture [`Network::new`] builds, in the order of [`Arch::NAMES`].
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet20,
        Arch::VggSmall,
        Arch::ResNet18ImageNet,
        Arch::ResNet34ImageNet,
    ];

    /// The canonical names, for help texts.
    pub const NAMES: &'static str =
        "resnet18, resnet20, vgg-small, resnet18-imagenet or resnet34-imagenet";
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = NnError;

    fn from_str(s: &str) -> Result<Self, NnError> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "resnet18" | "resnet-18" => Ok(Arch::ResNet18),
            "resnet20" | "resnet-20" => Ok(Arch::ResNet20),
            "vgg-small" | "vggsmall" | "vgg" => Ok(Arch::VggSmall),
            "resnet18-imagenet" | "resnet-18-imagenet" => Ok(Arch::ResNet18ImageNet),
            "resnet34-imagenet" | "resnet-34-imagenet" => Ok(Arch::ResNet34ImageNet),
            other => Err(NnError::UnknownName {
                what: "model",
                found: other.to_string(),
                expected: Arch::NAMES,
            }),
        }
    }
}

/// Model hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Channel width multiplier (1.0 = as published).
    pub width: f32,
    /// Input channels (3 for CIFAR, 1 for Fashion-MNIST).
    pub in_channels: usize,
    /// Number of classes.
    pub classes: usize,
    /// Input height and width (32 for CIFAR, 28 for Fashion-MNIST).
    pub input_size: (usize, usize),
}

impl ModelConfig {
    /// A CIFAR-10 shaped configuration at width 1.
    pub fn cifar10(arch: Arch) -> Self {
        Self {
            arch,
            width: 1.0,
            in_channels: 3,
            classes: 10,
            input_size: (32, 32),
        }
    }

    /// A Fashion-MNIST shaped configuration (28×28×1, 10 classes) at the given width.
    pub fn fashion_mnist(arch: Arch, width: f32) -> Self {
        Self {
            arch,
            width,
            in_channels: 1,
            classes: 10,
            input_size: (28, 28),
        }
    }

    fn ch(&self, base: usize) -> usize {
        ((base as f32 * self.width).round() as usize).max(1)
    }
}

/// A network: its layers (a [`Sequential`] whose children carry the PyTorch names) and config.
#[derive(Clone)]
pub struct Network {
    config: ModelConfig,
    /// The layers, top-level children named as in PyTorch.
    pub body: Sequential,
}

/// The first layers of a ResNet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stem {
    /// conv3×3 stride 1 – BN – ReLU.
    Cifar,
    /// torchvision's: conv7×7 stride 2 padding 3 – BN – ReLU – maxpool3×3 stride 2 padding 1.
    ImageNet,
}

fn resnet(
    cfg: &ModelConfig,
    stem_kind: Stem,
    stages: &[(usize, usize)],
    rng: &mut Rng,
) -> Result<Sequential, NnError> {
    let mut s = Sequential::new();
    let stem = cfg.ch(stages[0].0);
    let (k, stride, pad) = match stem_kind {
        Stem::Cifar => (3, 1, 1),
        Stem::ImageNet => (7, 2, 3),
    };
    s.push(
        "conv1",
        Conv2d::new(
            Conv2dConfig::square(cfg.in_channels, stem, k, stride, pad),
            rng,
        )?,
    )
    .push("bn1", BatchNorm2d::new(stem, true));
    if stem_kind == Stem::ImageNet {
        s.push("maxpool", MaxPool2d::with_padding(3, 2, 1)?);
    }
    let mut c_in = stem;
    for (si, &(base, blocks)) in stages.iter().enumerate() {
        let c_out = cfg.ch(base);
        for b in 0..blocks {
            let stride = if si > 0 && b == 0 { 2 } else { 1 };
            s.push(
                format!("layer{}.{b}", si + 1),
                basic_block(c_in, c_out, stride, rng)?,
            );
            c_in = c_out;
        }
    }
    s.push("avgpool", GlobalAvgPool::new())
        .push("fc", Linear::new(c_in, cfg.classes, true, rng)?);
    Ok(s)
}

fn vgg_small(cfg: &ModelConfig, rng: &mut Rng) -> Result<Sequential, NnError> {
    let mut s = Sequential::new();
    let mut c_in = cfg.in_channels;
    let (mut h, mut w) = cfg.input_size;
    let mut idx = 0;
    for base in [128, 256, 512] {
        let c = cfg.ch(base);
        for _ in 0..2 {
            s.push(
                format!("features.{idx}"),
                Conv2d::new(Conv2dConfig::square(c_in, c, 3, 1, 1), rng)?,
            )
            .push(format!("features.{}", idx + 1), BatchNorm2d::new(c, true));
            idx += 3;
            c_in = c;
        }
        s.push(format!("features.{idx}"), MaxPool2d::new(2, 2)?);
        idx += 1;
        if h < 2 || w < 2 {
            return Err(NnError::InvalidParameter {
                what: "VGG-Small input size".into(),
                allowed: "large enough for three 2×2 max-pools (8×8 or more)",
                found: format!("{:?}", cfg.input_size),
            });
        }
        h /= 2;
        w /= 2;
    }
    s.push("flatten", Flatten::new()).push(
        "classifier",
        Linear::new(c_in * h * w, cfg.classes, true, rng)?,
    );
    Ok(s)
}

/// Stages of ResNet-18: (base channels, BasicBlocks).
const RESNET18: [(usize, usize); 4] = [(64, 2), (128, 2), (256, 2), (512, 2)];
/// Stages of ResNet-34.
const RESNET34: [(usize, usize); 4] = [(64, 3), (128, 4), (256, 6), (512, 3)];

/// Largest width multiplier [`Network::new`] builds (ResNet-18 at width 4 has about 180 M
/// parameters): a checkpoint's metadata cannot make it allocate without bound.
pub const MAX_WIDTH: f32 = 4.0;
/// Most input channels [`Network::new`] accepts.
pub const MAX_IN_CHANNELS: usize = 1024;
/// Most classes [`Network::new`] accepts.
pub const MAX_CLASSES: usize = 1 << 16;
/// Largest input height or width [`Network::new`] accepts.
pub const MAX_INPUT_SIDE: usize = 4096;

impl Network {
    /// Builds a freshly initialised network; `seed` fixes the initial weights.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self, NnError> {
        if !(config.width > 0.0 && config.width.is_finite())
            || config.in_channels == 0
            || config.classes == 0
        {
            return Err(NnError::InvalidParameter {
                what: "model width, input channels and classes".into(),
                allowed: "positive",
                found: format!("{config:?}"),
            });
        }
        if config.width > MAX_WIDTH
            || config.in_channels > MAX_IN_CHANNELS
            || config.classes > MAX_CLASSES
            || config.input_size.0 > MAX_INPUT_SIDE
            || config.input_size.1 > MAX_INPUT_SIDE
        {
            return Err(NnError::TooLarge {
                what: format!("{} network", config.arch),
                detail: format!(
                    "width {}, {} input channels, {} classes, input {}x{}; the limits are width {MAX_WIDTH}, {MAX_IN_CHANNELS} channels, {MAX_CLASSES} classes, {MAX_INPUT_SIDE} pixels a side",
                    config.width,
                    config.in_channels,
                    config.classes,
                    config.input_size.0,
                    config.input_size.1
                ),
            });
        }
        let mut rng = Rng::new(seed);
        let body = match config.arch {
            Arch::ResNet18 => resnet(&config, Stem::Cifar, &RESNET18, &mut rng)?,
            Arch::ResNet20 => resnet(&config, Stem::Cifar, &[(16, 3), (32, 3), (64, 3)], &mut rng)?,
            Arch::VggSmall => vgg_small(&config, &mut rng)?,
            Arch::ResNet18ImageNet => resnet(&config, Stem::ImageNet, &RESNET18, &mut rng)?,
            Arch::ResNet34ImageNet => resnet(&config, Stem::ImageNet, &RESNET34, &mut rng)?,
            Arch::Onnx | Arch::Custom => {
                return Err(NnError::InvalidParameter {
                    what: "model".into(),
                    allowed: "an architecture built by code (an ONNX network is read with nuq_nn::onnx::import)",
                    found: "onnx".into(),
                })
            }
        };
        let net = Self { config, body };
        net.body.output_shape([
            1,
            config.input_size.0,
            config.input_size.1,
            config.in_channels,
        ])?;
        Ok(net)
    }

    /// A network from layers built elsewhere: the ONNX importer, or code of your own (with
    /// [`Arch::Custom`]) — a [`Sequential`] of layers and [`Graph`](crate::Graph)s, trained,
    /// quantized and folded like the built-ins. Checks that `body` takes the configured
    /// input.
    ///
    /// ```
    /// use nuq_nn::{
    ///     Arch, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Graph, Linear,
    ///     ModelConfig, Network, Rng, Sequential,
    /// };
    ///
    /// # fn main() -> Result<(), nuq_nn::NnError> {
    /// let mut rng = Rng::new(0);
    /// let conv = |ci, co, k, s, p, rng: &mut Rng| Conv2d::new(Conv2dConfig::square(ci, co, k, s, p), rng);
    /// // A bottleneck residual block: 1×1 → 3×3 → 1×1 against the identity.
    /// let mut main = Sequential::new();
    /// main.push("conv1", conv(16, 4, 1, 1, 0, &mut rng)?)
    ///     .push("bn1", BatchNorm2d::new(4, true))
    ///     .push("conv2", conv(4, 4, 3, 1, 1, &mut rng)?)
    ///     .push("bn2", BatchNorm2d::new(4, true))
    ///     .push("conv3", conv(4, 16, 1, 1, 0, &mut rng)?)
    ///     .push("bn3", BatchNorm2d::new(16, false));
    /// let mut body = Sequential::new();
    /// body.push("conv1", conv(1, 16, 3, 1, 1, &mut rng)?)
    ///     .push("bn1", BatchNorm2d::new(16, true))
    ///     .push("layer1.0", Graph::residual(main, None)?)
    ///     .push("avgpool", GlobalAvgPool::new())
    ///     .push("flatten", Flatten::new())
    ///     .push("fc", Linear::new(16, 10, true, &mut rng)?);
    /// let config = ModelConfig { arch: Arch::Custom, width: 1.0, in_channels: 1, classes: 10, input_size: (28, 28) };
    /// let net = Network::from_body(config, body)?;
    /// assert_eq!(net.macs_per_image(), 28 * 28 * (9 * 16 + 16 * 4 + 9 * 16 + 4 * 16) + 160);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`NnError::InputShape`] (or another layer's error) when `body` does not take the
    /// configured input.
    pub fn from_body(config: ModelConfig, body: Sequential) -> Result<Self, NnError> {
        body.output_shape([
            1,
            config.input_size.0,
            config.input_size.1,
            config.in_channels,
        ])?;
        Ok(Self { config, body })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Logits `[n, 1, 1, classes]` for a batch `[n, h, w, in_channels]`.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        self.body.forward(x, mode)
    }

    /// The logits of the last forward.
    pub fn logits(&self) -> &Tensor {
        self.body.output()
    }

    /// Back-propagates the logit gradient; parameter gradients are overwritten.
    pub fn backward(&mut self, x: &Tensor, dlogits: &Tensor) -> Result<(), NnError> {
        self.body.backward(x, dlogits, false)
    }

    /// Visits every trainable parameter with its PyTorch name, in a fixed order.
    pub fn visit_params(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        self.body.visit_params("", f);
    }

    /// Visits every BatchNorm running statistic with its PyTorch name.
    pub fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        self.body.visit_buffers("", f);
    }

    /// Number of trainable values.
    pub fn num_params(&mut self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, p| n += p.len());
        n
    }

    /// Forward multiply-accumulates per image at the configured input size.
    pub fn macs_per_image(&self) -> u64 {
        let (h, w) = self.config.input_size;
        self.body.macs([1, h, w, self.config.in_channels])
    }
}

/// Anything with named trainable parameters (networks and layers), for optimisers.
pub trait Parameterized {
    /// Visits every trainable parameter with its name, in a fixed order.
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param));
}

impl Parameterized for Network {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        self.visit_params(f);
    }
}

impl<L: Layer> Parameterized for L {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        self.visit_params("", f);
    }
}
