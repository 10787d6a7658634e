//! # nuq-fpga-fmt
//!
//! The stable, versioned, checksummed binary model format that an FPGA loader reads: its
//! specification (`FORMAT.md`), a deterministic writer, a zero-copy `no_std` reader that
//! validates everything before exposing data, and a freestanding C99 loader.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
