//! # nuq-kernels
//!
//! SIMD integer kernels for codebook-quantized CNN inference — u8×i8 and codebook GEMM,
//! NHWC convolution, threshold requantization, pooling and residual add — with AVX-512 VNNI,
//! AVX2, portable (`wide`) and scalar reference paths that are bit-exact with each other and
//! chosen at run time ([`KernelPath`]).
//!
//! Data layouts: activations are NHWC `u8` (levels of an unsigned activation codebook) or
//! `i8`; weights are pre-packed once ([`PackedWeights`], [`CodebookWeights`], layouts in
//! [`packed`]); accumulators are `i32`, row-major `[pixel][channel]`.
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
pub mod threshold;

pub use error::KernelError;
pub use gemm::{gemm_codebook, gemm_codebook_i8, gemm_i8i8, gemm_u8i8};
pub use packed::{CodebookScope, CodebookWeights, PackedWeights, PANEL};
pub use path::KernelPath;
