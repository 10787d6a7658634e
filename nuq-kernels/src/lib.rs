//! # nuq-kernels
//!
//! SIMD integer kernels for codebook-quantized CNN inference — the fused convolution
//! (im2col + codebook GEMM + threshold requantization), the residual join and pooling —
//! with AVX-512 VNNI (with VBMI, or without it: Cascade Lake), AVX-VNNI, AVX2, portable
//! (`wide`) and scalar reference paths that are bit-exact with each other and chosen at run
//! time ([`KernelPath::detect`], overridable with
//! `NUQ_KERNEL=scalar|portable|avx2|avxvnni|avx512vnni-novbmi|avx512|amx`, and passed
//! explicitly to every kernel). `amx` (the GEMM on AMX-INT8 tiles) is chosen where a short
//! run at first use finds it exact and faster than AVX-512 ([`probe`]). Beside them, [`float_conv`] holds the `f32` convolution that float training runs
//! on AVX-512 CPUs.
//!
//! | module | what |
//! |---|---|
//! | [`packed`] | weight pre-packing: [`Weights`] — [`PackedWeights`] (int8 panels) or [`CodebookWeights`] (2/3/4-bit indices + the tensor's int8 codebook); the layouts |
//! | [`conv`] | [`conv::Conv`]: the fused convolution — row/column tiles that each unfold their im2col rows, run the block GEMM and requantize (bias folded into the thresholds) while in cache |
//! | [`float_conv`] | the direct `f32` convolution of training (forward, input gradient, weight gradient) on NHWC tensors, without an im2col matrix (AVX-512F) |
//! | [`mod@gemm`] | [`gemm()`]: `u8` activations × packed weights; rayon tiles, thread-count independent; one `GemmKernel` per path |
//! | [`threshold`] | [`threshold::Thresholds`]: FINN MultiThreshold, per-channel ascending or descending |
//! | [`residual_threshold`] | [`residual_threshold::ResidualThresholds`]: residual join (shift + fixed-point aligned shortcut) requantized to levels by 64-bit thresholds |
//! | [`window`] | [`Window`]: the geometry of a convolution's or max-pool's square window |
//! | [`pool`] | integer max-pool, global average pool (rounded half up) |
//! | [`overflow`] | the `K·max|w|·max|a|` accumulator bound, enforced by every GEMM |
//! | [`archparam`] | every tiling and tuning number, each with what it trades off (one tile policy serves the GEMMs and the convolution); the cache-sized ones are shares of this core's L2 |
//! | [`probe`] | [`probe::PathProbe`]: a path tried against the one it would replace on two ResNet-shaped layers — chosen only if every sum matches and it is faster (AMX, once per process) |
//! | [`cache`] | [`CacheSizes`]: one core's L1d / L2 / L3, read once from CPUID (leaf 4 or `0x8000_001D`) |
//!
//! A 2-row × 3-column integer product on the best path this CPU has (every path gives the
//! same integers):
//!
//! ```
//! use nuq_kernels::{gemm, KernelPath, Weights};
//!
//! let a: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];                 // 2 × 4 activation levels
//! let idx: [u8; 12] = [1, 0, 0, 0, 0, 1, 0, 0, 2, 2, 2, 2];   // 3 × 4 weight indices ...
//! let w = Weights::pack(&idx, 3, 4, 2, &[0, 1, -1])?;         // ... into a 2-bit codebook
//! let mut c = [0i32; 6];
//! gemm(KernelPath::best_available(), &a, 4, 2, &w, &mut c, 3)?;
//! assert_eq!(c, [1, 2, -10, 5, 6, -26]);
//! # Ok::<(), nuq_kernels::KernelError>(())
//! ```
//!
//! Data layouts: activations are NHWC `u8` (levels of an unsigned activation codebook),
//! row-major `[pixel][channel]`; weights are `W[cout][k]` with OHWI filters flattened
//! in `(ky, kx, ci)` order and pre-packed once (layouts in [`packed`]); accumulators are
//! `i32`, row-major `[pixel][channel]`. Every `unsafe` block carries a `SAFETY:` comment
//! and every SIMD path is compared bit for bit with the scalar reference by the proptests
//! in `tests/`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod archparam;
pub mod cache;
pub mod conv;
mod error;
pub mod float_conv;
pub mod gemm;
mod narrow_align;
pub mod overflow;
pub mod packed;
mod path;
pub mod pool;
pub mod probe;
pub mod residual_threshold;
pub mod threshold;
#[cfg(target_arch = "x86_64")]
mod threshold_search;
mod tiling;
mod tuning;
pub mod window;

pub use cache::CacheSizes;
pub use error::KernelError;
pub use gemm::gemm;
pub use packed::{CodebookWeights, PackedWeights, Weights, PANEL};
pub use path::KernelPath;
pub use tuning::Tuning;
pub use window::Window;
