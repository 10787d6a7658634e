//! Register-only `vpdpbusd` throughput loops (AVX-512 `zmm` and AVX-VNNI `ymm`): the
//! ceilings the GEMM kernels are measured against (reported by `kernel-report`).

use nuq_kernels::{KernelError, KernelPath};
#[cfg(target_arch = "x86_64")]
use std::hint::black_box;
use std::time::Duration;
#[cfg(target_arch = "x86_64")]
use std::time::Instant;

/// Independent accumulator chains: more than latency (4) × issue rate needs.
pub const CHAINS: usize = 12;

/// Multiply-accumulates per iteration of [`vnni_chains`] (`CHAINS` × 64).
pub const MACS_PER_ITERATION: u64 = CHAINS as u64 * 64;

/// Runs `iterations` rounds of the register-only loop ([`CHAINS`] dependent `vpdpbusd`
/// chains) on the calling thread and returns a value derived from the accumulators (so
/// the work cannot be optimised away). Lets a caller time the peak inside its own thread
/// pool, interleaved with the kernels it compares against it.
///
/// # Errors
/// [`KernelError::PathUnavailable`] when the CPU lacks AVX-512 VNNI.
pub fn vnni_chains(iterations: u64) -> Result<i32, KernelError> {
    KernelPath::Avx512VnniNoVbmi.ensure_available()?;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512 VNNI availability was checked above.
        Ok(unsafe { x86::chains(iterations) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iterations;
        unreachable!("ensure_available rejects AVX-512 on other targets")
    }
}

/// Multiply-accumulates per iteration of [`avx_vnni_chains`] (`CHAINS` × 32).
pub const AVX_VNNI_MACS_PER_ITERATION: u64 = CHAINS as u64 * 32;

/// [`vnni_chains`] with the 256-bit `vpdpbusd` ([`CHAINS`] dependent `ymm` chains): the
/// ceiling of the `avxvnni` GEMM path, in the encoding that path runs here (VEX where the
/// CPU has AVX-VNNI, else EVEX from AVX-512 VNNI + VL).
///
/// # Errors
/// [`KernelError::PathUnavailable`] when the CPU has neither.
pub fn avx_vnni_chains(iterations: u64) -> Result<i32, KernelError> {
    KernelPath::AvxVnni.ensure_available()?;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the path's availability was checked above: AVX2 + AVX-VNNI for the VEX
        // loop, else AVX2 + AVX-512 VNNI + VL for the EVEX one.
        Ok(unsafe {
            if std::arch::is_x86_feature_detected!("avxvnni") {
                x86::chains_avx_vnni(iterations)
            } else {
                x86::chains_avx_vnni_evex(iterations)
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iterations;
        unreachable!("ensure_available rejects AVX-VNNI on other targets")
    }
}

/// Measured `vpdpbusd` (zmm) throughput in GMAC/s: `threads` threads each run [`CHAINS`]
/// independent chains for about `sample` per sample, started together at a barrier;
/// the result is the median over `samples` samples (the same median-of-short-runs method
/// the GEMM benchmarks use, so both see a loaded machine alike).
///
/// # Errors
/// [`KernelError::PathUnavailable`] when the CPU lacks AVX-512 VNNI.
pub fn vnni_peak_gmacs(
    threads: usize,
    samples: usize,
    sample: Duration,
) -> Result<f64, KernelError> {
    KernelPath::Avx512VnniNoVbmi.ensure_available()?;
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::Barrier;
        let threads = threads.max(1);
        let samples = samples.max(1);
        // Calibrate the iteration count on one thread.
        let mut iters: u64 = 1 << 10;
        loop {
            let t = Instant::now();
            // SAFETY: AVX-512 VNNI availability was checked above.
            black_box(unsafe { x86::chains(iters) });
            if t.elapsed() >= sample || iters > 1 << 40 {
                break;
            }
            iters *= 2;
        }
        let barrier = Barrier::new(threads);
        let run = |record: bool| -> Vec<f64> {
            let mut times = Vec::with_capacity(if record { samples } else { 0 });
            for _ in 0..samples {
                barrier.wait();
                let t = Instant::now();
                // SAFETY: as above.
                black_box(unsafe { x86::chains(iters) });
                barrier.wait();
                if record {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            times
        };
        let mut times = std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(|| run(false));
            }
            run(true)
        });
        times.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
        let secs = times[times.len() / 2];
        let macs = threads as f64 * iters as f64 * CHAINS as f64 * 64.0;
        Ok(macs / secs / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (threads, samples, sample);
        unreachable!("ensure_available rejects AVX-512 on other targets")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// Runs `iters` rounds of [`CHAINS`] dependent `vpdpbusd` chains.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn chains(iters: u64) -> i32 {
        let a = _mm512_set1_epi32(black_box(0x0102_0304));
        let b = _mm512_set1_epi32(black_box(0x0101_0101));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let mut sum = _mm512_setzero_si512();
        for v in acc {
            sum = _mm512_add_epi32(sum, v);
        }
        _mm512_reduce_add_epi32(sum)
    }

    /// One function per encoding of the 256-bit `vpdpbusd` (the kernels' own pair, see
    /// `nuq_kernels`' AVX-VNNI path): `iters` rounds of [`CHAINS`] dependent `ymm` chains.
    macro_rules! chains_256 {
        ($name:ident, $features:literal, $dpbusd:ident) => {
            /// Runs `iters` rounds of [`CHAINS`] dependent 256-bit `vpdpbusd` chains.
            ///
            /// # Safety
            #[doc = concat!("The CPU must support `", $features, "`.")]
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(iters: u64) -> i32 {
                let a = _mm256_set1_epi32(black_box(0x0102_0304));
                let b = _mm256_set1_epi32(black_box(0x0101_0101));
                let mut acc = [_mm256_setzero_si256(); CHAINS];
                for _ in 0..iters {
                    for v in acc.iter_mut() {
                        *v = $dpbusd(*v, a, b);
                    }
                }
                let mut sum = _mm256_setzero_si256();
                for v in acc {
                    sum = _mm256_add_epi32(sum, v);
                }
                let mut lanes = [0i32; 8];
                // SAFETY: `lanes` holds 8 i32.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
                lanes.iter().fold(0i32, |s, &v| s.wrapping_add(v))
            }
        };
    }
    chains_256!(chains_avx_vnni, "avx2,avxvnni", _mm256_dpbusd_avx_epi32);
    chains_256!(
        chains_avx_vnni_evex,
        "avx2,avx512vnni,avx512vl",
        _mm256_dpbusd_epi32
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_compute_what_they_claim() {
        if !KernelPath::Avx512VnniNoVbmi.is_available() {
            assert!(matches!(
                vnni_chains(1),
                Err(KernelError::PathUnavailable { .. })
            ));
            return;
        }
        // Bytes (4, 3, 2, 1) · (1, 1, 1, 1) = 10 per lane and iteration, over
        // 12 chains × 16 lanes.
        assert_eq!(vnni_chains(100).unwrap(), 100 * 10 * 16 * CHAINS as i32);
        let g = vnni_peak_gmacs(1, 3, Duration::from_micros(200)).unwrap();
        assert!(g.is_finite() && g > 0.0);
    }

    #[test]
    fn avx_vnni_chains_compute_what_they_claim() {
        if !KernelPath::AvxVnni.is_available() {
            assert!(matches!(
                avx_vnni_chains(1),
                Err(KernelError::PathUnavailable { .. })
            ));
            return;
        }
        // 10 per lane and iteration over 12 chains × 8 lanes.
        assert_eq!(avx_vnni_chains(100).unwrap(), 100 * 10 * 8 * CHAINS as i32);
    }
}
