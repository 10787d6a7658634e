//! Memory images for FPGA block-RAM initialization: every weight, codebook, threshold and bias
//! memory of a validated file, packed into words of a user-chosen width with the lane order of
//! the format (lane 0 in the low bits), written as Verilog `$readmemh` text, a Xilinx `.coe`
//! file or an Intel `.mif` file.
//!
//! | memory | lanes (in order) | lane width | rows (each row starts a new word) |
//! |---|---|---|---|
//! | `weights<i>` | indices in the tensor's tile order | `b` | one per output channel for `row_per_output`, else one |
//! | `codebook<i>` | levels, index 0 first, two's complement | `g` (grid bits) | one |
//! | `thresholds<i>` | thresholds of each channel, ascending, two's complement | 32 | one per channel |
//! | `thresholds<i>_dir` | direction bit of each channel (1 = falling) | 1 | one |
//! | `bias<i>` | biases, two's complement | 32 | one |
//! | `align<i>_mul` | alignment multipliers, one per channel, two's complement | 32 | one |
//! | `align<i>_shift` | alignment right shifts, one per channel | 6 | one |
//! | `zero_point<i>` | input zero-point codes, one per channel | `b` (code bits) | one |

use crate::reader::NuqFile;
use std::fmt::Write;
use std::string::String;
use std::vec::Vec;

/// Why a memory image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The requested word width is outside 1..=4096 bits.
    #[error("word width {0} bits is outside 1..=4096")]
    WordWidth(u32),
    /// A lane is wider than the word.
    #[error("memory {name}: lanes of {lane_bits} bits do not fit {word_bits}-bit words")]
    LaneTooWide {
        /// The memory.
        name: String,
        /// Lane width.
        lane_bits: u32,
        /// Word width.
        word_bits: u32,
    },
}

/// One memory: `words.len()` words of `word_bits` bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryImage {
    /// Name, e.g. `weights0`.
    pub name: String,
    /// Word width in bits.
    pub word_bits: u32,
    /// Lane width in bits.
    pub lane_bits: u32,
    /// The words, each `ceil(word_bits / 8)` bytes little-endian (bit 0 of byte 0 is bit 0).
    pub words: Vec<Vec<u8>>,
}

impl MemoryImage {
    /// Packs `rows` of lane values (low `lane_bits` bits of each value are kept) into words of
    /// `word_bits` bits, `floor(word_bits / lane_bits)` lanes per word, lane 0 in the low bits;
    /// each row starts a new word.
    pub fn pack<R, L>(
        name: &str,
        lane_bits: u32,
        word_bits: u32,
        rows: R,
    ) -> Result<Self, MemoryError>
    where
        R: IntoIterator<Item = L>,
        L: IntoIterator<Item = u64>,
    {
        if !(1..=4096).contains(&word_bits) {
            return Err(MemoryError::WordWidth(word_bits));
        }
        if lane_bits == 0 || lane_bits > word_bits || lane_bits > 64 {
            return Err(MemoryError::LaneTooWide {
                name: name.into(),
                lane_bits,
                word_bits,
            });
        }
        let lanes = (word_bits / lane_bits) as usize;
        let nbytes = word_bits.div_ceil(8) as usize;
        let mask = if lane_bits == 64 {
            u64::MAX
        } else {
            (1u64 << lane_bits) - 1
        };
        let mut words = Vec::new();
        for row in rows {
            for (k, v) in row.into_iter().enumerate() {
                if k % lanes == 0 {
                    words.push(vec![0u8; nbytes]);
                }
                let Some(word) = words.last_mut() else {
                    continue;
                };
                // Lane k occupies bits bit0 .. bit0 + lane_bits: OR it in byte by byte.
                let bit0 = (k % lanes) * lane_bits as usize;
                let v = u128::from(v & mask) << (bit0 % 8);
                let span = (bit0 % 8 + lane_bits as usize).div_ceil(8);
                for (b, byte) in word.iter_mut().skip(bit0 / 8).take(span).enumerate() {
                    *byte |= (v >> (8 * b)) as u8;
                }
            }
        }
        Ok(MemoryImage {
            name: name.into(),
            word_bits,
            lane_bits,
            words,
        })
    }

    /// Number of words.
    pub fn depth(&self) -> usize {
        self.words.len()
    }

    /// Word `w` as hex digits, most significant first, `ceil(word_bits / 4)` digits; `None`
    /// past the last word.
    pub fn hex(&self, w: usize, upper: bool) -> Option<String> {
        let word = self.words.get(w)?;
        let digits = self.word_bits.div_ceil(4) as usize;
        let mut s = String::with_capacity(digits);
        for d in (0..digits).rev() {
            let byte = word.get(d / 2).copied().unwrap_or(0);
            let nib = if d % 2 == 0 { byte & 0xF } else { byte >> 4 };
            let c = char::from_digit(nib.into(), 16).unwrap_or('0');
            s.push(if upper { c.to_ascii_uppercase() } else { c });
        }
        Some(s)
    }

    fn hex_words(&self, upper: bool) -> impl Iterator<Item = String> + '_ {
        (0..self.depth()).filter_map(move |w| self.hex(w, upper))
    }

    fn describe(&self) -> String {
        format!(
            "{}: {} words of {} bits, {} lanes of {} bits per word, lane 0 in the low bits",
            self.name,
            self.depth(),
            self.word_bits,
            self.word_bits / self.lane_bits,
            self.lane_bits
        )
    }

    /// Verilog `$readmemh` text: a `//` comment line, then one word per line.
    pub fn to_readmemh(&self) -> String {
        let mut s = format!("// {}\n", self.describe());
        for word in self.hex_words(false) {
            s.push_str(&word);
            s.push('\n');
        }
        s
    }

    /// Xilinx `.coe` text (radix 16).
    pub fn to_coe(&self) -> String {
        let mut s = format!(
            "; {}\nmemory_initialization_radix=16;\nmemory_initialization_vector=\n",
            self.describe()
        );
        for (w, word) in self.hex_words(false).enumerate() {
            s.push_str(&word);
            s.push_str(if w + 1 == self.depth() { ";\n" } else { ",\n" });
        }
        s
    }

    /// Intel `.mif` text (unsigned decimal addresses, hex data).
    pub fn to_mif(&self) -> String {
        let mut s = format!(
            "-- {}\nWIDTH={};\nDEPTH={};\n\nADDRESS_RADIX=UNS;\nDATA_RADIX=HEX;\n\nCONTENT BEGIN\n",
            self.describe(),
            self.word_bits,
            self.depth()
        );
        for (w, word) in self.hex_words(true).enumerate() {
            let _ = writeln!(s, "\t{w} : {word};");
        }
        s.push_str("END;\n");
        s
    }
}

fn twos(v: i32, bits: u32) -> u64 {
    (i64::from(v) as u64)
        & if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
}

/// Every memory of `file` (see the module table), packed into `word_bits`-bit words. Bias
/// vectors of length 0 give no memory.
pub fn memories(file: &NuqFile<'_>, word_bits: u32) -> Result<Vec<MemoryImage>, MemoryError> {
    let mut out = Vec::new();
    for (i, w) in file.weights().iter().enumerate() {
        let p = w.packing();
        let rows = p.elements / p.row_len.max(1);
        let row_len = p.row_len;
        let rows_iter = (0..rows)
            .map(|r| (0..row_len).map(move |j| u64::from(w.index(r * row_len + j).unwrap_or(0))));
        // For `flat` the single row is the whole tensor; for `row_per_output` each output
        // channel starts a new word, as in the file.
        out.push(MemoryImage::pack(
            &format!("weights{i}"),
            p.bits,
            word_bits,
            rows_iter,
        )?);
    }
    for (i, c) in file.codebooks().iter().enumerate() {
        let g = u32::from(c.grid_bits());
        out.push(MemoryImage::pack(
            &format!("codebook{i}"),
            g,
            word_bits,
            [c.levels().map(|v| twos(v, g))],
        )?);
    }
    for (i, t) in file.thresholds().iter().enumerate() {
        let rows = (0..t.channels()).map(|c| {
            t.channel(c)
                .unwrap_or(&[])
                .iter()
                .map(|v| twos(v.get(), 32))
        });
        out.push(MemoryImage::pack(
            &format!("thresholds{i}"),
            32,
            word_bits,
            rows,
        )?);
        let dirs = (0..t.channels()).map(|c| u64::from(t.direction(c).map_or(0, |d| d.raw())));
        out.push(MemoryImage::pack(
            &format!("thresholds{i}_dir"),
            1,
            word_bits,
            [dirs],
        )?);
    }
    for (i, b) in file.biases().iter().enumerate() {
        if !b.is_empty() {
            out.push(MemoryImage::pack(
                &format!("bias{i}"),
                32,
                word_bits,
                [b.iter().map(|v| twos(v.get(), 32))],
            )?);
        }
    }
    for (i, a) in file.aligns().iter().enumerate() {
        out.push(MemoryImage::pack(
            &format!("align{i}_mul"),
            32,
            word_bits,
            [a.multipliers().iter().map(|v| twos(v.get(), 32))],
        )?);
        out.push(MemoryImage::pack(
            &format!("align{i}_shift"),
            6,
            word_bits,
            [a.shifts().iter().map(|&v| u64::from(v))],
        )?);
    }
    for (i, z) in file.zero_points().iter().enumerate() {
        out.push(MemoryImage::pack(
            &format!("zero_point{i}"),
            u32::from(z.bits()),
            word_bits,
            [z.values().iter().map(|&v| u64::from(v))],
        )?);
    }
    Ok(out)
}
