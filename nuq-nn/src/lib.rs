//! # nuq-nn
//!
//! A lean layer set for ResNet-18 / ResNet-20 / VGG-Small style CNNs: float training with
//! explicit forward/backward passes, optimisers and schedules, dataset readers with
//! augmentation, safetensors checkpoints with PyTorch names, quantization-aware training with
//! non-uniform codebooks, BN folding into integer MAC thresholds, and integer-only inference.
//!
//! - [`Tensor`]: dense NHWC `f32` activations (see [`tensor`] for why NHWC).
//! - [`Layer`]: forward/backward with owned, reused buffers; [`layers`] holds Conv2d (im2col +
//!   `gemm`), BatchNorm2d (optionally fused ReLU), ReLU, MaxPool2d, GlobalAvgPool, Flatten,
//!   Linear, Sequential and BasicBlock; [`CrossEntropy`] is the loss.
//! - [`Network`] builds the models of [`models`] with PyTorch parameter names.
//! - [`optim`]: SGD, AdamW and learning-rate schedules; [`data`]: CIFAR and IDX readers,
//!   augmentation and a prefetching batch loader; [`checkpoint`]: safetensors I/O;
//!   [`train`]: one-step training and evaluation helpers; [`gradcheck`]: finite differences.
//! - [`quant`]: codebook quantizers, the fake-quantized float twin and the fold into the
//!   [`integer`] model, which runs with integers only.
//! - [`pipeline`]: the whole job as the `nuq` command line does it — float training,
//!   calibration and fine-tuning, evaluation, the `.nuq` file.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod gradcheck;
pub mod integer;
pub mod layer;
pub mod layers;
mod loss;
mod matmul;
pub mod models;
pub mod optim;
pub mod param;
pub mod pipeline;
pub mod quant;
pub mod rng;
pub mod tensor;
pub mod train;

pub use error::{ModelProblem, NnError};
pub use layer::{Layer, Mode};
pub use layers::{
    BasicBlock, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Linear, MaxPool2d, Relu,
    Sequential,
};
pub use loss::{CrossEntropy, LossOutput};
pub use models::{Arch, ModelConfig, Network, Parameterized};
pub use param::{BufferMut, Param, ParamLayout, ParamRole};
pub use rng::Rng;
pub use tensor::Tensor;
