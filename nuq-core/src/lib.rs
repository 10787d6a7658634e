//! # nuq-core
//!
//! Integer-grid non-uniform codebooks, the single-scale quantized tensor and bit packing: the
//! representation every other nuq crate builds on. `no_std` + `alloc`.
//!
//! nuq implements the quantizer of Liss et al., *Efficient non-uniform quantizer for quantized
//! neural network targeting reconfigurable hardware* (arXiv 1811.10869): weights and
//! activations are **integers under a single scale**, a `b`-bit index decodes through a small
//! lookup table into a plain integer, and hardware multiplies integers, never floats.
//!
//! ## The concepts
//!
//! * A [`Grid`] is the set of integers levels may take: signed (symmetric, `-127..=127` at 8
//!   bits) or unsigned (`0..=255`), 2 to 16 bits wide. It is what the multiplier takes.
//! * A [`Codebook`] is up to `2^b` strictly increasing levels on a grid (`b` in `1..=8`):
//!   the lookup table from a `b`-bit index to an integer. Index order is level order.
//!   Families: [`uniform`](Codebook::uniform), [`power_of_two`](Codebook::power_of_two),
//!   [`apot`](Codebook::apot), [`mu_law`](Codebook::mu_law),
//!   [`normal_float`](Codebook::normal_float), [`explicit`](Codebook::explicit) /
//!   [`iq4_nl`](Codebook::iq4_nl), and the data-fitted [`k_quantile`](Codebook::k_quantile)
//!   and [`lloyd_max`](Codebook::lloyd_max); a codebook carries its [`Family`], whose one-byte
//!   code is what the `.nuq` file stores.
//! * A [`Scale`] is the positive real `s` with `real = s × level`, one per tensor or one per
//!   output channel ([`Scales`]). Its hardware forms are a power of two
//!   ([`Scale::to_pow2`]) and a fixed-point multiplier ([`FixedPointMultiplier`]).
//!   [`Calibration`] chooses it for a codebook: max-abs, percentile or MSE-optimal.
//! * A [`QuantizedTensor`] holds a shape, a codebook, its scales and the bit-packed indices;
//!   it quantizes from `f32`, `f16` and `bf16`, dequantizes, exposes the integer levels and
//!   measures its error ([`ErrorStats`]: MSE and SQNR).
//!
//! ```
//! use nuq_core::{Calibration, Codebook, Grid, Polarity, QuantizedTensor};
//!
//! let weights: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin()).collect();
//! let codebook = Codebook::apot(Grid::I8, 4, Polarity::Signed)?;       // 15 levels on ±120
//! let scale = Calibration::MseOptimal.scale(&weights, &codebook)?;
//! let q = QuantizedTensor::quantize(&weights, &[8, 8], &codebook, scale)?;
//! assert_eq!(q.indices().as_bytes().len(), 32);                       // 64 × 4 bits
//! assert!(q.integer_levels().iter().all(|l| codebook.levels().contains(l)));
//! assert!(q.error_stats(&weights)?.sqnr_db > 15.0);
//! # Ok::<(), nuq_core::Error>(())
//! ```
//!
//! ## Thresholds, the tie rule, and MAC thresholds
//!
//! Nearest-level quantization is a comparator bank. Between levels `l[i] < l[i+1]` lies the
//! decision threshold `t[i] = (l[i] + l[i+1]) / 2` ([`Codebook::thresholds`], exact
//! half-integers; [`Codebook::doubled_thresholds`] gives `2·t[i]` as integers). A value `u`
//! in grid units gets the index `#{i : u >= t[i]}`: a value exactly on a threshold goes to
//! the **upper** level. For integer inputs this is `#{i : v >= T[i]}` with
//! `T[i] = ceil(t[i])` ([`Codebook::integer_thresholds`]).
//!
//! The paper applies the same counting to the *accumulator* of the previous layer: with
//! input scale `s_in`, weight scale `s_w` and output scale `s_out`, an int32 accumulator `a`
//! stands for `a · s_in · s_w`, so its output index is `#{i : a >= ceil(t[i] · s_out /
//! (s_in · s_w))}` — the thresholds of the output codebook multiplied into accumulator units
//! are the paper's integer **MAC thresholds** (with batch-norm folded in, per channel). They
//! are one type, [`MacThresholds`]: per channel `2^b − 1` ascending `i32` thresholds and a
//! [`Direction`] (a negative folded scale makes a channel *falling*: `#{i : a <= T[i]}`),
//! the table the integer model holds, the kernels compile and the `.nuq` file stores.
//!
//! ## Packing layout
//!
//! Indices are one little-endian bit stream, least significant bit first: index `i` occupies
//! stream bits `i·b .. (i+1)·b`, and stream bit `k` is bit `k % 8` of byte `k / 8`. Indices
//! straddle bytes for `b` = 3, 5, 6, 7; the high bits of the last byte are zero; `n` indices
//! take `ceil(n·b/8)` bytes. For `b = 3` and indices `[5, 3, 6, 1]`:
//!
//! ```text
//! stream bits   15..12   11..9   8..6   5..3   2..0
//!               0000     001     110    011    101
//! byte 0 = 0b10_011_101 = 0x9D   (bits 7..0: low two bits of 6, then 3, then 5)
//! byte 1 = 0b0000_001_1 = 0x03   (padding, 1, the top bit of 6)
//! ```
//!
//! ```
//! let p = nuq_core::PackedIndices::pack(&[5, 3, 6, 1], 3)?;
//! assert_eq!(p.as_bytes(), &[0x9D, 0x03]);
//! # Ok::<(), nuq_core::Error>(())
//! ```
//!
//! ## Fitting to the grid
//!
//! Data-fitted codebooks ([`Codebook::k_quantile`], [`Codebook::lloyd_max`]) are fitted in
//! real units on an [`EmpiricalDistribution`] (sorted weighted samples with prefix sums, so
//! the MSE of `k` levels costs `O(k log n)`), then snapped:
//!
//! 1. the scale `s0` puts the outermost real level on the grid's edge;
//! 2. every level rounds to the nearest grid value, pushed apart where two collide so all
//!    stay distinct;
//! 3. local re-optimisation on the grid: coordinate descent moving one level by one grid step
//!    while the weighted MSE of the data falls. k-quantile keeps each level on one of the two
//!    grid values around its real position and keeps `s0`; Lloyd–Max moves levels freely and
//!    alternates the descent with an MSE-optimal re-choice of the scale until neither helps.
//!
//! **Assignment by the CDF.** [`Codebook::k_quantile`] keeps the nearest-level rule of every
//! codebook (bin edges at the midpoints between levels). The k-quantile quantizer as its
//! authors define it assigns each value to the bin where its empirical CDF falls
//! ([`Assignment::Quantile`]): [`EqualMassBins`] holds the value-domain boundaries at the
//! quantiles, and [`Codebook::k_quantile_by_cdf`] returns the indices with one level per bin
//! (its [`BinLevel`], centroid or median), snapped to the grid as a non-decreasing table —
//! bins whose levels round to the same grid value share it. Activation thresholds and weight
//! assignment in `nuq-nn` both cut at [`EqualMassBins::cut_near`].
//!
//! The result is a [`FittedCodebook`]: codebook, scale and the MSE reached. On 10^6 N(0, 1)
//! samples and the signed 8-bit grid Lloyd–Max lands within 0.4 % of Max's optimum at 1–4
//! bits (`cargo run --release -p nuq-core --example lloyd_max`).
//!
//! ## Features
//!
//! * `std` (default): `std::error::Error` for [`Error`] (through `thiserror/std`), `std` for
//!   `half`, and on x86-64 an AVX2 build of the encoder chosen at run time (same results).
//!   Without it the crate is `no_std` + `alloc` (it builds for `thumbv7em-none-eabihf`),
//!   using `libm` for float functions; the API is identical.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)] // one exception: calling the AVX2 build of the encoder after detection

extern crate alloc;

mod calibrate;
mod codebook;
mod empirical;
mod equal_mass;
mod error;
mod family;
mod fixed_point;
mod grid;
mod mac_thresholds;
mod packing;
mod quantized_tensor;
mod quantizer;
mod real;
mod rng;
mod scale;
mod snap;
mod stats;

pub use calibrate::Calibration;
pub use codebook::{Codebook, LloydMaxOptions, Polarity};
pub use empirical::EmpiricalDistribution;
pub use equal_mass::{Assignment, BinLevel, EqualMassBins, KQuantileFit, GAP_SPLIT, MIN_GAP};
pub use error::{Error, Result};
pub use family::Family;
pub use fixed_point::FixedPointMultiplier;
pub use grid::Grid;
pub use mac_thresholds::{Direction, MacThresholds};
pub use packing::{packed_len, PackedIndices};
pub use quantized_tensor::QuantizedTensor;
pub use quantizer::Quantizer;
pub use real::Real;
pub use rng::Rng;
pub use scale::{Pow2Scale, Scale, Scales};
pub use snap::FittedCodebook;
pub use stats::ErrorStats;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
