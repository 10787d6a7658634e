//! `nuq inspect`: what is in a `.nuq` file.

pub(crate) mod plots;
mod summary;
mod text;

use crate::exit::{CmdResult, Failure};
use crate::model_file;
use crate::output::{self, StagedDir};
use clap::Args;
use nuq_fpga_fmt::Model;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// Arguments of `nuq inspect`.
#[derive(Debug, Args)]
#[command(
    about = "Show what is in a .nuq model: layers, bits, codebooks, thresholds, sizes, checksums",
    long_about = "Show what is in a .nuq model file.\n\n\
        The file is validated completely first (header, whole-file and per-section CRC-32C, \
        every table and the graph's references); then inspect prints the format version, file \
        size and checksums, the section table, every layer (op, inputs, output shape, window, \
        weight and activation bits, the tables it uses), the codebooks with their integer \
        levels, the packed weight tensors, the threshold tables' ranges and directions, the \
        biases, the scales and the metadata.",
    after_help = "Examples:\n  \
        nuq inspect model.nuq                  tables for a terminal\n  \
        nuq inspect model.nuq --json | jq .layers\n  \
        nuq inspect model.nuq --plot plots/    also write SVG plots of weights and thresholds"
)]
pub struct InspectArgs {
    /// The .nuq model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print one JSON object (on one line) instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Also write SVG plots of the weights and thresholds into DIR (created if missing).
    ///
    /// Per layer with weights, the histogram of its integer weight levels with the codebook
    /// levels as vertical lines (`layer<i>_<name>_weights.svg`); per threshold table, the
    /// thresholds of every channel, falling channels shaded (`thresholds<i>.svg`). All plots are
    /// written or none; plots of the same name are replaced.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

/// The `--json` output: the summary, plus the plot files when `--plot` was given.
#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    summary: &'a summary::Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    plots: Option<Vec<String>>,
}

/// Runs `nuq inspect`.
pub fn run(args: &InspectArgs) -> CmdResult {
    let bytes = model_file::read(&args.file)?;
    let file = model_file::parse(&args.file, &bytes)?;
    let model = Model::from_file(&file);
    let summary = summary::summarize(&args.file.display().to_string(), &file, &model);

    let mut written = Vec::new();
    if let Some(dir) = &args.plot {
        let plots = plots::render(&model).map_err(Failure::new)?;
        let mut staged = StagedDir::new(dir)?;
        for p in &plots {
            staged.add(&p.file_name, p.svg.as_bytes())?;
        }
        written = staged.commit()?;
    }

    if args.json {
        let plots = args
            .plot
            .as_ref()
            .map(|_| written.iter().map(|p| p.display().to_string()).collect());
        return output::print_json(&JsonReport {
            summary: &summary,
            plots,
        });
    }
    let mut text = text::render(&summary);
    if let Some(dir) = &args.plot {
        let _ = writeln!(text, "\nwrote {} plots to {}", written.len(), dir.display());
        for p in &written {
            let _ = writeln!(text, "  {}", p.display());
        }
    }
    output::print(&text)
}
