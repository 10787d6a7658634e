//! Short GEMM measurement for `benches/PERF.md` and the `kernels-report` check:
//! `cargo run --release -p nuq-benches --bin kernel-report`.
//!
//! Shapes: the im2col GEMMs of CIFAR ResNet-18's 3×3 convolutions (`m = batch·H·W`,
//! `n = Cout`, `k = 9·Cin`) at batch 32 and 1. Paths: every available integer path plus
//! the packed 4-bit codebook GEMM (`cb4-*`), each next to fp32 `gemm` (crate `gemm`,
//! AVX-512) on the same shape in the same run. Figures are medians of timed repetitions.
//! Also prints the register-only `vpdpbusd` peak (median of samples taken before and after
//! the GEMM rows). Set `KERNEL_REPORT_QUICK=1` for a
//! shorter, noisier run.

use nuq_kernels::peak::vnni_peak_gmacs;
use nuq_kernels::{
    gemm_codebook, gemm_u8i8, CodebookScope, CodebookWeights, KernelPath, PackedWeights,
};
use rayon::ThreadPool;
use std::time::{Duration, Instant};

struct Shape {
    m: usize,
    n: usize,
    k: usize,
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for batch in [32, 1] {
        for (hw, c) in [(32, 64), (16, 128), (8, 256), (4, 512)] {
            v.push(Shape {
                m: batch * hw * hw,
                n: c,
                k: 9 * c,
            });
        }
    }
    v
}

fn lcg(seed: u64) -> impl FnMut() -> u8 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 56) as u8
    }
}

/// Median seconds per call of `f`, timing whole calls until `budget` is spent
/// (at least 3 and at most 200 calls, after one warm-up call).
fn median_secs(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 200) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    times[times.len() / 2]
}

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// Median seconds of fp32 `gemm` on the shape, with the weights in whichever of the two
/// natural layouts (`w[n][k]`, as the integer kernels read them, or `w[k][n]`) the crate
/// runs faster on this shape: the comparison is against its best.
fn sgemm_secs(s: &Shape, threads: usize, pool: &ThreadPool, budget: Duration) -> f64 {
    let mut r = lcg(7);
    let a: Vec<f32> = (0..s.m * s.k).map(|_| f32::from(r()) / 255.0).collect();
    let w: Vec<f32> = (0..s.n * s.k)
        .map(|_| f32::from(r() as i8) / 128.0)
        .collect();
    let mut c = vec![0f32; s.m * s.n];
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // (column stride, row stride) of the k×n right operand for w[n][k] and w[k][n].
    let layouts = [(s.k as isize, 1isize), (1, s.n as isize)];
    layouts
        .into_iter()
        .map(|(rhs_cs, rhs_rs)| {
            pool.install(|| {
                median_secs(budget, || {
                    // SAFETY: `a` is m×k row-major (row stride k), `w` holds the k×n right
                    // operand at the given strides (both layouts address exactly n·k
                    // elements), `c` is m×n row-major; the buffers do not alias.
                    unsafe {
                        gemm::gemm(
                            s.m,
                            s.n,
                            s.k,
                            c.as_mut_ptr(),
                            1,
                            s.n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            s.k as isize,
                            w.as_ptr(),
                            rhs_cs,
                            rhs_rs,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                })
            })
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::var_os("KERNEL_REPORT_QUICK").is_some();
    let budget = Duration::from_millis(if quick { 60 } else { 200 });
    let pools = [(1, pool(1)), (2, pool(2))];
    // The peak is sampled before and after the GEMM runs (each sample itself a median of
    // 100 short runs, like the GEMM figures) and reported as the median sample, so that it
    // sees the same machine load as the rows it is compared with.
    let vnni = KernelPath::Avx512Vnni.is_available();
    let mut peaks: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let sample_peaks = |peaks: &mut [Vec<f64>; 2], runs: usize| {
        for (threads, samples) in [1, 2].into_iter().zip(peaks.iter_mut()) {
            for _ in 0..runs {
                samples.push(
                    vnni_peak_gmacs(threads, 100, Duration::from_millis(1))
                        .expect("VNNI available"),
                );
            }
        }
    };
    if vnni {
        sample_peaks(&mut peaks, 2);
    }
    for s in shapes() {
        let mut r = lcg(11);
        let a: Vec<u8> = (0..s.m * s.k).map(|_| r()).collect();
        let w: Vec<i8> = (0..s.n * s.k).map(|_| r() as i8).collect();
        let pw = PackedWeights::from_rows(&w, s.n, s.k).expect("weights");
        let idx: Vec<u8> = (0..s.n * s.k).map(|_| r() & 15).collect();
        let book: Vec<i8> = (0..16).map(|i| (i * 17 - 128) as i8).collect();
        let cw = CodebookWeights::pack(&idx, s.n, s.k, 4, &book, CodebookScope::PerTensor)
            .expect("codebook");
        // A 64-byte aligned output lets the AVX-512 kernel stream large outputs to memory.
        let mut c_buf = vec![0i32; s.m * s.n + 16];
        let off = c_buf.as_ptr().align_offset(64);
        let c = &mut c_buf[off..off + s.m * s.n];
        let macs = (s.m * s.n * s.k) as f64;
        for (threads, pool) in &pools {
            let sg = macs / sgemm_secs(&s, *threads, pool, budget) / 1e9;
            let line = |name: String, secs: f64| {
                let g = macs / secs / 1e9;
                println!(
                    "gemm m={} n={} k={} path={name} threads={threads} gmacs={g:.1} sgemm_gmacs={sg:.1} speedup={:.2}",
                    s.m,
                    s.n,
                    s.k,
                    g / sg
                );
            };
            for path in KernelPath::available() {
                // The slow reference paths are reported on two threads only, with fewer calls.
                if *threads == 1 && matches!(path, KernelPath::Scalar | KernelPath::Portable) {
                    continue;
                }
                let b = if path == KernelPath::Scalar {
                    Duration::ZERO
                } else {
                    budget
                };
                let secs = pool.install(|| {
                    median_secs(b, || {
                        gemm_u8i8(path, &a, s.k, s.m, &pw, &mut *c, s.n).expect("gemm")
                    })
                });
                line(path.name().to_string(), secs);
                if matches!(path, KernelPath::Avx2 | KernelPath::Avx512Vnni) {
                    let secs = pool.install(|| {
                        median_secs(budget, || {
                            gemm_codebook(path, &a, s.k, s.m, &cw, &mut *c, s.n)
                                .expect("codebook gemm")
                        })
                    });
                    line(format!("cb4-{}", path.name()), secs);
                }
            }
        }
    }
    if vnni {
        sample_peaks(&mut peaks, 1);
        for (threads, mut samples) in [1, 2].into_iter().zip(peaks) {
            samples.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
            println!(
                "peak path=avx512vnni threads={threads} gmacs={:.1}",
                samples[samples.len() / 2]
            );
        }
    }
}
