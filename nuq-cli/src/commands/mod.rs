//! The subcommands, one module each.

pub mod bench;
pub mod cdf_plots;
pub mod demo;
pub mod eval;
pub mod export;
pub mod inspect;
pub mod quantize;
pub mod train;
pub mod vectors;
