//! `nuq-rtl`: the reference hardware datapath of nuq, and the harness that checks it.
//!
//! The Verilog lives in `rtl/hdl` (one module per unit, plus the layer sequencer `nuq_seq`)
//! and `rtl/tb` (a testbench per unit and the whole-model testbench `tb_seq`). This crate
//! drives them:
//!
//! - [`models`] builds the test networks (VGG-Small, ResNet-20) through nuq-nn's real
//!   quantization path and writes them as `.nuq` files;
//! - [`flow`] runs `nuq export` and `nuq vectors` on a model;
//! - [`sim`] builds the testbenches with Verilator or Icarus Verilog, runs them and parses
//!   what they print (per-layer cycles and MACs, the first mismatch, the totals);
//! - [`synth`] synthesises the processing element and the requantizers with yosys and
//!   reads the cell counts.
//!
//! ```no_run
//! use nuq_rtl::{flow::Nuq, models::{Arch, ModelSpec}, sim::{Simulator, SeqBuild}};
//! # fn main() -> Result<(), nuq_rtl::RtlError> {
//! let dir = tempfile::tempdir()?;
//! let spec = ModelSpec::standard(Arch::ResNet20, 2, nuq_nn::quant::Family::Uniform);
//! let model = dir.path().join("r20.nuq");
//! spec.write(&model, 1)?;
//! let nuq = Nuq::locate()?;
//! nuq.export(&model, &dir.path().join("mem"), 64)?;
//! nuq.vectors(&model, &dir.path().join("vec"), 4, None)?;
//! let build = SeqBuild::build(Simulator::Verilator, 16, 64, &dir.path().join("obj"))?;
//! let run = build.run(&dir.path().join("mem"), &dir.path().join("vec"), 4)?;
//! assert_eq!(run.mismatches, 0);
//! println!("{} cycles per image, conv MAC utilisation {:.2}", run.cycles_per_image(), run.conv_mac_util());
//! # Ok(())
//! # }
//! ```

pub mod flow;
pub mod models;
pub mod sim;
pub mod synth;

use std::path::PathBuf;

/// What can go wrong while building, simulating or synthesising.
#[derive(Debug, thiserror::Error)]
pub enum RtlError {
    /// A file or process could not be handled.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A tool (simulator, yosys, nuq) is not installed or not found.
    #[error("{0}")]
    MissingTool(String),
    /// A tool ran and failed; the message carries its output.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The tool.
        tool: String,
        /// What it said.
        detail: String,
    },
    /// A simulation reported an error or did not finish.
    #[error("simulation: {0}")]
    Sim(String),
    /// The model could not be built.
    #[error("model: {0}")]
    Model(String),
    /// Input files that do not belong together or are damaged.
    #[error("{0}")]
    BadInput(String),
}

/// The `rtl/` directory: `hdl/`, `tb/` and the synthesis scripts.
pub fn rtl_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Verilog sources of the datapath (`rtl/hdl/*.v`), sorted.
///
/// # Errors
/// [`RtlError::Io`] when the directory cannot be read.
pub fn hdl_sources() -> Result<Vec<PathBuf>, RtlError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(rtl_dir().join("hdl"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .collect();
    v.sort();
    Ok(v)
}
