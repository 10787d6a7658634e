//! Shared pieces of the integer-inference report binary and criterion bench: the random
//! CIFAR-shaped models they time and the timing loop.

use nuq_kernels::KernelPath;
use nuq_nn::integer::random::{random_images, random_model, RandomModelSpec};
use nuq_nn::integer::{IntegerModel, IntegerRunner};
use nuq_nn::{Arch, NnError};
use std::time::{Duration, Instant};

/// Seed of the report's models (fixed, so every run times the same model).
pub const MODEL_SEED: u64 = 2024;

/// A full-width 32×32×3 `arch` with `bits`-bit k-quantile weights and activations (8-bit
/// first convolution and classifier), random weights, built through the real conversion
/// path ([`nuq_nn::integer::random`]).
///
/// # Errors
/// As [`random_model`].
pub fn cifar_model(arch: Arch, bits: u8) -> Result<IntegerModel, NnError> {
    random_model(&RandomModelSpec::cifar(arch, bits), MODEL_SEED)
}

/// Seeded input images for `model` (`n` images).
///
/// # Errors
/// As [`IntegerModel::tensor_infos`].
pub fn model_images(model: &IntegerModel, n: usize) -> Result<Vec<u8>, NnError> {
    let len = model.tensor_infos()?[0].len();
    Ok(random_images(n, len, 7))
}

/// One timed configuration.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Images per second (median forward pass).
    pub img_per_s: f64,
    /// Multiply-accumulates per second, in billions.
    pub gmacs: f64,
    /// Timed forward passes.
    pub runs: usize,
    /// Process CPU time (user + system, all threads) per image over the timed passes, in
    /// milliseconds, where `/proc/self/stat` is readable. On a shared machine this is
    /// steadier than wall time; with several threads it includes the pool's spin-waiting.
    pub cpu_ms_per_img: Option<f64>,
}

/// Process CPU seconds (user + system) from `/proc/self/stat` (Linux reports them in
/// `USER_HZ` = 100 ticks per second).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Times forward passes of `batch` images on the current rayon pool: a runner is built
/// once, warmed up for a fifth of `budget`, then whole passes are timed until `budget` is
/// spent (at least 5 passes); returns the median.
///
/// # Errors
/// Model or kernel errors from the runner.
pub fn bench_model(
    model: &IntegerModel,
    path: KernelPath,
    batch: usize,
    budget: Duration,
) -> Result<Measurement, NnError> {
    let images = model_images(model, batch)?;
    let mut runner = IntegerRunner::new(model, path)?;
    let warm = Instant::now();
    while warm.elapsed() < budget / 5 {
        runner.forward(&images, batch)?;
    }
    let mut times = Vec::new();
    let cpu0 = process_cpu_secs();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        std::hint::black_box(runner.forward(&images, batch)?);
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu_ms_per_img = cpu0
        .zip(process_cpu_secs())
        .map(|(a, b)| (b - a) * 1e3 / (times.len() * batch) as f64);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let img_per_s = batch as f64 / median;
    let macs = model.macs_per_image()? as f64;
    Ok(Measurement {
        img_per_s,
        gmacs: macs * img_per_s / 1e9,
        runs: times.len(),
        cpu_ms_per_img,
    })
}

/// Time spent in one node of the graph, from [`layer_profile`].
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// Node index.
    pub node: usize,
    /// What the node is (`conv 3x3/1 64->64 32x32`, `add`, ...).
    pub what: String,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Best (smallest) seconds per forward pass over the runs.
    pub secs: f64,
    /// Median seconds per forward pass over the runs.
    pub median_secs: f64,
}

/// Per-node wall time of `runs` forward passes of `batch` images (the best of the runs per
/// node), measured between the runner's dump-hook calls, on the current rayon pool.
///
/// # Errors
/// Model or kernel errors from the runner.
pub fn layer_profile(
    model: &IntegerModel,
    path: KernelPath,
    batch: usize,
    runs: usize,
) -> Result<Vec<LayerTime>, NnError> {
    use nuq_nn::integer::Node;
    let images = model_images(model, batch)?;
    let infos = model.tensor_infos()?;
    let mut runner = IntegerRunner::new(model, path)?;
    runner.forward(&images, batch)?;
    let mut times = vec![Vec::new(); model.nodes.len()];
    for _ in 0..runs.max(1) {
        let mut last = Instant::now();
        runner.forward_with(&images, batch, &mut |i, _, _| {
            let now = Instant::now();
            times[i].push((now - last).as_secs_f64());
            last = now;
        })?;
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    Ok(model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let out = infos[i + 1];
            let (what, macs) = match node {
                Node::Conv(c) => (
                    format!(
                        "conv {k}x{k}/{s} {}->{} {}x{}",
                        c.c_in,
                        c.c_out,
                        out.h,
                        out.w,
                        k = c.kernel,
                        s = c.stride
                    ),
                    (out.len() * c.kernel * c.kernel * c.c_in) as u64,
                ),
                Node::Linear(l) => (
                    format!("linear {}->{}", l.in_features, l.out_features),
                    (l.in_features * l.out_features) as u64,
                ),
                Node::Add(_) => (format!("add {}x{}x{}", out.h, out.w, out.c), 0),
                Node::MaxPool(_) => (format!("maxpool {}x{}x{}", out.h, out.w, out.c), 0),
                Node::GlobalAvgPool { .. } => ("global-avg-pool".to_string(), 0),
            };
            LayerTime {
                node: i,
                what,
                macs,
                secs: times[i][0],
                median_secs: times[i][times[i].len() / 2],
            }
        })
        .collect())
}
