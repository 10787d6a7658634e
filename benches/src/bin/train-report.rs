//! Training throughput report: forward + backward + SGD step at batch 128 on 2 threads for
//! CIFAR-shaped full-width ResNet-18 and VGG-Small.
//!
//! `cargo run --release -p nuq-benches --bin train-report` prints one line per model:
//! `train model=resnet18 input=32x32x3 batch=128 threads=2 img_per_s=… gflops=…`
//! (GFLOP/s counts 3 × 2 × forward MACs per image: forward and the two backward GEMMs).
//! Each model runs warm-up steps, then timed steps; the median step time gives img/s. To stay
//! under two minutes on a busy machine, timing stops after 3 steps once a model has spent
//! `--budget S` seconds (default 30) in timed steps.
//! On stderr it also prints the process CPU time per step and the img/s that would give with
//! each thread on its own core (useful when other jobs share the machine).
//! Options: `--steps N` timed steps (default 5), `--warmup N` (default 1), `--threads T`,
//! `--batch B`, `--model NAME` (repeatable), `--width W` (default 1), `--input HxWxC`
//! (default 32x32x3; PERF.md's PyTorch table also has ResNet-18 width 0.25 at 28x28x1).

use std::time::Instant;

use nuq_nn::optim::Sgd;
use nuq_nn::train::train_step;
use nuq_nn::{Arch, CrossEntropy, ModelConfig, Network, Rng, Tensor};

struct Args {
    steps: usize,
    warmup: usize,
    threads: usize,
    batch: usize,
    models: Vec<Arch>,
    width: f32,
    input: (usize, usize, usize),
    budget: f64,
}

fn parse_input(v: &str) -> Result<(usize, usize, usize), String> {
    let p: Vec<usize> = v
        .split('x')
        .map(|t| t.parse().map_err(|e| format!("--input {v}: {e}")))
        .collect::<Result<_, _>>()?;
    match p[..] {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok((h, w, c)),
        _ => Err(format!("--input {v}: expected HxWxC")),
    }
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        steps: 5,
        warmup: 1,
        budget: 30.0,
        threads: 2,
        batch: 128,
        models: Vec::new(),
        width: 1.0,
        input: (32, 32, 3),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--steps" => a.steps = val()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--batch" => a.batch = val()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--model" => a
                .models
                .push(val()?.parse().map_err(|e| format!("--model: {e}"))?),
            "--budget" => a.budget = val()?.parse().map_err(|e| format!("--budget: {e}"))?,
            "--width" => a.width = val()?.parse().map_err(|e| format!("--width: {e}"))?,
            "--input" => a.input = parse_input(&val()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.models.is_empty() {
        a.models = vec![Arch::ResNet18, Arch::VggSmall];
    }
    if a.steps == 0 || a.batch == 0 || a.threads == 0 || a.width.is_nan() || a.width <= 0.0 {
        return Err("--steps, --batch, --threads and --width must be positive".into());
    }
    Ok(a)
}

/// Process CPU time (user + system, all threads) in seconds from `/proc/self/stat`, if readable.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the file, in clock ticks of 1/100 s on Linux.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Median img/s, GFLOP/s, and process CPU seconds per timed step.
fn run(arch: Arch, a: &Args) -> Result<(f64, f64, Option<f64>), nuq_nn::NnError> {
    let (h, w, c) = a.input;
    let cfg = ModelConfig {
        arch,
        width: a.width,
        in_channels: c,
        classes: 10,
        input_size: (h, w),
    };
    let mut net = Network::new(cfg, 1)?;
    let mut rng = Rng::new(2);
    let x = Tensor::from_vec(
        [a.batch, h, w, c],
        (0..a.batch * h * w * c).map(|_| rng.normal()).collect(),
    )?;
    let labels: Vec<u32> = (0..a.batch).map(|_| rng.below(10) as u32).collect();
    let mut loss = CrossEntropy::new(0.0)?;
    let mut opt = Sgd::new(0.9, 5e-4);
    for _ in 0..a.warmup {
        train_step(&mut net, &mut loss, &mut opt, &x, &labels, 0.01)?;
    }
    let mut times = Vec::with_capacity(a.steps);
    let cpu0 = process_cpu_s();
    for _ in 0..a.steps {
        if times.len() >= 3 && times.iter().sum::<f64>() > a.budget {
            break;
        }
        let t = Instant::now();
        train_step(&mut net, &mut loss, &mut opt, &x, &labels, 0.01)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|p, q| p.total_cmp(q));
    let cpu_per_step = match (cpu0, process_cpu_s()) {
        (Some(c0), Some(c1)) => Some((c1 - c0) / times.len() as f64),
        _ => None,
    };
    let median = times[times.len() / 2];
    let img_per_s = a.batch as f64 / median;
    let gflops = img_per_s * net.macs_per_image() as f64 * 6.0 / 1e9;
    Ok((img_per_s, gflops, cpu_per_step))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("train-report: {e}");
            std::process::exit(2);
        }
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .expect("thread pool");
    // Training runs in f32 (the `gemm` crate picks its own SIMD path at run time).
    let head = nuq_benches::cpu::header("f32-gemm", &a.threads.to_string());
    println!("{head}");
    for &arch in &a.models {
        match pool.install(|| run(arch, &a)) {
            Ok((ips, gf, cpu)) => {
                let (h, w, c) = a.input;
                let width = if a.width == 1.0 {
                    String::new()
                } else {
                    format!(" width={}", a.width)
                };
                println!(
                    "train model={}{width} input={h}x{w}x{c} batch={} threads={} img_per_s={ips:.1} gflops={gf:.0}",
                    arch.name(),
                    a.batch,
                    a.threads
                );
                // Diagnostic for shared machines (stderr, outside the parsed format): the
                // throughput the process's CPU time per step would give with every thread on
                // its own core.
                if let Some(cpu) = cpu {
                    eprintln!(
                        "  {}: {cpu:.2} CPU-s per step → {:.1} img/s at full use of {} cores",
                        arch.name(),
                        a.batch as f64 * a.threads as f64 / cpu,
                        a.threads
                    );
                }
            }
            Err(e) => {
                eprintln!("train-report: {}: {e}", arch.name());
                std::process::exit(1);
            }
        }
    }
}
