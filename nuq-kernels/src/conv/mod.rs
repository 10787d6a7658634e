//! The fused convolution: im2col, block GEMM and requantization, tiled so that each tile
//! unfolds, multiplies and requantizes its own block while it is in cache.
//!
//! A [`Conv`] is compiled once per layer from plain data — the [`Window`], the packed
//! [`Weights`] (indices `[c_out][k]`, `k` in `(ky, kx, ci)` order, with their int8 levels:
//! [`Weights::pack`] chooses codebook indices for 2–4 bits, int8 otherwise), the bias and the
//! output wanted ([`Requantize`]: levels through `nuq-core`'s
//! [`MacThresholds`](nuq_core::MacThresholds), or `acc + bias`) — and run on batches of NHWC `u8`
//! images into NHWC levels or `i32` ([`ConvOut`]).
//!
//! | file | what |
//! |---|---|
//! | `unfold` | the im2col plan (on a [`Window`]) and the unfolding of a range of output pixels |
//! | `epilogue` | requantization with bias-folded `i32` thresholds, in 64-bit, or `acc + bias` |
//! | `tiles` | the tile driver: row tiles (which on the AVX-512 path gather their rows from a padded copy of the input when the channels come in whole 4-byte groups — an implicit im2col), or column tiles over one im2col matrix for short outputs; each tile finishes its own block |
//!
//! [`Conv::run_join`] fuses the residual join that reads a convolution's `acc + bias` into
//! the tiles, so the `i32` tensor is never written.
//!
//! Tile sizes come from the crate's one tile policy (`archparam` holds its numbers).
//! Every output element is computed by exactly one tile with exact integer arithmetic, so
//! results are bit-identical across kernel paths and thread counts.
//!
//! ## Folding the bias into the thresholds
//!
//! The output is defined on `v = acc + bias` (in 64-bit) as `#{j : v ≥ T_j}` (rising) or
//! `#{j : v ≤ T_j}` (falling). The tiles compare the `i32` accumulator against
//! `T'_j = clamp(T_j − bias, i32)` instead, which is exact as long as the accumulator never
//! reaches `i32::MAX`: a clamped-down `T'_j = i32::MIN` is reached by every `acc` exactly
//! like `T_j − bias < i32::MIN` is, and a clamped-up `T'_j = i32::MAX` is reached by no
//! `acc < i32::MAX` exactly like `T_j − bias > i32::MAX` (mirrored for falling channels,
//! where `acc > i32::MIN` is what matters, and `acc ≥ −bound` holds). The GEMM bounds
//! `|acc|` by `k · max|w| · 255`; a layer whose bound reaches `i32::MAX` keeps the 64-bit
//! definition.
//!
//! ```
//! use nuq_core::{Direction, MacThresholds};
//! use nuq_kernels::conv::{Conv, ConvOut, ConvScratch, Requantize};
//! use nuq_kernels::Window;
//! use nuq_kernels::{KernelPath, Weights};
//!
//! // A 3×3 convolution with padding 1 of one 2×2 single-channel image into two channels:
//! // channel 0 sums the window, channel 1 negates the centre; 1-bit output codes.
//! let shape = Window { height: 2, width: 2, channels: 1, kernel: 3, stride: 1, padding: 1 };
//! let mut indices = vec![1u8; 9]; // level 1 everywhere ...
//! indices.extend([0, 0, 0, 0, 2, 0, 0, 0, 0]); // ... and −1 at the centre
//! let weights = Weights::pack(&indices, 2, 9, 2, &[0, 1, -1])?;
//! let thresholds = MacThresholds::new(1, vec![10, 0], vec![Direction::Rising; 2]).unwrap();
//! let out = Requantize::Levels { thresholds: &thresholds, levels: &[0, 7] };
//! let conv = Conv::new(shape, &[0], weights, &[0, 0], out)?;
//! let mut levels = [0u8; 8];
//! let image = [1, 2, 3, 4]; // sum 10
//! let (path, mut scratch) = (KernelPath::best_available(), ConvScratch::default());
//! conv.run(path, &image, 1, ConvOut::Levels(&mut levels), &mut scratch)?;
//! assert_eq!(levels, [7, 0, 7, 0, 7, 0, 7, 0]);
//! # Ok::<(), nuq_kernels::KernelError>(())
//! ```

mod epilogue;
mod tiles;
mod unfold;

pub use epilogue::{ConvOut, Requantize};

use crate::error::{check_eq, check_len};
use crate::residual_threshold::{ResidualThresholds, Shortcut};
use crate::window::Window;
use crate::{KernelError, KernelPath, Weights};
use epilogue::Epilogue;
use tiles::Finish;

/// A convolution compiled for the kernels (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Conv {
    shape: Window,
    /// The byte each input channel pads with.
    pad: Vec<u8>,
    weights: Weights,
    epilogue: Epilogue,
}

/// The im2col matrix (or padded input), accumulators and staged levels of short outputs
/// (column tiles) and the padded input of gathered row tiles, kept
/// by the caller so that they grow once and are reused across layers and calls.
#[derive(Debug, Default)]
pub struct ConvScratch {
    /// The im2col matrix, or the padded input of gathered rows.
    cols: Vec<u8>,
    acc: Vec<i32>,
    staged: Vec<u8>,
    /// Where each gathered row starts in the padded input.
    rows_at: Vec<usize>,
}

impl Conv {
    /// Compiles a convolution: `pad` is the byte each input channel reads outside the
    /// image (its zero point), `weights` has one row per output channel and `k =
    /// shape.k()`, `bias` one entry per output channel.
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for a zero dimension or a kernel larger than the padded
    /// input; [`KernelError::ShapeMismatch`] when the padding bytes, weights, bias,
    /// thresholds or levels disagree about a size.
    pub fn new(
        shape: Window,
        pad: &[u8],
        weights: Weights,
        bias: &[i32],
        output: Requantize<'_>,
    ) -> Result<Conv, KernelError> {
        shape.validate("conv kernel")?;
        let (channels, k, n) = (shape.channels, shape.k(), weights.n());
        check_eq("padding bytes (one per channel)", channels, pad.len())?;
        check_eq("weight row length (kernel² · channels)", k, weights.k())?;
        check_eq("bias (one per output channel)", n, bias.len())?;
        let bound = shape.k() as u128 * u128::from(weights.max_abs()) * 255;
        let epilogue = Epilogue::new(output, bias, bound)?;
        Ok(Conv {
            shape,
            pad: pad.to_vec(),
            weights,
            epilogue,
        })
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.weights.n()
    }

    /// Convolves `images` NHWC images `x` into `out` (`[image][oy][ox][channel]`) on the
    /// current rayon pool; `scratch` holds the buffers of short outputs.
    ///
    /// # Errors
    /// [`KernelError::SliceTooShort`] for short slices, [`KernelError::OutputKind`] for an
    /// output of the other kind than compiled, [`KernelError::PathUnavailable`],
    /// [`KernelError::AccumulatorOverflow`] when the accumulator bound exceeds `i32` for
    /// these activations, [`KernelError::BiasOverflow`] when `acc + bias` leaves `i32`.
    pub fn run(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        out: ConvOut<'_>,
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        let s = self.shape;
        let m = images * s.out_height() * s.out_width();
        let x_len = images * s.height * s.width * s.channels;
        check_len("conv input", x_len, x.len())?;
        check_len("conv output", m * self.n(), out.len())?;
        if matches!(out, ConvOut::Levels(_)) != self.epilogue.writes_levels() {
            return Err(self.epilogue.kind_error());
        }
        if m == 0 {
            return Ok(());
        }
        self.tiles(path, x, m, out, Finish::Epilogue, scratch)
    }

    /// A convolution compiled to hand on `acc + bias` ([`Requantize::Accumulator`]) fused
    /// with the residual join that reads it: `out` gets exactly what
    /// [`ResidualThresholds::apply`] gives for this convolution's output as its main branch
    /// and `shortcut` (`[pixel][channel]`, same shape), while each tile's accumulators are
    /// still in cache — the `i32` tensor is never written.
    ///
    /// # Errors
    /// As [`Conv::run`]; [`KernelError::OutputKind`] for a convolution that requantizes;
    /// [`KernelError::ShapeMismatch`] when the join's channels differ from the output
    /// channels; [`KernelError::SliceTooShort`] for a short shortcut or output.
    #[allow(clippy::too_many_arguments)]
    pub fn run_join(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        join: &ResidualThresholds,
        shortcut: Shortcut<'_>,
        out: &mut [u8],
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        if self.epilogue.writes_levels() {
            return Err(KernelError::OutputKind {
                expected: "i32 accumulators (a join fuses a convolution that hands on acc + bias)",
            });
        }
        check_eq(
            "residual join channels (one per output channel)",
            self.n(),
            join.channels(),
        )?;
        let s = self.shape;
        let m = images * s.out_height() * s.out_width();
        check_len(
            "conv input",
            images * s.height * s.width * s.channels,
            x.len(),
        )?;
        check_len("residual shortcut", m * self.n(), shortcut.len())?;
        check_len("conv output", m * self.n(), out.len())?;
        if m == 0 {
            return Ok(());
        }
        let finish = Finish::Join(join, shortcut);
        self.tiles(path, x, m, ConvOut::Levels(out), finish, scratch)
    }
}
