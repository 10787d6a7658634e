//! Small reference models, deterministic to the bit: the golden files, the worked example of
//! `FORMAT.md`, the C-loader tests and the fuzz seeds are made from them. Hardware teams can use
//! them as bring-up vectors.

use crate::enums::{CodebookKind, Direction, LayerOp, TileOrder};
use crate::model::{AlignTable, Codebook, Layer, Metadata, Model, WeightTensor, ZeroPointTable};
use crate::reader::{pow2_f32, Scale};
use nuq_core::{FixedPointMultiplier, MacThresholds};

fn mac(bits: u8, values: Vec<i32>, directions: Vec<Direction>) -> MacThresholds {
    MacThresholds::new(bits, values, directions).expect("sample thresholds are valid")
}

fn factors(multipliers: Vec<i32>, shifts: Vec<u8>) -> Vec<FixedPointMultiplier> {
    multipliers
        .into_iter()
        .zip(shifts)
        .map(|(m, s)| FixedPointMultiplier::new(m, s).expect("sample shifts are at most 62"))
        .collect()
}

/// A tiny deterministic generator (SplitMix64) so the samples need no RNG crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn indices(&mut self, n: usize, bits: u8) -> Vec<u8> {
        (0..n)
            .map(|_| (self.next() & ((1 << bits) - 1)) as u8)
            .collect()
    }

    fn ints(&mut self, n: usize, span: i32) -> Vec<i32> {
        (0..n)
            .map(|_| (self.next() % (2 * span as u64 + 1)) as i32 - span)
            .collect()
    }

    /// `channels` rows of `2^bits - 1` ascending thresholds.
    fn thresholds(&mut self, channels: usize, bits: u8) -> Vec<i32> {
        let per = (1usize << bits) - 1;
        let mut out = Vec::with_capacity(channels * per);
        for _ in 0..channels {
            let mut t = (self.next() % 64) as i32 - 32;
            for _ in 0..per {
                out.push(t);
                t += 1 + (self.next() % 40) as i32;
            }
        }
        out
    }
}

fn pow2_scale(e: i32) -> Scale {
    Scale {
        value: pow2_f32(e).unwrap_or(1.0),
        exponent: Some(e),
        multiplier_shift: None,
    }
}

fn metadata(name: &str, accuracy: Option<&str>) -> Metadata {
    let mut m = Metadata {
        producer: "nuq-fpga-fmt samples".into(),
        producer_version: "1".into(),
        ..Default::default()
    };
    m.entries.insert("model".into(), name.into());
    if let Some(a) = accuracy {
        m.entries.insert("accuracy".into(), a.into());
    }
    m
}

fn conv(name: &str, input: u32, out: [u32; 3], k: u32, stride: u32, pad: u32) -> Layer {
    Layer::new(name, LayerOp::Conv2d, &[input], out).with_window([k, k], [stride, stride], [pad; 4])
}

/// The worked example of `FORMAT.md` (written with alignment 8 there): a 4-channel input of 2-bit
/// codes and one linear layer to 2 outputs with 2-bit weights, nothing else.
pub fn minimal() -> Model {
    let mut input = Layer::new("x", LayerOp::Input, &[], [4, 1, 1]);
    input.act_bits = 2;
    input.act_codebook = Some(0);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[0], [2, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(0);
    fc.weight_codebook = Some(1);
    fc.weight_scale = Some(0);
    fc.bias = Some(0);
    Model {
        layers: vec![input, fc],
        codebooks: vec![
            Codebook::new(CodebookKind::Uniform, 8, false, vec![0, 1, 2, 3]),
            Codebook::new(CodebookKind::PowerOfTwo, 8, true, vec![-4, -1, 1, 4]),
        ],
        weights: vec![WeightTensor {
            bits: 2,
            word_bits: 32,
            order: TileOrder::Flat,
            dims: vec![2, 4],
            indices: vec![0, 1, 2, 3, 3, 2, 1, 0],
        }],
        biases: vec![vec![100, -100]],
        thresholds: vec![],
        scales: vec![Scale {
            value: 0.015625,
            exponent: Some(-6),
            multiplier_shift: Some((1, 6)),
        }],
        metadata: Metadata {
            producer: "nuq".into(),
            producer_version: "0.1".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The format 1.1 worked example of `FORMAT.md` (written with alignment 8 there): a 2-channel
/// input of 2-bit codes with zero points `[1, 2]` (`input_zp`), a linear layer to 2 accumulators
/// (`act_bits` 0), and an `aligned_add` of that accumulator and the input's levels to 1-bit codes.
pub fn minimal_1_1() -> Model {
    let mut input = Layer::new("x", LayerOp::InputZp, &[], [2, 1, 1]);
    input.act_bits = 2;
    input.act_codebook = Some(0);
    input.zero_point = Some(0);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[0], [2, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(0);
    fc.weight_codebook = Some(1);
    fc.weight_scale = Some(0);
    fc.bias = Some(0);
    let mut join = Layer::new("join", LayerOp::AlignedAdd, &[1, 0], [2, 1, 1]);
    join.act_bits = 1;
    join.thresholds = Some(0);
    join.align = Some(0);
    Model {
        layers: vec![input, fc, join],
        codebooks: vec![
            Codebook::new(CodebookKind::Uniform, 8, false, vec![0, 1, 2, 3]),
            Codebook::new(CodebookKind::PowerOfTwo, 8, true, vec![-4, -1, 1, 4]),
        ],
        weights: vec![WeightTensor {
            bits: 2,
            word_bits: 32,
            order: TileOrder::Flat,
            dims: vec![2, 2],
            indices: vec![0, 3, 2, 1],
        }],
        biases: vec![vec![-3, 5]],
        thresholds: vec![mac(
            1,
            vec![0, 10],
            vec![Direction::Rising, Direction::Falling],
        )],
        scales: vec![pow2_scale(-6)],
        metadata: Metadata {
            producer: "nuq".into(),
            producer_version: "0.1".into(),
            ..Default::default()
        },
        aligns: vec![AlignTable {
            main_shift: 2,
            factors: factors(vec![3, -1], vec![1, 0]),
        }],
        zero_points: vec![ZeroPointTable {
            bits: 2,
            values: vec![1, 2],
        }],
    }
}

/// A tiny conv net: input 1×4×4 (2-bit codes) → conv 3×3 to 2 channels
/// (2-bit weights, thresholds to 2-bit codes) → global average pool → linear to 2 logits.
pub fn tiny() -> Model {
    let mut g = Gen(1);
    let mut input = Layer::new("in", LayerOp::Input, &[], [1, 4, 4]);
    input.act_bits = 2;
    input.act_codebook = Some(1);
    input.act_scale = Some(1);
    let mut c = conv("conv", 0, [2, 4, 4], 3, 1, 1);
    c.weight_bits = 2;
    c.weights = Some(0);
    c.weight_codebook = Some(0);
    c.weight_scale = Some(0);
    c.bias = Some(0);
    c.act_bits = 2;
    c.thresholds = Some(0);
    c.act_codebook = Some(1);
    c.act_scale = Some(1);
    let gap = Layer::new("gap", LayerOp::GlobalAvgPool, &[1], [2, 1, 1]);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[2], [2, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(1);
    fc.weight_codebook = Some(0);
    fc.weight_scale = Some(0);
    Model {
        layers: vec![input, c, gap, fc],
        codebooks: vec![
            Codebook::new(CodebookKind::Uniform, 4, true, vec![-3, -1, 1, 3]),
            Codebook::new(CodebookKind::KQuantile, 4, false, vec![0, 2, 5, 12]),
        ],
        weights: vec![
            WeightTensor {
                bits: 2,
                word_bits: 32,
                order: TileOrder::Flat,
                dims: vec![2, 1, 3, 3],
                indices: g.indices(18, 2),
            },
            WeightTensor {
                bits: 2,
                word_bits: 32,
                order: TileOrder::Flat,
                dims: vec![2, 2],
                indices: g.indices(4, 2),
            },
        ],
        biases: vec![vec![5, -7]],
        thresholds: vec![mac(
            2,
            vec![-4, 3, 11, -2, 6, 9],
            vec![Direction::Rising, Direction::Falling],
        )],
        scales: vec![
            pow2_scale(-3),
            Scale {
                value: 0.046875,
                exponent: None,
                multiplier_shift: Some((3, 6)),
            },
        ],
        metadata: metadata("tiny", None),
        ..Default::default()
    }
}

/// A two-conv-layer net on 1×12×12 input: conv 3×3 → 8 (3-bit, row-per-output 64-bit words),
/// max pool 2, conv 3×3 stride 2 → 16 (4-bit, 128-bit words), global average pool, linear → 10.
pub fn conv_net() -> Model {
    let mut g = Gen(2);
    let mut input = Layer::new("input", LayerOp::Input, &[], [1, 12, 12]);
    input.act_bits = 8;
    input.act_scale = Some(2);
    let mut c1 = conv("conv1", 0, [8, 12, 12], 3, 1, 1);
    c1.weight_bits = 3;
    c1.weights = Some(0);
    c1.weight_codebook = Some(0);
    c1.weight_scale = Some(0);
    c1.bias = Some(0);
    c1.act_bits = 3;
    c1.thresholds = Some(0);
    c1.act_codebook = Some(2);
    c1.act_scale = Some(2);
    let mut pool = Layer::new("pool1", LayerOp::MaxPool2d, &[1], [8, 6, 6]).with_window(
        [2, 2],
        [2, 2],
        [0; 4],
    );
    pool.act_bits = 3;
    pool.act_codebook = Some(2);
    let mut c2 = conv("conv2", 2, [16, 3, 3], 3, 2, 1);
    c2.weight_bits = 4;
    c2.weights = Some(1);
    c2.weight_codebook = Some(1);
    c2.weight_scale = Some(1);
    c2.bias = Some(1);
    c2.act_bits = 3;
    c2.thresholds = Some(1);
    c2.act_codebook = Some(2);
    c2.act_scale = Some(2);
    let gap = Layer::new("gap", LayerOp::GlobalAvgPool, &[3], [16, 1, 1]);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[4], [10, 1, 1]);
    fc.weight_bits = 4;
    fc.weights = Some(2);
    fc.weight_codebook = Some(1);
    fc.weight_scale = Some(1);
    fc.bias = Some(2);
    let apot4 = vec![
        -48, -36, -33, -32, -24, -18, -16, -12, -9, -8, -6, -4, -3, -2, -1, 0,
    ];
    Model {
        layers: vec![input, c1, pool, c2, gap, fc],
        codebooks: vec![
            Codebook::new(
                CodebookKind::LloydMax,
                8,
                true,
                vec![-97, -55, -26, -8, 8, 26, 55, 97],
            ),
            Codebook::new(CodebookKind::Apot, 8, true, apot4),
            Codebook::new(
                CodebookKind::Uniform,
                8,
                false,
                vec![0, 1, 2, 3, 4, 5, 6, 7],
            ),
        ],
        weights: vec![
            WeightTensor {
                bits: 3,
                word_bits: 64,
                order: TileOrder::RowPerOutput,
                dims: vec![8, 1, 3, 3],
                indices: g.indices(72, 3),
            },
            WeightTensor {
                bits: 4,
                word_bits: 128,
                order: TileOrder::Flat,
                dims: vec![16, 8, 3, 3],
                indices: g.indices(1152, 4),
            },
            WeightTensor {
                bits: 4,
                word_bits: 32,
                order: TileOrder::RowPerOutput,
                dims: vec![10, 16],
                indices: g.indices(160, 4),
            },
        ],
        biases: vec![g.ints(8, 300), g.ints(16, 300), g.ints(10, 1000)],
        thresholds: vec![
            mac(3, g.thresholds(8, 3), vec![Direction::Rising; 8]),
            mac(
                3,
                g.thresholds(16, 3),
                (0..16)
                    .map(|c| {
                        if c % 5 == 3 {
                            Direction::Falling
                        } else {
                            Direction::Rising
                        }
                    })
                    .collect(),
            ),
        ],
        scales: vec![
            pow2_scale(-7),
            Scale {
                value: 0.0123,
                exponent: None,
                multiplier_shift: Some((1_651_210, 27)),
            },
            pow2_scale(-4),
        ],
        metadata: metadata("conv_net", Some("0.9012")),
        ..Default::default()
    }
}

/// A tiny residual graph on 2×6×6 input: conv a (4 ch) → conv b (4 ch) → add(a, b) → relu →
/// global average pool → flatten → linear → 3 logits. Weights in 256- and 512-bit words.
pub fn residual() -> Model {
    let mut g = Gen(3);
    let mut input = Layer::new("input", LayerOp::Input, &[], [2, 6, 6]);
    input.act_bits = 4;
    input.act_codebook = Some(1);
    input.act_scale = Some(1);
    let mut a = conv("block.conv_a", 0, [4, 6, 6], 3, 1, 1);
    a.weight_bits = 2;
    a.weights = Some(0);
    a.weight_codebook = Some(0);
    a.weight_scale = Some(0);
    a.act_bits = 4;
    a.thresholds = Some(0);
    a.act_codebook = Some(1);
    a.act_scale = Some(1);
    let mut b = conv("block.conv_b", 1, [4, 6, 6], 3, 1, 1);
    b.weight_bits = 2;
    b.weights = Some(1);
    b.weight_codebook = Some(0);
    b.weight_scale = Some(0);
    b.bias = Some(0);
    b.act_bits = 4;
    b.thresholds = Some(1);
    b.act_codebook = Some(1);
    b.act_scale = Some(1);
    let add = Layer::new("block.add", LayerOp::Add, &[1, 2], [4, 6, 6]);
    let relu = Layer::new("block.relu", LayerOp::Relu, &[3], [4, 6, 6]);
    let gap = Layer::new("gap", LayerOp::GlobalAvgPool, &[4], [4, 1, 1]);
    let flat = Layer::new("flatten", LayerOp::Flatten, &[5], [4, 1, 1]);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[6], [3, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(2);
    fc.weight_codebook = Some(0);
    fc.weight_scale = Some(0);
    fc.bias = Some(1);
    fc.act_scale = Some(2);
    Model {
        layers: vec![input, a, b, add, relu, gap, flat, fc],
        codebooks: vec![
            Codebook::new(CodebookKind::PowerOfTwo, 8, true, vec![-64, -16, 16, 64]),
            Codebook::new(
                CodebookKind::MuLaw,
                16,
                false,
                (0..16).map(|k: i32| k * k * 97).collect(),
            ),
        ],
        weights: vec![
            WeightTensor {
                bits: 2,
                word_bits: 256,
                order: TileOrder::RowPerOutput,
                dims: vec![4, 2, 3, 3],
                indices: g.indices(72, 2),
            },
            WeightTensor {
                bits: 2,
                word_bits: 512,
                order: TileOrder::Flat,
                dims: vec![4, 4, 3, 3],
                indices: g.indices(144, 2),
            },
            WeightTensor {
                bits: 2,
                word_bits: 32,
                order: TileOrder::Flat,
                dims: vec![3, 4],
                indices: g.indices(12, 2),
            },
        ],
        biases: vec![g.ints(4, 100), g.ints(3, 5000)],
        thresholds: vec![
            mac(
                4,
                g.thresholds(4, 4),
                vec![
                    Direction::Rising,
                    Direction::Falling,
                    Direction::Rising,
                    Direction::Rising,
                ],
            ),
            mac(4, g.thresholds(4, 4), vec![Direction::Rising; 4]),
        ],
        scales: vec![
            pow2_scale(-6),
            Scale {
                value: 0.02,
                exponent: None,
                multiplier_shift: Some((1_342_177, 26)),
            },
            pow2_scale(-10),
        ],
        metadata: metadata("residual", Some("0.875")),
        ..Default::default()
    }
}

/// A conv layer with `bits`-bit weights (tensor `w`, weight codebook 1, scale 0) and either
/// thresholds `thr` to 3-bit codes (levels: codebook 0) or, with `thr = None`, an accumulator
/// output (`act_bits` 0) with bias `bias`.
#[allow(clippy::too_many_arguments)]
fn int_conv(
    name: &str,
    input: u32,
    out: [u32; 3],
    k: u32,
    stride: u32,
    w: u32,
    thr: Option<u32>,
    bias: Option<u32>,
) -> Layer {
    let mut l = conv(name, input, out, k, stride, k / 2);
    l.weight_bits = 2;
    l.weights = Some(w);
    l.weight_codebook = Some(1);
    l.weight_scale = Some(0);
    l.bias = bias;
    if thr.is_some() {
        l.act_bits = 3;
        l.thresholds = thr;
        l.act_codebook = Some(0);
        l.act_scale = Some(1);
    }
    l
}

/// A small integer ResNet in format 1.1 on a 2×5×5 input of 4-bit codes with per-channel zero
/// points (`input_zp`): stem conv → block with an identity shortcut (`aligned_add` of the
/// second conv's accumulator and the stem's levels) → down-sampling block with a 1×1
/// projection shortcut (`aligned_add` of two accumulators, one negative factor) → global
/// average pool → linear → 3 logits.
pub fn int_resnet() -> Model {
    let mut g = Gen(4);
    let mut input = Layer::new("input", LayerOp::InputZp, &[], [2, 5, 5]);
    input.act_bits = 4;
    input.zero_point = Some(0);
    input.act_scale = Some(1);
    let stem = int_conv("stem", 0, [4, 5, 5], 3, 1, 0, Some(0), None);
    let c1 = int_conv("block.conv1", 1, [4, 5, 5], 3, 1, 1, Some(1), None);
    let c2 = int_conv("block.conv2", 2, [4, 5, 5], 3, 1, 2, None, Some(0));
    let mut add = Layer::new("block.add", LayerOp::AlignedAdd, &[3, 1], [4, 5, 5]);
    add.act_bits = 3;
    add.thresholds = Some(2);
    add.act_codebook = Some(0);
    add.act_scale = Some(1);
    add.align = Some(0);
    let d1 = int_conv("down.conv1", 4, [6, 3, 3], 3, 2, 3, Some(3), None);
    let d2 = int_conv("down.conv2", 5, [6, 3, 3], 3, 1, 4, None, None);
    let proj = int_conv("down.proj", 4, [6, 3, 3], 1, 2, 5, None, Some(1));
    let mut dadd = Layer::new("down.add", LayerOp::AlignedAdd, &[6, 7], [6, 3, 3]);
    dadd.act_bits = 3;
    dadd.thresholds = Some(4);
    dadd.act_codebook = Some(0);
    dadd.act_scale = Some(1);
    dadd.align = Some(1);
    let gap = Layer::new("gap", LayerOp::GlobalAvgPool, &[8], [6, 1, 1]);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[9], [3, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(6);
    fc.weight_codebook = Some(1);
    fc.weight_scale = Some(0);
    fc.bias = Some(2);
    fc.act_scale = Some(2);
    let tensor = |g: &mut Gen, dims: Vec<u32>| {
        let n = dims.iter().product::<u32>() as usize;
        WeightTensor {
            bits: 2,
            word_bits: 32,
            order: TileOrder::RowPerOutput,
            dims,
            indices: g.indices(n, 2),
        }
    };
    let weights = vec![
        tensor(&mut g, vec![4, 2, 3, 3]),
        tensor(&mut g, vec![4, 4, 3, 3]),
        tensor(&mut g, vec![4, 4, 3, 3]),
        tensor(&mut g, vec![6, 4, 3, 3]),
        tensor(&mut g, vec![6, 6, 3, 3]),
        tensor(&mut g, vec![6, 4, 1, 1]),
        tensor(&mut g, vec![3, 6]),
    ];
    let thresholds = [4usize, 4, 4, 6, 6]
        .iter()
        .map(|&c| {
            mac(
                3,
                g.thresholds(c, 3),
                (0..c)
                    .map(|k| {
                        if k % 3 == 2 {
                            Direction::Falling
                        } else {
                            Direction::Rising
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    Model {
        layers: vec![input, stem, c1, c2, add, d1, d2, proj, dadd, gap, fc],
        codebooks: vec![
            Codebook::new(
                CodebookKind::KQuantile,
                8,
                false,
                vec![0, 3, 7, 12, 20, 33, 54, 90],
            ),
            Codebook::new(CodebookKind::Apot, 8, true, vec![-6, -1, 1, 6]),
        ],
        weights,
        biases: vec![g.ints(4, 200), g.ints(6, 200), g.ints(3, 3000)],
        thresholds,
        scales: vec![
            pow2_scale(-5),
            Scale {
                value: 0.0625,
                exponent: Some(-4),
                multiplier_shift: None,
            },
            pow2_scale(-9),
        ],
        metadata: metadata("int_resnet", Some("0.5")),
        aligns: vec![
            AlignTable {
                main_shift: 4,
                factors: factors(
                    vec![1_234_567, 987_654, 2_000_001, 1_048_576],
                    vec![17, 16, 18, 16],
                ),
            },
            AlignTable {
                main_shift: 0,
                factors: factors(
                    vec![3, -5, 7, 1, 0, -2_147_483_648],
                    vec![1, 2, 0, 62, 9, 40],
                ),
            },
        ],
        zero_points: vec![ZeroPointTable {
            bits: 4,
            values: vec![7, 9],
        }],
    }
}

/// Every sample with its golden-file stem.
pub fn all() -> Vec<(&'static str, Model)> {
    vec![
        ("tiny", tiny()),
        ("conv_net", conv_net()),
        ("residual", residual()),
        ("int_resnet", int_resnet()),
    ]
}
