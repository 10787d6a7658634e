//! The integer runner against a naive interpreter of the model's definitions, on every
//! kernel path, at every batch split and thread count, and on both tiling schemes
//! (row tiles for tall outputs, column tiles for short ones).

use nuq_core::{Direction, MacThresholds};
use nuq_kernels::KernelPath;
use nuq_nn::integer::random::{random_images, random_model, RandomModelSpec};
use nuq_nn::integer::{
    ConvNode, ConvOutput, InputSpec, IntegerModel, IntegerRunner, LinearNode, Node, Requant,
    TensorData, TensorKind, WeightTable,
};
use nuq_nn::quant::Family;
use nuq_nn::{Arch, ModelConfig};

/// One tensor as the reference computes it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Levels(Vec<u8>),
    Int32(Vec<i32>),
}

/// Straight from the definitions in `nuq_nn::integer::model` (no kernels, no folding):
/// every node's output for `n` images.
fn reference(model: &IntegerModel, images: &[u8], n: usize) -> Vec<Val> {
    let infos = model.tensor_infos().unwrap();
    let mut vals = vec![Val::Levels(images.to_vec())];
    for (i, node) in model.nodes.iter().enumerate() {
        let o = infos[i + 1];
        let levels = |id: usize| match &vals[id] {
            Val::Levels(v) => v.clone(),
            Val::Int32(_) => panic!("levels expected"),
        };
        let v = match node {
            Node::Conv(c) => {
                let xi = infos[c.input];
                let x = levels(c.input);
                let w = c.weights.decoded();
                let cg = c.c_in / c.groups;
                let k = c.kernel * c.kernel * cg;
                let mut codes = Vec::new();
                let mut accs = Vec::new();
                for b in 0..n {
                    for oy in 0..o.h {
                        for ox in 0..o.w {
                            for co in 0..c.c_out {
                                let mut acc = 0i64;
                                for ky in 0..c.kernel {
                                    for kx in 0..c.kernel {
                                        for gi in 0..cg {
                                            let ci = co / (c.c_out / c.groups) * cg + gi;
                                            let y = (oy * c.stride + ky * c.dilation) as isize
                                                - c.padding as isize;
                                            let xx = (ox * c.stride + kx * c.dilation) as isize
                                                - c.padding as isize;
                                            let a = if y < 0
                                                || xx < 0
                                                || y as usize >= xi.h
                                                || xx as usize >= xi.w
                                            {
                                                if c.input == 0 {
                                                    model.input.zero_point[ci]
                                                } else {
                                                    0
                                                }
                                            } else {
                                                x[((b * xi.h + y as usize) * xi.w + xx as usize)
                                                    * xi.c
                                                    + ci]
                                            };
                                            let wv = w[co * k + (ky * c.kernel + kx) * cg + gi];
                                            acc += i64::from(a) * i64::from(wv);
                                        }
                                    }
                                }
                                let v = acc + i64::from(c.bias[co]);
                                match &c.output {
                                    ConvOutput::Codes(r) => {
                                        codes.push(r.lut()[usize::from(r.code(co, v))])
                                    }
                                    ConvOutput::Accumulator => accs.push(i32::try_from(v).unwrap()),
                                }
                            }
                        }
                    }
                }
                match &c.output {
                    ConvOutput::Codes(_) => Val::Levels(codes),
                    ConvOutput::Accumulator => Val::Int32(accs),
                }
            }
            Node::Add(a) => {
                let Val::Int32(x) = &vals[a.a] else {
                    panic!("accumulator expected")
                };
                let y: Vec<i64> = match &vals[a.b] {
                    Val::Int32(v) => v.iter().map(|&v| i64::from(v)).collect(),
                    Val::Levels(v) => v.iter().map(|&v| i64::from(v)).collect(),
                };
                Val::Levels(
                    x.iter()
                        .zip(&y)
                        .enumerate()
                        .map(|(j, (&x, &y))| {
                            let c = j % o.c;
                            let s = (i64::from(x) << a.a_shift) + a.align[c].apply(y);
                            a.output.lut()[usize::from(a.output.code(c, s))]
                        })
                        .collect(),
                )
            }
            Node::MaxPool(p) => {
                let xi = infos[p.input];
                let x = levels(p.input);
                let mut out = Vec::new();
                for b in 0..n {
                    for oy in 0..o.h {
                        for ox in 0..o.w {
                            for c in 0..o.c {
                                let mut m = 0u8;
                                for ky in 0..p.kernel {
                                    for kx in 0..p.kernel {
                                        // Padded positions never win.
                                        let (y, xx) = (oy * p.stride + ky, ox * p.stride + kx);
                                        let (Some(y), Some(xx)) =
                                            (y.checked_sub(p.padding), xx.checked_sub(p.padding))
                                        else {
                                            continue;
                                        };
                                        if y < xi.h && xx < xi.w {
                                            m = m.max(x[((b * xi.h + y) * xi.w + xx) * xi.c + c]);
                                        }
                                    }
                                }
                                out.push(m);
                            }
                        }
                    }
                }
                Val::Levels(out)
            }
            Node::GlobalAvgPool { input } => {
                let xi = infos[*input];
                let x = levels(*input);
                let hw = (xi.h * xi.w) as u64;
                let mut out = Vec::new();
                for b in 0..n {
                    for c in 0..xi.c {
                        let s: u64 = (0..xi.h * xi.w)
                            .map(|p| u64::from(x[(b * xi.h * xi.w + p) * xi.c + c]))
                            .sum();
                        out.push(((s + hw / 2) / hw) as u8);
                    }
                }
                Val::Levels(out)
            }
            Node::Linear(l) => {
                let xi = infos[l.input];
                let x = levels(l.input);
                let w = l.weights.decoded();
                let mut out = Vec::new();
                for b in 0..n {
                    for j in 0..l.out_features {
                        // Activation feature f = (pixel, channel) is weight column c·h·w + pixel.
                        let s: i64 = (0..l.in_features)
                            .map(|f| {
                                let (p, c) = (f / xi.c, f % xi.c);
                                i64::from(x[b * l.in_features + f])
                                    * i64::from(w[j * l.in_features + c * xi.h * xi.w + p])
                            })
                            .sum();
                        out.push(i32::try_from(s + i64::from(l.bias[j])).unwrap());
                    }
                }
                Val::Int32(out)
            }
        };
        vals.push(v);
    }
    vals.remove(0);
    vals
}

/// Logits and every node's dump from the runner (node by node), after checking that the
/// plain forward pass (residual joins fused into their convolutions) gives the same logits.
fn run(model: &IntegerModel, path: KernelPath, images: &[u8], n: usize) -> Vec<Val> {
    let mut runner = IntegerRunner::new(model, path).unwrap();
    let mut dumps = Vec::new();
    let logits = runner
        .forward_with(images, n, &mut |_, info, data| {
            dumps.push(match data {
                TensorData::Levels(v) => {
                    assert_eq!(info.kind, TensorKind::Levels);
                    Val::Levels(v.to_vec())
                }
                TensorData::Int32(v) => Val::Int32(v.to_vec()),
            })
        })
        .unwrap()
        .to_vec();
    let fused = runner.forward(images, n).unwrap().to_vec();
    assert_eq!(fused, logits, "fused joins change the logits on {path}");
    assert_eq!(dumps.last(), Some(&Val::Int32(logits)));
    dumps
}

fn small(
    arch: Arch,
    width: f32,
    size: usize,
    channels: usize,
    bits: u8,
    seed: u64,
) -> IntegerModel {
    let spec = RandomModelSpec {
        config: ModelConfig {
            arch,
            width,
            in_channels: channels,
            classes: 10,
            input_size: (size, size),
        },
        bits,
        family: Family::KQuantile,
        calibration_images: 8,
    };
    random_model(&spec, seed).unwrap()
}

fn image_len(model: &IntegerModel) -> usize {
    model.tensor_infos().unwrap()[0].len()
}

#[test]
fn runner_matches_the_naive_definition_on_every_path() {
    let models = [
        small(Arch::ResNet18, 0.125, 12, 3, 4, 1),
        small(Arch::ResNet20, 0.5, 8, 1, 3, 2),
        small(Arch::VggSmall, 0.125, 16, 3, 2, 3),
    ];
    for model in &models {
        let n = 3;
        let images = random_images(n, image_len(model), 11);
        let want = reference(model, &images, n);
        for path in KernelPath::available() {
            assert_eq!(run(model, path, &images, n), want, "{path}");
        }
    }
}

#[test]
fn batches_and_thread_counts_do_not_change_a_bit() {
    // Batch 1 runs late layers as column tiles, batch 24 as row tiles.
    let model = small(Arch::ResNet18, 0.25, 16, 3, 4, 5);
    let len = image_len(&model);
    let n = 24;
    let images = random_images(n, len, 12);
    let path = KernelPath::best_available();
    let whole = run(&model, path, &images, n);
    let classes = 10;
    let Some(Val::Int32(logits)) = whole.last() else {
        panic!("logits expected")
    };
    let mut runner = IntegerRunner::new(&model, path).unwrap();
    for (i, img) in images.chunks_exact(len).enumerate() {
        let one = runner.forward(img, 1).unwrap();
        assert_eq!(one, &logits[i * classes..(i + 1) * classes], "image {i}");
    }
    // The runner reused for a smaller and again a larger batch.
    assert_eq!(
        runner.forward(&images[..5 * len], 5).unwrap(),
        &logits[..5 * classes]
    );
    assert_eq!(runner.forward(&images, n).unwrap(), &logits[..]);
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for batch in [1, n] {
            let got = pool.install(|| run(&model, path, &images[..batch * len], batch));
            let want =
                pool.install(|| run(&model, KernelPath::Scalar, &images[..batch * len], batch));
            assert_eq!(got, want, "{threads} threads, batch {batch}");
            if batch == n {
                assert_eq!(got, whole, "{threads} threads");
            }
        }
    }
}

/// Batches split across threads (uneven shares, several cache-sized chunks per share) give
/// the logits of the whole batch run node by node.
#[test]
fn split_batches_match_the_whole_batch() {
    // 16 channels at 32×32: 16 KiB per image in the largest tensor, so a chunk holds
    // `split_chunk_bytes() / 16 KiB` images and a share of 35 images several of them.
    let model = small(Arch::VggSmall, 0.125, 32, 3, 4, 9);
    let len = image_len(&model);
    let chunk = nuq_nn::integer::split_chunk_bytes() / (32 * 32 * 16);
    let n = 2 * chunk + 3;
    assert!(n >= 3 * nuq_nn::integer::SPLIT_MIN_IMAGES);
    let images = random_images(n, len, 21);
    let path = KernelPath::best_available();
    let mut runner = IntegerRunner::new(&model, path).unwrap();
    let whole = runner
        .forward_with(&images, n, &mut |_, _, _| {})
        .unwrap()
        .to_vec();
    for threads in [2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut runner = IntegerRunner::new(&model, path).unwrap();
        for batch in [n, threads * nuq_nn::integer::SPLIT_MIN_IMAGES, n - 1] {
            let got = pool.install(|| {
                runner
                    .forward(&images[..batch * len], batch)
                    .unwrap()
                    .to_vec()
            });
            assert_eq!(got, whole[..batch * 10], "{threads} threads, batch {batch}");
        }
    }
}

/// An error in one share of a split batch is the batch's error.
#[test]
fn an_error_in_a_split_share_is_reported() {
    let model = overflow_model();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut runner = IntegerRunner::new(&model, KernelPath::best_available()).unwrap();
    let mut images = vec![0u8; 6 * 12];
    assert!(pool.install(|| runner.forward(&images, 12)).is_ok());
    // The 11th image (in the second share) is bright.
    images[60..66].fill(200);
    let e = pool
        .install(|| runner.forward(&images, 12))
        .unwrap_err()
        .to_string();
    assert!(e.contains("overflows int32"), "{e}");
}

/// A 1×2×3 model whose channel-1 bias leaves `i32` for bright images.
fn overflow_model() -> IntegerModel {
    let conv = ConvNode {
        input: 0,
        c_in: 3,
        c_out: 3,
        kernel: 1,
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 1,
        weights: WeightTable::new(4, &(1..=16).collect::<Vec<_>>(), vec![15; 9]).unwrap(),
        bias: vec![0, i32::MAX - 10, 0],
        weight_scale: nuq_core::Scale::ONE,
        output: ConvOutput::Accumulator,
    };
    let add = nuq_nn::integer::AddNode {
        a: 1,
        a_shift: 0,
        b: 0,
        align: vec![nuq_core::FixedPointMultiplier::new(1, 0).unwrap(); 3],
        output: Requant {
            thresholds: MacThresholds::new(1, vec![0; 3], vec![Direction::Rising; 3]).unwrap(),
            codebook: nuq_core::Codebook::table(nuq_core::Grid::U8, 1, &[0, 1]).unwrap(),
            scale: nuq_core::Scale::ONE,
        },
    };
    IntegerModel {
        input: InputSpec {
            channels: 3,
            height: 1,
            width: 2,
            zero_point: vec![0; 3],
        },
        nodes: vec![
            Node::Conv(conv),
            Node::Add(add),
            Node::GlobalAvgPool { input: 2 },
            Node::Linear(LinearNode {
                input: 3,
                in_features: 3,
                out_features: 1,
                weights: WeightTable::new(2, &[-1, 0, 1], vec![0, 1, 2]).unwrap(),
                bias: vec![0],
                weight_scale: nuq_core::Scale::ONE,
            }),
        ],
        logit_scale: nuq_core::Scale::ONE,
    }
}

/// An accumulator plus bias beyond `i32` is a clear error, not wrapped numbers.
#[test]
fn accumulator_overflow_is_an_error() {
    let model = overflow_model();
    for path in KernelPath::available() {
        let mut runner = IntegerRunner::new(&model, path).unwrap();
        // Zero images stay in range; bright ones overflow channel 1.
        assert!(runner.forward(&[0; 6], 1).is_ok());
        let e = runner.forward(&[200; 6], 1).unwrap_err().to_string();
        assert!(e.contains("overflows int32"), "{path}: {e}");
    }
}

/// A small deterministic generator of 31-bit values, seeded by `seed`.
fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    }
}

/// A random divisor of `n`.
fn divisor(rng: &mut impl FnMut() -> u64, n: usize) -> usize {
    let ds: Vec<usize> = (1..=n).filter(|d| n.is_multiple_of(*d)).collect();
    ds[rng() as usize % ds.len()]
}

/// Random weights of `bits` bits (strictly increasing levels of the signed 8-bit grid, so
/// that the file stores them as they are) for `len` positions.
fn weight_table(rng: &mut impl FnMut() -> u64, bits: u8, len: usize) -> WeightTable {
    let mut levels: Vec<i32> = Vec::new();
    while levels.len() < 1 << bits {
        let v = (rng() % 255) as i32 - 127;
        if !levels.contains(&v) {
            levels.push(v);
        }
    }
    levels.sort_unstable();
    let indices = (0..len).map(|_| (rng() % (1 << bits)) as u8).collect();
    WeightTable::new(bits, &levels, indices).unwrap()
}

/// Requantization to `bits`-bit codes of `c` channels with thresholds within `±span`.
fn requant(rng: &mut impl FnMut() -> u64, bits: u8, c: usize, span: i64) -> Requant {
    let mut values = Vec::new();
    for _ in 0..c {
        let mut row: Vec<i32> = (0..(1 << bits) - 1)
            .map(|_| (rng() as i64 % (2 * span + 1) - span) as i32)
            .collect();
        row.sort_unstable();
        values.extend(row);
    }
    let dirs = (0..c)
        .map(|_| match rng() % 3 {
            0 => Direction::Falling,
            _ => Direction::Rising,
        })
        .collect();
    let mut levels: Vec<i32> = Vec::new();
    while levels.len() < 1 << bits {
        let v = (rng() % 256) as i32;
        if !levels.contains(&v) {
            levels.push(v);
        }
    }
    levels.sort_unstable();
    Requant {
        thresholds: MacThresholds::new(bits, values, dirs).unwrap(),
        codebook: nuq_core::Codebook::table(nuq_core::Grid::U8, bits, &levels).unwrap(),
        scale: nuq_core::Scale::ONE,
    }
}

/// A random convolution node of `groups` groups on `input` (`c_in` channels).
#[allow(clippy::too_many_arguments)]
fn grouped_conv(
    rng: &mut impl FnMut() -> u64,
    input: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    (kernel, stride, padding): (usize, usize, usize),
    out_bits: u8,
) -> ConvNode {
    let k = kernel * kernel * c_in / groups;
    let bits = [1u8, 2, 3, 4, 6][rng() as usize % 5];
    let span = 3000 * k as i64;
    ConvNode {
        input,
        c_in,
        c_out,
        kernel,
        stride,
        padding,
        dilation: 1,
        groups,
        weights: weight_table(rng, bits, c_out * k),
        bias: (0..c_out).map(|_| (rng() % 4001) as i32 - 2000).collect(),
        weight_scale: nuq_core::Scale::ONE,
        output: match out_bits {
            0 => ConvOutput::Accumulator,
            b => ConvOutput::Codes(requant(rng, b, c_out, span)),
        },
    }
}

/// A random model of grouped and depthwise convolutions: a grouped convolution of the input,
/// a depthwise one (channel multiplier up to 3, stride up to 2), a grouped convolution fused
/// into a residual join with the depthwise output, global pooling and a classifier; each
/// convolution dilated by 1 or 2 (3×3 kernels padded by their dilation, so the join's
/// operands keep one size).
fn random_grouped_model(seed: u64) -> IntegerModel {
    let mut rng = lcg(seed);
    let c0 = 1 + rng() as usize % 6;
    let (h, w) = (3 + rng() as usize % 6, 3 + rng() as usize % 6);
    let zero = rng().is_multiple_of(2);
    let zero_point = (0..c0)
        .map(|_| if zero { 0 } else { rng() as u8 })
        .collect();
    let g1 = divisor(&mut rng, c0);
    let c1 = g1 * (1 + rng() as usize % 3);
    let window = |rng: &mut dyn FnMut() -> u64| match rng() % 3 {
        0 => (1, 1 + rng() as usize % 2, 0),
        1 => (3, 1 + rng() as usize % 2, 1),
        _ => (2, 1, 0),
    };
    let w1 = window(&mut rng);
    let b1 = 1 + (rng() % 4) as u8;
    let conv1 = grouped_conv(&mut rng, 0, c0, c1, g1, w1, b1);
    let c2 = c1 * (1 + rng() as usize % 3);
    let w2 = (3, 1 + rng() as usize % 2, 1);
    let b2 = 1 + (rng() % 4) as u8;
    let conv2 = grouped_conv(&mut rng, 1, c1, c2, c1, w2, b2);
    let g3 = divisor(&mut rng, c2);
    let conv3 = grouped_conv(&mut rng, 2, c2, c2, g3, (3, 1, 1), 0);
    let out_bits = 1 + (rng() % 3) as u8;
    let add = nuq_nn::integer::AddNode {
        a: 3,
        a_shift: (rng() % 3) as u8,
        b: 2,
        align: (0..c2)
            .map(|_| {
                nuq_core::FixedPointMultiplier::new((rng() % 4001) as i32 - 2000, (rng() % 8) as u8)
                    .unwrap()
            })
            .collect(),
        output: requant(&mut rng, out_bits, c2, 200_000),
    };
    let mut convs = [conv1, conv2, conv3];
    for c in &mut convs {
        let d = 1 + (rng() % 2) as usize;
        // Every input is at least 3×3 and 3×3 kernels pad by their dilation: any fits.
        if c.kernel > 1 {
            c.dilation = d;
            if c.kernel == 3 {
                c.padding = d;
            }
        }
    }
    let [conv1, conv2, conv3] = convs;
    IntegerModel {
        input: InputSpec {
            channels: c0,
            height: h,
            width: w,
            zero_point,
        },
        nodes: vec![
            Node::Conv(conv1),
            Node::Conv(conv2),
            Node::Conv(conv3),
            Node::Add(add),
            Node::GlobalAvgPool { input: 4 },
            Node::Linear(LinearNode {
                input: 5,
                in_features: c2,
                out_features: 3,
                weights: weight_table(&mut rng, 4, 3 * c2),
                bias: vec![1, -2, 3],
                weight_scale: nuq_core::Scale::ONE,
            }),
        ],
        logit_scale: nuq_core::Scale::ONE,
    }
}

/// The model through the `.nuq` file and back.
fn through_file(model: &IntegerModel) -> (Vec<u8>, IntegerModel) {
    use nuq_fpga_fmt::{encode, CodebookKind, Model, NuqFile, WriteOptions};
    let fm =
        nuq_nn::integer::to_file_model(model, CodebookKind::KQuantile, Default::default()).unwrap();
    let bytes = encode(&fm, &WriteOptions::default()).unwrap();
    let file = NuqFile::parse(&bytes).unwrap();
    let back = nuq_nn::integer::from_file_model(&Model::from_file(&file)).unwrap();
    (bytes, back)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random models of grouped, depthwise and dilated convolutions: the runner (every path,
    /// node by node and with the join fused) equals the plain-loop reference, and the model goes
    /// through the `.nuq` file and back unchanged, written again to the same bytes.
    #[test]
    fn grouped_models_match_the_reference_and_round_trip(seed: u64, n in 1usize..3) {
        let model = random_grouped_model(seed);
        let images = random_images(n, image_len(&model), seed);
        let want = reference(&model, &images, n);
        for path in KernelPath::available() {
            proptest::prop_assert_eq!(run(&model, path, &images, n), want.clone(), "{}", path);
        }
        let (bytes, back) = through_file(&model);
        proptest::prop_assert_eq!(&back, &model);
        proptest::prop_assert_eq!(through_file(&back).0, bytes);
    }
}

/// A grouped convolution whose group count does not divide its channels is a typed model
/// problem, as is a weight row of the ungrouped length.
#[test]
fn bad_group_counts_are_model_problems() {
    let mut model = random_grouped_model(7);
    let Node::Conv(c) = &mut model.nodes[2] else {
        panic!("conv expected")
    };
    let c_in = c.c_in;
    c.groups = c_in + 1;
    let e = model.tensor_infos().unwrap_err();
    assert!(
        matches!(
            e,
            nuq_nn::NnError::InvalidModel {
                problem: nuq_nn::ModelProblem::Groups { .. },
                ..
            }
        ),
        "{e}"
    );
    let Node::Conv(c) = &mut model.nodes[2] else {
        panic!("conv expected")
    };
    c.groups = 0;
    assert!(model.tensor_infos().is_err());
}

/// A zero dilation, and a dilated kernel wider than the padded input, are typed model
/// problems.
#[test]
fn bad_dilations_are_model_problems() {
    let mut model = random_grouped_model(7);
    let Node::Conv(c) = &mut model.nodes[2] else {
        panic!("conv expected")
    };
    c.dilation = 0;
    let e = model.tensor_infos().unwrap_err();
    assert!(
        matches!(
            e,
            nuq_nn::NnError::InvalidModel {
                problem: nuq_nn::ModelProblem::NotPositive("conv dilation"),
                ..
            }
        ),
        "{e}"
    );
    let Node::Conv(c) = &mut model.nodes[2] else {
        panic!("conv expected")
    };
    c.dilation = 100;
    let e = model.tensor_infos().unwrap_err();
    assert!(
        matches!(
            e,
            nuq_nn::NnError::InvalidModel {
                problem: nuq_nn::ModelProblem::Window { .. },
                ..
            }
        ),
        "{e}"
    );
}
