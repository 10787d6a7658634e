//! What `nuq inspect` reports about a `.nuq` file, as plain data: the JSON output serializes it
//! and the human-readable tables render it, so both always say the same thing.

use nuq_fpga_fmt::model::{Layer, Model};
use nuq_fpga_fmt::reader::{has_weights, is_spatial};
use nuq_fpga_fmt::{Direction, NuqFile};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything `nuq inspect` reports about one file.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The path as given on the command line.
    pub file: String,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Format version, `major.minor`.
    pub format_version: String,
    /// Payload alignment in bytes.
    pub alignment: u32,
    /// Header flags.
    pub flags: u32,
    /// Stored whole-file CRC-32C.
    pub crc32c: u32,
    /// Whether the whole-file CRC and every section CRC were checked and matched (always true
    /// for a file that is reported at all: a mismatch is an error).
    pub crc_verified: bool,
    /// Section-table entries in table order.
    pub sections: Vec<Section>,
    /// Layers in graph order.
    pub layers: Vec<LayerInfo>,
    /// Codebooks.
    pub codebooks: Vec<CodebookInfo>,
    /// Packed weight tensors.
    pub weights: Vec<WeightInfo>,
    /// Bias vectors.
    pub biases: Vec<BiasInfo>,
    /// MAC-threshold tables.
    pub thresholds: Vec<ThresholdInfo>,
    /// Scales.
    pub scales: Vec<ScaleInfo>,
    /// Alignment tables of residual joins (format 1.1).
    pub aligns: Vec<AlignInfo>,
    /// Input zero-point tables (format 1.1).
    pub zero_points: Vec<ZeroPointInfo>,
    /// Producer and free key/values.
    pub metadata: MetadataInfo,
    /// Whole-model counts.
    pub totals: Totals,
}

/// One section-table entry.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Position in the section table.
    pub index: u32,
    /// Kind name (`GRAPH`, ...; `unknown` for a kind newer than this reader).
    pub kind: String,
    /// Raw kind code.
    pub kind_raw: u32,
    /// Payload offset in the file.
    pub offset: u64,
    /// Payload length in bytes.
    pub length: u64,
    /// Stored CRC-32C of the payload (verified).
    pub crc32c: u32,
}

/// A layer that refers to a table, and in which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    /// Layer index.
    pub layer: u32,
    /// Layer name.
    pub name: String,
    /// Role of the table for that layer (`weights`, `weight_codebook`, `act_codebook`, ...).
    pub role: &'static str,
}

/// The window of a convolution or pooling layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// `[kh, kw]`.
    pub kernel: [u32; 2],
    /// `[sh, sw]`.
    pub stride: [u32; 2],
    /// `[top, left, bottom, right]`.
    pub padding: [u32; 4],
    /// `[dh, dw]`.
    pub dilation: [u32; 2],
    /// Group count.
    pub groups: u32,
}

/// Indices of the tables a layer uses (`None`: not used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRefs {
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
    /// ALIGNS index of a residual join's alignment (format 1.1).
    pub align: Option<u32>,
    /// ZERO_POINTS index of an input's zero points (format 1.1).
    pub zero_point: Option<u32>,
}

impl TableRefs {
    fn of(l: &Layer) -> Self {
        TableRefs {
            weights: l.weights,
            weight_codebook: l.weight_codebook,
            weight_scale: l.weight_scale,
            bias: l.bias,
            thresholds: l.thresholds,
            act_codebook: l.act_codebook,
            act_scale: l.act_scale,
            align: l.align,
            zero_point: l.zero_point,
        }
    }

    /// `(role, index)` of every table used, in a fixed order.
    pub fn used(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [
            ("weights", self.weights),
            ("weight_codebook", self.weight_codebook),
            ("weight_scale", self.weight_scale),
            ("bias", self.bias),
            ("thresholds", self.thresholds),
            ("act_codebook", self.act_codebook),
            ("act_scale", self.act_scale),
            ("align", self.align),
            ("zero_point", self.zero_point),
        ]
        .into_iter()
        .filter_map(|(role, i)| i.map(|i| (role, i)))
    }
}

/// One layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// Position in the graph.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Operation (`conv2d`, `linear`, ...).
    pub op: String,
    /// Indices of the layers feeding this one.
    pub inputs: Vec<u32>,
    /// Output shape `[c, h, w]`.
    pub out_shape: [u32; 3],
    /// Window, for convolution and pooling layers.
    pub window: Option<Window>,
    /// Bits of the weight indices (`None` without weights).
    pub weight_bits: Option<u8>,
    /// Bits of the output codes (`None` when the output is not requantized).
    pub act_bits: Option<u8>,
    /// Tables the layer uses.
    pub tables: TableRefs,
}

/// One codebook.
#[derive(Debug, Clone, Serialize)]
pub struct CodebookInfo {
    /// CODEBOOKS index.
    pub index: u32,
    /// Design family (`uniform`, `k_quantile`, ...; `unknown` for a newer kind).
    pub kind: String,
    /// Raw kind code.
    pub kind_raw: u8,
    /// Index bits.
    pub bits: u8,
    /// Grid width in bits.
    pub grid_bits: u8,
    /// Whether the grid is signed.
    pub signed: bool,
    /// Stored element type.
    pub elem_type: String,
    /// The integer levels, ascending.
    pub levels: Vec<i32>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// One packed weight tensor.
#[derive(Debug, Clone, Serialize)]
pub struct WeightInfo {
    /// WEIGHTS index.
    pub index: u32,
    /// Index bits.
    pub bits: u8,
    /// Width of the words it is packed in.
    pub word_bits: u16,
    /// Tile order.
    pub order: String,
    /// Dimensions, outermost first.
    pub dims: Vec<u32>,
    /// Number of elements.
    pub elements: u64,
    /// Number of packed words.
    pub words: u64,
    /// Packed size in bytes.
    pub bytes: u64,
    /// How often each index `0..2^bits` occurs.
    pub index_counts: Vec<u64>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// One bias vector.
#[derive(Debug, Clone, Serialize)]
pub struct BiasInfo {
    /// BIASES index.
    pub index: u32,
    /// Number of values.
    pub count: usize,
    /// Smallest value (`None` when empty).
    pub min: Option<i32>,
    /// Largest value (`None` when empty).
    pub max: Option<i32>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// The thresholds of one channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelThresholds {
    /// `rising` or `falling`.
    pub direction: String,
    /// Lowest threshold.
    pub min: i32,
    /// Highest threshold.
    pub max: i32,
}

/// One MAC-threshold table.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdInfo {
    /// THRESHOLDS index.
    pub index: u32,
    /// Output code bits.
    pub bits: u8,
    /// Number of channels.
    pub channels: usize,
    /// Thresholds per channel (`2^bits - 1`).
    pub per_channel: usize,
    /// Lowest threshold of the table (`None` when it has no channels).
    pub min: Option<i32>,
    /// Highest threshold of the table (`None` when it has no channels).
    pub max: Option<i32>,
    /// Channels with a rising direction.
    pub rising: usize,
    /// Channels with a falling direction.
    pub falling: usize,
    /// Range and direction of each channel.
    pub channel_ranges: Vec<ChannelThresholds>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// One scale.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleInfo {
    /// SCALES index.
    pub index: u32,
    /// The real scale.
    pub value: f32,
    /// `e` when the scale is exactly `2^e` in power-of-two form.
    pub exponent: Option<i32>,
    /// `m` of the fixed-point form `m / 2^shift`.
    pub multiplier: Option<i32>,
    /// `shift` of the fixed-point form.
    pub shift: Option<u8>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// One alignment table: the per-channel fixed-point factors `multiplier / 2^shift` that bring a
/// residual join's shortcut into the units of its main accumulator, shifted left by `main_shift`.
#[derive(Debug, Clone, Serialize)]
pub struct AlignInfo {
    /// ALIGNS index.
    pub index: u32,
    /// Number of channels.
    pub channels: usize,
    /// Left shift of the main accumulator.
    pub main_shift: u8,
    /// Smallest and largest multiplier (`None` when empty).
    pub multiplier_range: Option<[i32; 2]>,
    /// Channels with a negative multiplier (branches of opposite sign).
    pub negative: usize,
    /// Smallest and largest right shift (`None` when empty).
    pub shift_range: Option<[u8; 2]>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// One zero-point table: the input code that stands for a real zero, per channel.
#[derive(Debug, Clone, Serialize)]
pub struct ZeroPointInfo {
    /// ZERO_POINTS index.
    pub index: u32,
    /// Code bits.
    pub bits: u8,
    /// The zero-point code of each channel.
    pub values: Vec<u8>,
    /// Layers that use it.
    pub used_by: Vec<Use>,
}

/// Producer and free key/values.
#[derive(Debug, Clone, Serialize)]
pub struct MetadataInfo {
    /// Producing tool.
    pub producer: String,
    /// Its version.
    pub producer_version: String,
    /// Free key/values, sorted by key.
    pub entries: BTreeMap<String, String>,
}

/// Whole-model counts.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Number of layers.
    pub layers: usize,
    /// Layers with packed weights.
    pub weighted_layers: usize,
    /// Weight elements over all tensors.
    pub weight_elements: u64,
    /// Packed weight bytes over all tensors.
    pub weight_bytes: u64,
    /// Bias values over all vectors.
    pub bias_values: u64,
    /// Thresholds over all tables.
    pub threshold_values: u64,
}

/// The layers that use table `index` in one of `roles`.
fn uses(layers: &[LayerInfo], roles: &[&str], index: u32) -> Vec<Use> {
    layers
        .iter()
        .flat_map(|l| {
            l.tables
                .used()
                .filter(move |&(role, i)| i == index && roles.contains(&role))
                .map(move |(role, _)| Use {
                    layer: l.index,
                    name: l.name.clone(),
                    role,
                })
        })
        .collect()
}

fn nonzero(v: u8) -> Option<u8> {
    (v != 0).then_some(v)
}

fn layer_info(index: u32, l: &Layer) -> LayerInfo {
    let window = is_spatial(l.op).then_some(Window {
        kernel: l.kernel,
        stride: l.stride,
        padding: l.padding,
        dilation: l.dilation,
        groups: l.groups,
    });
    LayerInfo {
        index,
        name: l.name.clone(),
        op: l.op.name().to_string(),
        inputs: l.inputs.clone(),
        out_shape: l.out_shape,
        window,
        weight_bits: if has_weights(l.op) {
            nonzero(l.weight_bits)
        } else {
            None
        },
        act_bits: nonzero(l.act_bits),
        tables: TableRefs::of(l),
    }
}

fn threshold_info(index: u32, t: &nuq_core::MacThresholds, layers: &[LayerInfo]) -> ThresholdInfo {
    let per_channel = (1usize << t.bits()) - 1;
    let channel_ranges: Vec<ChannelThresholds> = t
        .directions()
        .iter()
        .enumerate()
        .map(|(c, d)| {
            let row = t.values().get(c * per_channel..(c + 1) * per_channel);
            let row = row.unwrap_or(&[]);
            ChannelThresholds {
                direction: d.name().to_string(),
                min: row.iter().copied().min().unwrap_or(0),
                max: row.iter().copied().max().unwrap_or(0),
            }
        })
        .collect();
    let falling = t
        .directions()
        .iter()
        .filter(|&&d| d == Direction::Falling)
        .count();
    ThresholdInfo {
        index,
        bits: t.bits(),
        channels: t.directions().len(),
        per_channel,
        min: t.values().iter().copied().min(),
        max: t.values().iter().copied().max(),
        rising: t.directions().len() - falling,
        falling,
        channel_ranges,
        used_by: uses(layers, &["thresholds"], index),
    }
}

/// Builds the summary of a validated file; `model` is `Model::from_file(file)` and `shown` the
/// path as the user gave it.
pub fn summarize(shown: &str, file: &NuqFile<'_>, model: &Model) -> Summary {
    let (major, minor) = file.version();
    let sections = file
        .sections()
        .enumerate()
        .map(|(i, s)| Section {
            index: i as u32,
            kind: s.kind.map_or("unknown", |k| k.name()).to_string(),
            kind_raw: s.kind_raw,
            offset: s.offset,
            length: s.length,
            crc32c: s.crc,
        })
        .collect();
    let layers: Vec<LayerInfo> = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| layer_info(i as u32, l))
        .collect();
    let codebooks = model
        .codebooks
        .iter()
        .enumerate()
        .map(|(i, c)| CodebookInfo {
            index: i as u32,
            kind: c.family().map_or("unknown", |k| k.name()).to_string(),
            kind_raw: c.kind,
            bits: c.bits,
            grid_bits: c.grid_bits,
            signed: c.signed,
            elem_type: c.elem_type.name().to_string(),
            levels: c.levels.clone(),
            used_by: uses(&layers, &["weight_codebook", "act_codebook"], i as u32),
        })
        .collect();
    let weights: Vec<WeightInfo> = model
        .weights
        .iter()
        .zip(file.weights().iter())
        .enumerate()
        .map(|(i, (w, packed))| {
            let mut index_counts = vec![0u64; 1usize << w.bits];
            for &k in &w.indices {
                if let Some(n) = index_counts.get_mut(usize::from(k)) {
                    *n += 1;
                }
            }
            WeightInfo {
                index: i as u32,
                bits: w.bits,
                word_bits: w.word_bits,
                order: w.order.name().to_string(),
                dims: w.dims.clone(),
                elements: w.indices.len() as u64,
                words: packed.word_count(),
                bytes: packed.data().len() as u64,
                index_counts,
                used_by: uses(&layers, &["weights"], i as u32),
            }
        })
        .collect();
    let biases: Vec<BiasInfo> = model
        .biases
        .iter()
        .enumerate()
        .map(|(i, b)| BiasInfo {
            index: i as u32,
            count: b.len(),
            min: b.iter().copied().min(),
            max: b.iter().copied().max(),
            used_by: uses(&layers, &["bias"], i as u32),
        })
        .collect();
    let thresholds: Vec<ThresholdInfo> = model
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| threshold_info(i as u32, t, &layers))
        .collect();
    let scales = model
        .scales
        .iter()
        .enumerate()
        .map(|(i, s)| ScaleInfo {
            index: i as u32,
            value: s.value,
            exponent: s.exponent,
            multiplier: s.multiplier_shift.map(|(m, _)| m),
            shift: s.multiplier_shift.map(|(_, sh)| sh),
            used_by: uses(&layers, &["weight_scale", "act_scale"], i as u32),
        })
        .collect();
    let aligns = model
        .aligns
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let multipliers = a.factors.iter().map(|f| f.multiplier());
            let shifts = a.factors.iter().map(|f| f.shift());
            AlignInfo {
                index: i as u32,
                channels: a.factors.len(),
                main_shift: a.main_shift,
                multiplier_range: multipliers
                    .clone()
                    .min()
                    .zip(multipliers.clone().max())
                    .map(|(lo, hi)| [lo, hi]),
                negative: multipliers.filter(|&m| m < 0).count(),
                shift_range: shifts
                    .clone()
                    .min()
                    .zip(shifts.max())
                    .map(|(lo, hi)| [lo, hi]),
                used_by: uses(&layers, &["align"], i as u32),
            }
        })
        .collect();
    let zero_points = model
        .zero_points
        .iter()
        .enumerate()
        .map(|(i, z)| ZeroPointInfo {
            index: i as u32,
            bits: z.bits,
            values: z.values.clone(),
            used_by: uses(&layers, &["zero_point"], i as u32),
        })
        .collect();
    let totals = Totals {
        layers: layers.len(),
        weighted_layers: layers.iter().filter(|l| l.tables.weights.is_some()).count(),
        weight_elements: weights.iter().map(|w| w.elements).sum(),
        weight_bytes: weights.iter().map(|w| w.bytes).sum(),
        bias_values: biases.iter().map(|b| b.count as u64).sum(),
        threshold_values: model
            .thresholds
            .iter()
            .map(|t| t.values().len() as u64)
            .sum(),
    };
    Summary {
        file: shown.to_string(),
        file_bytes: file.bytes().len() as u64,
        format_version: format!("{major}.{minor}"),
        alignment: file.alignment(),
        flags: file.flags(),
        crc32c: file.file_crc(),
        crc_verified: true,
        sections,
        layers,
        codebooks,
        weights,
        biases,
        thresholds,
        scales,
        aligns,
        zero_points,
        metadata: MetadataInfo {
            producer: model.metadata.producer.clone(),
            producer_version: model.metadata.producer_version.clone(),
            entries: model.metadata.entries.clone(),
        },
        totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuq_fpga_fmt::{encode, samples, WriteOptions};

    fn summary_of(model: &Model) -> Summary {
        let bytes = encode(model, &WriteOptions::default()).expect("sample encodes");
        let file = NuqFile::parse(&bytes).expect("sample parses");
        summarize("m.nuq", &file, &Model::from_file(&file))
    }

    #[test]
    fn tiny_sample_is_described_exactly() {
        let model = samples::tiny();
        let s = summary_of(&model);
        assert_eq!(s.format_version, "1.0");
        assert_eq!(s.sections.len(), 7);
        assert_eq!(s.sections[0].kind, "GRAPH");
        let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["in", "conv", "gap", "fc"]);
        let conv = &s.layers[1];
        assert_eq!(conv.op, "conv2d");
        assert_eq!(conv.weight_bits, Some(2));
        assert_eq!(conv.act_bits, Some(2));
        let w = conv.window.as_ref().expect("conv has a window");
        assert_eq!((w.kernel, w.stride, w.padding), ([3, 3], [1, 1], [1; 4]));
        assert!(s.layers[2].window.is_none());
        assert_eq!(s.layers[3].act_bits, None);
        assert_eq!(s.codebooks[1].kind, "k_quantile");
        assert_eq!(s.codebooks[1].levels, vec![0, 2, 5, 12]);
        let cb0_users: Vec<&str> = s.codebooks[0]
            .used_by
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(cb0_users, ["conv", "fc"]);
        assert_eq!(s.weights[0].dims, vec![2, 1, 3, 3]);
        assert_eq!(s.weights[0].index_counts.iter().sum::<u64>(), 18);
        let t = &s.thresholds[0];
        assert_eq!(
            (t.channels, t.per_channel, t.min, t.max),
            (2, 3, Some(-4), Some(11))
        );
        assert_eq!((t.rising, t.falling), (1, 1));
        assert_eq!(t.channel_ranges[1].direction, "falling");
        assert_eq!((t.channel_ranges[1].min, t.channel_ranges[1].max), (-2, 9));
        assert_eq!(s.scales[1].multiplier, Some(3));
        assert_eq!(s.scales[0].exponent, Some(-3));
        assert_eq!(
            s.metadata.entries.get("model").map(String::as_str),
            Some("tiny")
        );
        assert_eq!(s.totals.weight_elements, 22);
        assert_eq!(s.totals.weighted_layers, 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e75_715f_636c_6902),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// For any weight indices, the counts per index add up to the tensor and match it.
        #[test]
        fn index_counts_match_random_indices(seed in proptest::collection::vec(0u8..=255, 1152)) {
            let mut model = samples::conv_net();
            for w in &mut model.weights {
                let mask = (1u8 << w.bits) - 1;
                for (i, x) in w.indices.iter_mut().enumerate() {
                    *x = seed[i % seed.len()].rotate_left(i as u32 % 8) & mask;
                }
            }
            let s = summary_of(&model);
            for (w, info) in model.weights.iter().zip(&s.weights) {
                proptest::prop_assert_eq!(info.index_counts.iter().sum::<u64>(), w.indices.len() as u64);
                for (k, &n) in info.index_counts.iter().enumerate() {
                    let expected = w.indices.iter().filter(|&&i| usize::from(i) == k).count();
                    proptest::prop_assert_eq!(n, expected as u64);
                }
            }
        }
    }

    #[test]
    fn index_counts_match_the_indices_of_every_sample() {
        for (name, model) in samples::all() {
            let s = summary_of(&model);
            for (w, info) in model.weights.iter().zip(&s.weights) {
                for (k, &n) in info.index_counts.iter().enumerate() {
                    let expected = w.indices.iter().filter(|&&i| usize::from(i) == k).count();
                    assert_eq!(
                        n, expected as u64,
                        "{name}: weights{} index {k}",
                        info.index
                    );
                }
                let word_bytes = u64::from(w.word_bits / 8);
                assert_eq!(info.bytes, info.words * word_bytes, "{name}");
            }
        }
    }
}
