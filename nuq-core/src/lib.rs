//! # nuq-core
//!
//! Integer-grid non-uniform codebooks, the single-scale quantized tensor and bit packing:
//! the representation every other nuq crate builds on. `no_std` + `alloc`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
