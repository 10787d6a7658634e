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
//! | `grouped` | grouped convolutions (`1 < channels / groups < channels`): each group's channels gathered, convolved by the tiles, and scattered into its output channels |
//! | `depthwise` | depthwise convolutions (`channels / groups == 1`, any channel multiplier): a direct kernel over NHWC rows that multiplies whole vectors of channels per tap |
//! | `border` | where the padding byte is zero: each output pixel's live taps (its window inside the image), and a tile's rows grouped by them so that the VNNI kernels (AVX-VNNI, AVX-512) skip the border's zeros — where the multiply-adds saved outweigh the shorter register tiles |
//! | `tiles` | the tile driver: row tiles (which on the VNNI paths gather their rows — an implicit im2col — from the input itself where the border taps they skip leave nothing to pad, else from their own padded copy of the input rows they read; channels that are not whole 4-byte groups are padded with zeros, as are int8 weights kept for it), or, for short outputs with heavy weights, column tiles over one im2col matrix, padded input or the input; each tile finishes its own block |
//!
//! [`Conv::grouped`] compiles a grouped convolution (PyTorch semantics: output channel `o`
//! reads only the input channels of its group `g = o / (n / groups)`, weight rows of
//! `k = kernel² · channels / groups`); the accumulator bound and the overflow checks use that
//! per-group `k`.
//!
//! [`Conv::run_join`] fuses the residual join that reads a convolution's `acc + bias` into
//! the tiles, so the `i32` tensor is never written; [`Conv::run_pooled`] fuses a 2×2,
//! stride-2 max-pool of its levels (each tile pools its accumulators, in each channel's
//! direction, and requantizes a quarter as many).
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
//! let shape = Window::new(2, 2, 1, 3, 1, 1); // 2×2×1 input, 3×3 kernel, stride 1, padding 1
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

mod border;
mod depthwise;
mod epilogue;
mod grouped;
mod tiles;
mod unfold;

pub use epilogue::{ConvOut, Requantize};

use crate::error::{check_eq, check_len};
use crate::residual_threshold::{ResidualThresholds, Shortcut};
use crate::window::Window;
use crate::{KernelError, KernelPath, Weights};
use border::{Borders, Sorted};
use depthwise::Depthwise;
use epilogue::Epilogue;
use grouped::Grouped;
use tiles::Finish;

/// A convolution compiled for the kernels (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Conv {
    shape: Window,
    n: usize,
    body: Body,
}

/// How a convolution runs, by its channel groups.
#[derive(Debug, Clone)]
enum Body {
    /// One group: the im2col tiles over every channel.
    Dense(Dense),
    /// Several groups of several channels each.
    Grouped(Grouped),
    /// One input channel per group.
    Depthwise(Depthwise),
}

/// One group's convolution over all of its (contiguous) input channels, run by the tiles.
#[derive(Debug, Clone)]
struct Dense {
    shape: Window,
    /// The byte each input channel pads with.
    pad: Vec<u8>,
    weights: Weights,
    /// For channels that are not whole 4-byte groups (an RGB image): the weights again with
    /// each tap's channels padded to a multiple of 4 by zero weights, for row tiles that
    /// gather from an input copy padded the same way.
    gather_weights: Option<Box<Weights>>,
    epilogue: Epilogue,
    /// The live taps of border pixels, where the padding byte is zero: the VNNI
    /// tiles skip the others ([`border`]).
    borders: Option<Box<Borders>>,
    /// Where the levels can be max-pooled as accumulators ([`Conv::run_pooled`]): each
    /// channel's flip to the order its levels follow.
    pool_flip: Option<Vec<i32>>,
}

/// The im2col matrix (or padded input), accumulators and staged levels of short outputs
/// (column tiles) and the padded input of gathered row tiles, and a grouped convolution's
/// per-group input and output, kept by the caller so that they grow once and are reused
/// across layers and calls.
#[derive(Debug, Default)]
pub struct ConvScratch {
    /// The im2col matrix, or the padded input of gathered rows.
    cols: Vec<u8>,
    acc: Vec<i32>,
    staged: Vec<u8>,
    /// Where each gathered row starts in the padded input.
    rows_at: Vec<usize>,
    /// The gathered rows ordered by their live taps (column tiles).
    sorted: Sorted,
    /// One group's input channels (grouped convolutions).
    group_x: Vec<u8>,
    /// One group's output levels (grouped convolutions).
    group_levels: Vec<u8>,
    /// One group's, or the whole layer's, `acc + bias` (grouped convolutions).
    group_acc: Vec<i32>,
}

impl Dense {
    /// Compiles one group: `shape.channels` are the group's input channels.
    fn new(
        shape: Window,
        pad: &[u8],
        weights: Weights,
        bias: &[i32],
        output: Requantize<'_>,
    ) -> Result<Dense, KernelError> {
        let bound = shape.k() as u128 * u128::from(weights.max_abs()) * 255;
        let epilogue = Epilogue::new(output, bias, bound)?;
        let gather_weights = if shape.channels.is_multiple_of(4) || shape.direct() {
            None
        } else {
            Some(Box::new(channel_padded(&weights, &shape)?))
        };
        let borders = if pad.iter().all(|&b| b == 0) && !shape.direct() {
            Borders::new(&shape, shape.channels.next_multiple_of(4)).map(Box::new)
        } else {
            None
        };
        let pool_flip = epilogue.pool_flip();
        Ok(Dense {
            shape,
            pad: pad.to_vec(),
            weights,
            gather_weights,
            epilogue,
            borders,
            pool_flip,
        })
    }

    /// Output channels.
    fn n(&self) -> usize {
        self.weights.n()
    }
}

/// `weights` (rows of `k = kernel² · c`, `c = shape.channels`) as int8 rows of
/// `kernel² · c4` with `c4` the channels rounded up to a multiple of 4: each tap's weights
/// followed by zeros for the padding channels.
fn channel_padded(weights: &Weights, shape: &Window) -> Result<Weights, KernelError> {
    let (c, taps, n) = (shape.channels, shape.kernel * shape.kernel, weights.n());
    let c4 = c.next_multiple_of(4);
    let mut rows = vec![0i8; n * taps * c4];
    for (o, row) in rows.chunks_exact_mut(taps * c4).enumerate() {
        for (t, tap) in row.chunks_exact_mut(c4).enumerate() {
            for (ci, w) in tap[..c].iter_mut().enumerate() {
                *w = weights.level(o, t * c + ci);
            }
        }
    }
    crate::packed::PackedWeights::from_rows(&rows, n, taps * c4).map(Weights::Int8)
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
        Conv::grouped(shape, 1, pad, weights, bias, output)
    }

    /// Compiles a convolution of `groups` channel groups: output channel `o` reads only
    /// the input channels `g·c .. (g+1)·c` of its group `g = o / (n / groups)`, with
    /// `c = shape.channels / groups`; `weights` has one row of `k = kernel² · c` per output
    /// channel (`(ky, kx, ci)` order, `ci` within the group). `groups == 1` is
    /// [`Conv::new`]; `groups == shape.channels` is a depthwise convolution (any channel
    /// multiplier `n / groups`).
    ///
    /// # Errors
    /// As [`Conv::new`]; [`KernelError::Unsupported`] for a group count that does not
    /// divide both the input and the output channels.
    pub fn grouped(
        shape: Window,
        groups: usize,
        pad: &[u8],
        weights: Weights,
        bias: &[i32],
        output: Requantize<'_>,
    ) -> Result<Conv, KernelError> {
        shape.validate("conv kernel")?;
        let (channels, n) = (shape.channels, weights.n());
        if groups == 0 || !channels.is_multiple_of(groups) || !n.is_multiple_of(groups) {
            return Err(KernelError::Unsupported {
                what: "channel groups",
                value: groups as i64,
                allowed: "a divisor of both the input and the output channels",
            });
        }
        check_eq("padding bytes (one per channel)", channels, pad.len())?;
        let k = shape.kernel * shape.kernel * (channels / groups);
        check_eq(
            "weight row length (kernel² · channels / groups)",
            k,
            weights.k(),
        )?;
        check_eq("bias (one per output channel)", n, bias.len())?;
        if let Requantize::Levels { thresholds, .. } = output {
            check_eq(
                "threshold rows (one per output channel)",
                n,
                thresholds.channels(),
            )?;
        }
        let body = if groups == 1 {
            Body::Dense(Dense::new(shape, pad, weights, bias, output)?)
        } else if channels == groups {
            Body::Depthwise(Depthwise::new(shape, pad, &weights, bias, output)?)
        } else {
            Body::Grouped(Grouped::new(shape, groups, pad, &weights, bias, output)?)
        };
        Ok(Conv { shape, n, body })
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether the convolution writes levels (else `acc + bias`).
    fn writes_levels(&self) -> bool {
        match &self.body {
            Body::Dense(d) => d.epilogue.writes_levels(),
            Body::Grouped(g) => g.writes_levels(),
            Body::Depthwise(d) => d.writes_levels(),
        }
    }

    /// The output pixels of `images` images (the GEMM's rows), once `x` is checked to hold
    /// those images.
    fn checked_rows(&self, x: &[u8], images: usize) -> Result<usize, KernelError> {
        let s = self.shape;
        let x_len = images * s.height * s.width * s.channels;
        check_len("conv input", x_len, x.len())?;
        Ok(images * s.out_height() * s.out_width())
    }

    /// The error for an output buffer of the other kind.
    fn kind_error(&self) -> KernelError {
        KernelError::OutputKind {
            expected: if self.writes_levels() {
                "u8 levels"
            } else {
                "i32 accumulators"
            },
        }
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
        let m = self.checked_rows(x, images)?;
        check_len("conv output", m * self.n(), out.len())?;
        if matches!(out, ConvOut::Levels(_)) != self.writes_levels() {
            return Err(self.kind_error());
        }
        if m == 0 {
            return Ok(());
        }
        match &self.body {
            Body::Dense(d) => d.tiles(path, x, m, out, Finish::Epilogue, scratch),
            Body::Grouped(g) => g.run(path, x, images, out, scratch),
            Body::Depthwise(d) => d.run(path, x, images, out, Finish::Epilogue),
        }
    }

    /// Whether [`Conv::run_pooled`] runs this convolution: one channel group, levels that do
    /// not decrease with the code, and an even output height and width.
    pub fn pools(&self) -> bool {
        self.pooling().is_some()
    }

    /// The one group's tiles and each channel's flip, where [`Conv::pools`].
    fn pooling(&self) -> Option<(&Dense, &[i32])> {
        let s = self.shape;
        let even = s.out_height().is_multiple_of(2) && s.out_width().is_multiple_of(2);
        match &self.body {
            Body::Dense(d) if even => Some((d, d.pool_flip.as_deref()?)),
            _ => None,
        }
    }

    /// The convolution followed by a 2×2, stride-2 max-pool of its levels (no padding):
    /// `out` (`[image][oy / 2][ox / 2][channel]`) gets exactly what [`Conv::run`] and
    /// [`max_pool_u8_batch`](crate::pool::max_pool_u8_batch) give, while each tile's
    /// accumulators are in cache. Codes do not decrease along each channel's direction
    /// (rising: with the accumulator; falling: against it) and the levels do not decrease
    /// with the code, so the window's largest level is the level of its largest accumulator
    /// (smallest, falling): each tile pools its accumulators first and requantizes a quarter
    /// as many — the full-size levels are never written.
    ///
    /// # Errors
    /// As [`Conv::run`]; [`KernelError::Unsupported`] where [`Conv::pools`] is false.
    pub fn run_pooled(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        out: &mut [u8],
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        path.ensure_available()?;
        let Some((d, flip)) = self.pooling() else {
            return Err(KernelError::Unsupported {
                what: "pooled convolution (one group, ascending levels, even output size)",
                value: self.shape.out_width() as i64,
                allowed: "a convolution for which Conv::pools is true",
            });
        };
        let m = self.checked_rows(x, images)?;
        check_len("pooled conv output", m / 4 * self.n(), out.len())?;
        if m == 0 {
            return Ok(());
        }
        let finish = Finish::Pool {
            width: self.shape.out_width(),
            flip,
        };
        d.tiles(path, x, m, ConvOut::Levels(out), finish, scratch)
    }

    /// A convolution compiled to hand on `acc + bias` ([`Requantize::Accumulator`]) fused
    /// with the residual join that reads it: `out` gets exactly what
    /// [`ResidualThresholds::apply`] gives for this convolution's output as its main branch
    /// and `shortcut` (`[pixel][channel]`, same shape), while each tile's accumulators are
    /// still in cache — the `i32` tensor is never written (grouped convolutions of several
    /// channels per group write it to `scratch` and join it after).
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
        if self.writes_levels() {
            return Err(KernelError::OutputKind {
                expected: "i32 accumulators (a join fuses a convolution that hands on acc + bias)",
            });
        }
        check_eq(
            "residual join channels (one per output channel)",
            self.n(),
            join.channels(),
        )?;
        let m = self.checked_rows(x, images)?;
        check_len("residual shortcut", m * self.n(), shortcut.len())?;
        check_len("conv output", m * self.n(), out.len())?;
        if m == 0 {
            return Ok(());
        }
        let finish = Finish::Join(join, shortcut);
        match &self.body {
            Body::Dense(d) => d.tiles(path, x, m, ConvOut::Levels(out), finish, scratch),
            Body::Grouped(g) => g.run_join(path, x, images, join, shortcut, out, scratch),
            Body::Depthwise(d) => d.run(path, x, images, ConvOut::Levels(out), finish),
        }
    }
}
