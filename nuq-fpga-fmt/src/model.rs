//! The owned model the writer serializes and [`Model::from_file`] rebuilds from a validated file.

use crate::enums::{ElementType, LayerOp, TileOrder};
use crate::reader::{NuqFile, Scale};
use nuq_core::{FixedPointMultiplier, MacThresholds};
use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

/// A whole model: the graph and every table it refers to by index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    /// Layers in topological order (inputs refer to earlier layers).
    pub layers: Vec<Layer>,
    /// Codebooks.
    pub codebooks: Vec<Codebook>,
    /// Packed weight tensors.
    pub weights: Vec<WeightTensor>,
    /// Bias vectors.
    pub biases: Vec<Vec<i32>>,
    /// MAC-threshold tables (`nuq-core`'s type: per channel `2^bits − 1` ascending
    /// thresholds and a direction).
    pub thresholds: Vec<MacThresholds>,
    /// Scales.
    pub scales: Vec<Scale>,
    /// Producer and free key/values.
    pub metadata: Metadata,
    /// Alignment tables of residual joins (format 1.1).
    pub aligns: Vec<AlignTable>,
    /// Input zero-point tables (format 1.1).
    pub zero_points: Vec<ZeroPointTable>,
}

/// One layer. Fields an op does not use stay zero / `None` (see `FORMAT.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Name (UTF-8, at most 65536 bytes).
    pub name: String,
    /// Operation.
    pub op: LayerOp,
    /// Indices of earlier layers feeding this one (0 for `Input`, 2 for `Add`, else 1).
    pub inputs: Vec<u32>,
    /// Output shape `[c, h, w]`.
    pub out_shape: [u32; 3],
    /// Kernel `[kh, kw]` (window ops only).
    pub kernel: [u32; 2],
    /// Stride `[sh, sw]` (window ops only).
    pub stride: [u32; 2],
    /// Padding `[top, left, bottom, right]` (window ops only).
    pub padding: [u32; 4],
    /// Dilation `[dh, dw]` (window ops only; 1 for pooling).
    pub dilation: [u32; 2],
    /// Group count (window ops only; 1 for pooling).
    pub groups: u32,
    /// Weight index bits (0 without weights).
    pub weight_bits: u8,
    /// Output code bits (0 when the output is not requantized).
    pub act_bits: u8,
    /// WEIGHTS index.
    pub weights: Option<u32>,
    /// CODEBOOKS index of the weight codebook.
    pub weight_codebook: Option<u32>,
    /// SCALES index of the weight scale.
    pub weight_scale: Option<u32>,
    /// BIASES index.
    pub bias: Option<u32>,
    /// THRESHOLDS index.
    pub thresholds: Option<u32>,
    /// CODEBOOKS index of the output-code codebook.
    pub act_codebook: Option<u32>,
    /// SCALES index of the output scale.
    pub act_scale: Option<u32>,
    /// ALIGNS index (`aligned_add` only; format 1.1).
    pub align: Option<u32>,
    /// ZERO_POINTS index (`input_zp` only; format 1.1).
    pub zero_point: Option<u32>,
}

impl Layer {
    /// A layer with the given op, inputs and output shape, no window and no tables.
    pub fn new(name: &str, op: LayerOp, inputs: &[u32], out_shape: [u32; 3]) -> Self {
        Layer {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
            out_shape,
            kernel: [0; 2],
            stride: [0; 2],
            padding: [0; 4],
            dilation: [0; 2],
            groups: 0,
            weight_bits: 0,
            act_bits: 0,
            weights: None,
            weight_codebook: None,
            weight_scale: None,
            bias: None,
            thresholds: None,
            act_codebook: None,
            act_scale: None,
            align: None,
            zero_point: None,
        }
    }

    /// Sets the window of a conv/pool layer (dilation 1, one group).
    pub fn with_window(mut self, kernel: [u32; 2], stride: [u32; 2], padding: [u32; 4]) -> Self {
        self.kernel = kernel;
        self.stride = stride;
        self.padding = padding;
        self.dilation = [1, 1];
        self.groups = 1;
        self
    }
}

/// A codebook record: `2^bits` non-decreasing integer levels on a `grid_bits` grid.
///
/// This is the file's record, not `nuq-core`'s [`nuq_core::Codebook`], on purpose: a file may
/// hold what a core codebook cannot — repeated levels (a short codebook padded with its last
/// level, FORMAT.md §6.2), grids up to 32 bits (core's `Grid` stops at 16), a kind code a
/// newer writer defined — and the element type is a storage choice. [`Codebook::from_core`]
/// builds the record of a core codebook; [`Codebook::family`] reads the kind as core's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codebook {
    /// Raw [`CodebookKind`](crate::CodebookKind) code (kept raw so kinds from newer files
    /// survive a round trip).
    pub kind: u8,
    /// Index bits.
    pub bits: u8,
    /// Grid width in bits.
    pub grid_bits: u8,
    /// Whether the grid is signed.
    pub signed: bool,
    /// Element type of the stored list.
    pub elem_type: ElementType,
    /// The levels, ascending; `levels.len() == 1 << bits`.
    pub levels: Vec<i32>,
}

impl Codebook {
    /// The record of a `nuq-core` codebook: its family, grid and levels, padded to
    /// `2^bits` entries by repeating the last level.
    ///
    /// ```
    /// use nuq_core::{Codebook, Grid, Polarity};
    /// let cb = nuq_fpga_fmt::model::Codebook::from_core(&Codebook::apot(Grid::I8, 2, Polarity::Signed)?);
    /// assert_eq!((cb.bits, cb.grid_bits, cb.signed, cb.levels.len()), (2, 8, true, 4));
    /// assert_eq!(cb.family(), Some(nuq_core::Family::Apot));
    /// # Ok::<(), nuq_core::Error>(())
    /// ```
    pub fn from_core(cb: &nuq_core::Codebook) -> Self {
        let mut levels = cb.levels().to_vec();
        levels.resize(1 << cb.bits(), *cb.levels().last().unwrap_or(&0));
        let grid = cb.grid();
        Codebook::new(cb.family(), grid.bits(), grid.is_signed(), levels)
    }

    /// The kind as `nuq-core`'s family, `None` for a code this version does not define.
    pub fn family(&self) -> Option<crate::CodebookKind> {
        crate::CodebookKind::from_raw(self.kind)
    }

    /// A codebook stored with the narrowest element type its grid fits.
    pub fn new(kind: crate::CodebookKind, grid_bits: u8, signed: bool, levels: Vec<i32>) -> Self {
        let bits = levels.len().max(2).trailing_zeros() as u8;
        let fits_i16 = if signed {
            grid_bits <= 16
        } else {
            grid_bits <= 15
        };
        Codebook {
            kind: kind.raw(),
            bits,
            grid_bits,
            signed,
            elem_type: if fits_i16 {
                ElementType::I16
            } else {
                ElementType::I32
            },
            levels,
        }
    }
}

/// A weight tensor of `bits`-bit indices, packed on write into `word_bits` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTensor {
    /// Index bits.
    pub bits: u8,
    /// Word width: 32, 64, 128, 256 or 512.
    pub word_bits: u16,
    /// Tile order.
    pub order: TileOrder,
    /// Dimensions, outermost first (conv `[o, i/groups, kh, kw]`, linear `[o, i]`).
    pub dims: Vec<u32>,
    /// Indices in row-major order of `dims`, each `< 2^bits`.
    pub indices: Vec<u8>,
}

/// The alignment of the shortcut of an `aligned_add` layer: per channel `c` the sum is
/// `(main << main_shift) + factors[c].apply(shortcut)`, i.e.
/// `(shortcut · M_c + 2^(S_c − 1)) >> S_c` (`nuq-core`'s [`FixedPointMultiplier`]; the file
/// stores the multipliers and the shifts as two per-channel lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignTable {
    /// Left shift of the main accumulator (0..=30).
    pub main_shift: u8,
    /// One factor per channel.
    pub factors: Vec<FixedPointMultiplier>,
}

/// The per-channel input codes that stand for a real zero (the padding value of an
/// `input_zp` layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroPointTable {
    /// Code bits (the input's `act_bits`).
    pub bits: u8,
    /// One code per channel, each `< 2^bits`.
    pub values: Vec<u8>,
}

/// Producer, producer version and free key/values (sorted by key on disk).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Producing tool.
    pub producer: String,
    /// Producing tool's version.
    pub producer_version: String,
    /// Free key/values (e.g. `accuracy`).
    pub entries: BTreeMap<String, String>,
}

impl Model {
    /// The lowest minor version of format 1.x that can hold this model, which the writer
    /// declares: 1 when it has an `aligned_add` or `input_zp` layer, a layer with an `align` or
    /// `zero_point` reference, or an alignment or zero-point table; else 0 (a 1.0 file, readable
    /// by every 1.x reader).
    pub fn minor_version(&self) -> u16 {
        let layer =
            |l: &Layer| l.op.since_minor() >= 1 || l.align.is_some() || l.zero_point.is_some();
        if self.layers.iter().any(layer) || !self.aligns.is_empty() || !self.zero_points.is_empty()
        {
            1
        } else {
            0
        }
    }

    /// Copies a validated file into an owned model. The reader's checks are exactly the
    /// invariants of the `nuq-core` types the model holds, so this cannot fail.
    pub fn from_file(file: &NuqFile<'_>) -> Self {
        let layers = file
            .graph()
            .iter()
            .map(|l| Layer {
                name: l.name().into(),
                op: l.op(),
                inputs: l.inputs().collect(),
                out_shape: l.out_shape(),
                kernel: l.kernel(),
                stride: l.stride(),
                padding: l.padding(),
                dilation: l.dilation(),
                groups: l.groups(),
                weight_bits: l.weight_bits(),
                act_bits: l.act_bits(),
                weights: l.weights(),
                weight_codebook: l.weight_codebook(),
                weight_scale: l.weight_scale(),
                bias: l.bias(),
                thresholds: l.thresholds(),
                act_codebook: l.act_codebook(),
                act_scale: l.act_scale(),
                align: l.align(),
                zero_point: l.zero_point(),
            })
            .collect();
        let codebooks = file
            .codebooks()
            .iter()
            .map(|c| Codebook {
                kind: c.kind_raw(),
                bits: c.bits(),
                grid_bits: c.grid_bits(),
                signed: c.signed(),
                elem_type: c.elem_type(),
                levels: c.levels().collect(),
            })
            .collect();
        let weights = file
            .weights()
            .iter()
            .map(|w| WeightTensor {
                bits: w.bits(),
                word_bits: w.word_bits(),
                order: w.order(),
                dims: w.dims().iter().map(|d| d.get()).collect(),
                indices: w.indices().collect(),
            })
            .collect();
        let biases = file
            .biases()
            .iter()
            .map(|b| b.iter().map(|v| v.get()).collect())
            .collect();
        let thresholds = file
            .thresholds()
            .iter()
            .map(|t| {
                let values = t.values().iter().map(|v| v.get()).collect();
                let directions = (0..t.channels()).filter_map(|c| t.direction(c)).collect();
                // The reader checked bits, counts, order and directions.
                MacThresholds::new(t.bits(), values, directions)
                    .expect("a validated threshold table is a MacThresholds")
            })
            .collect();
        let m = file.metadata();
        Model {
            layers,
            codebooks,
            weights,
            biases,
            thresholds,
            scales: file.scales().iter().collect(),
            metadata: Metadata {
                producer: m.producer().into(),
                producer_version: m.producer_version().into(),
                entries: m.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            },
            aligns: file
                .aligns()
                .iter()
                .map(|a| AlignTable {
                    main_shift: a.main_shift(),
                    // The reader checked every shift is at most 62.
                    factors: a
                        .multipliers()
                        .iter()
                        .zip(a.shifts())
                        .map(|(m, &s)| {
                            FixedPointMultiplier::new(m.get(), s)
                                .expect("a validated shift is in 0..=62")
                        })
                        .collect(),
                })
                .collect(),
            zero_points: file
                .zero_points()
                .iter()
                .map(|z| ZeroPointTable {
                    bits: z.bits(),
                    values: z.values().to_vec(),
                })
                .collect(),
        }
    }
}
