//! Per-layer forward and backward times of one training step (profiling aid).
//!
//! `cargo run --release -p nuq-nn --example layer_times -- resnet18 128 2` prints, for each
//! top-level layer, milliseconds of forward and backward and the GFLOP/s of its MACs.

use std::time::Instant;

use nuq_nn::{Arch, CrossEntropy, Mode, ModelConfig, Network, Rng, Tensor};

/// Process CPU time (user + system) in seconds, from /proc/self/stat (Linux, 10 ms ticks).
fn process_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let arch: Arch = args.get(1).map_or("resnet18", |s| s.as_str()).parse()?;
    let batch: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let threads: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut net = Network::new(ModelConfig::cifar10(arch), 1)?;
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec([batch, 32, 32, 3], (0..batch * 3072).map(|_| rng.normal()).collect())?;
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
        let mut ce = CrossEntropy::new(0.0)?;
        let n = net.body.len();
        let mut fwd = vec![0.0f64; n];
        let mut bwd = vec![0.0f64; n];
        let reps = 3;
        let mut cpu0 = 0.0;
        let mut wall0 = Instant::now();
        for rep in 0..=reps {
            if rep == 1 {
                cpu0 = process_cpu_s();
                wall0 = Instant::now();
            }
            let layers = net.body.layers_mut();
            for i in 0..n {
                let (before, from) = layers.split_at_mut(i);
                let input = if i == 0 { &x } else { before[i - 1].1.output() };
                let t = Instant::now();
                from[0].1.forward(input, Mode::Train)?;
                if rep > 0 {
                    fwd[i] += t.elapsed().as_secs_f64();
                }
            }
            ce.forward(layers[n - 1].1.output(), &labels)?;
            for i in (0..n).rev() {
                let (before, from) = layers.split_at_mut(i);
                let (cur, after) = from.split_first_mut().expect("i < n");
                let input = if i == 0 { &x } else { before[i - 1].1.output() };
                let grad = if i == n - 1 { ce.grad() } else { after[0].1.input_grad() };
                let t = Instant::now();
                cur.1.backward(input, grad, i > 0)?;
                if rep > 0 {
                    bwd[i] += t.elapsed().as_secs_f64();
                }
            }
        }
        let cpu = (process_cpu_s() - cpu0) / reps as f64;
        let wall = wall0.elapsed().as_secs_f64() / reps as f64;
        let mut shape = [batch, 32, 32, 3];
        let (mut tf, mut tb) = (0.0, 0.0);
        for (i, (name, l)) in net.body.layers().iter().enumerate() {
            let macs = l.macs([1, shape[1], shape[2], shape[3]]) as f64 * batch as f64;
            let (f, b) = (fwd[i] / reps as f64, bwd[i] / reps as f64);
            tf += f;
            tb += b;
            println!(
                "{name:>10} fwd {:7.1} ms ({:5.0} GFLOP/s)  bwd {:7.1} ms ({:5.0} GFLOP/s)",
                f * 1e3,
                2.0 * macs / f / 1e9,
                b * 1e3,
                4.0 * macs / b / 1e9
            );
            shape = l.output_shape(shape)?;
        }
        println!(
            "per step: wall {wall:.2} s, process CPU {cpu:.2} s → {:.1} img/s if the {threads} threads had their cores",
            batch as f64 * threads as f64 / cpu
        );
        println!("total fwd {:.1} ms, bwd {:.1} ms → {:.1} img/s (without the optimiser step)", tf * 1e3, tb * 1e3, batch as f64 / (tf + tb));
        Ok(())
    })
}
