//! # nuq-benches
//!
//! Criterion benchmarks (`cargo bench -p nuq-benches`) and the measurement report binaries
//! whose figures the README and `benches/PERF.md` quote.
