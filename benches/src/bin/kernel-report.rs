//! Short GEMM measurement for `benches/PERF.md` and the `kernels-report` check:
//! `cargo run --release -p nuq-benches --bin kernel-report`.
//!
//! Shapes: the im2col GEMMs of CIFAR ResNet-18's 3×3 convolutions (`m = batch·H·W`,
//! `n = Cout`, `k = 9·Cin`) at batch 32 and 1. Paths: every available integer path plus
//! the packed 4-bit codebook GEMM (`cb4-*`), each next to fp32 `gemm` (crate `gemm`,
//! AVX-512, with the faster of two weight layouts) on the same shape in the same run.
//! Figures are medians of timed calls; fp32 and the AVX2/AVX-VNNI/AVX-512 integer paths are
//! timed in interleaved rounds so that they see the same machine load. Each of them is
//! called twice in a row per round: `gmacs` (and `speedup`) time the second call, the
//! steady state of a kernel called over and over (its operands cached as far as they
//! fit); `first_gmacs` and `first_sgemm_gmacs` time the first, after the other items have
//! evicted its operands — a weight-heavy batch-1 row is then bound by memory bandwidth
//! (`m` multiply-accumulates per weight byte), not by the kernel.
//! Also prints the register-only `vpdpbusd` peak of each available VNNI path (`avxvnni`:
//! `ymm`, `avx512vnni`: `zmm`), timed as one more item of each shape's interleaved rounds
//! (as many multiply-accumulates as the shape's GEMM, in 8 chunks per thread scheduled by
//! rayon like the GEMM tiles); the line is the median over shapes. Rounds in which the
//! peak loop ran more than 10 % slower than its fastest call (its core was shared: on a
//! shared host a vCPU loses its core for a while) are left out of every item's median; a
//! `rounds m=… threads=… kept=… of=…` line per shape and thread count says how many
//! rounds the figures rest on. Set `KERNEL_REPORT_QUICK=1` for a shorter, noisier run,
//! `NUQ_TUNE` for another tuning of the kernels ([`nuq_kernels::Tuning`]).

use nuq_benches::peak::{
    avx_vnni_chains, vnni_chains, AVX_VNNI_MACS_PER_ITERATION, MACS_PER_ITERATION,
};
use nuq_kernels::{CodebookWeights, KernelPath, PackedWeights, Weights};
use rayon::prelude::*;
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

/// What one timed call runs.
#[derive(Clone, Copy)]
enum Item {
    /// Integer GEMM on a path.
    Int8(KernelPath),
    /// Packed 4-bit codebook GEMM on a path.
    Cb4(KernelPath),
    /// fp32 `gemm` with the weights as `w[n][k]` (`false`) or `w[k][n]` (`true`).
    Sgemm(bool),
    /// The register-only `vpdpbusd` loop of a VNNI path (`zmm` for AVX-512, `ymm` for
    /// AVX-VNNI), split into chunks over the pool.
    Peak(KernelPath),
}

/// A round whose peak-loop call took longer than this times the fastest one ran while
/// the machine was busy with something else (on a shared host, a vCPU that loses its core
/// for a while runs the register-only loop at half speed).
const DISTURBED_PEAK: f64 = 1.10;

/// Rounds an item's median is taken over, at least, when rounds are filtered.
const MIN_CLEAN_ROUNDS: usize = 5;

/// Medians of [`interleaved_medians`] and how many rounds they rest on.
struct Timed {
    /// Median seconds per call of each item (its second call of a round).
    medians: Vec<f64>,
    /// Median seconds of each item's first call of a round (the same as `medians` for the
    /// register-only peak loop, which is called once).
    first_medians: Vec<f64>,
    /// Undisturbed rounds the medians are taken over.
    kept: usize,
    /// All rounds timed.
    rounds: usize,
}

/// Median seconds per call of each of `items`, timed in interleaved rounds until `total` is
/// spent (at least 5 and at most 200 rounds), so that all items see the same machine load.
/// In a round each GEMM item is called twice in a row: the first call finds what the other
/// items left in the caches (its operands mostly evicted), the second finds its own operands
/// wherever they fit — the steady state of a kernel called over and over, which `medians`
/// report; `first_medians` report the first calls.
///
/// Where `items[peak]` is the register-only peak loop, the medians are taken over the
/// undisturbed rounds only: those whose peak call took at most [`DISTURBED_PEAK`] times the
/// fastest peak call. The loop's speed depends on nothing but the core it gets, so a
/// slower call means that round shared its core; timing goes on (up to three times
/// `total`) until [`MIN_CLEAN_ROUNDS`] are clean, else all rounds count.
fn interleaved_medians(
    total: Duration,
    items: &[Item],
    peak: Option<usize>,
    mut run: impl FnMut(Item),
) -> Timed {
    for &it in items {
        run(it);
    }
    let mut times = vec![Vec::new(); items.len()];
    let mut first = vec![Vec::new(); items.len()];
    let clean_rounds = |times: &[Vec<f64>]| -> Vec<usize> {
        let Some(p) = peak else {
            return (0..times[0].len()).collect();
        };
        let fastest = times[p].iter().copied().fold(f64::INFINITY, f64::min);
        (0..times[p].len())
            .filter(|&r| times[p][r] <= DISTURBED_PEAK * fastest)
            .collect()
    };
    let start = Instant::now();
    loop {
        for (i, &it) in items.iter().enumerate() {
            let t0 = Instant::now();
            run(it);
            let once = t0.elapsed().as_secs_f64();
            first[i].push(once);
            if matches!(it, Item::Peak(_)) {
                times[i].push(once);
            } else {
                let t1 = Instant::now();
                run(it);
                times[i].push(t1.elapsed().as_secs_f64());
            }
        }
        let rounds = times[0].len();
        let spent = start.elapsed();
        if rounds >= 200 || spent >= 3 * total {
            break;
        }
        if rounds >= 5 && spent >= total && clean_rounds(&times).len() >= MIN_CLEAN_ROUNDS {
            break;
        }
    }
    let rounds = times[0].len();
    let mut kept = clean_rounds(&times);
    if kept.len() < MIN_CLEAN_ROUNDS {
        kept = (0..rounds).collect();
    }
    let median_of = |all: &[Vec<f64>]| -> Vec<f64> {
        all.iter()
            .map(|t| {
                let mut t: Vec<f64> = kept.iter().map(|&r| t[r]).collect();
                t.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
                t[t.len() / 2]
            })
            .collect()
    };
    Timed {
        medians: median_of(&times),
        first_medians: median_of(&first),
        kept: kept.len(),
        rounds,
    }
}

fn main() {
    if let Err(e) = nuq_benches::cpu::install_tuning_from_env() {
        eprintln!("kernel-report: NUQ_TUNE: {e}");
        std::process::exit(2);
    }
    let quick = std::env::var_os("KERNEL_REPORT_QUICK").is_some();
    let budget = Duration::from_millis(if quick { 60 } else { 200 });
    // Time spent on the interleaved rounds of one shape and thread count.
    let round_time = Duration::from_millis(if quick { 300 } else { 1500 });
    let pools = [(1, pool(1)), (2, pool(2))];
    let best =
        KernelPath::detect().map_or_else(|e| format!("none ({e})"), |p| p.name().to_string());
    println!("{}", nuq_benches::cpu::header(&best, "1,2"));
    // The peak loop is timed as one more item of every interleaved round below, doing as
    // many multiply-accumulates as the shape's GEMM, so that it sees the same machine load
    // and the same call length as the GEMM rows.
    // One `zmm` peak: `avx512vnni` where VBMI is there too, else `avx512vnni-novbmi` (the
    // same loop; the name says which GEMM rows it goes with).
    let zmm_peak = if KernelPath::Avx512Vnni.is_available() {
        KernelPath::Avx512Vnni
    } else {
        KernelPath::Avx512VnniNoVbmi
    };
    let peak_paths: Vec<KernelPath> = [KernelPath::AvxVnni, zmm_peak]
        .into_iter()
        .filter(|p| p.is_available())
        .collect();
    // Per peak path, per thread count (1, 2): one median per shape.
    let mut peaks: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; peak_paths.len()];
    for s in shapes() {
        let mut r = lcg(11);
        let a: Vec<u8> = (0..s.m * s.k).map(|_| r()).collect();
        let w: Vec<i8> = (0..s.n * s.k).map(|_| r() as i8).collect();
        let pw = Weights::Int8(PackedWeights::from_rows(&w, s.n, s.k).expect("weights"));
        let idx: Vec<u8> = (0..s.n * s.k).map(|_| r() & 15).collect();
        let book: Vec<i8> = (0..16).map(|i| (i * 17 - 128) as i8).collect();
        let cw =
            Weights::Codebook(CodebookWeights::pack(&idx, s.n, s.k, 4, &book).expect("codebook"));
        // A 64-byte aligned output lets the AVX-512 kernel stream large outputs to memory.
        let mut c_buf = vec![0i32; s.m * s.n + 16];
        let off = c_buf.as_ptr().align_offset(64);
        let c = &mut c_buf[off..off + s.m * s.n];
        let macs = (s.m * s.n * s.k) as f64;
        let af: Vec<f32> = a.iter().map(|&v| f32::from(v) / 255.0).collect();
        let wf: Vec<f32> = w.iter().map(|&v| f32::from(v) / 128.0).collect();
        let mut cf = vec![0f32; s.m * s.n];
        for (threads, pool) in &pools {
            let par = if *threads > 1 {
                gemm::Parallelism::Rayon(*threads)
            } else {
                gemm::Parallelism::None
            };
            let peak_chunks = 8 * *threads as u64;
            let per_iteration = |path: KernelPath| {
                if path == KernelPath::AvxVnni {
                    AVX_VNNI_MACS_PER_ITERATION
                } else {
                    MACS_PER_ITERATION
                }
            };
            let peak_chunk_iters = |path: KernelPath| {
                ((macs / per_iteration(path) as f64) / peak_chunks as f64)
                    .ceil()
                    .max(1.0) as u64
            };
            let mut run = |item: Item| match item {
                Item::Int8(path) => {
                    nuq_kernels::gemm(path, &a, s.k, s.m, &pw, &mut *c, s.n).expect("gemm")
                }
                Item::Cb4(path) => {
                    nuq_kernels::gemm(path, &a, s.k, s.m, &cw, &mut *c, s.n).expect("codebook gemm")
                }
                Item::Peak(path) => {
                    // 8 chunks per thread, scheduled by rayon like the GEMM's tiles.
                    let iters = peak_chunk_iters(path);
                    (0..peak_chunks).into_par_iter().for_each(|_| {
                        let v = if path == KernelPath::AvxVnni {
                            avx_vnni_chains(iters)
                        } else {
                            vnni_chains(iters)
                        };
                        std::hint::black_box(v.expect("VNNI available"));
                    });
                }
                Item::Sgemm(kn) => {
                    // (column stride, row stride) of the k×n right operand.
                    let (rhs_cs, rhs_rs) = if kn {
                        (1, s.n as isize)
                    } else {
                        (s.k as isize, 1)
                    };
                    // SAFETY: `af` is m×k row-major (row stride k), `wf` holds the k×n
                    // right operand at these strides (both layouts address exactly n·k
                    // elements), `cf` is m×n row-major; the buffers do not alias.
                    unsafe {
                        gemm::gemm(
                            s.m,
                            s.n,
                            s.k,
                            cf.as_mut_ptr(),
                            1,
                            s.n as isize,
                            false,
                            af.as_ptr(),
                            1,
                            s.k as isize,
                            wf.as_ptr(),
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
                }
            };
            // fp32 in its faster weight layout (probed with a few calls each), the peak loop
            // and the fast integer paths, interleaved.
            let (t_kn, t_nk) = pool.install(|| {
                (
                    median_secs(Duration::ZERO, || run(Item::Sgemm(true))),
                    median_secs(Duration::ZERO, || run(Item::Sgemm(false))),
                )
            });
            let kn = t_kn < t_nk;
            let mut items = vec![Item::Sgemm(kn)];
            items.extend(peak_paths.iter().map(|&p| Item::Peak(p)));
            for path in KernelPath::available() {
                match path {
                    KernelPath::Avx2
                    | KernelPath::AvxVnni
                    | KernelPath::Avx512Vnni
                    | KernelPath::Amx => {
                        items.push(Item::Int8(path));
                        items.push(Item::Cb4(path));
                    }
                    // Its int8 kernel is the VBMI path's own: only its 4-bit decode differs
                    // where both run.
                    KernelPath::Avx512VnniNoVbmi => {
                        if !KernelPath::Avx512Vnni.is_available() {
                            items.push(Item::Int8(path));
                        }
                        items.push(Item::Cb4(path));
                    }
                    KernelPath::Scalar | KernelPath::Portable => {}
                }
            }
            // Rounds are filtered by the AVX-512 peak loop where there is one.
            let peak_item = items
                .iter()
                .position(|it| matches!(it, Item::Peak(p) if p.is_avx512()))
                .or_else(|| items.iter().position(|it| matches!(it, Item::Peak(_))));
            let timed =
                pool.install(|| interleaved_medians(round_time, &items, peak_item, &mut run));
            println!(
                "rounds m={} n={} k={} threads={threads} kept={} of={}",
                s.m, s.n, s.k, timed.kept, timed.rounds
            );
            let medians = timed.medians;
            let sg = macs / medians[0] / 1e9;
            let sg_first = macs / timed.first_medians[0] / 1e9;
            // `first`: the median first call of the round, for the interleaved items.
            let line = |name: String, secs: f64, first: Option<f64>| {
                let g = macs / secs / 1e9;
                let first = first.map_or(String::new(), |f| {
                    format!(
                        " first_gmacs={:.1} first_sgemm_gmacs={sg_first:.1}",
                        macs / f / 1e9
                    )
                });
                println!(
                    "gemm m={} n={} k={} path={name} threads={threads} gmacs={g:.1} sgemm_gmacs={sg:.1} speedup={:.2}{first}",
                    s.m,
                    s.n,
                    s.k,
                    g / sg
                );
            };
            // The slow reference paths: two threads only, timed on their own, fewer calls.
            if *threads == 2 {
                for (path, b) in [
                    (KernelPath::Scalar, Duration::ZERO),
                    (KernelPath::Portable, budget),
                ] {
                    let secs = pool.install(|| median_secs(b, || run(Item::Int8(path))));
                    line(path.name().to_string(), secs, None);
                }
            }
            for ((item, secs), first) in items.iter().zip(&medians).zip(&timed.first_medians) {
                let name = match *item {
                    Item::Int8(path) => path.name().to_string(),
                    Item::Cb4(path) => format!("cb4-{}", path.name()),
                    Item::Sgemm(_) => continue,
                    Item::Peak(path) => {
                        let macs =
                            (peak_chunks * peak_chunk_iters(path) * per_iteration(path)) as f64;
                        let g = macs / secs / 1e9;
                        let at = peak_paths.iter().position(|&p| p == path).expect("peak");
                        peaks[at][*threads - 1].push(g);
                        // Same-conditions peak of this shape; the overall lines come last.
                        println!(
                            "peak m={} n={} k={} path={path} threads={threads} gmacs={g:.1}",
                            s.m, s.n, s.k
                        );
                        continue;
                    }
                };
                line(name, *secs, Some(*first));
            }
        }
    }
    // One interleaved peak median per shape (printed with its shape above); the overall
    // figure is their median.
    for (path, per_threads) in peak_paths.iter().zip(peaks) {
        for (threads, mut samples) in [1, 2].into_iter().zip(per_threads) {
            samples.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
            println!(
                "peak path={path} threads={threads} gmacs={:.1}",
                samples[samples.len() / 2]
            );
        }
    }
}
