//! # nuq-kernels
//!
//! SIMD integer kernels for codebook-quantized CNN inference — u8×i8 and codebook GEMM,
//! NHWC convolution, threshold requantization, pooling and residual add — with AVX-512 VNNI,
//! AVX2, portable (`wide`) and scalar reference paths that are bit-exact with each other and
//! chosen at run time ([`KernelPath::detect`], overridable with `NUQ_KERNEL=scalar|portable|
//! avx2|avx512`, and passed explicitly to every kernel).
//!
//! | module | what |
//! |---|---|
//! | [`packed`] | weight pre-packing: [`PackedWeights`] (int8 panels), [`CodebookWeights`] (2/3/4-bit indices + int8 codebook per tensor or per channel); the layouts |
//! | [`gemm`] | [`gemm_u8i8`], [`gemm_i8i8`] (offset compensation), [`gemm_codebook`], [`gemm_codebook_i8`]; rayon tiles, thread-count independent; [`gemm_block`] computes one block on the calling thread |
//! | [`conv`] | [`conv::Conv2d`]: NHWC k×k / stride / pad convolution via im2col into owned scratch |
//! | [`threshold`] | [`threshold::Thresholds`]: FINN MultiThreshold, per-channel ascending or descending |
//! | [`fixed_point`] | gemmlowp multiplier + shift ([`fixed_point::FixedPointMultiplier`], [`fixed_point::Requantizer`]) |
//! | [`residual`] | [`residual::residual_add`]: two branches aligned by multiplier + shift |
//! | [`residual_threshold`] | [`residual_threshold::ResidualThresholds`]: residual join (shift + fixed-point aligned shortcut) requantized to levels by 64-bit thresholds |
//! | [`pool`] | integer max-pool, global average pool (round half away from zero) |
//! | [`activations`] | activation indices → unsigned levels |
//! | [`overflow`] | the `K·max|w|·max|a|` accumulator bound, enforced by every GEMM |
//! | [`peak`] | register-only `vpdpbusd` throughput, the reference for benchmark figures |
//!
//! Data layouts: activations are NHWC `u8` (levels of an unsigned activation codebook) or
//! `i8`, row-major `[pixel][channel]`; weights are `W[cout][k]` with OHWI filters flattened
//! in `(ky, kx, ci)` order and pre-packed once (layouts in [`packed`]); accumulators are
//! `i32`, row-major `[pixel][channel]`. Every `unsafe` block carries a `SAFETY:` comment
//! and every SIMD path is compared bit for bit with the scalar reference by the proptests
//! in `tests/`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod activations;
pub mod conv;
mod error;
pub mod fixed_point;
pub mod gemm;
pub mod overflow;
pub mod packed;
mod path;
pub mod peak;
pub mod pool;
pub mod residual;
pub mod residual_threshold;
pub mod threshold;
#[cfg(target_arch = "x86_64")]
mod threshold_search;

pub use error::KernelError;
pub use gemm::{gemm_block, gemm_codebook, gemm_codebook_i8, gemm_i8i8, gemm_u8i8, BlockWeights};
pub use packed::{CodebookScope, CodebookWeights, PackedWeights, PANEL};
pub use path::KernelPath;
