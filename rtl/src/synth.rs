//! Synthesis figures with yosys: the processing element and the requantizers.
//!
//! Each configuration is synthesised twice: `synth_xilinx -family xc7` (7-series cells:
//! LUTs, flip-flops, CARRY4, DSP48E1) and the generic `synth` (yosys internal gates). The
//! exact scripts are [`Unit::script`].

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::sim::{run_limited, tail};
use crate::{rtl_dir, RtlError};

/// A synthesised configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `nuq_pe` with `lanes` lanes: codebook weights of `wbits` bits, or plain int8 weights
    /// (`wbits = 8`, `codebook = false`).
    Pe {
        /// MAC lanes.
        lanes: u32,
        /// Weight bits.
        wbits: u32,
        /// Codebook (LUT-decoded) weights.
        codebook: bool,
    },
    /// `nuq_requant_thr` (threshold bank) or `nuq_requant_fxp` (fixed-point) to `bits`-bit
    /// codes.
    Requant {
        /// Code bits.
        bits: u32,
        /// Threshold bank (else the fixed-point requantizer).
        thresholds: bool,
    },
}

/// Which flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `synth_xilinx -family xc7`.
    Xc7,
    /// `synth_xilinx -family xc7 -nodsp`: multipliers in LUTs.
    Xc7NoDsp,
    /// Generic `synth`.
    Generic,
}

/// Cell counts of one synthesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// LUT1..LUT6 (xc7) or logic gates (generic).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// CARRY4 (xc7; 0 for generic).
    pub carry: u64,
    /// DSP48E1 (xc7; 0 for generic).
    pub dsps: u64,
    /// All cells.
    pub cells: u64,
}

impl Unit {
    /// The P = 16 PE at b = 2, 3, 4 with codebook weights and with int8 weights, and the
    /// requantizer as thresholds and as fixed point at b = 2, 3, 4.
    pub fn report_set() -> Vec<Unit> {
        let mut v: Vec<Unit> = [2, 3, 4]
            .iter()
            .map(|&b| Unit::Pe {
                lanes: 16,
                wbits: b,
                codebook: true,
            })
            .collect();
        v.push(Unit::Pe {
            lanes: 16,
            wbits: 8,
            codebook: false,
        });
        for thresholds in [true, false] {
            for b in [2, 3, 4] {
                v.push(Unit::Requant {
                    bits: b,
                    thresholds,
                });
            }
        }
        v
    }

    fn top_files(self) -> (&'static str, &'static [&'static str], String) {
        match self {
            Unit::Pe {
                lanes,
                wbits,
                codebook,
            } => (
                "nuq_pe",
                &["nuq_pe.v", "nuq_codebook_lut.v", "nuq_mac_array.v"],
                format!(
                    "chparam -set P {lanes} -set B {} -set CODEBOOK {} nuq_pe",
                    wbits.min(8),
                    u32::from(codebook)
                ),
            ),
            Unit::Requant { bits, thresholds } => {
                if thresholds {
                    (
                        "nuq_requant_thr",
                        &["nuq_requant_thr.v", "nuq_thresh_bank.v"],
                        format!("chparam -set B {bits} nuq_requant_thr"),
                    )
                } else {
                    (
                        "nuq_requant_fxp",
                        &["nuq_requant_fxp.v"],
                        format!("chparam -set B {bits} nuq_requant_fxp"),
                    )
                }
            }
        }
    }

    /// The yosys script, run from `rtl/`.
    pub fn script(self, flow: Flow) -> String {
        let (top, files, chparam) = self.top_files();
        let files: Vec<String> = files.iter().map(|f| format!("hdl/{f}")).collect();
        let synth = match flow {
            Flow::Xc7 => format!("synth_xilinx -family xc7 -top {top} -flatten -noiopad"),
            Flow::Xc7NoDsp => {
                format!("synth_xilinx -family xc7 -top {top} -flatten -noiopad -nodsp")
            }
            Flow::Generic => format!("synth -top {top} -flatten"),
        };
        format!("read_verilog {}; {chparam}; {synth}; stat", files.join(" "))
    }

    /// The report line's key fields (`unit=pe lanes=16 wbits=4 weights=codebook`, ...).
    pub fn describe(self) -> String {
        match self {
            Unit::Pe {
                lanes,
                wbits,
                codebook,
            } => format!(
                "unit=pe lanes={lanes} wbits={wbits} weights={}",
                if codebook { "codebook" } else { "int8" }
            ),
            Unit::Requant { bits, thresholds } => format!(
                "unit=requant bits={bits} kind={}",
                if thresholds {
                    "thresholds"
                } else {
                    "fixed_point"
                }
            ),
        }
    }
}

/// Parses the last `stat` block of a yosys log.
pub fn parse_stat(log: &str, flow: Flow) -> Counts {
    let start = log.rfind("Number of cells").unwrap_or(0);
    let mut c = Counts::default();
    for line in log[start..].lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(n)) = (it.next(), it.next()) else {
            continue;
        };
        if name == "Number" {
            if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse().ok()) {
                c.cells = v;
            }
            continue;
        }
        let Ok(n) = n.parse::<u64>() else { continue };
        match flow {
            Flow::Xc7 | Flow::Xc7NoDsp => {
                if name.starts_with("LUT") {
                    c.luts += n;
                } else if name.starts_with("FD") {
                    c.ffs += n;
                } else if name.starts_with("CARRY") {
                    c.carry += n;
                } else if name.starts_with("DSP") {
                    c.dsps += n;
                }
            }
            Flow::Generic => {
                if name.contains("DFF") {
                    c.ffs += n;
                } else if name.starts_with("$_") {
                    c.luts += n;
                }
            }
        }
    }
    c
}

/// Synthesises `unit` with `flow`; the log goes to `log` when given.
///
/// # Errors
/// [`RtlError::MissingTool`] without yosys, [`RtlError::Tool`] when it fails.
pub fn synthesize(unit: Unit, flow: Flow, log: Option<&Path>) -> Result<Counts, RtlError> {
    if !crate::sim::on_path("yosys") {
        return Err(RtlError::MissingTool(
            "yosys is not installed (apt-get install yosys)".into(),
        ));
    }
    let mut cmd = Command::new("yosys");
    cmd.current_dir(rtl_dir()).arg("-p").arg(unit.script(flow));
    let (ok, text) = run_limited(cmd, Duration::from_secs(900))?;
    if let Some(p) = log {
        std::fs::write(p, &text)?;
    }
    if !ok {
        return Err(RtlError::Tool {
            tool: format!("yosys ({})", unit.describe()),
            detail: tail(&text, 15),
        });
    }
    Ok(parse_stat(&text, flow))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XC7: &str = "
   Number of cells:                200
     CARRY4                         10
     DSP48E1                         2
     FDRE                           30
     FDSE                            2
     LUT2                           40
     LUT6                           60
";

    #[test]
    fn counts_xc7_cells() {
        let c = parse_stat(XC7, Flow::Xc7);
        assert_eq!(
            c,
            Counts {
                luts: 100,
                ffs: 32,
                carry: 10,
                dsps: 2,
                cells: 200
            }
        );
    }

    #[test]
    fn counts_generic_gates_and_the_last_block() {
        let log = "   Number of cells: 5\n     $_AND_ 5\n\
                   === again ===\n   Number of cells:                 7\n     $_AND_                          3\n     $_MUX_                          2\n     $_DFF_P_                        2\n";
        let c = parse_stat(log, Flow::Generic);
        assert_eq!((c.luts, c.ffs, c.cells), (5, 2, 7));
    }

    #[test]
    fn scripts_name_the_top_and_parameters() {
        let s = Unit::Pe {
            lanes: 16,
            wbits: 3,
            codebook: true,
        }
        .script(Flow::Xc7);
        assert!(
            s.contains("chparam -set P 16 -set B 3 -set CODEBOOK 1 nuq_pe"),
            "{s}"
        );
        assert!(s.contains("synth_xilinx -family xc7 -top nuq_pe"), "{s}");
        let r = Unit::Requant {
            bits: 2,
            thresholds: false,
        };
        assert!(r
            .script(Flow::Generic)
            .contains("synth -top nuq_requant_fxp"));
        assert_eq!(r.describe(), "unit=requant bits=2 kind=fixed_point");
        assert_eq!(Unit::report_set().len(), 10);
    }
}
