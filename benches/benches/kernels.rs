//! GEMM benchmarks on CIFAR ResNet-18's 3×3 conv shapes (im2col `m = batch·H·W`,
//! `n = Cout`, `k = 9·Cin`, batch 32 and 1): int8 GEMM on every available path, packed 4-bit
//! codebook GEMM and fp32 `gemm` on the same shape. Throughput is in MACs. Whole
//! convolutions (im2col + GEMM + threshold epilogue) are timed by the `infer` bench. Also a
//! depthwise 3×3 convolution (MobileNet's 56×56×144 stride 1 and 28×28×192 stride 2, 4-bit
//! weights, `acc + bias`) on every path, batch 1, in MACs. And the direct `f32` convolution
//! of training (`float_conv`: forward, input gradient, weight gradient) on the same
//! 3×3 layers at batch 8, one thread, in multiply-adds (AVX-512 CPUs only).
//!
//! `cargo bench -p nuq-benches --bench kernels` (about a minute with the defaults below);
//! filter with e.g. `-- m=1024`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nuq_kernels::conv::{Conv, ConvOut, ConvScratch, Requantize};
use nuq_kernels::{CodebookWeights, KernelPath, PackedWeights, Weights, Window};
use std::hint::black_box;
use std::time::Duration;

fn shapes() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for batch in [32, 1] {
        for (hw, c) in [(32, 64), (16, 128), (8, 256), (4, 512)] {
            v.push((batch, hw, c));
        }
    }
    v
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

fn gemm_benches(c: &mut Criterion) {
    for (batch, hw, ch) in shapes() {
        let (m, n, k) = (batch * hw * hw, ch, 9 * ch);
        let mut g = c.benchmark_group(format!("gemm m={m} n={n} k={k}"));
        g.throughput(Throughput::Elements((m * n * k) as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(800));
        let a = bytes(m * k, 1);
        let w: Vec<i8> = bytes(n * k, 2).into_iter().map(|b| b as i8).collect();
        let pw = Weights::Int8(PackedWeights::from_rows(&w, n, k).expect("weights"));
        let idx: Vec<u8> = bytes(n * k, 3).into_iter().map(|b| b & 15).collect();
        let book: Vec<i8> = (0..16).map(|i| (i * 17 - 128) as i8).collect();
        let cw = Weights::Codebook(CodebookWeights::pack(&idx, n, k, 4, &book).expect("codebook"));
        // A 64-byte aligned output lets the AVX-512 kernel stream large outputs to memory.
        let mut out_buf = vec![0i32; m * n + 16];
        let off = out_buf.as_ptr().align_offset(64);
        let out = &mut out_buf[off..off + m * n];
        for path in KernelPath::available() {
            // The reference path is far too slow for the batch-32 shapes.
            if path == KernelPath::Scalar && batch > 1 {
                continue;
            }
            g.bench_function(BenchmarkId::new("int8", path.name()), |b| {
                b.iter(|| {
                    nuq_kernels::gemm(path, black_box(&a), k, m, &pw, &mut *out, n).expect("gemm")
                })
            });
            if matches!(path, KernelPath::Avx2 | KernelPath::AvxVnni) || path.is_avx512() {
                g.bench_function(BenchmarkId::new("cb4", path.name()), |b| {
                    b.iter(|| {
                        nuq_kernels::gemm(path, black_box(&a), k, m, &cw, &mut *out, n)
                            .expect("cb4 gemm")
                    })
                });
            }
        }
        let af: Vec<f32> = a.iter().map(|&v| f32::from(v)).collect();
        let wf: Vec<f32> = w.iter().map(|&v| f32::from(v)).collect();
        let mut cf = vec![0f32; m * n];
        let threads = rayon::current_num_threads();
        // fp32 `gemm` with the weights as w[n][k] (as the integer kernels read them) and as
        // w[k][n]; the crate is much faster with the latter at small m.
        for (layout, rhs_cs, rhs_rs) in
            [("w[n][k]", k as isize, 1isize), ("w[k][n]", 1, n as isize)]
        {
            g.bench_function(BenchmarkId::new("sgemm", layout), |b| {
                b.iter(|| {
                    // SAFETY: `af` is m×k row-major, `wf` holds the k×n right operand at the
                    // given strides (both address exactly n·k elements), `cf` is m×n
                    // row-major; the sizes match and the buffers do not alias.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            cf.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            black_box(af.as_ptr()),
                            1,
                            k as isize,
                            wf.as_ptr(),
                            rhs_cs,
                            rhs_rs,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::Rayon(threads),
                        )
                    }
                })
            });
        }
        g.finish();
    }
}

fn depthwise_benches(c: &mut Criterion) {
    for (hw, ch, stride) in [(56, 144, 1), (28, 192, 2)] {
        let shape = Window {
            height: hw,
            width: hw,
            channels: ch,
            kernel: 3,
            stride,
            padding: 1,
            dilation: 1,
        };
        let m = shape.out_height() * shape.out_width();
        let mut g = c.benchmark_group(format!("depthwise 3x3 {hw}x{hw}x{ch} s{stride}"));
        g.throughput(Throughput::Elements((m * ch * 9) as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(800));
        let idx: Vec<u8> = bytes(ch * 9, 4).into_iter().map(|b| b & 15).collect();
        let book: Vec<i8> = (0..16).map(|i| (i * 17 - 128) as i8).collect();
        let w = Weights::pack(&idx, ch, 9, 4, &book).expect("weights");
        let conv = Conv::grouped(
            shape,
            ch,
            &vec![0; ch],
            w,
            &vec![0; ch],
            Requantize::Accumulator,
        )
        .expect("depthwise conv");
        let x = bytes(hw * hw * ch, 5);
        let mut out = vec![0i32; m * ch];
        let mut scratch = ConvScratch::default();
        for path in KernelPath::available() {
            g.bench_function(BenchmarkId::new("depthwise", path.name()), |b| {
                b.iter(|| {
                    conv.run(
                        path,
                        black_box(&x),
                        1,
                        ConvOut::Int32(&mut out),
                        &mut scratch,
                    )
                    .expect("run")
                })
            });
        }
        g.finish();
    }
}

/// The training convolution's three products per 3×3 layer, one thread (a `nuq-nn` layer
/// runs one such call per thread on its share of the images).
fn float_conv_benches(c: &mut Criterion) {
    use nuq_kernels::float_conv::{self, ConvGeometry, Filter, GradFilter};
    let mut group = c.benchmark_group("float_conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (hw, ch) in [(32, 64), (16, 128), (8, 256), (4, 512)] {
        let g = ConvGeometry::square(8, hw, ch, ch, 3, 1, 1);
        if !float_conv::supports(&g) {
            return;
        }
        let x: Vec<f32> = (0..8 * hw * hw * ch)
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let w: Vec<f32> = (0..ch * g.k()).map(|i| (i % 5) as f32 * 0.1).collect();
        let (filter, back) = (
            Filter::forward(&g, &w).unwrap(),
            GradFilter::new(&g, &w).unwrap(),
        );
        let mut y = vec![0.0f32; x.len() / ch * ch];
        let mut dwt = vec![0.0f32; g.k() * ch];
        let macs = (8 * hw * hw * ch * g.k()) as u64;
        group.throughput(Throughput::Elements(macs));
        let id = format!("{hw}x{hw}x{ch}->{ch} b8");
        group.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter(|| float_conv::forward(&g, black_box(&x), &filter, 0, &mut y).unwrap())
        });
        group.bench_function(BenchmarkId::new("input_grad", &id), |b| {
            b.iter(|| float_conv::input_grad(&g, black_box(&x), &back, 0, &mut y).unwrap())
        });
        group.bench_function(BenchmarkId::new("weight_grad", &id), |b| {
            b.iter(|| float_conv::weight_grad(&g, black_box(&x), &x, 0, &mut dwt).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, gemm_benches, depthwise_benches, float_conv_benches);
criterion_main!(benches);
