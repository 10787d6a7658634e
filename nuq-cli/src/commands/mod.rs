//! The subcommands, one module each.

pub mod export;
pub mod inspect;
