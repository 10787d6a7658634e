//! Quantize + dequantize throughput of `nuq-core` on 10^7 `f32` values (one thread).
//!
//! `cargo bench -p nuq-benches --bench quantize`
//!
//! Groups (elements per second = values per second):
//! * `quantize_dequantize/4bit`: `QuantizedTensor::quantize` then `dequantize_into`, the
//!   round trip the README quotes (target ≥ 500 M values/s on one core);
//! * `quantize/{2,3,4,8}bit` and `dequantize/{2,3,4,8}bit`: each half alone;
//! * `cpu_time/quantize_dequantize/4bit` (Linux): the round trip again, timed by the thread's
//!   CPU clock instead of the wall clock, so that other processes competing for the core on a
//!   shared machine do not count against it.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nuq_core::{Calibration, Codebook, Grid, Polarity, QuantizedTensor, Rng};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 10_000_000;

fn data() -> Vec<f32> {
    let mut rng = Rng::new(7);
    (0..N).map(|_| rng.normal() as f32).collect()
}

fn codebook(bits: u8) -> Codebook {
    let grid = if bits == 8 {
        Grid::signed(12).unwrap()
    } else {
        Grid::I8
    };
    Codebook::uniform(grid, bits, Polarity::SignedMidrise).unwrap()
}

/// The 4-bit round trip (IQ4_NL levels, max-abs scale) under measurement `M`.
fn round_trip<M: criterion::measurement::Measurement>(c: &mut Criterion<M>, group: &str) {
    let xs = data();
    let mut out = vec![0f32; N];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let cb = Codebook::iq4_nl();
    let scale = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
    g.bench_function("4bit", |b| {
        b.iter(|| {
            let q = QuantizedTensor::quantize(black_box(&xs), &[N], &cb, scale).unwrap();
            q.dequantize_into(&mut out).unwrap();
            black_box(&out);
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    round_trip(c, "quantize_dequantize");
    let xs = data();
    let mut out = vec![0f32; N];

    for (name, quantize) in [("quantize", true), ("dequantize", false)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(N as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(3));
        for bits in [2u8, 3, 4, 8] {
            let cb = codebook(bits);
            let scale = Calibration::MaxAbs.scale(&xs, &cb).unwrap();
            let q = QuantizedTensor::quantize(&xs, &[N], &cb, scale).unwrap();
            g.bench_with_input(
                BenchmarkId::from_parameter(format!("{bits}bit")),
                &bits,
                |b, _| {
                    if quantize {
                        b.iter(|| {
                            black_box(
                                QuantizedTensor::quantize(black_box(&xs), &[N], &cb, scale)
                                    .unwrap(),
                            )
                        })
                    } else {
                        b.iter(|| {
                            q.dequantize_into(&mut out).unwrap();
                            black_box(&out);
                        })
                    }
                },
            );
        }
        g.finish();
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod cpu_time {
    //! A criterion measurement that reads the calling thread's CPU clock.

    use criterion::measurement::{Measurement, ValueFormatter};
    use criterion::Throughput;

    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }

    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }

    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

    fn now_ns() -> u64 {
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `clock_gettime` writes one `struct timespec` (two 64-bit fields on 64-bit
        // Linux, matching `Timespec`) through a pointer to a live, writable local.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
    }

    /// Nanoseconds of CPU time spent by the benchmarking thread.
    pub struct ThreadCpuTime;

    impl Measurement for ThreadCpuTime {
        type Intermediate = u64;
        type Value = u64;
        fn start(&self) -> u64 {
            now_ns()
        }
        fn end(&self, start: u64) -> u64 {
            now_ns() - start
        }
        fn add(&self, a: &u64, b: &u64) -> u64 {
            a + b
        }
        fn zero(&self) -> u64 {
            0
        }
        fn to_f64(&self, v: &u64) -> f64 {
            *v as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            &CpuFormatter
        }
    }

    struct CpuFormatter;

    impl ValueFormatter for CpuFormatter {
        fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
            let (factor, unit) = if ns < 1e3 {
                (1.0, "ns cpu")
            } else if ns < 1e6 {
                (1e-3, "µs cpu")
            } else if ns < 1e9 {
                (1e-6, "ms cpu")
            } else {
                (1e-9, "s cpu")
            };
            values.iter_mut().for_each(|v| *v *= factor);
            unit
        }

        fn scale_throughputs(
            &self,
            typical: f64,
            t: &Throughput,
            values: &mut [f64],
        ) -> &'static str {
            let per_iter = match *t {
                Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n,
                Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Bits(n) => n,
            } as f64;
            let rate = per_iter * 1e9 / typical;
            let (div, unit) = if rate < 1e6 {
                (1e3, "K/s cpu")
            } else if rate < 1e9 {
                (1e6, "M/s cpu")
            } else {
                (1e9, "G/s cpu")
            };
            values
                .iter_mut()
                .for_each(|v| *v = per_iter * 1e9 / *v / div);
            unit
        }

        fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
            "ns"
        }
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn bench_cpu_time(c: &mut Criterion<cpu_time::ThreadCpuTime>) {
    round_trip(c, "cpu_time/quantize_dequantize");
}

criterion_group!(benches, bench);
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(cpu_time::ThreadCpuTime);
    targets = bench_cpu_time
}
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
criterion_main!(benches, cpu_benches);
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
criterion_main!(benches);
