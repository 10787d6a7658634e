//! # nuq-benches
//!
//! Criterion benchmarks (`cargo bench -p nuq-benches`) and the measurement report binaries
//! whose figures the README and `benches/PERF.md` quote.
//!
//! [`cpu`] names the machine in every report's first line; [`peak`] is the register-only VNNI loop the GEMM figures are measured against; [`infer`] holds what the integer-inference report (`infer-report`) and bench share: the
//! random full-width CIFAR models and the timing loop.

pub mod cpu;
pub mod infer;
pub mod peak;
