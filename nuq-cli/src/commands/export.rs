//! `nuq export`: block-RAM initialization images of every memory of a `.nuq` model, or the
//! integer model as an ONNX / QONNX graph ([`nuq_nn::onnx::export`]).

use crate::exit::{CmdResult, Failure};
use crate::model_file;
use crate::output::{self, StagedDir};
use crate::text_table::TextTable;
use clap::{Args, ValueEnum};
use nuq_fpga_fmt::memory::{memories, MemoryImage};
use nuq_fpga_fmt::reader::WORD_BITS;
use nuq_fpga_fmt::seq::seq_images;
use nuq_nn::onnx::{export_file, ExportOptions, Flavour};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// Name of the manifest written next to the images.
pub const MANIFEST: &str = "manifest.json";

/// Memory-image file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Verilog `$readmemh` text: one hex word per line.
    Mem,
    /// Xilinx coefficient file (radix 16).
    Coe,
    /// Intel memory initialization file (hex data).
    Mif,
}

impl ImageFormat {
    /// File extension.
    fn extension(self) -> &'static str {
        match self {
            ImageFormat::Mem => "mem",
            ImageFormat::Coe => "coe",
            ImageFormat::Mif => "mif",
        }
    }

    /// The image as text in this format.
    fn encode(self, m: &MemoryImage) -> String {
        match self {
            ImageFormat::Mem => m.to_readmemh(),
            ImageFormat::Coe => m.to_coe(),
            ImageFormat::Mif => m.to_mif(),
        }
    }
}

/// Parses `--word-bits`: one of the word widths of the format.
fn parse_word_bits(s: &str) -> Result<u32, String> {
    let allowed = WORD_BITS
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match s.parse::<u16>() {
        Ok(bits) if WORD_BITS.contains(&bits) => Ok(u32::from(bits)),
        _ => Err(format!("use one of {allowed} (bits per memory word)")),
    }
}

/// Arguments of `nuq export`.
#[derive(Debug, Args)]
#[command(
    about = "Write FPGA memory images (.mem/.coe/.mif) of a .nuq model, or the model as ONNX / QONNX",
    long_about = "Write block-RAM initialization images of every memory of a .nuq model file.\n\n\
        One file per memory, in DIR: weights<i> (packed weight indices, each output channel \
        starting a new word for row_per_output tensors), codebook<i> (integer levels, two's \
        complement), thresholds<i> (each channel's thresholds, one channel per row of words), \
        thresholds<i>_dir (one direction bit per channel, 1 = falling) and bias<i> (32-bit \
        two's complement), and the layer sequencer's images seq_layers (32-word layer \
        descriptors), seq_weights, seq_levels, seq_thresholds, seq_dirs, seq_bias, \
        seq_align_mul, seq_align_shift and seq_zp (see rtl/README.md). Lane 0 occupies the lowest bits of each word, as in the .nuq \
        format. A manifest.json lists every file with its depth, \
        word width and lane width.\n\n\
        All files appear together or not at all: they are written to a staging directory \
        inside DIR and moved into place at the end; files of the same name are replaced.\n\n\
        --onnx FILE writes the integer model as a standard ONNX graph (opset 17) that ONNX \
        Runtime runs exactly: input 'image' uint8 [N, C, H, W] (raw bytes), output 'logits' \
        int32 [N, classes], the same integers nuq computes (ConvInteger, MatMulInteger, \
        threshold counts, level tables). --qonnx FILE writes the QONNX flavour for FINN and \
        the qonnx package: float containers holding integers, one MultiThreshold per \
        requantizer, finn_datatype annotations, a fixed batch (--batch, default 1). The \
        report gives each layer's worst-case accumulator and whether the float containers \
        hold it exactly.",
    after_help = "Examples:\n  \
        nuq export model.nuq --out mem/ --word-bits 64                 Verilog $readmemh files\n  \
        nuq export model.nuq --out coe/ --format coe --word-bits 256   Xilinx .coe files\n  \
        nuq export model.nuq --out mif/ --format mif --word-bits 32 --json\n  \
        nuq export model.nuq --onnx model.onnx                         run it in ONNX Runtime\n  \
        nuq export model.nuq --qonnx model.qonnx.onnx --batch 100      run it in qonnx / FINN"
)]
pub struct ExportArgs {
    /// The .nuq model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Directory to write the images and manifest.json into (created if missing).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["onnx", "qonnx"])]
    pub out: Option<PathBuf>,

    /// Image file format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Mem)]
    pub format: ImageFormat,

    /// Bits per memory word: 32, 64, 128, 256 or 512.
    #[arg(long, value_name = "BITS", value_parser = parse_word_bits, required_unless_present_any = ["onnx", "qonnx"])]
    pub word_bits: Option<u32>,

    /// Write the integer model as a standard ONNX graph (exact integer operators).
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,

    /// Write the integer model as QONNX (MultiThreshold requantizers, float containers).
    #[arg(long, value_name = "FILE")]
    pub qonnx: Option<PathBuf>,

    /// Fixed batch size of the ONNX graphs (ONNX default: symbolic; QONNX default: 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,

    /// Print the manifest as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One memory in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    /// Memory name (`weights0`, `codebook1`, `thresholds0_dir`, `bias2`, ...).
    pub name: String,
    /// File name inside the output directory.
    pub file: String,
    /// Number of words.
    pub depth: usize,
    /// Bits per word.
    pub word_bits: u32,
    /// Bits per lane.
    pub lane_bits: u32,
    /// Lanes per word (lane 0 in the low bits).
    pub lanes_per_word: u32,
}

/// What an export wrote (also written as `manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The model file as given.
    pub source: String,
    /// Its size in bytes.
    pub source_bytes: u64,
    /// Its stored (and verified) CRC-32C.
    pub source_crc32c: u32,
    /// Image format.
    pub format: ImageFormat,
    /// Bits per word of every image.
    pub word_bits: u32,
    /// The memories, in the order weights, codebooks, thresholds, biases, aligns, zero
    /// points, then the layer sequencer's `seq_*` images.
    pub memories: Vec<ManifestEntry>,
    /// Why the sequencer images are missing (a model the `rtl/` sequencer cannot run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

/// One layer's accumulator bound in the ONNX export report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerBound {
    /// The integer model's node.
    pub node: usize,
    /// `conv`, `add` or `linear`.
    pub op: &'static str,
    /// The largest accumulator magnitude any input can produce.
    pub bound: u64,
    /// The largest magnitude the flavour's arithmetic holds exactly.
    pub limit: u64,
}

/// What one ONNX export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct OnnxReport {
    /// `onnx` or `qonnx`.
    pub flavour: &'static str,
    /// The file written.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The fixed batch size, or null for a symbolic one.
    pub batch: Option<usize>,
    /// ONNX nodes.
    pub nodes: usize,
    /// Whether the file computes nuq's logits exactly for every input.
    pub exact: bool,
    /// Worst-case accumulators.
    pub layers: Vec<LayerBound>,
}

/// Writes the `--onnx` / `--qonnx` files.
fn run_onnx(args: &ExportArgs) -> CmdResult {
    let model = model_file::read_integer_model(&args.file)?;
    let mut reports = Vec::new();
    for (flavour, path) in [(Flavour::Onnx, &args.onnx), (Flavour::Qonnx, &args.qonnx)] {
        let Some(path) = path else { continue };
        let batch = args.batch.map(|b| b as usize);
        let r = export_file(path, &model, &ExportOptions { flavour, batch })
            .map_err(|e| Failure::new(format!("{}: cannot export: {e}", args.file.display())))?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        reports.push(OnnxReport {
            flavour: flavour.name(),
            file: path.display().to_string(),
            bytes,
            batch: r.batch,
            nodes: r.nodes,
            exact: r.exact,
            layers: r
                .layers
                .iter()
                .map(|l| LayerBound {
                    node: l.node,
                    op: l.op,
                    bound: l.bound,
                    limit: l.limit,
                })
                .collect(),
        });
    }
    if args.json {
        return output::print_json(&reports);
    }
    let mut text = String::new();
    for r in &reports {
        let batch = r.batch.map_or("symbolic".to_string(), |b| b.to_string());
        let _ = writeln!(
            text,
            "{}: wrote {} ({} flavour, {} nodes, {} bytes, batch {batch})",
            args.file.display(),
            r.file,
            r.flavour,
            r.nodes,
            r.bytes
        );
        if r.exact {
            let _ = writeln!(text, "  exact: every accumulator fits the arithmetic used");
        } else {
            let over: Vec<String> = r
                .layers
                .iter()
                .filter(|l| l.bound >= l.limit)
                .map(|l| format!("node {} ({}) up to {}", l.node, l.op, l.bound))
                .collect();
            let _ = writeln!(
                text,
                "  exact where the accumulators stay below the float limit; the worst case passes it at {}",
                over.join(", ")
            );
        }
    }
    output::print(&text)
}

/// Runs `nuq export`.
pub fn run(args: &ExportArgs) -> CmdResult {
    if args.onnx.is_some() || args.qonnx.is_some() {
        if args.out.is_some() || args.word_bits.is_some() {
            return Err(Failure::new(
                "--out (memory images) and --onnx/--qonnx are separate exports; run nuq export once for each",
            ));
        }
        return run_onnx(args);
    }
    let (Some(out), Some(word_bits)) = (&args.out, args.word_bits) else {
        return Err(Failure::new(
            "--out DIR and --word-bits BITS are required for memory images",
        ));
    };
    let bytes = model_file::read(&args.file)?;
    let file = model_file::parse(&args.file, &bytes)?;
    let mut images = memories(&file, word_bits).map_err(|e| {
        Failure::new(format!(
            "{}: cannot build memory images: {e}; choose a wider --word-bits",
            args.file.display()
        ))
    })?;
    // The layer sequencer's images (rtl/): descriptors plus every table concatenated per
    // kind. A model the sequencer cannot run still exports its per-table images.
    let seq_note = match seq_images(&file, word_bits) {
        Ok(s) => {
            images.extend(s.images);
            None
        }
        Err(e) => Some(format!("no sequencer images: {e}")),
    };
    let ext = args.format.extension();
    let manifest = Manifest {
        source: args.file.display().to_string(),
        source_bytes: bytes.len() as u64,
        source_crc32c: file.file_crc(),
        format: args.format,
        word_bits,
        memories: images
            .iter()
            .map(|m| ManifestEntry {
                name: m.name.clone(),
                file: format!("{}.{ext}", m.name),
                depth: m.depth(),
                word_bits: m.word_bits,
                lane_bits: m.lane_bits,
                lanes_per_word: m.word_bits / m.lane_bits,
            })
            .collect(),
        sequencer: seq_note,
    };
    let mut manifest_json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Failure::new(format!("cannot encode the manifest: {e}")))?;
    manifest_json.push('\n');

    let mut staged = StagedDir::new(out)?;
    for (m, entry) in images.iter().zip(&manifest.memories) {
        staged.add(&entry.file, args.format.encode(m).as_bytes())?;
    }
    staged.add(MANIFEST, manifest_json.as_bytes())?;
    staged.commit()?;

    if args.json {
        return output::print_json(&manifest);
    }
    let mut t = TextTable::new(&["memory", "file", "words", "lanes x bits"]);
    for e in &manifest.memories {
        t.row(vec![
            e.name.clone(),
            e.file.clone(),
            e.depth.to_string(),
            format!("{} x {}", e.lanes_per_word, e.lane_bits),
        ]);
    }
    let mut text = format!(
        "{}: wrote {} memories as .{ext} with {}-bit words to {}\n",
        manifest.source,
        manifest.memories.len(),
        word_bits,
        out.display()
    );
    text.push_str(&t.render(2));
    if let Some(note) = &manifest.sequencer {
        let _ = writeln!(text, "  {note}");
    }
    let _ = writeln!(text, "  manifest: {}", out.join(MANIFEST).display());
    output::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_bits_are_the_format_widths() {
        for ok in ["32", "64", "128", "256", "512"] {
            assert_eq!(parse_word_bits(ok), Ok(ok.parse().expect("number")));
        }
        for bad in ["0", "48", "1024", "-32", "wide", ""] {
            let e = parse_word_bits(bad).unwrap_err();
            assert!(e.contains("32, 64, 128, 256, 512"), "{bad}: {e}");
        }
    }
}
