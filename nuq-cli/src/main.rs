//! `nuq`: the command-line tool of the nuq non-uniform quantization toolkit.
//!
//! Subcommands land here as the library crates that back them are built.

use clap::Parser;

/// nuq — hardware-friendly non-uniform quantization of CNNs for FPGA accelerators.
#[derive(Parser, Debug)]
#[command(name = "nuq", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
