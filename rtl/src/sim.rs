//! Building and running the testbenches with Verilator or Icarus Verilog.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{hdl_sources, rtl_dir, RtlError};

/// A Verilog simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulator {
    /// Verilator 5 (`--binary --timing`): compiled, fast; the primary simulator.
    Verilator,
    /// Icarus Verilog (`iverilog -g2005` + `vvp`): interpreted, for the unit testbenches.
    Icarus,
}

impl Simulator {
    /// `verilator` or `icarus`.
    pub fn name(self) -> &'static str {
        match self {
            Simulator::Verilator => "verilator",
            Simulator::Icarus => "icarus",
        }
    }

    fn tools(self) -> &'static [&'static str] {
        match self {
            Simulator::Verilator => &["verilator"],
            Simulator::Icarus => &["iverilog", "vvp"],
        }
    }

    /// Whether its executables are on `PATH`.
    pub fn available(self) -> bool {
        self.tools().iter().all(|t| on_path(t))
    }
}

/// Whether `tool` is an executable on `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// The tools of `verilator iverilog yosys` that are missing, as Debian package names.
pub fn missing_tools() -> Vec<&'static str> {
    let mut v = Vec::new();
    if !Simulator::Verilator.available() {
        v.push("verilator");
    }
    if !Simulator::Icarus.available() {
        v.push("iverilog");
    }
    if !on_path("yosys") {
        v.push("yosys");
    }
    v
}

/// Runs `cmd` with a wall-clock limit, returning (success, stdout + stderr).
pub(crate) fn run_limited(mut cmd: Command, limit: Duration) -> Result<(bool, String), RtlError> {
    let name = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RtlError::MissingTool(format!("cannot run {name}: {e}")))?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = t_out.join().unwrap_or_default();
    text.push_str(&t_err.join().unwrap_or_default());
    match status {
        Some(s) => Ok((s.success(), text)),
        None => Err(RtlError::Sim(format!(
            "{name} ran past its {} s limit and was stopped",
            limit.as_secs()
        ))),
    }
}

/// What every Verilator build here starts with: a binary with timing, lint warnings not fatal.
const VERILATOR_FLAGS: [&str; 5] = [
    "--binary",
    "--timing",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
];

fn sources_key(extra: &str) -> Result<String, RtlError> {
    let mut h = DefaultHasher::new();
    extra.hash(&mut h);
    let mut files = hdl_sources()?;
    files.push(rtl_dir().join("tb").join("tb_seq.v"));
    for f in files {
        std::fs::read(&f)?.hash(&mut h);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// A built whole-model testbench (`tb_seq` around `nuq_seq`).
#[derive(Debug, Clone)]
pub struct SeqBuild {
    sim: Simulator,
    lanes: usize,
    word_bits: u32,
    exe: PathBuf,
}

/// Cycles and MACs of one layer (image 0; the schedule does not depend on the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerStat {
    /// Layer index in the file.
    pub layer: usize,
    /// Layer op (format value: 2 conv2d, 3 linear, 4 max-pool, 6 global average pool,
    /// 10 aligned_add, 1/11 input).
    pub op: u32,
    /// Cycles, descriptor fetch and codebook load included.
    pub cycles: u64,
    /// Valid MAC lane-cycles.
    pub macs: u64,
}

/// What one whole-model simulation found.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqRun {
    /// Simulator.
    pub sim: Simulator,
    /// MAC lanes.
    pub lanes: usize,
    /// Images simulated.
    pub images: usize,
    /// Layer descriptors.
    pub layers: usize,
    /// Elements that differ from the vectors, over all layers and images.
    pub mismatches: u64,
    /// The testbench's line for the first mismatch.
    pub first_mismatch: Option<String>,
    /// Per-layer cycles and MACs of image 0.
    pub per_layer: Vec<LayerStat>,
}

impl SeqRun {
    /// Cycles of one image (sum over layers).
    pub fn cycles_per_image(&self) -> u64 {
        self.per_layer.iter().map(|l| l.cycles).sum()
    }

    /// Valid MACs ÷ (lanes × cycles) over the convolution layers together.
    pub fn conv_mac_util(&self) -> f64 {
        let conv = self.per_layer.iter().filter(|l| l.op == 2);
        let (m, c) = conv.fold((0u64, 0u64), |(m, c), l| (m + l.macs, c + l.cycles));
        if c == 0 {
            0.0
        } else {
            m as f64 / (self.lanes as f64 * c as f64)
        }
    }

    /// MAC utilisation of one layer.
    pub fn layer_util(&self, l: &LayerStat) -> f64 {
        if l.cycles == 0 {
            0.0
        } else {
            l.macs as f64 / (self.lanes as f64 * l.cycles as f64)
        }
    }
}

impl SeqBuild {
    /// Builds `tb_seq` for `lanes` MAC lanes and `word_bits`-bit weight words in `dir`
    /// (reused when the sources and parameters are unchanged).
    ///
    /// # Errors
    /// [`RtlError::MissingTool`] when the simulator is not installed, [`RtlError::Tool`]
    /// when it rejects the sources.
    pub fn build(
        sim: Simulator,
        lanes: usize,
        word_bits: u32,
        dir: &Path,
    ) -> Result<Self, RtlError> {
        if !sim.available() {
            return Err(RtlError::MissingTool(format!(
                "{} is not installed (apt-get install {})",
                sim.name(),
                if sim == Simulator::Verilator {
                    "verilator"
                } else {
                    "iverilog"
                }
            )));
        }
        let key = sources_key(&format!("{}-{lanes}-{word_bits}", sim.name()))?;
        let work = dir.join(format!("seq-{}-p{lanes}-w{word_bits}-{key}", sim.name()));
        std::fs::create_dir_all(&work)?;
        let hdl: Vec<PathBuf> = hdl_sources()?;
        let tb = rtl_dir().join("tb").join("tb_seq.v");
        let exe = match sim {
            Simulator::Verilator => work.join("tb_seq"),
            Simulator::Icarus => work.join("tb_seq.vvp"),
        };
        if exe.is_file() {
            return Ok(Self {
                sim,
                lanes,
                word_bits,
                exe,
            });
        }
        let mut cmd = match sim {
            Simulator::Verilator => {
                let mut c = Command::new("verilator");
                c.args(VERILATOR_FLAGS)
                    .args(["--top-module", "tb_seq", "-j", "2"])
                    .arg(format!("-GP={lanes}"))
                    .arg(format!("-GW={word_bits}"))
                    .arg("-CFLAGS")
                    .arg("-O1")
                    .arg("-Mdir")
                    .arg(work.join("obj"))
                    .arg("-o")
                    .arg(&exe);
                c
            }
            Simulator::Icarus => {
                let mut c = Command::new("iverilog");
                c.args(["-g2005", "-s", "tb_seq"])
                    .arg(format!("-Ptb_seq.P={lanes}"))
                    .arg(format!("-Ptb_seq.W={word_bits}"))
                    .arg("-o")
                    .arg(&exe);
                c
            }
        };
        cmd.arg(&tb).args(&hdl);
        let (ok, text) = run_limited(cmd, Duration::from_secs(1800))?;
        if !ok || !exe.is_file() {
            return Err(RtlError::Tool {
                tool: sim.name().into(),
                detail: tail(&text, 40),
            });
        }
        Ok(Self {
            sim,
            lanes,
            word_bits,
            exe,
        })
    }

    /// MAC lanes.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Weight word bits.
    pub fn word_bits(&self) -> u32 {
        self.word_bits
    }

    /// Simulator.
    pub fn simulator(&self) -> Simulator {
        self.sim
    }

    /// Runs `images` images of the vectors in `vec` on the model exported to `mem`,
    /// comparing every layer (cycle limit 200 million per image, wall-clock limit 20 min).
    ///
    /// # Errors
    /// [`RtlError::BadInput`] for files that do not belong together,
    /// [`RtlError::Sim`] for what the testbench reports (missing or truncated files, a
    /// model too large, the cycle limit).
    pub fn run(&self, mem: &Path, vec: &Path, images: usize) -> Result<SeqRun, RtlError> {
        crate::flow::check_pair(mem, vec, images)?;
        self.run_unchecked(mem, vec, images, 200_000_000)
    }

    /// As [`SeqBuild::run`] without the manifest checks, with a given cycle limit per image
    /// (the testbench's own checks still apply).
    ///
    /// # Errors
    /// As [`SeqBuild::run`].
    pub fn run_unchecked(
        &self,
        mem: &Path,
        vec: &Path,
        images: usize,
        max_cycles: u64,
    ) -> Result<SeqRun, RtlError> {
        let mut cmd = match self.sim {
            Simulator::Verilator => Command::new(&self.exe),
            Simulator::Icarus => {
                let mut c = Command::new("vvp");
                c.arg("-n").arg(&self.exe);
                c
            }
        };
        cmd.arg(format!("+mem={}", mem.display()))
            .arg(format!("+vec={}", vec.display()))
            .arg(format!("+images={images}"))
            .arg(format!("+maxcycles={max_cycles}"));
        let (_, text) = run_limited(cmd, Duration::from_secs(1200))?;
        parse_run(&text, self.sim, self.lanes)
    }
}

/// Runs a build step (`tool` names it in the error) and fails with the last `keep` lines of
/// its output unless it succeeds.
fn build(cmd: Command, limit: Duration, tool: String, keep: usize) -> Result<(), RtlError> {
    let (ok, text) = run_limited(cmd, limit)?;
    if !ok {
        return Err(RtlError::Tool {
            tool,
            detail: tail(&text, keep),
        });
    }
    Ok(())
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn kv(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
}

/// Parses `tb_seq`'s output.
///
/// # Errors
/// [`RtlError::Sim`] with the testbench's `ERROR` line, or when it printed no summary.
pub fn parse_run(text: &str, sim: Simulator, lanes: usize) -> Result<SeqRun, RtlError> {
    if let Some(e) = text.lines().find(|l| l.starts_with("ERROR")) {
        return Err(RtlError::Sim(e.trim_start_matches("ERROR ").to_string()));
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("SUMMARY"))
        .ok_or_else(|| {
            RtlError::Sim(format!("no SUMMARY line; output ends:\n{}", tail(text, 20)))
        })?;
    let mut per_layer = Vec::new();
    for l in text.lines().filter(|l| l.starts_with("LAYER image=0 ")) {
        per_layer.push(LayerStat {
            layer: kv(l, "layer").unwrap_or(0) as usize,
            op: kv(l, "op").unwrap_or(0) as u32,
            cycles: kv(l, "cycles").unwrap_or(0),
            macs: kv(l, "macs").unwrap_or(0),
        });
    }
    Ok(SeqRun {
        sim,
        lanes,
        images: kv(summary, "images").unwrap_or(0) as usize,
        layers: kv(summary, "layers").unwrap_or(0) as usize,
        mismatches: kv(summary, "mismatches").unwrap_or(u64::MAX),
        first_mismatch: text
            .lines()
            .find(|l| l.starts_with("MISMATCH"))
            .map(str::to_string),
        per_layer,
    })
}

/// The unit testbenches (`rtl/tb/tb_*.v` except `tb_seq.v`), sorted.
///
/// # Errors
/// [`RtlError::Io`] when the directory cannot be read.
pub fn unit_testbenches() -> Result<Vec<PathBuf>, RtlError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(rtl_dir().join("tb"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "v") && p.file_stem().is_some_and(|s| s != "tb_seq")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Result of one unit testbench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitResult {
    /// Testbench name (`tb_unpack`, ...).
    pub name: String,
    /// Whether it printed `PASS` and no `FAIL`.
    pub passed: bool,
    /// Its `PASS`/`FAIL` lines (or the tail of its output).
    pub detail: String,
}

/// Builds and runs unit testbench `tb` with `sim` in `dir`; `plusargs` go to the simulation
/// (e.g. `+mem=DIR +vec=DIR` for the testbenches that read `nuq export`/`nuq vectors`).
///
/// # Errors
/// [`RtlError::MissingTool`] or [`RtlError::Tool`] when it cannot be built.
pub fn run_unit(
    sim: Simulator,
    tb: &Path,
    dir: &Path,
    plusargs: &[String],
) -> Result<UnitResult, RtlError> {
    let name = tb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = dir.join(format!("{}-{name}", sim.name()));
    std::fs::create_dir_all(&work)?;
    let hdl = hdl_sources()?;
    let run = match sim {
        Simulator::Verilator => {
            let exe = work.join(&name);
            let mut c = Command::new("verilator");
            c.args(VERILATOR_FLAGS)
                .args(["--top-module", &name, "-j", "2", "-CFLAGS", "-O0"])
                .arg("-Mdir")
                .arg(work.join("obj"))
                .arg("-o")
                .arg(&exe)
                .arg(tb)
                .args(&hdl);
            build(c, Duration::from_secs(900), format!("verilator {name}"), 30)?;
            let mut r = Command::new(exe);
            r.args(plusargs);
            r
        }
        Simulator::Icarus => {
            let exe = work.join(format!("{name}.vvp"));
            let mut c = Command::new("iverilog");
            c.args(["-g2005", "-s", &name, "-o"])
                .arg(&exe)
                .arg(tb)
                .args(&hdl);
            build(c, Duration::from_secs(300), format!("iverilog {name}"), 30)?;
            let mut r = Command::new("vvp");
            r.arg("-n").arg(exe).args(plusargs);
            r
        }
    };
    let (_, text) = run_limited(run, Duration::from_secs(600))?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.starts_with("ERROR"))
        .collect();
    let passed = lines.iter().any(|l| l.starts_with("PASS"))
        && !lines
            .iter()
            .any(|l| l.starts_with("FAIL") || l.starts_with("ERROR"));
    Ok(UnitResult {
        name,
        passed,
        detail: if lines.is_empty() {
            tail(&text, 10)
        } else {
            lines.join("\n")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layers_summary_and_utilisation() {
        let text = "LAYER image=0 layer=1 op=2 cycles=100 macs=1200 \n\
                    LAYER image=0 layer=2 op=4 cycles=50 macs=0\n\
                    LAYER image=1 layer=1 op=2 cycles=100 macs=1200\n\
                    MISMATCH layer=1 vec=1 op=conv kind=codes image=0 position=3 expected=2 got=1\n\
                    SUMMARY images=2 layers=3 mismatches=1 cycles=300\n";
        let r = parse_run(text, Simulator::Verilator, 16).unwrap();
        assert_eq!(r.images, 2);
        assert_eq!(r.layers, 3);
        assert_eq!(r.mismatches, 1);
        assert_eq!(r.per_layer.len(), 2, "image 0 only");
        assert_eq!(r.cycles_per_image(), 150);
        assert!((r.conv_mac_util() - 0.75).abs() < 1e-12);
        assert!(r.first_mismatch.unwrap().contains("position=3"));
    }

    #[test]
    fn an_error_line_or_a_missing_summary_is_an_error() {
        let e = parse_run("LAYER image=0 layer=1 op=2 cycles=1 macs=1\nERROR cycle limit 10 reached in layer 1 (image 0)\n", Simulator::Icarus, 16)
            .unwrap_err();
        assert!(e.to_string().contains("cycle limit 10"), "{e}");
        let e = parse_run(
            "LAYER image=0 layer=1 op=2 cycles=1 macs=1\n",
            Simulator::Icarus,
            16,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no SUMMARY"), "{e}");
    }
}
