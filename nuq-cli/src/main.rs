//! `nuq`: the command-line tool of the nuq non-uniform quantization toolkit.
//!
//! Each subcommand lives in its own module under `commands/`; this file only parses the command
//! line and dispatches. Exit codes: 0 success, 1 failure (one `error:` line on stderr), 2 usage
//! error (see [`exit`]).

mod commands;
mod exit;
mod model_file;
mod output;
mod progress;
mod text_table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// nuq — hardware-friendly non-uniform quantization of CNNs for FPGA accelerators.
#[derive(Debug, Parser)]
#[command(
    name = "nuq",
    version,
    about = "Non-uniform quantization of CNNs for FPGA accelerators: demo, inspect and export .nuq models",
    long_about = "nuq quantizes convolutional networks to few-bit non-uniform codebooks whose \
        integer levels an FPGA can use directly, and stores the result as a .nuq file: a \
        versioned, checksummed model holding the layer graph, the codebooks, the packed weight \
        indices, biases, per-channel MAC thresholds and scales.\n\n\
        Start with `nuq inspect model.nuq` to see what a model holds, and `nuq export` to turn \
        it into block-RAM images for your design. Every subcommand has its own --help with \
        examples.",
    after_help = "Examples:\n  \
        nuq demo --json\n  \
        nuq inspect model.nuq --plot plots/\n  \
        nuq export model.nuq --out mem/ --format mem --word-bits 64\n\n\
        Exit status: 0 success, 1 failure (one `error:` line says what to do), 2 usage error.",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    Demo(commands::demo::DemoArgs),
    Inspect(commands::inspect::InspectArgs),
    Export(commands::export::ExportArgs),
}

fn main() -> ExitCode {
    // Usage errors, --help and --version exit here (codes 2 and 0).
    let cli = Cli::parse();
    exit::finish(|| match &cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Export(args) => commands::export::run(args),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
