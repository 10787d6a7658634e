//! The integer model and integer-only inference.
//!
//! An [`IntegerModel`] is what an FPGA computes, bit for bit: image bytes in, int32 logits
//! out, with no float anywhere in between.
//!
//! - Convolutions multiply `u8` activation **levels** by `i8` weight levels decoded from
//!   codebook indices, accumulating in int32 ([`ConvNode`]).
//! - Batch-norm, the activation scale and the weight scale are folded into per-channel
//!   integer **MAC thresholds**: the accumulator's output code is the number of thresholds
//!   it reaches ([`Requant`]), and the code's level comes from the next codebook.
//! - A residual join adds the main accumulator and the shortcut (accumulator or levels)
//!   brought into the same units by a fixed-point multiply and shift ([`FixedPointMultiplier`](nuq_core::FixedPointMultiplier)), then
//!   requantizes ([`AddNode`]).
//! - Max-pooling takes the max of levels; global average pooling rounds half up; the
//!   classifier is an int8 linear layer producing int32 logits.
//!
//! [`IntegerRunner`] runs a model with the `nuq-kernels` GEMMs and can hand every node's
//! output to a dump hook (golden vectors for a hardware testbench).

mod file;
mod infer;
mod model;
pub mod random;
mod requant;
mod split;

pub use file::{from_file_model, to_file_model};
pub use infer::{IntegerRunner, TensorData};
pub use model::{
    AddNode, ConvNode, ConvOutput, InputSpec, IntegerModel, LinearNode, MaxPoolNode, Node,
    TensorId, TensorInfo, TensorKind, WeightTable, DEFAULT_MEMORY_LIMIT, MAX_TENSOR_ELEMENTS,
};
pub use requant::Requant;
pub use split::{split_chunk_bytes, Schedule, SPLIT_MIN_IMAGES};
