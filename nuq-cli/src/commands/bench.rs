//! `nuq bench`: integer-only inference speed of a `.nuq` model.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use nuq_kernels::{KernelPath, Tuning};
use nuq_nn::integer::IntegerRunner;
use nuq_nn::Rng;
use serde::Serialize;

use crate::exit::{nn, CmdResult, Failure};
use crate::model_file::read_integer_model;
use crate::model_file::MemoryArgs;
use crate::output;

/// A kernel path by name, or `auto` (the best this CPU has).
#[derive(Debug, Clone, Copy)]
struct KernelChoice(Option<KernelPath>);

/// Parses a kernel path name as `NUQ_KERNEL` does ([`KernelPath`]'s `FromStr`: any case,
/// `avx512` for `avx512vnni`), or `auto`.
fn parse_kernel(s: &str) -> Result<KernelChoice, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(KernelChoice(None));
    }
    s.parse::<KernelPath>()
        .map(|p| KernelChoice(Some(p)))
        .map_err(|_| {
            let names: Vec<&str> = KernelPath::ALL.iter().map(|p| p.name()).collect();
            format!("unknown kernel path {s:?} (auto, {})", names.join(", "))
        })
}

/// Parses kernel tuning entries ([`Tuning`]'s `FromStr`: over this CPU's defaults).
fn parse_tuning(s: &str) -> Result<Tuning, String> {
    s.parse::<Tuning>().map_err(|e| e.to_string())
}

/// Measure integer-only inference images/s of a .nuq model.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the integer model on random image bytes at each --batch size and \
        prints images per second: one warm-up pass, then timed passes until --seconds have \
        passed (at least three), reporting the median pass.",
    after_help = "Examples:\n  \
        nuq bench demo.nuq\n  \
        nuq bench r18.nuq --batch 1,64 --threads 2 --json\n  \
        nuq bench demo.nuq --kernel scalar\n  \
        nuq bench r18.nuq --tune \"cb4_int8_rows=off l2=2M\""
)]
pub struct BenchArgs {
    /// The .nuq integer model.
    model: PathBuf,
    /// Batch sizes (comma list).
    #[arg(long, value_delimiter = ',', default_value = "1,64", value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: Vec<u64>,
    /// Seconds of timed passes per batch size.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: Option<u64>,
    /// Kernel path: auto, scalar, portable, avx2, avxvnni, avx512vnni-novbmi, avx512 or amx
    /// (auto: the fastest this CPU has; on an AMX CPU, AMX where a short probe finds it exact
    /// and faster, which the output then reports).
    #[arg(long, default_value = "auto", value_parser = parse_kernel)]
    kernel: KernelChoice,
    /// Kernel tuning entries over this CPU's defaults, e.g. "l2=2M cb4_int8_rows=off"
    /// (keys: l2, cb4_int8_rows, tiles_per_thread, min_tile_macs); results do not change.
    #[arg(long, value_parser = parse_tuning)]
    tune: Option<Tuning>,
    #[command(flatten)]
    memory: MemoryArgs,
    /// Print the results as one JSON object on stdout (the text lines go to stderr).
    #[arg(long)]
    json: bool,
}

/// One batch size's result.
#[derive(Debug, Serialize)]
struct BenchLine {
    batch: usize,
    img_per_s: f64,
    ms_per_batch: f64,
    passes: usize,
}

/// The `--json` object.
#[derive(Debug, Serialize)]
struct BenchReport {
    model: String,
    threads: usize,
    kernel: &'static str,
    tuning: String,
    /// What the AMX probe found, where `auto` ran it (AMX CPUs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    amx_probe: Option<String>,
    results: Vec<BenchLine>,
}

/// Runs the command.
pub fn run(a: &BenchArgs) -> CmdResult {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err(Failure::new(format!(
            "--seconds must be in (0, 3600], got {}",
            a.seconds
        )));
    }
    if let Some(t) = a.tune {
        t.install()
            .map_err(|e| Failure::new(format!("--tune: {e}")))?;
    }
    let path = a.kernel.0.unwrap_or_else(KernelPath::best_available);
    // `auto` on an AMX CPU chose by the probe: say what it found.
    let amx_probe = match a.kernel.0 {
        None => nuq_kernels::probe::PathProbe::amx().map(|r| match r {
            Ok(p) => p.to_string(),
            Err(e) => format!("failed: {e}"),
        }),
        Some(_) => None,
    };
    let model = read_integer_model(&a.model)?;
    let threads = a.threads.map_or(0, |t| t as usize);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Failure::new(format!("cannot start {threads} threads: {e}")))?;
    let mut runner =
        IntegerRunner::with_memory_limit(&model, path, a.memory.memory_limit).map_err(nn)?;
    // Refuse a batch that does not fit before allocating anything for it.
    for &b in &a.batch {
        runner.check_batch(b as usize).map_err(nn)?;
    }
    let per = model.input.height * model.input.width * model.input.channels;
    let mut rng = Rng::new(1);
    let mut results = Vec::new();
    for &b in &a.batch {
        let b = b as usize;
        let images: Vec<u8> = (0..b * per).map(|_| rng.below(256) as u8).collect();
        let mut times = Vec::new();
        pool.install(|| -> CmdResult {
            runner.forward(&images, b).map_err(nn)?;
            let budget = Duration::from_secs_f64(a.seconds);
            let start = Instant::now();
            while times.len() < 3 || start.elapsed() < budget {
                let t = Instant::now();
                runner.forward(&images, b).map_err(nn)?;
                times.push(t.elapsed().as_secs_f64());
            }
            Ok(())
        })?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        results.push(BenchLine {
            batch: b,
            img_per_s: b as f64 / median,
            ms_per_batch: 1e3 * median,
            passes: times.len(),
        });
    }
    let report = BenchReport {
        model: a.model.display().to_string(),
        threads: pool.current_num_threads(),
        kernel: path.name(),
        tuning: Tuning::current().to_string(),
        amx_probe,
        results,
    };
    let probe = report
        .amx_probe
        .as_ref()
        .map_or(String::new(), |p| format!(" amx_probe=\"{p}\""));
    let mut text = String::new();
    for r in &report.results {
        text.push_str(&format!(
            "bench model={} batch={} threads={} kernel={} img_per_s={:.1} ms_per_batch={:.3} tuning=\"{}\"{probe}\n",
            report.model,
            r.batch,
            report.threads,
            report.kernel,
            r.img_per_s,
            r.ms_per_batch,
            report.tuning
        ));
    }
    output::finish(a.json, &text, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_the_kernels_crates_with_its_aliases() {
        assert!(parse_kernel("auto").expect("auto").0.is_none());
        assert!(parse_kernel("AUTO").expect("auto").0.is_none());
        for p in KernelPath::ALL {
            assert_eq!(parse_kernel(p.name()).expect("name").0, Some(p));
        }
        assert_eq!(
            parse_kernel("avx512").expect("alias").0,
            Some(KernelPath::Avx512Vnni)
        );
        assert_eq!(
            parse_kernel("Scalar").expect("any case").0,
            Some(KernelPath::Scalar)
        );
        let e = parse_kernel("gpu").unwrap_err();
        assert!(e.contains("avxvnni") && e.contains("auto"), "{e}");
    }
}
