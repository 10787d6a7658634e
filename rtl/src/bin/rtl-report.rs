//! `rtl-report`: simulates the report models on the reference datapath and synthesises the
//! processing element and the requantizers.
//!
//! ```text
//! cargo run --release -p nuq-rtl --bin rtl-report                 # everything
//! cargo run --release -p nuq-rtl --bin rtl-report -- --model m.nuq --images 4
//! ```
//!
//! Prints one `rtl ...` line per simulated model (and lanes), `layer ...` lines with every
//! convolution's cycles and MAC utilisation, `unit ...` lines for the unit testbenches and
//! `synth ...` / `synth_generic ...` lines for yosys.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use nuq_fpga_fmt::NuqFile;
use nuq_nn::quant::family_name;
use nuq_rtl::flow::{fashion_mnist_dir, Nuq};
use nuq_rtl::models::ModelSpec;
use nuq_rtl::sim::{missing_tools, run_unit, unit_testbenches, SeqBuild, SeqRun, Simulator};
use nuq_rtl::synth::{synthesize, Flow, Unit};

/// Clock the throughput figures assume.
const CLOCK_MHZ: f64 = 200.0;
/// Weight word width of the exports.
const WORD_BITS: u32 = 64;

struct Args {
    model: Option<PathBuf>,
    images: usize,
    lanes: Vec<usize>,
    synth: bool,
    units: bool,
    work: Option<PathBuf>,
    only: Option<String>,
}

fn usage() -> &'static str {
    "usage: rtl-report [--model FILE.nuq] [--images N] [--lanes 16,64] [--no-synth] [--no-units] [--work DIR] [--only TAG]\n\
     Without --model: the twelve report models (VGG-Small x0.125 and ResNet-20 x0.25 at 2, 3, 4 bits,\n\
     k-quantile and uniform), the unit testbenches and the yosys figures."
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        model: None,
        images: 4,
        lanes: vec![16, 64],
        synth: true,
        units: true,
        work: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .with_context(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--model" => a.model = Some(PathBuf::from(value("--model")?)),
            "--images" => {
                a.images = value("--images")?
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1024).contains(&n))
                    .context("--images must be 1..=1024")?
            }
            "--lanes" => {
                a.lanes = value("--lanes")?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .filter(|v| !v.is_empty() && v.iter().all(|&p| (1..=256).contains(&p)))
                    .context("--lanes takes a comma list of 1..=256")?
            }
            "--no-synth" => a.synth = false,
            "--no-units" => a.units = false,
            "--work" => a.work = Some(PathBuf::from(value("--work")?)),
            "--only" => a.only = Some(value("--only")?),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    Ok(a)
}

/// Finds `nuq`, building it (release) when it is not next to this binary.
fn nuq() -> Result<Nuq> {
    if let Ok(n) = Nuq::locate() {
        return Ok(n);
    }
    eprintln!("building nuq (cargo build --release -p nuq-cli) ...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "nuq-cli"])
        .current_dir(nuq_rtl::rtl_dir())
        .status()
        .context("cannot run cargo to build nuq")?;
    if !st.success() {
        bail!("cargo build --release -p nuq-cli failed");
    }
    Ok(Nuq::locate()?)
}

fn work_dir(a: &Args) -> Result<PathBuf> {
    let dir = match &a.work {
        Some(d) => d.clone(),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| nuq_rtl::rtl_dir().join("..").join("target"))
            .join("nuq-rtl"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn images_per_s(run: &SeqRun) -> f64 {
    CLOCK_MHZ * 1e6 / run.cycles_per_image().max(1) as f64
}

fn print_layers(tag: &str, run: &SeqRun) {
    for l in run.per_layer.iter().filter(|l| l.op == 2) {
        println!(
            "layer {tag} lanes={} layer={} op=conv cycles={} macs={} mac_util={:.3}",
            run.lanes,
            l.layer,
            l.cycles,
            l.macs,
            run.layer_util(l)
        );
    }
}

fn rtl_line(model: &str, width: &str, bits: u32, family: &str, run: &SeqRun) -> String {
    format!(
        "rtl model={model} width={width} bits={bits} family={family} images={} layers={} mismatches={} cycles_per_image={} mac_util={:.3} lanes={} sim={} clock_mhz={CLOCK_MHZ:.0} images_per_s={:.1}",
        run.images,
        run.layers,
        run.mismatches,
        run.cycles_per_image(),
        run.conv_mac_util(),
        run.lanes,
        run.sim.name(),
        images_per_s(run)
    )
}

/// Inner weight bits and codebook family of a model file (for its report line).
fn describe_file(path: &Path) -> Result<(u32, String, bool)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = NuqFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut bits = 8u32;
    let mut family = String::from("custom");
    for l in file.graph().iter() {
        if l.weight_bits() > 0 && u32::from(l.weight_bits()) <= bits {
            bits = u32::from(l.weight_bits());
            if let Some(cb) = l.weight_codebook().and_then(|c| file.codebooks().get(c)) {
                family = cb
                    .kind()
                    .map(|k| k.to_string().replace('_', ""))
                    .unwrap_or_else(|| "custom".into());
            }
        }
    }
    let input = file.graph().get(0).map(|l| l.out_shape()).unwrap_or([0; 3]);
    Ok((bits, family, input == [1, 28, 28]))
}

fn simulate(
    nuq: &Nuq,
    build: &SeqBuild,
    model: &Path,
    dir: &Path,
    images: usize,
    fashion: bool,
) -> Result<SeqRun> {
    let mem = dir.join("mem");
    let vec = dir.join("vec");
    nuq.export(model, &mem, WORD_BITS)?;
    let data = if fashion { fashion_mnist_dir() } else { None };
    nuq.vectors(model, &vec, images, data.as_deref())?;
    Ok(build.run(&mem, &vec, images)?)
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let missing = missing_tools();
    if missing.contains(&"verilator") {
        bail!(
            "missing: {} (apt-get install -y verilator iverilog yosys)",
            missing.join(", ")
        );
    }
    let work = work_dir(&a)?;
    let nuq = nuq()?;
    let mut builds = Vec::new();
    for &p in &a.lanes {
        builds.push(SeqBuild::build(
            Simulator::Verilator,
            p,
            WORD_BITS,
            &work.join("build"),
        )?);
    }
    let mut failures = 0usize;

    if let Some(model) = &a.model {
        let (bits, family, fashion) = describe_file(model)?;
        let name = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let dir = tempfile::tempdir_in(&work)?;
        for b in &builds {
            let run = simulate(&nuq, b, model, dir.path(), a.images, fashion)?;
            print_layers(&format!("model={name}"), &run);
            if let Some(m) = &run.first_mismatch {
                println!("{m}");
            }
            println!("{}", rtl_line(&name, "-", bits, &family, &run));
            failures += usize::from(run.mismatches != 0);
        }
        if failures > 0 {
            bail!("the hardware and the integer model disagree");
        }
        return Ok(());
    }

    if fashion_mnist_dir().is_none() {
        eprintln!(
            "note: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); VGG-Small runs on random images"
        );
    }
    for spec in ModelSpec::all_standard() {
        let tag = format!(
            "{}-w{}-{}",
            spec.arch.name(),
            spec.bits,
            family_name(spec.family)
        );
        if a.only.as_ref().is_some_and(|o| !tag.contains(o.as_str())) {
            continue;
        }
        let dir = work.join("models").join(&tag);
        std::fs::create_dir_all(&dir)?;
        let model = dir.join("model.nuq");
        spec.write(&model, 1)?;
        let fashion = spec.config().input_size == (28, 28);
        for (k, b) in builds.iter().enumerate() {
            // The schedule does not depend on the data: wider builds check one image.
            let images = if k == 0 { a.images } else { 1 };
            let run = if k == 0 {
                simulate(&nuq, b, &model, &dir, images, fashion)
            } else {
                b.run(&dir.join("mem"), &dir.join("vec"), images)
                    .map_err(anyhow::Error::from)
            }
            .with_context(|| format!("simulating {tag} with {} lanes", b.lanes()))?;
            print_layers(
                &format!(
                    "model={} bits={} family={}",
                    spec.arch.name(),
                    spec.bits,
                    family_name(spec.family)
                ),
                &run,
            );
            if let Some(m) = &run.first_mismatch {
                println!("{m}");
            }
            println!(
                "{}",
                rtl_line(
                    spec.arch.name(),
                    &spec.width.to_string(),
                    u32::from(spec.bits),
                    family_name(spec.family),
                    &run
                )
            );
            failures += usize::from(run.mismatches != 0);
        }
    }

    if a.units {
        // Unit testbenches read the last ResNet-20 export and vectors (residual joins,
        // zero points).
        let last = ModelSpec::all_standard()
            .last()
            .map(|s| format!("{}-w{}-{}", s.arch.name(), s.bits, family_name(s.family)))
            .unwrap_or_default();
        let d = work.join("models").join(last);
        let plus = vec![
            format!("+mem={}", d.join("mem").display()),
            format!("+vec={}", d.join("vec").display()),
        ];
        for sim in [Simulator::Icarus, Simulator::Verilator] {
            if !sim.available() {
                println!("unit sim={} result=missing", sim.name());
                failures += 1;
                continue;
            }
            for tb in unit_testbenches()? {
                let r = match run_unit(sim, &tb, &work.join("units"), &plus) {
                    Ok(r) => r,
                    Err(e) => {
                        println!("unit tb={} sim={} result=error", tb.display(), sim.name());
                        println!("{e}");
                        failures += 1;
                        continue;
                    }
                };
                println!(
                    "unit tb={} sim={} result={}",
                    r.name,
                    sim.name(),
                    if r.passed { "pass" } else { "fail" }
                );
                if !r.passed {
                    println!("{}", r.detail);
                    failures += 1;
                }
            }
        }
    }

    if a.synth {
        if missing.contains(&"yosys") {
            println!("synth result=missing-yosys");
            failures += 1;
        } else {
            for unit in Unit::report_set() {
                let c = synthesize(unit, Flow::Xc7, None)?;
                println!(
                    "synth {} luts={} ffs={} carry={} dsps={} flow=xc7",
                    unit.describe(),
                    c.luts,
                    c.ffs,
                    c.carry,
                    c.dsps
                );
                if c.dsps > 0 {
                    let n = synthesize(unit, Flow::Xc7NoDsp, None)?;
                    println!(
                        "synth_nodsp {} luts={} ffs={} carry={} dsps={} flow=xc7-nodsp",
                        unit.describe(),
                        n.luts,
                        n.ffs,
                        n.carry,
                        n.dsps
                    );
                }
                let g = synthesize(unit, Flow::Generic, None)?;
                println!(
                    "synth_generic {} gates={} ffs={} cells={} flow=generic",
                    unit.describe(),
                    g.luts,
                    g.ffs,
                    g.cells
                );
            }
        }
    }
    if failures > 0 {
        bail!("{failures} checks failed");
    }
    Ok(())
}
