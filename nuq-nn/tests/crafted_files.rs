//! Valid `.nuq` files nuq's own writer never produces, built by hand: each either runs exactly
//! as FORMAT.md defines it (checked against a direct reading of the format's semantics) or is
//! refused by `from_file_model` before anything runs, with an error naming the layer and the
//! field (FORMAT.md, "Executor notes"). The files are also the fuzz seeds
//! `fuzz/seeds/integer_model_loader/crafted_*.nuq`; `NUQ_BLESS=1` rewrites them.

use std::path::PathBuf;

use nuq_core::MacThresholds;
use nuq_fpga_fmt::model::{Codebook, Layer, WeightTensor};
use nuq_fpga_fmt::reader::Scale;
use nuq_fpga_fmt::{
    encode, CodebookKind, Direction, LayerOp, Model, NuqFile, TileOrder, WriteOptions,
};
use nuq_kernels::KernelPath;
use nuq_nn::integer::{from_file_model, IntegerModel, IntegerRunner, DEFAULT_MEMORY_LIMIT};
use nuq_nn::{NnError, Rng};

const GAP_IN: usize = 4;

fn scale() -> Scale {
    Scale {
        value: 0.5,
        exponent: None,
        multiplier_shift: None,
    }
}

/// An empty model with scale 0 and codebook 0, the identity on 8-bit input bytes.
fn byte_input_model() -> Model {
    let mut m = Model::default();
    m.scales.push(scale());
    m.codebooks.push(Codebook::new(
        CodebookKind::Uniform,
        8,
        false,
        (0..256).collect(),
    ));
    m
}

/// A small model: input `1×3×3` bytes → conv 2×2 (2 channels, 2-bit weights whose codebook
/// repeats an interior level, bias, 2-bit thresholds, an output codebook that repeats an
/// interior level) → global average pool → linear (2-bit weights, repeated level) → 3 logits.
fn tiny() -> Model {
    // 0: identity input codebook; 1: weights with a repeat; 2: activations with a repeat;
    // 3: classifier weights with a repeat.
    let mut m = byte_input_model();
    m.codebooks.push(Codebook::new(
        CodebookKind::Custom,
        8,
        true,
        vec![-2, 1, 1, 3],
    ));
    m.codebooks.push(Codebook::new(
        CodebookKind::Custom,
        8,
        false,
        vec![0, 4, 4, 9],
    ));
    m.codebooks.push(Codebook::new(
        CodebookKind::Custom,
        8,
        true,
        vec![-1, 0, 0, 2],
    ));
    let mut input = Layer::new("input", LayerOp::Input, &[], [1, 3, 3]);
    input.act_bits = 8;
    input.act_codebook = Some(0);
    m.layers.push(input);
    m.weights.push(WeightTensor {
        bits: 2,
        word_bits: 32,
        order: TileOrder::RowPerOutput,
        dims: vec![2, 1, 2, 2],
        indices: vec![0, 1, 2, 3, 3, 2, 2, 1],
    });
    m.biases.push(vec![0, 5]);
    m.thresholds.push(
        MacThresholds::new(
            2,
            vec![-100, 50, 300, 400, 800, 1200],
            vec![Direction::Rising, Direction::Falling],
        )
        .unwrap(),
    );
    let mut conv =
        Layer::new("conv", LayerOp::Conv2d, &[0], [2, 2, 2]).with_window([2, 2], [1, 1], [0; 4]);
    conv.weight_bits = 2;
    conv.weights = Some(0);
    conv.weight_codebook = Some(1);
    conv.weight_scale = Some(0);
    conv.bias = Some(0);
    conv.act_bits = 2;
    conv.thresholds = Some(0);
    conv.act_codebook = Some(2);
    conv.act_scale = Some(0);
    m.layers.push(conv);
    m.layers
        .push(Layer::new("gap", LayerOp::GlobalAvgPool, &[1], [2, 1, 1]));
    m.weights.push(WeightTensor {
        bits: 2,
        word_bits: 32,
        order: TileOrder::RowPerOutput,
        dims: vec![3, 2],
        indices: vec![3, 2, 1, 3, 2, 0],
    });
    m.biases.push(vec![1, 0, -1]);
    let mut fc = Layer::new("fc", LayerOp::Linear, &[2], [3, 1, 1]);
    fc.weight_bits = 2;
    fc.weights = Some(1);
    fc.weight_codebook = Some(3);
    fc.weight_scale = Some(0);
    fc.bias = Some(1);
    fc.act_scale = Some(0);
    m.layers.push(fc);
    m
}

/// The logits of [`tiny`] for one image, computed directly from FORMAT.md: every index
/// decodes through its full codebook, thresholds count as §6.5 says.
fn tiny_reference(m: &Model, img: &[u8]) -> Vec<i32> {
    let wcb = &m.codebooks[1].levels;
    let acb = &m.codebooks[2].levels;
    let fcb = &m.codebooks[3].levels;
    let w = &m.weights[0].indices;
    let th = &m.thresholds[0];
    let mut levels = [[0i32; GAP_IN]; 2];
    for o in 0..2 {
        for y in 0..2 {
            for x in 0..2 {
                let mut acc = m.biases[0][o];
                for ky in 0..2 {
                    for kx in 0..2 {
                        let v = i32::from(img[(y + ky) * 3 + x + kx]);
                        acc += v * wcb[usize::from(w[o * 4 + ky * 2 + kx])];
                    }
                }
                let t = &th.values()[o * 3..o * 3 + 3];
                let code = match th.directions()[o] {
                    Direction::Rising => t.iter().filter(|&&t| acc >= t).count(),
                    Direction::Falling => t.iter().filter(|&&t| acc <= t).count(),
                };
                levels[o][y * 2 + x] = acb[code];
            }
        }
    }
    let pooled: Vec<i32> = levels
        .iter()
        .map(|l| (l.iter().sum::<i32>() + 2) / 4)
        .collect();
    (0..3)
        .map(|k| {
            m.biases[1][k]
                + (0..2)
                    .map(|c| pooled[c] * fcb[usize::from(m.weights[1].indices[k * 2 + c])])
                    .sum::<i32>()
        })
        .collect()
}

/// Encodes `m`, checks the bytes are a valid `.nuq` file, compares them with the committed
/// fuzz seed `crafted_<name>.nuq` (rewritten with `NUQ_BLESS=1`) and maps the parsed file.
fn through_file(name: &str, m: &Model) -> Result<IntegerModel, NnError> {
    let bytes = encode(m, &WriteOptions::default()).expect("a writable model");
    let file = NuqFile::parse(&bytes).expect("a valid .nuq file");
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/integer_model_loader")
        .join(format!("crafted_{name}.nuq"));
    if std::env::var_os("NUQ_BLESS").is_some() {
        std::fs::write(&seed, &bytes).expect("write the seed");
    }
    let committed = std::fs::read(&seed).expect("the committed seed (NUQ_BLESS=1 writes it)");
    assert!(
        committed == bytes,
        "{} differs from the model built here",
        seed.display()
    );
    from_file_model(&Model::from_file(&file))
}

fn unsupported(r: Result<IntegerModel, NnError>) -> (String, &'static str, String) {
    match r {
        Err(NnError::Unsupported {
            layer,
            field,
            value,
        }) => (layer, field, value),
        other => panic!("expected an Unsupported error, got {other:?}"),
    }
}

#[test]
fn repeated_codebook_levels_decode_every_index_to_its_own_level() {
    let m = tiny();
    let model = through_file("repeated_levels", &m).expect("runs");
    let mut rng = Rng::new(5);
    let n = 64;
    let images: Vec<u8> = (0..n * 9).map(|_| rng.below(256) as u8).collect();
    for path in [KernelPath::Scalar, KernelPath::best_available()] {
        let mut runner = IntegerRunner::new(&model, path).unwrap();
        let logits = runner.forward(&images, n).unwrap().to_vec();
        for (i, img) in images.chunks_exact(9).enumerate() {
            assert_eq!(
                logits[i * 3..i * 3 + 3],
                tiny_reference(&m, img)[..],
                "image {i} on {}",
                path.name()
            );
        }
    }
    // The images reach every code of both conv channels, so every codebook entry is used.
    let mut seen = [[false; 4]; 2];
    for img in images.chunks_exact(9) {
        for (o, seen_o) in seen.iter_mut().enumerate() {
            for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let mut acc = m.biases[0][o];
                for ky in 0..2 {
                    for kx in 0..2 {
                        acc += i32::from(img[(y + ky) * 3 + x + kx])
                            * m.codebooks[1].levels
                                [usize::from(m.weights[0].indices[o * 4 + ky * 2 + kx])];
                    }
                }
                let t = &m.thresholds[0].values()[o * 3..o * 3 + 3];
                let code = if o == 0 {
                    t.iter().filter(|&&t| acc >= t).count()
                } else {
                    t.iter().filter(|&&t| acc <= t).count()
                };
                seen_o[code] = true;
            }
        }
    }
    assert!(
        seen.iter().flatten().filter(|&&s| s).count() >= 6,
        "{seen:?}"
    );
}

#[test]
fn an_output_without_an_act_codebook_hands_on_its_codes() {
    let mut m = tiny();
    m.layers[1].act_codebook = None;
    let model = through_file("no_act_codebook", &m).expect("runs");
    // The reference with the identity codebook for the conv's codes.
    let mut r = m.clone();
    r.codebooks[2] = Codebook::new(CodebookKind::Uniform, 8, false, vec![0, 1, 2, 3]);
    let img: Vec<u8> = (0..9).map(|i| (i * 29) as u8).collect();
    let mut runner = IntegerRunner::new(&model, KernelPath::Scalar).unwrap();
    assert_eq!(runner.forward(&img, 1).unwrap(), tiny_reference(&r, &img));
}

#[test]
fn a_non_square_dilation_is_refused_naming_the_layer_and_field() {
    let mut m = tiny();
    // 3×3 input, 2×2 kernel dilated by 2 vertically: a 1×2 output.
    m.layers[1].dilation = [2, 1];
    m.layers[1].out_shape = [2, 1, 2];
    let (layer, field, value) = unsupported(through_file("dilated_conv", &m));
    assert_eq!(layer, "layer 1 (conv)");
    assert_eq!(field, "dilation");
    assert_eq!(value, "[2, 1]");
}

#[test]
fn a_square_dilation_is_read() {
    let mut m = tiny();
    // 3×3 input, 2×2 kernel dilated by 2: a 1×1 output.
    m.layers[1].dilation = [2, 2];
    m.layers[1].out_shape = [2, 1, 1];
    let bytes = encode(&m, &WriteOptions::default()).expect("a writable model");
    let file = NuqFile::parse(&bytes).expect("a valid .nuq file");
    let model = from_file_model(&Model::from_file(&file)).expect("a dilated model");
    let Some(nuq_nn::integer::Node::Conv(c)) = model.nodes.first() else {
        panic!("conv expected")
    };
    assert_eq!(c.dilation, 2);
}

#[test]
fn an_input_codebook_other_than_the_identity_is_refused() {
    let mut m = tiny();
    m.codebooks[0] = Codebook::new(
        CodebookKind::Custom,
        8,
        false,
        (0..256).map(|v| v / 2).collect(),
    );
    let (layer, field, _) = unsupported(through_file("input_codebook", &m));
    assert_eq!((layer.as_str(), field), ("layer 0 (input)", "act_codebook"));
}

#[test]
fn an_input_of_fewer_than_8_bits_is_refused() {
    let mut m = tiny();
    m.codebooks[0] = Codebook::new(CodebookKind::Uniform, 8, false, (0..16).collect());
    m.layers[0].act_bits = 4;
    let (layer, field, value) = unsupported(through_file("input_4_bits", &m));
    assert_eq!(
        (layer.as_str(), field, value.as_str()),
        ("layer 0 (input)", "act_bits", "4")
    );
}

#[test]
fn requantized_logits_are_refused() {
    let mut m = tiny();
    m.thresholds
        .push(MacThresholds::new(1, vec![0, 0, 0], vec![Direction::Rising; 3]).unwrap());
    m.layers[3].act_bits = 1;
    m.layers[3].thresholds = Some(1);
    let (layer, field, _) = unsupported(through_file("requantized_logits", &m));
    assert_eq!((layer.as_str(), field), ("layer 3 (fc)", "act_bits"));
}

/// Input `1 × side × side`, max-pooled to `1×1` by one window, then a 1 → 2 classifier.
fn pooled(side: u32) -> Model {
    let mut m = byte_input_model();
    m.codebooks
        .push(Codebook::new(CodebookKind::Uniform, 8, true, vec![-1, 1]));
    let mut input = Layer::new("input", LayerOp::Input, &[], [1, side, side]);
    input.act_bits = 8;
    input.act_codebook = Some(0);
    m.layers.push(input);
    m.layers.push(
        Layer::new("pool", LayerOp::MaxPool2d, &[0], [1, 1, 1]).with_window(
            [side, side],
            [1, 1],
            [0; 4],
        ),
    );
    m.weights.push(WeightTensor {
        bits: 1,
        word_bits: 32,
        order: TileOrder::RowPerOutput,
        dims: vec![2, 1],
        indices: vec![0, 1],
    });
    let mut fc = Layer::new("fc", LayerOp::Linear, &[1], [2, 1, 1]);
    fc.weight_bits = 1;
    fc.weights = Some(0);
    fc.weight_codebook = Some(1);
    fc.weight_scale = Some(0);
    m.layers.push(fc);
    m
}

#[test]
fn a_tensor_of_2_to_the_48_elements_is_refused_when_loading() {
    let r = through_file("input_2p24_squared", &pooled(1 << 24));
    match r {
        Err(NnError::TooLarge { what, detail }) => {
            assert!(what.contains("input"), "{what}");
            assert!(detail.contains("16777216"), "{detail}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_working_set_above_the_limit_is_refused_before_allocating() {
    // 2^28 input bytes: loads, but needs more than a 64 MiB limit.
    let model = through_file("input_2p14_squared", &pooled(1 << 14)).expect("loads");
    let needed = model.working_set_bytes(1).unwrap();
    assert!(needed >= 1 << 28, "{needed}");
    assert!(needed < DEFAULT_MEMORY_LIMIT);
    match IntegerRunner::with_memory_limit(&model, KernelPath::Scalar, 64 << 20) {
        Err(NnError::MemoryLimit {
            needed: n,
            limit,
            batch,
        }) => assert_eq!((n, limit, batch), (needed, 64 << 20, 1)),
        other => panic!("expected MemoryLimit, got {:?}", other.err()),
    }
    // Under the default limit one image fits, 64 do not: `forward` refuses before growing
    // any buffer.
    let runner = IntegerRunner::new(&model, KernelPath::Scalar).unwrap();
    for n in [1, 3] {
        assert_eq!(
            runner.check_batch(n).unwrap(),
            model.working_set_bytes(n).unwrap()
        );
    }
    assert!(matches!(
        runner.check_batch(64),
        Err(NnError::MemoryLimit { batch: 64, .. })
    ));
}

#[test]
fn a_small_pooled_model_computes_the_max() {
    let model = through_file("pool_4x4", &pooled(4)).expect("runs");
    let mut runner = IntegerRunner::new(&model, KernelPath::Scalar).unwrap();
    let img: Vec<u8> = (0..16).map(|i| (i * 7 % 16) as u8 * 3).collect();
    let max = i32::from(*img.iter().max().unwrap());
    assert_eq!(runner.forward(&img, 1).unwrap(), [-max, max]);
    // An empty batch gives no logits (it used to divide by zero in the tiling).
    assert_eq!(runner.forward(&[], 0).unwrap(), &[] as &[i32]);
}

/// A conv over a `1 × 8 × 1` input whose 3×3 window fits the height but not the width.
fn narrow_conv_model() -> IntegerModel {
    use nuq_nn::integer::{ConvNode, ConvOutput, InputSpec, LinearNode, Node, WeightTable};
    IntegerModel {
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 1,
            zero_point: vec![0],
        },
        nodes: vec![
            Node::Conv(ConvNode {
                input: 0,
                c_in: 1,
                c_out: 1,
                kernel: 3,
                stride: 1,
                padding: 0,
                dilation: 1,
                groups: 1,
                weights: WeightTable::new(1, &[-1, 1], vec![1; 9]).unwrap(),
                bias: vec![0],
                weight_scale: nuq_core::Scale::ONE,
                output: ConvOutput::Accumulator,
            }),
            Node::Linear(LinearNode {
                input: 1,
                in_features: 6,
                out_features: 1,
                weights: WeightTable::new(1, &[-1, 1], vec![1; 6]).unwrap(),
                bias: vec![0],
                weight_scale: nuq_core::Scale::ONE,
            }),
        ],
        logit_scale: nuq_core::Scale::ONE,
    }
}

#[test]
fn a_window_wider_than_its_input_is_an_error_not_a_panic() {
    let err = narrow_conv_model().tensor_infos().unwrap_err().to_string();
    assert!(
        err.contains("node 0") && err.contains("does not fit"),
        "{err}"
    );
    let err = IntegerRunner::new(&narrow_conv_model(), KernelPath::Scalar)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
}
