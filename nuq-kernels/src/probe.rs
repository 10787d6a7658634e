//! A path chosen by trying it: two convolutions shaped like a CIFAR ResNet's, run on a
//! candidate path and on the path it would replace, which pick the candidate only where
//! every accumulator it writes is the baseline's and it is faster.
//!
//! [`KernelPath::best_available`] runs the probe once per process where the CPU has
//! AMX-INT8 ([`PathProbe::amx`]): the tile path against AVX-512 VNNI + VBMI. Its driver is
//! tested on emulated tiles on every AVX-512 machine, but its instructions only where AMX
//! is present, and whether tiles beat the vector kernels depends on the core (the tile unit's
//! rate, the copies around it) — so the path is taken where this run says both, and the
//! vector path otherwise. A process that must not depend on a timing names its path
//! (`NUQ_KERNEL`); the results are the same integers either way.
//!
//! The probe layers: a 3×3 convolution with padding 1 over 16×16×128 into 128 channels with
//! 4-bit codebook weights (gathered rows, borders, the codebook's int8 copy) and a 1×1 into
//! 256 channels with int8 weights (plain rows), two images each, pseudo-random data from a
//! fixed seed, `acc + bias` written as `i32` so that every sum is compared. About 92 million
//! multiply-adds per run: each path runs both layers once to warm up and to compare, then
//! [`PROBE_ROUNDS`] alternated timed rounds, whose best times are summed per path — a few
//! milliseconds in all.
//!
//! ```
//! use nuq_kernels::probe::PathProbe;
//! use nuq_kernels::KernelPath;
//!
//! // On a CPU with AVX-512 VNNI: its 256-bit kernels against the 512-bit ones.
//! if KernelPath::AvxVnni.is_available() && KernelPath::Avx512Vnni.is_available() {
//!     let probe = PathProbe::run(KernelPath::AvxVnni, KernelPath::Avx512Vnni)?;
//!     assert!(probe.exact);
//!     assert!(probe.speedup > 0.0);
//!     println!("{probe}"); // e.g. `avxvnni vs avx512vnni: exact, 0.80x`
//! }
//! # Ok::<(), nuq_kernels::KernelError>(())
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::archparam::{PROBE_MIN_SPEEDUP, PROBE_ROUNDS};
use crate::conv::{Conv, ConvOut, ConvScratch, Requantize};
use crate::{KernelError, KernelPath, Weights, Window};
use nuq_core::Rng;

/// What trying `candidate` against `baseline` on the probe layers found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathProbe {
    /// The path tried.
    pub candidate: KernelPath,
    /// The path it would replace.
    pub baseline: KernelPath,
    /// Whether every accumulator of every probe layer was the baseline's.
    pub exact: bool,
    /// The baseline's time over the candidate's (each the sum over the layers of the best
    /// of [`PROBE_ROUNDS`] rounds): above 1 where the candidate is faster.
    pub speedup: f64,
}

/// One probe layer, compiled, with its input.
struct Layer {
    conv: Conv,
    x: Vec<u8>,
    images: usize,
    out_len: usize,
}

/// `len` bytes below `below`, from `rng`.
fn bytes(rng: &mut Rng, len: usize, below: u64) -> Vec<u8> {
    (0..len).map(|_| rng.below(below) as u8).collect()
}

/// The probe layers (see the module docs).
fn layers() -> Result<Vec<Layer>, KernelError> {
    // A fixed seed: the probe's data are the same in every process.
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    // (window, output channels, weight bits)
    let specs = [
        (Window::new(16, 16, 128, 3, 1, 1), 128, 4u8),
        (Window::new(16, 16, 128, 1, 1, 0), 256, 8u8),
    ];
    let images = 2;
    specs
        .into_iter()
        .map(|(shape, n, bits)| {
            let k = shape.k();
            // Every code of the book, spread over both signs.
            let levels: Vec<i8> = (0..1i32 << bits)
                .map(|i| (i - (1 << (bits - 1))) as i8)
                .collect();
            let indices = bytes(&mut rng, n * k, levels.len() as u64);
            let weights = Weights::pack(&indices, n, k, bits, &levels)?;
            let bias: Vec<i32> = (0..n).map(|_| rng.below(2001) as i32 - 1000).collect();
            let pad = vec![0u8; shape.channels];
            let conv = Conv::new(shape, &pad, weights, &bias, Requantize::Accumulator)?;
            let x = bytes(
                &mut rng,
                images * shape.height * shape.width * shape.channels,
                256,
            );
            let out_len = images * shape.out_height() * shape.out_width() * n;
            Ok(Layer {
                conv,
                x,
                images,
                out_len,
            })
        })
        .collect()
}

impl PathProbe {
    /// Runs the probe layers on `candidate` and `baseline` (on the current rayon pool).
    ///
    /// # Errors
    /// [`KernelError::PathUnavailable`] where either path cannot run here; any error of
    /// [`Conv::run`] on either path.
    pub fn run(candidate: KernelPath, baseline: KernelPath) -> Result<PathProbe, KernelError> {
        PathProbe::run_with(candidate, baseline, |_| {})
    }

    /// [`PathProbe::run`], with `after_candidate` applied to each of the candidate's
    /// outputs before they are compared (the tests plant a wrong sum with it).
    fn run_with(
        candidate: KernelPath,
        baseline: KernelPath,
        mut after_candidate: impl FnMut(&mut [i32]),
    ) -> Result<PathProbe, KernelError> {
        candidate.ensure_available()?;
        baseline.ensure_available()?;
        let mut scratch = ConvScratch::default();
        let mut exact = true;
        let mut best = [Duration::ZERO; 2];
        for layer in layers()? {
            let mut outs = [vec![0i32; layer.out_len], vec![0i32; layer.out_len]];
            let mut layer_best = [Duration::MAX; 2];
            // Round 0 warms up and compares; the others are timed, the paths alternated.
            for round in 0..=PROBE_ROUNDS {
                for (i, path) in [baseline, candidate].into_iter().enumerate() {
                    let start = Instant::now();
                    layer.conv.run(
                        path,
                        &layer.x,
                        layer.images,
                        ConvOut::Int32(&mut outs[i]),
                        &mut scratch,
                    )?;
                    let took = start.elapsed();
                    if round > 0 {
                        layer_best[i] = layer_best[i].min(took);
                    }
                }
                if round == 0 {
                    after_candidate(&mut outs[1]);
                    exact &= outs[0] == outs[1];
                }
            }
            for (b, l) in best.iter_mut().zip(layer_best) {
                *b += l;
            }
        }
        let [base, cand] = best.map(|d| d.as_secs_f64());
        Ok(PathProbe {
            candidate,
            baseline,
            exact,
            speedup: base / cand.max(f64::MIN_POSITIVE),
        })
    }

    /// The path to run: the candidate where it was exact and at least
    /// [`PROBE_MIN_SPEEDUP`] times as fast, else the baseline.
    pub fn chosen(&self) -> KernelPath {
        if self.exact && self.speedup >= PROBE_MIN_SPEEDUP {
            self.candidate
        } else {
            self.baseline
        }
    }

    /// The AMX probe of this process — [`KernelPath::Amx`] against
    /// [`KernelPath::Avx512Vnni`] — run at the first call where AMX is available (then
    /// kept), `None` where it is not. An error of the run (which would mean a bug) chooses
    /// the baseline, as [`KernelPath::best_available`] does.
    pub fn amx() -> Option<&'static Result<PathProbe, KernelError>> {
        static AMX: OnceLock<Option<Result<PathProbe, KernelError>>> = OnceLock::new();
        AMX.get_or_init(|| {
            KernelPath::Amx
                .is_available()
                .then(|| PathProbe::run(KernelPath::Amx, KernelPath::Avx512Vnni))
        })
        .as_ref()
    }
}

impl fmt::Display for PathProbe {
    /// `amx vs avx512vnni: exact, 1.85x` (or `NOT EXACT`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vs {}: {}, {:.2}x",
            self.candidate,
            self.baseline,
            if self.exact { "exact" } else { "NOT EXACT" },
            self.speedup
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two paths this CPU has, faster last (none on a CPU without AVX2).
    fn two_paths() -> Option<(KernelPath, KernelPath)> {
        let avail = KernelPath::available();
        let simd: Vec<_> = avail
            .into_iter()
            .filter(|p| !matches!(p, KernelPath::Scalar | KernelPath::Portable))
            .collect();
        match simd.as_slice() {
            [.., a, b] => Some((*a, *b)),
            _ => None,
        }
    }

    #[test]
    fn exact_paths_probe_exact() {
        let Some((a, b)) = two_paths() else { return };
        let p = PathProbe::run(a, b).unwrap();
        assert!(p.exact, "{p}");
        assert!(p.speedup.is_finite() && p.speedup > 0.0, "{p}");
        assert!(p.chosen() == a || p.chosen() == b);
        assert_eq!(
            p.to_string().split(':').next().unwrap(),
            format!("{a} vs {b}")
        );
    }

    #[test]
    fn one_wrong_sum_keeps_the_baseline() {
        let Some((a, b)) = two_paths() else { return };
        let mut planted = false;
        let p = PathProbe::run_with(a, b, |out| {
            // One sum of the last layer only, off by one.
            if planted {
                out[out.len() / 2] += 1;
            }
            planted = true;
        })
        .unwrap();
        assert!(!p.exact, "{p}");
        assert_eq!(p.chosen(), b);
        assert!(p.to_string().contains("NOT EXACT"));
    }

    #[test]
    fn the_faster_exact_path_is_chosen() {
        let probe = |exact, speedup| PathProbe {
            candidate: KernelPath::Amx,
            baseline: KernelPath::Avx512Vnni,
            exact,
            speedup,
        };
        assert_eq!(probe(true, 2.0).chosen(), KernelPath::Amx);
        assert_eq!(probe(true, PROBE_MIN_SPEEDUP).chosen(), KernelPath::Amx);
        assert_eq!(probe(true, 1.0).chosen(), KernelPath::Avx512Vnni);
        assert_eq!(probe(false, 9.0).chosen(), KernelPath::Avx512Vnni);
    }

    #[test]
    fn unavailable_paths_are_refused() {
        if let Some(&p) = KernelPath::ALL.iter().find(|p| !p.is_available()) {
            assert!(matches!(
                PathProbe::run(p, KernelPath::Scalar),
                Err(KernelError::PathUnavailable { .. })
            ));
        }
    }

    /// Where AMX runs (the device machine), its probe must find the tiles exact.
    #[test]
    fn amx_probe_is_exact_where_amx_runs() {
        match PathProbe::amx() {
            None => assert!(!KernelPath::Amx.is_available()),
            Some(r) => {
                let p = r.as_ref().expect("the AMX probe runs");
                assert!(p.exact, "{p}");
            }
        }
    }
}
