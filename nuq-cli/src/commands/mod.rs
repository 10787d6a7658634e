//! The subcommands, one module each.

pub mod demo;
pub mod export;
pub mod inspect;
