//! # nuq-nn
//!
//! A lean layer set for ResNet-18 / ResNet-20 / VGG-Small style CNNs: float training,
//! quantization-aware training with nuq codebooks, BN folding, conversion to the integer
//! model and integer-only inference.
#![deny(unsafe_op_in_unsafe_fn)]
