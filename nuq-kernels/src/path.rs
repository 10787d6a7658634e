//! Which implementation a kernel runs: run-time detection and overrides.
//!
//! Every kernel takes a [`KernelPath`]. [`KernelPath::detect`] picks the fastest path this
//! CPU supports unless the environment variable `NUQ_KERNEL` names one
//! (`scalar`, `portable`, `avx2`, `avxvnni`, `avx512vnni-novbmi`, `avx512`/`avx512vnni`,
//! `amx`); tests and benchmarks pass a path explicitly. All paths compute bit-identical results.

use crate::KernelError;
use std::fmt;
use std::str::FromStr;

/// One implementation of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Straightforward loops: the reference every other path is tested against.
    Scalar,
    /// Explicit SIMD through the `wide` crate; builds on every target.
    Portable,
    /// x86-64 AVX2 intrinsics (exact: products are widened to `i16` before `vpmaddwd`).
    Avx2,
    /// x86-64 AVX2 + AVX-VNNI (the VEX-encoded, 256-bit `vpdpbusd`: Intel Alder Lake /
    /// Sapphire Rapids and later, AMD Zen 5): the GEMM multiplies `u8 × i8` four products
    /// per lane without widening; every other kernel is the AVX2 one. It also runs on CPUs
    /// with AVX-512 VNNI + VL but no AVX-VNNI (Cascade Lake, Ice Lake, Zen 4), through the
    /// EVEX encoding of the same 256-bit instruction, so that it is tested on every VNNI
    /// CPU; there the AVX-512 paths are the faster choice.
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL + VNNI without VBMI (Intel Cascade Lake / Cooper Lake): the
    /// AVX-512 kernels with codebooks decoded by `vpshufb` (16-entry tables per 128-bit
    /// lane) instead of `vpermb`, and 3-bit panels decoded once into int8.
    Avx512VnniNoVbmi,
    /// x86-64 AVX-512 F/BW/VL + VNNI (`vpdpbusd`) + VBMI (`vpermb` codebook decode).
    Avx512Vnni,
    /// The AVX-512 VNNI + VBMI path with its GEMM on AMX-INT8 tiles (`tdpbusd`, Intel
    /// Sapphire Rapids and later) where the problem allows (plain rows, whole 32-row blocks
    /// and 32-column panels); everything else is the AVX-512 kernels.
    /// [`KernelPath::best_available`] picks it only where the AMX probe of this process
    /// ([`PathProbe::amx`](crate::probe::PathProbe::amx)) found its sums those of
    /// [`KernelPath::Avx512Vnni`] and its run faster; `NUQ_KERNEL=amx` picks it outright.
    Amx,
}

impl KernelPath {
    /// All paths, slowest first.
    pub const ALL: [KernelPath; 7] = [
        KernelPath::Scalar,
        KernelPath::Portable,
        KernelPath::Avx2,
        KernelPath::AvxVnni,
        KernelPath::Avx512VnniNoVbmi,
        KernelPath::Avx512Vnni,
        KernelPath::Amx,
    ];

    /// The path's name as used by `NUQ_KERNEL` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::AvxVnni => "avxvnni",
            KernelPath::Avx512VnniNoVbmi => "avx512vnni-novbmi",
            KernelPath::Avx512Vnni => "avx512vnni",
            KernelPath::Amx => "amx",
        }
    }

    /// Whether the path runs the AVX-512 F/BW/VL kernels (threshold epilogues, residual
    /// joins, the direct `f32` convolutions): both AVX-512 VNNI paths and AMX.
    ///
    /// ```
    /// use nuq_kernels::KernelPath;
    /// assert!(KernelPath::Avx512VnniNoVbmi.is_avx512());
    /// assert!(!KernelPath::AvxVnni.is_avx512());
    /// ```
    pub fn is_avx512(self) -> bool {
        matches!(
            self,
            KernelPath::Avx512Vnni | KernelPath::Avx512VnniNoVbmi | KernelPath::Amx
        )
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Scalar | KernelPath::Portable => true,
            KernelPath::Avx2 => has_avx2(),
            KernelPath::AvxVnni => has_avxvnni() || (has_avx2() && has_avx512vnni()),
            KernelPath::Avx512VnniNoVbmi => has_avx512vnni(),
            KernelPath::Avx512Vnni => has_avx512vnni() && has_avx512vbmi(),
            KernelPath::Amx => has_avx512vnni() && has_avx512vbmi() && has_amx(),
        }
    }

    /// The fastest path this CPU supports, ignoring `NUQ_KERNEL`: where the CPU has
    /// AMX-INT8, [`KernelPath::Amx`] or [`KernelPath::Avx512Vnni`] as the AMX probe chose
    /// (run at the first call, a few milliseconds; see [`crate::probe`]).
    pub fn best_available() -> KernelPath {
        // `ALL` is ordered slowest first, and `Portable` is always available.
        let vector = KernelPath::ALL
            .into_iter()
            .rev()
            .find(|&p| p != KernelPath::Amx && p.is_available())
            .unwrap_or(KernelPath::Portable);
        match crate::probe::PathProbe::amx() {
            Some(Ok(probe)) if vector == probe.baseline => probe.chosen(),
            _ => vector,
        }
    }

    /// [`KernelPath::detect`]'s path runs the AVX-512 kernels ([`KernelPath::is_avx512`]),
    /// told without running the AMX probe (both of its choices do).
    ///
    /// # Errors
    /// As [`KernelPath::from_env`].
    pub fn detects_avx512() -> Result<bool, KernelError> {
        Ok(match KernelPath::from_env()? {
            Some(path) => path.is_avx512(),
            None => KernelPath::Avx512VnniNoVbmi.is_available(),
        })
    }

    /// Every path this CPU supports, slowest first.
    pub fn available() -> Vec<KernelPath> {
        KernelPath::ALL
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The path named by `NUQ_KERNEL`, if set.
    ///
    /// # Errors
    /// [`KernelError::UnknownPath`] for an unknown name, [`KernelError::PathUnavailable`]
    /// when the named path cannot run on this CPU.
    pub fn from_env() -> Result<Option<KernelPath>, KernelError> {
        match std::env::var("NUQ_KERNEL") {
            Ok(name) if !name.trim().is_empty() => {
                let path: KernelPath = name.parse()?;
                path.ensure_available()?;
                Ok(Some(path))
            }
            _ => Ok(None),
        }
    }

    /// `NUQ_KERNEL` if set, else [`KernelPath::best_available`].
    ///
    /// # Errors
    /// As [`KernelPath::from_env`].
    pub fn detect() -> Result<KernelPath, KernelError> {
        Ok(KernelPath::from_env()?.unwrap_or_else(KernelPath::best_available))
    }

    /// `Ok(())` when the path can run here.
    ///
    /// # Errors
    /// [`KernelError::PathUnavailable`] otherwise.
    pub fn ensure_available(self) -> Result<(), KernelError> {
        if self.is_available() {
            Ok(())
        } else {
            Err(KernelError::PathUnavailable { path: self.name() })
        }
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KernelPath {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(KernelPath::Scalar),
            "portable" => Ok(KernelPath::Portable),
            "avx2" => Ok(KernelPath::Avx2),
            "avxvnni" => Ok(KernelPath::AvxVnni),
            "avx512vnni-novbmi" => Ok(KernelPath::Avx512VnniNoVbmi),
            "avx512" | "avx512vnni" => Ok(KernelPath::Avx512Vnni),
            "amx" => Ok(KernelPath::Amx),
            _ => Err(KernelError::UnknownPath { name: s.to_owned() }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avxvnni() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("avxvnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avxvnni() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512vnni() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_amx() -> bool {
    crate::gemm::amx_available()
}

#[cfg(not(target_arch = "x86_64"))]
fn has_amx() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512vbmi() -> bool {
    std::arch::is_x86_feature_detected!("avx512vbmi")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512vbmi() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::PathProbe;

    #[test]
    fn names_round_trip() {
        for p in KernelPath::ALL {
            assert_eq!(p.name().parse::<KernelPath>().unwrap(), p);
        }
        assert_eq!(
            "AVX512".parse::<KernelPath>().unwrap(),
            KernelPath::Avx512Vnni
        );
        assert!(matches!(
            "neon".parse::<KernelPath>(),
            Err(KernelError::UnknownPath { .. })
        ));
    }

    #[test]
    fn scalar_and_portable_always_available() {
        assert!(KernelPath::Scalar.is_available());
        assert!(KernelPath::Portable.is_available());
        assert!(KernelPath::best_available().is_available());
    }

    #[test]
    fn best_is_the_fastest_available() {
        let available = KernelPath::available();
        let best = KernelPath::best_available();
        // `ALL` is ordered slowest first; AMX is picked by its probe.
        let fastest = available.iter().rev().find(|&&p| p != KernelPath::Amx);
        if best == KernelPath::Amx {
            assert!(PathProbe::amx().is_some_and(|r| r.as_ref().is_ok_and(|p| p.exact)));
        } else {
            assert_eq!(Some(&best), fastest, "ALL is ordered slowest first");
        }
        assert_eq!(
            KernelPath::detects_avx512().unwrap(),
            KernelPath::detect().unwrap().is_avx512()
        );
        // An AVX-VNNI CPU always has AVX2, and every AVX-512 VNNI CPU we select has AVX2.
        if KernelPath::AvxVnni.is_available() {
            assert!(KernelPath::Avx2.is_available());
            assert_ne!(KernelPath::best_available(), KernelPath::Avx2);
        }
        // The 256-bit VNNI kernels run wherever the 512-bit ones do (EVEX encoding).
        if KernelPath::Avx512VnniNoVbmi.is_available() && KernelPath::Avx2.is_available() {
            assert!(KernelPath::AvxVnni.is_available());
        }
        // The VBMI path needs everything the other AVX-512 path needs.
        if KernelPath::Avx512Vnni.is_available() {
            assert!(KernelPath::Avx512VnniNoVbmi.is_available());
        }
    }
}
