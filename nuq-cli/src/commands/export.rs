//! `nuq export`: block-RAM initialization images of every memory of a `.nuq` model.

use crate::exit::{CmdResult, Failure};
use crate::model_file;
use crate::output::{self, StagedDir};
use crate::text_table::TextTable;
use clap::{Args, ValueEnum};
use nuq_fpga_fmt::memory::{memories, MemoryImage};
use nuq_fpga_fmt::reader::WORD_BITS;
use nuq_fpga_fmt::seq::seq_images;
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
    about = "Write FPGA memory images (.mem/.coe/.mif) of a .nuq model's weights, codebooks, thresholds and biases",
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
        inside DIR and moved into place at the end; files of the same name are replaced.",
    after_help = "Examples:\n  \
        nuq export model.nuq --out mem/ --word-bits 64                 Verilog $readmemh files\n  \
        nuq export model.nuq --out coe/ --format coe --word-bits 256   Xilinx .coe files\n  \
        nuq export model.nuq --out mif/ --format mif --word-bits 32 --json"
)]
pub struct ExportArgs {
    /// The .nuq model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Directory to write the images and manifest.json into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Image file format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Mem)]
    pub format: ImageFormat,

    /// Bits per memory word: 32, 64, 128, 256 or 512.
    #[arg(long, value_name = "BITS", value_parser = parse_word_bits)]
    pub word_bits: u32,

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

/// Runs `nuq export`.
pub fn run(args: &ExportArgs) -> CmdResult {
    let bytes = model_file::read(&args.file)?;
    let file = model_file::parse(&args.file, &bytes)?;
    let mut images = memories(&file, args.word_bits).map_err(|e| {
        Failure::new(format!(
            "{}: cannot build memory images: {e}; choose a wider --word-bits",
            args.file.display()
        ))
    })?;
    // The layer sequencer's images (rtl/): descriptors plus every table concatenated per
    // kind. A model the sequencer cannot run still exports its per-table images.
    let seq_note = match seq_images(&file, args.word_bits) {
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
        word_bits: args.word_bits,
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

    let mut staged = StagedDir::new(&args.out)?;
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
        args.word_bits,
        args.out.display()
    );
    text.push_str(&t.render(2));
    if let Some(note) = &manifest.sequencer {
        let _ = writeln!(text, "  {note}");
    }
    let _ = writeln!(text, "  manifest: {}", args.out.join(MANIFEST).display());
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
