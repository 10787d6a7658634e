//! # nuq-kernels
//!
//! SIMD integer kernels for codebook-quantized CNN inference — u8×i8 and codebook GEMM,
//! NHWC convolution, threshold requantization, pooling and residual add — with AVX-512 VNNI,
//! AVX2, portable (`wide`) and scalar reference paths that are bit-exact with each other and
//! chosen at run time.
#![deny(unsafe_op_in_unsafe_fn)]
