//! Quantize + dequantize throughput of `nuq-core` on 10^7 `f32` values (one thread).
//!
//! `cargo bench -p nuq-benches --bench quantize`
//!
//! Groups (elements per second = values per second):
//! * `quantize_dequantize/4bit`: `QuantizedTensor::quantize` then `dequantize_into`, the
//!   round trip the README quotes (target ≥ 500 M values/s on one core);
//! * `quantize/{2,3,4,8}bit` and `dequantize/{2,3,4,8}bit`: each half alone.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nuq_core::{Calibration, Codebook, Grid, Polarity, QuantizedTensor, Rng};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 10_000_000;

fn data() -> Vec<f32> {
    let mut rng = Rng::new(7);
    (0..N).map(|_| rng.normal() as f32).collect()
}

fn codebook(bits: u8) -> Codebook {
    let grid = if bits == 8 { Grid::signed(12).unwrap() } else { Grid::I8 };
    Codebook::uniform(grid, bits, Polarity::SignedMidrise).unwrap()
}

fn bench(c: &mut Criterion) {
    let xs = data();
    let mut out = vec![0f32; N];

    let mut g = c.benchmark_group("quantize_dequantize");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let cb = Codebook::iq4_nl();
    let scale = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
    g.bench_function("4bit", |b| {
        b.iter(|| {
            let q = QuantizedTensor::quantize(black_box(&xs), &[N], &cb, scale).unwrap();
            q.dequantize_into(&mut out).unwrap();
            black_box(&out);
        })
    });
    g.finish();

    for (name, quantize) in [("quantize", true), ("dequantize", false)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(N as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(3));
        for bits in [2u8, 3, 4, 8] {
            let cb = codebook(bits);
            let scale = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
            let q = QuantizedTensor::quantize(&xs, &[N], &cb, scale).unwrap();
            g.bench_with_input(BenchmarkId::from_parameter(format!("{bits}bit")), &bits, |b, _| {
                if quantize {
                    b.iter(|| black_box(QuantizedTensor::quantize(black_box(&xs), &[N], &cb, scale).unwrap()))
                } else {
                    b.iter(|| {
                        q.dequantize_into(&mut out).unwrap();
                        black_box(&out);
                    })
                }
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
