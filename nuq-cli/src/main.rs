//! `nuq`: the command-line tool of the nuq non-uniform quantization toolkit.
//!
//! Each subcommand lives in its own module under `commands/`; this file only parses the command
//! line and dispatches. Exit codes: 0 success, 1 failure (one `error:` line on stderr), 2 usage
//! error (see [`exit`]).

mod commands;
mod dataset;
mod exit;
mod float_model;
mod mac_cdf;
mod model_file;
mod output;
mod progress;
mod quantization;
mod text_table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// nuq — hardware-friendly non-uniform quantization of CNNs for FPGA accelerators.
#[derive(Debug, Parser)]
#[command(
    name = "nuq",
    version,
    about = "Non-uniform quantization of CNNs for FPGA accelerators: train, quantize, evaluate, inspect and export .nuq models",
    long_about = "nuq quantizes convolutional networks to few-bit non-uniform codebooks whose \
        integer levels an FPGA can use directly, and stores the result as a .nuq file: a \
        versioned, checksummed model holding the layer graph, the codebooks, the packed weight \
        indices, biases, per-channel MAC thresholds and scales.\n\n\
        The path from a float network to hardware: `nuq train` (or a PyTorch checkpoint) → \
        `nuq quantize` → `nuq eval` (integer-only accuracy) → `nuq inspect` (what the file \
        holds) → `nuq export` (block-RAM images) and `nuq vectors` (golden test vectors for \
        the testbench); `nuq bench` measures inference speed and `nuq demo` runs it all on \
        Fashion-MNIST. Every subcommand has its own --help with examples.",
    after_help = "Examples:\n  \
        nuq demo --json\n  \
        nuq train --model vgg-small --width 0.25 --epochs 10 --out vgg.safetensors\n  \
        nuq quantize vgg.safetensors --bits 4 --family kquantile --qat-epochs 1 --out model.nuq\n  \
        nuq eval model.nuq\n  \
        nuq inspect model.nuq --plot plots/\n  \
        nuq vectors model.nuq --out vectors/ --count 4\n  \
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
    Train(commands::train::TrainArgs),
    Quantize(commands::quantize::QuantizeArgs),
    Eval(commands::eval::EvalArgs),
    Inspect(commands::inspect::InspectArgs),
    Vectors(commands::vectors::VectorsArgs),
    Export(commands::export::ExportArgs),
    Bench(commands::bench::BenchArgs),
}

fn main() -> ExitCode {
    // Usage errors, --help and --version exit here (codes 2 and 0).
    let cli = Cli::parse();
    exit::finish(|| match &cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Vectors(args) => commands::vectors::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Bench(args) => commands::bench::run(args),
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
