//! # nuq-fpga-fmt
//!
//! The stable, versioned, checksummed binary model format that an FPGA loader reads: its
//! specification (`FORMAT.md`, version 1.1), a deterministic writer, a zero-copy `no_std` reader
//! that validates everything before exposing data, memory-image export, and a freestanding C99
//! loader (`c/`).
//!
//! - [`NuqFile::parse`] (always available, `no_std`, no `alloc`) validates a file and gives
//!   borrowed views of its sections.
//! - With the `std` feature (default): [`Model`] (owned), [`write_file`]/[`encode`] (the writer),
//!   [`memory`] (`$readmemh`, `.coe`, `.mif` images) and [`samples`] (small reference models).
//! - [`report::write_report`] prints the canonical text report that the C loader's test driver
//!   also prints, line for line.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use nuq_fpga_fmt::{encode, samples, Model, NuqFile, WriteOptions};
//!
//! let model = samples::tiny();
//! let bytes = encode(&model, &WriteOptions::default()).unwrap();
//! let file = NuqFile::parse(&bytes).unwrap(); // validates everything, copies nothing
//! assert_eq!(file.graph().len(), 4);
//! assert_eq!(file.codebooks().get(0).unwrap().levels().collect::<Vec<_>>(), [-3, -1, 1, 3]);
//! assert_eq!(Model::from_file(&file), model);
//!
//! // Any damage is an error that names where it is.
//! let mut bad = bytes.clone();
//! bad[700] ^= 1;
//! let err = NuqFile::parse(&bad).unwrap_err();
//! assert_eq!(err.field, "file_crc");
//! # }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

pub mod crc32c;
pub mod enums;
pub mod error;
pub mod layout;
pub mod le;
pub mod reader;
pub mod report;
pub mod seal;

#[cfg(feature = "std")]
pub mod memory;
#[cfg(feature = "std")]
pub mod model;
#[cfg(feature = "std")]
pub mod samples;
#[cfg(feature = "std")]
pub mod seq;
#[cfg(feature = "std")]
pub mod writer;

pub use enums::{CodebookKind, Direction, ElementType, LayerOp, SectionKind, TileOrder};
pub use error::{Error, ErrorKind, Location};
pub use reader::NuqFile;

#[cfg(feature = "std")]
pub use model::Model;
pub use seal::reseal;
#[cfg(feature = "std")]
pub use writer::{encode, write_atomic, write_file, WriteError, WriteOptions};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
