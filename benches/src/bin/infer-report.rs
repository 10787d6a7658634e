//! Integer-only inference speed for `benches/PERF.md` and the `qat-infer` check:
//! `cargo run --release -p nuq-benches --bin infer-report [-- --threads N]`.
//!
//! Models: CIFAR-shaped (32×32×3), full-width ResNet-18 and VGG-Small with 4-bit k-quantile
//! codebook weights and activations (8-bit first convolution and classifier), built with
//! random weights through the real conversion path ([`nuq_nn::integer::random`]).
//! For each model and batch (1 and 64) the runner is warmed up, then whole forward passes are
//! timed until a time budget is spent; the line reports the median:
//!
//! `infer model=resnet18 input=32x32x3 bits=4 batch=64 threads=2 img_per_s=612.3 gmacs=...`
//!
//! `gmacs` is the multiply-accumulate rate (`macs_per_image · img_per_s`), counting every
//! tap of every window: the taps on a zero border, which the kernels skip, included — so it
//! can exceed the multiplier's peak. The kernel path is
//! [`KernelPath::detect`] (override with `NUQ_KERNEL`), the kernels' tuning
//! [`nuq_kernels::Tuning::detect`] (override with `NUQ_TUNE`, e.g. `NUQ_TUNE=l2=2M`).
//! `--quick` shortens the budgets; `--model NAME` and `--batch N` restrict the run to one
//! model or batch.

use nuq_benches::infer::{bench_model, Measurement};
use nuq_kernels::KernelPath;
use nuq_nn::integer::IntegerRunner;
use nuq_nn::Arch;
use std::time::Duration;

fn main() {
    let mut threads = 2usize;
    let mut quick = false;
    let mut archs = vec![Arch::ResNet18, Arch::VggSmall];
    let mut batches = vec![1usize, 64];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&t| t > 0)
                    .unwrap_or_else(|| fail("--threads needs a positive integer"));
            }
            "--quick" => quick = true,
            "--model" => {
                archs = vec![args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("--model needs resnet18 or vgg-small"))];
            }
            "--batch" => {
                batches = vec![args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&b| b > 0)
                    .unwrap_or_else(|| fail("--batch needs a positive integer"))];
            }
            "-h" | "--help" => {
                println!("usage: infer-report [--threads N] [--quick] [--model NAME] [--batch N]");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    nuq_benches::cpu::install_tuning_from_env().unwrap_or_else(|e| fail(&format!("NUQ_TUNE: {e}")));
    let path = KernelPath::detect().unwrap_or_else(|e| fail(&e.to_string()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let head = nuq_benches::cpu::header(path.name(), &threads.to_string());
    println!("{head}");
    let budget = Duration::from_millis(if quick { 700 } else { 4000 });
    let bits = 4;
    for &arch in &archs {
        let model =
            nuq_benches::infer::cifar_model(arch, bits).unwrap_or_else(|e| fail(&e.to_string()));
        for &batch in &batches {
            let m: Measurement = pool
                .install(|| bench_model(&model, path, batch, budget))
                .unwrap_or_else(|e| fail(&e.to_string()));
            let schedule = pool
                .install(|| IntegerRunner::new(&model, path).map(|r| r.schedule(batch)))
                .unwrap_or_else(|e| fail(&e.to_string()));
            println!(
                "infer model={} input=32x32x3 bits={bits} batch={batch} threads={threads} img_per_s={:.1} gmacs={:.1} path={} schedule={schedule} runs={} cpu_ms_per_img={}",
                arch.name(),
                m.img_per_s,
                m.gmacs,
                path.name(),
                m.runs,
                m.cpu_ms_per_img
                    .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
            );
            if std::env::var_os("NUQ_LAYER_TIMES").is_some() {
                print_layers(&model, path, batch, &pool);
            }
        }
    }
}

/// Per-node times (`NUQ_LAYER_TIMES=1`): best of several passes, measured between the
/// runner's dump-hook calls.
fn print_layers(
    model: &nuq_nn::integer::IntegerModel,
    path: KernelPath,
    batch: usize,
    pool: &rayon::ThreadPool,
) {
    let runs = (2000 / batch).clamp(5, 200);
    let layers = pool
        .install(|| nuq_benches::infer::layer_profile(model, path, batch, runs))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let total: f64 = layers.iter().map(|l| l.secs).sum();
    let total_median: f64 = layers.iter().map(|l| l.median_secs).sum();
    for l in &layers {
        let gmacs = l.macs as f64 * batch as f64 / l.secs / 1e9;
        println!(
            "  layer {:>2} {:<28} best {:>8.1} us {:>5.1}% {:>6.1} GMAC/s, median {:>8.1} us",
            l.node,
            l.what,
            l.secs * 1e6,
            100.0 * l.secs / total,
            gmacs,
            l.median_secs * 1e6
        );
    }
    println!(
        "  layers total: best {:.1} us, median {:.1} us per batch",
        total * 1e6,
        total_median * 1e6
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("infer-report: {msg}");
    std::process::exit(2)
}
