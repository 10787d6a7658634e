//! Fuzzes the writer → reader round trip on structured models: a chain of layers (input or
//! input with zero points, conv, linear, pools, relu, add, aligned add, flatten) with codebooks, packed weights in every word width and tile
//! order, biases, threshold tables, scales and metadata, all drawn from the fuzz input, with the
//! occasional deliberately wrong field. Oracles: the writer either refuses the model or produces
//! a file the reader accepts and reads back as the same model; encoding is deterministic.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use nuq_core::{FixedPointMultiplier, MacThresholds};
use nuq_fpga_fmt::model::{AlignTable, Codebook, Layer, Metadata, WeightTensor, ZeroPointTable};
use nuq_fpga_fmt::reader::{pow2_f32, Scale};
use nuq_fpga_fmt::{
    encode, CodebookKind, Direction, LayerOp, Model, NuqFile, TileOrder, WriteOptions,
};

fn pick<T: Copy>(u: &mut Unstructured<'_>, xs: &[T]) -> Result<T> {
    Ok(*u.choose(xs)?)
}

fn weighted(u: &mut Unstructured<'_>, m: &mut Model, l: &mut Layer, dims: Vec<u32>) -> Result<()> {
    let bits = u.int_in_range(1u8..=8)?;
    let n: usize = dims.iter().map(|&d| d as usize).product();
    let indices = (0..n)
        .map(|_| Ok(u.arbitrary::<u8>()? & ((1u16 << bits) - 1) as u8))
        .collect::<Result<Vec<u8>>>()?;
    m.weights.push(WeightTensor {
        bits,
        word_bits: pick(u, &[32, 64, 128, 256, 512])?,
        order: if u.arbitrary()? {
            TileOrder::RowPerOutput
        } else {
            TileOrder::Flat
        },
        dims,
        indices,
    });
    let grid = u.int_in_range(bits + 1..=32)?;
    let lo = -(1i64 << (grid - 1));
    let mut levels: Vec<i32> = (0..1usize << bits)
        .map(|k| (lo + k as i64) as i32)
        .collect();
    if u.ratio(1, 4)? {
        levels.reverse(); // unsorted: must be refused
    }
    m.codebooks.push(Codebook::new(
        CodebookKind::from_raw(u.int_in_range(0..=8)?).unwrap_or(CodebookKind::Custom),
        grid,
        true,
        levels,
    ));
    l.weight_bits = bits;
    l.weights = Some(m.weights.len() as u32 - 1);
    l.weight_codebook = Some(m.codebooks.len() as u32 - 1);
    l.weight_scale = Some(0);
    if u.arbitrary()? {
        let c = l.out_shape[0] as usize;
        m.biases
            .push((0..c).map(|_| u.arbitrary()).collect::<Result<_>>()?);
        l.bias = Some(m.biases.len() as u32 - 1);
    }
    if u.arbitrary()? {
        let abits = u.int_in_range(1u8..=4)?;
        let per = (1usize << abits) - 1;
        let channels = l.out_shape[0] as usize;
        let mut values = Vec::with_capacity(channels * per);
        for _ in 0..channels {
            let mut row: Vec<i32> = (0..per).map(|_| u.arbitrary()).collect::<Result<_>>()?;
            row.sort_unstable();
            values.extend(row);
        }
        let directions = (0..channels)
            .map(|_| {
                Ok(if u.arbitrary()? {
                    Direction::Falling
                } else {
                    Direction::Rising
                })
            })
            .collect::<Result<_>>()?;
        m.thresholds.push(MacThresholds::new(abits, values, directions).unwrap());
        l.act_bits = abits;
        l.thresholds = Some(m.thresholds.len() as u32 - 1);
    }
    Ok(())
}

fn model(u: &mut Unstructured<'_>) -> Result<Model> {
    let mut m = Model::default();
    let e = u.int_in_range(-20i32..=20)?;
    m.scales.push(Scale {
        value: pow2_f32(e).unwrap_or(1.0),
        exponent: Some(e),
        multiplier_shift: None,
    });
    m.scales.push(Scale {
        value: 0.1,
        exponent: None,
        multiplier_shift: Some((u.int_in_range(1..=i32::MAX)?, u.int_in_range(0..=63)?)),
    });
    let mut shape = [
        u.int_in_range(1u32..=4)?,
        u.int_in_range(1u32..=9)?,
        u.int_in_range(1u32..=9)?,
    ];
    let mut input = Layer::new("input", LayerOp::Input, &[], shape);
    input.act_scale = Some(0);
    if u.ratio(1, 3)? {
        // Format 1.1: codes with per-channel zero points (occasionally one out of range).
        let bits = u.int_in_range(1u8..=8)?;
        let values = (0..shape[0])
            .map(|_| Ok(u.arbitrary::<u8>()? & if u.ratio(1, 16)? { 0xFF } else { ((1u16 << bits) - 1) as u8 }))
            .collect::<Result<Vec<u8>>>()?;
        m.zero_points.push(ZeroPointTable { bits, values });
        input.op = LayerOp::InputZp;
        input.act_bits = bits;
        input.zero_point = Some(0);
    }
    m.layers.push(input);
    for k in 0..u.int_in_range(0..=6)? {
        let prev = m.layers.len() as u32 - 1;
        let name = format!("l{k}");
        match u.int_in_range(0..=7)? {
            0 => {
                let (kh, kw) = (u.int_in_range(1u32..=3)?, u.int_in_range(1u32..=3)?);
                let (s, p) = (u.int_in_range(1u32..=2)?, u.int_in_range(0u32..=1)?);
                let oc = u.int_in_range(1u32..=6)?;
                let (h, w) = (
                    (shape[1] + 2 * p).checked_sub(kh),
                    (shape[2] + 2 * p).checked_sub(kw),
                );
                let (Some(h), Some(w)) = (h, w) else { continue };
                let out = [oc, h / s + 1, w / s + 1];
                let mut l = Layer::new(&name, LayerOp::Conv2d, &[prev], out).with_window(
                    [kh, kw],
                    [s, s],
                    [p; 4],
                );
                weighted(u, &mut m, &mut l, vec![oc, shape[0], kh, kw])?;
                shape = out;
                m.layers.push(l);
            }
            1 => {
                let flat = shape[0] * shape[1] * shape[2];
                if shape[1] * shape[2] != 1 {
                    m.layers
                        .push(Layer::new(&name, LayerOp::Flatten, &[prev], [flat, 1, 1]));
                }
                let prev = m.layers.len() as u32 - 1;
                let oc = u.int_in_range(1u32..=8)?;
                let mut l = Layer::new(&format!("{name}fc"), LayerOp::Linear, &[prev], [oc, 1, 1]);
                weighted(u, &mut m, &mut l, vec![oc, flat])?;
                shape = [oc, 1, 1];
                m.layers.push(l);
            }
            2 if shape[1] >= 2 && shape[2] >= 2 => {
                let op = if u.arbitrary()? {
                    LayerOp::MaxPool2d
                } else {
                    LayerOp::AvgPool2d
                };
                shape = [shape[0], shape[1] / 2, shape[2] / 2];
                m.layers
                    .push(Layer::new(&name, op, &[prev], shape).with_window(
                        [2, 2],
                        [2, 2],
                        [0; 4],
                    ));
            }
            3 => m
                .layers
                .push(Layer::new(&name, LayerOp::Relu, &[prev], shape)),
            4 => {
                let other = u.int_in_range(0..=prev)?;
                m.layers
                    .push(Layer::new(&name, LayerOp::Add, &[prev, other], shape));
            }
            5 => {
                shape = [shape[0], 1, 1];
                m.layers
                    .push(Layer::new(&name, LayerOp::GlobalAvgPool, &[prev], shape));
            }
            6 => {
                // Format 1.1 aligned residual join; refused unless `prev` is an accumulator.
                let same: Vec<u32> = (0..=prev)
                    .filter(|&j| m.layers[j as usize].out_shape == shape)
                    .collect();
                let other = pick(u, &same)?;
                let c = shape[0] as usize;
                let abits = u.int_in_range(1u8..=4)?;
                let per = (1usize << abits) - 1;
                let mut values = Vec::with_capacity(c * per);
                for _ in 0..c {
                    let mut row: Vec<i32> = (0..per).map(|_| u.arbitrary()).collect::<Result<_>>()?;
                    row.sort_unstable();
                    values.extend(row);
                }
                m.thresholds.push(MacThresholds::new(abits, values, vec![Direction::Rising; c]).unwrap());
                m.aligns.push(AlignTable {
                    main_shift: u.int_in_range(0..=31)?,
                    // Shifts above 62 are not expressible (`FixedPointMultiplier`).
                    factors: (0..c)
                        .map(|_| {
                            let f = FixedPointMultiplier::new(u.arbitrary()?, u.int_in_range(0..=62)?);
                            Ok(f.expect("a shift of at most 62"))
                        })
                        .collect::<Result<_>>()?,
                });
                let mut l = Layer::new(&name, LayerOp::AlignedAdd, &[prev, other], shape);
                l.act_bits = abits;
                l.thresholds = Some(m.thresholds.len() as u32 - 1);
                l.align = Some(m.aligns.len() as u32 - 1);
                m.layers.push(l);
            }
            _ => {}
        }
    }
    m.metadata = Metadata {
        producer: u.arbitrary()?,
        producer_version: u.arbitrary()?,
        entries: u.arbitrary()?,
    };
    // Occasionally break one field on purpose: the writer must then refuse, never emit.
    if u.ratio(1, 8)? {
        let i = u.choose_index(m.layers.len())?;
        let l = &mut m.layers[i];
        match u.int_in_range(0..=3)? {
            0 => l.out_shape[u.choose_index(3)?] = u.arbitrary()?,
            1 => l.act_scale = Some(u.arbitrary()?),
            2 => l.inputs.push(u.arbitrary()?),
            _ => l.kernel[0] = u.arbitrary()?,
        }
    }
    Ok(m)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(m) = model(&mut u) else { return };
    let alignment = 8u32 << (data.first().copied().unwrap_or(0) % 8);
    let opts = WriteOptions { alignment };
    let Ok(bytes) = encode(&m, &opts) else { return };
    let file = NuqFile::parse(&bytes).expect("the writer only emits files the reader accepts");
    assert_eq!(Model::from_file(&file), m, "round trip changed the model");
    assert_eq!(
        encode(&m, &opts).expect("encodes twice"),
        bytes,
        "encoding is not deterministic"
    );
});
