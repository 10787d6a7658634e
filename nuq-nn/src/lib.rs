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
//!   Linear, Sequential (a chain) and [`Graph`] (any directed acyclic graph of layers and
//!   joins; [`basic_block`] builds ResNet's residual block as one); [`CrossEntropy`] is the
//!   loss.
//! - [`Network`] builds the models of [`models`] with PyTorch parameter names.
//! - [`optim`]: SGD, AdamW and learning-rate schedules; [`data`]: CIFAR and IDX readers,
//!   augmentation and a prefetching batch loader; [`checkpoint`]: safetensors I/O;
//!   [`train`]: one-step training and evaluation helpers; [`gradcheck`]: finite differences.
//! - [`quant`]: codebook quantizers, the fake-quantized float twin and the fold into the
//!   [`integer`] model, which runs with integers only.
//! - [`onnx`]: float CNNs read from ONNX files (`torch.onnx.export`) as a [`Network`];
//!   integer models written as ONNX / QONNX graphs.
//! - [`pipeline`]: the whole job as the `nuq` command line does it — float training,
//!   calibration and fine-tuning, evaluation, the `.nuq` file.
//!
//! A checkpoint to a `.nuq` file, as `nuq quantize` does it (4-bit k-quantile weights and
//! activations, calibration on 2 000 training images, integer-only evaluation):
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use nuq_nn::data::{Augment, Split};
//! use nuq_nn::pipeline::{integer_accuracy, quantize, write_model, Quiet, Recipe};
//! use nuq_nn::quant::{Family, QuantConfig};
//! use nuq_nn::{checkpoint, data, Arch, ModelConfig, Network};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut net = Network::new(ModelConfig::fashion_mnist(Arch::VggSmall, 0.125), 1)?;
//! checkpoint::load_model(&mut net, Path::new("vgg.safetensors"))?;
//! let dir = Path::new("/usr/share/datasets/fashion-mnist");
//! let train = Arc::new(data::load_mnist_like(dir, Split::Train)?);
//! let test = data::load_mnist_like(dir, Split::Test)?;
//! let norm = Augment::normalize_only(vec![0.286], vec![0.353]);
//! let recipe = Recipe::new(QuantConfig::new(4, Family::KQuantile));
//! let model = quantize(net, &recipe, &train, &norm, &Quiet)?;
//! println!("integer accuracy {:.4}", integer_accuracy(&model, &test)?);
//! write_model(Path::new("vgg.nuq"), &model, Family::KQuantile, Default::default())?;
//! # Ok(())
//! # }
//! ```
//!
//! ## The weight walk, checkpoint to file
//!
//! A convolution kernel is read from a PyTorch checkpoint in PyTorch's `[c_out][c_in][kh][kw]`
//! order and permuted once, on load, into nuq's one weight layout, OHWI
//! (`[c_out][kh][kw][c_in]`, `c_in / groups` for a grouped convolution,
//! [`ParamLayout::ConvOhwi`]): one row per output channel, in the `(ky, kx, ci)` order of an
//! NHWC im2col row over its group's channels. From there no step moves a weight: the float
//! GEMM reads the rows through strides; the quantizer fits the codebook to those rows and
//! stores each weight's index at the weight's own position, with one scale per row;
//! fine-tuning re-quantizes the float masters in place; folding hands the indices to the
//! integer model unchanged; the integer kernels copy them into their GEMM panels when a
//! runner is built (a cache tiling, not a stored layout). The only other order is the file's:
//! FORMAT.md stores kernels `[o][i][kh][kw]`, as the C loader and the hardware read them, so
//! the writer permutes at that boundary (and the reader back). A classifier's `[out][in]`
//! matrix keeps PyTorch's `[c][h][w]` feature order in the float network, the integer model
//! and the file alike; the integer runner orders its columns for NHWC activations when it
//! packs them.
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
pub mod onnx;
pub mod optim;
pub mod param;
pub mod pipeline;
pub mod quant;
pub mod rng;
pub mod tensor;
pub mod train;

pub use error::{ModelProblem, NnError};
pub use layer::{visit_leaves, visit_leaves_mut, Layer, Mode};
pub use layers::{
    basic_block, Add, BatchNorm2d, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Graph, GraphNode,
    Linear, MaxPool2d, Op, Relu, Relu6, Sequential, RELU6_MAX,
};
pub use loss::{CrossEntropy, Distill, LossOutput};
pub use models::{Arch, ModelConfig, Network, Parameterized};
pub use param::{BufferMut, Param, ParamLayout, ParamRole};
pub use rng::Rng;
pub use tensor::Tensor;
