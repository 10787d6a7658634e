//! Throughput of the reader (full validation), the writer, CRC-32C and memory-image export on a
//! VGG-Small-shaped model (32×32×3 input; 2×conv128, pool, 2×conv256, pool, 2×conv512, pool,
//! global pool, linear 10; 4-bit weights and activations; about 4.58 M weights, a 2.3 MiB file).
//!
//! `cargo bench -p nuq-fpga-fmt --bench format`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nuq_core::MacThresholds;
use nuq_fpga_fmt::model::{Codebook, Layer, Metadata, WeightTensor};
use nuq_fpga_fmt::reader::Scale;
use nuq_fpga_fmt::{
    crc32c, encode, memory, CodebookKind, Direction, LayerOp, Model, NuqFile, TileOrder,
    WriteOptions,
};
use std::hint::black_box;

fn vgg_small() -> Model {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut m = Model {
        codebooks: vec![
            Codebook::new(
                CodebookKind::LloydMax,
                8,
                true,
                (0..16).map(|k| k * 16 - 120).collect(),
            ),
            Codebook::new(
                CodebookKind::KQuantile,
                8,
                false,
                (0..16).map(|k| k * 15).collect(),
            ),
        ],
        scales: vec![Scale {
            value: 1.0 / 256.0,
            exponent: Some(-8),
            multiplier_shift: None,
        }],
        metadata: Metadata {
            producer: "bench".into(),
            producer_version: "1".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut input = Layer::new("input", LayerOp::Input, &[], [3, 32, 32]);
    input.act_bits = 4;
    input.act_codebook = Some(1);
    m.layers.push(input);
    let mut shape = [3u32, 32, 32];
    for (k, step) in [128, 128, 0, 256, 256, 0, 512, 512, 0]
        .into_iter()
        .enumerate()
    {
        let prev = m.layers.len() as u32 - 1;
        if step == 0 {
            shape = [shape[0], shape[1] / 2, shape[2] / 2];
            let mut p = Layer::new(&format!("pool{k}"), LayerOp::MaxPool2d, &[prev], shape)
                .with_window([2, 2], [2, 2], [0; 4]);
            p.act_bits = 4;
            p.act_codebook = Some(1);
            m.layers.push(p);
            continue;
        }
        let n = (step * shape[0] * 9) as usize;
        m.weights.push(WeightTensor {
            bits: 4,
            word_bits: 512,
            order: TileOrder::RowPerOutput,
            dims: vec![step, shape[0], 3, 3],
            indices: (0..n).map(|_| (next() & 15) as u8).collect(),
        });
        let mut values = Vec::with_capacity(step as usize * 15);
        for _ in 0..step {
            values.extend((0..15).map(|t| t * 100 - 700));
        }
        m.thresholds
            .push(MacThresholds::new(4, values, vec![Direction::Rising; step as usize]).unwrap());
        m.biases
            .push((0..step).map(|_| next() as i32 >> 20).collect());
        shape = [step, shape[1], shape[2]];
        let mut l = Layer::new(&format!("conv{k}"), LayerOp::Conv2d, &[prev], shape).with_window(
            [3, 3],
            [1, 1],
            [1; 4],
        );
        l.weight_bits = 4;
        l.weights = Some(m.weights.len() as u32 - 1);
        l.weight_codebook = Some(0);
        l.weight_scale = Some(0);
        l.bias = Some(m.biases.len() as u32 - 1);
        l.act_bits = 4;
        l.thresholds = Some(m.thresholds.len() as u32 - 1);
        l.act_codebook = Some(1);
        m.layers.push(l);
    }
    let prev = m.layers.len() as u32 - 1;
    m.layers.push(Layer::new(
        "gap",
        LayerOp::GlobalAvgPool,
        &[prev],
        [512, 1, 1],
    ));
    m.weights.push(WeightTensor {
        bits: 4,
        word_bits: 512,
        order: TileOrder::Flat,
        dims: vec![10, 512],
        indices: (0..5120).map(|_| (next() & 15) as u8).collect(),
    });
    let mut fc = Layer::new("fc", LayerOp::Linear, &[prev + 1], [10, 1, 1]);
    fc.weight_bits = 4;
    fc.weights = Some(m.weights.len() as u32 - 1);
    fc.weight_codebook = Some(0);
    fc.weight_scale = Some(0);
    m.layers.push(fc);
    m
}

fn bench(c: &mut Criterion) {
    let model = vgg_small();
    let bytes = encode(&model, &WriteOptions::default()).expect("valid model");
    let mut g = c.benchmark_group("format_vgg_small");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_validate", |b| {
        b.iter(|| NuqFile::parse(black_box(&bytes)).map(|f| f.graph().len()))
    });
    g.bench_function("crc32c", |b| b.iter(|| crc32c::crc32c(black_box(&bytes))));
    g.bench_function("encode", |b| {
        b.iter(|| encode(black_box(&model), &WriteOptions::default()).map(|v| v.len()))
    });
    let file = NuqFile::parse(&bytes).expect("valid file");
    g.bench_function("model_from_file", |b| {
        b.iter(|| Model::from_file(black_box(&file)).weights.len())
    });
    g.bench_function("memory_images_readmemh_64bit", |b| {
        b.iter(|| {
            memory::memories(black_box(&file), 64)
                .map(|ms| ms.iter().map(|m| m.to_readmemh().len()).sum::<usize>())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
