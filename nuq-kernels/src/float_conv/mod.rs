//! Direct `f32` convolution for training on NHWC tensors, without an im2col matrix: the
//! forward pass, the input gradient (for each phase of the input pixels modulo the stride, a
//! convolution of the output gradient with the taps that reach that phase: [`GradFilter`])
//! and the weight gradient.
//!
//! Each register tile reads its input pixels where they lie: a table gives, for every
//! output pixel of a chunk and every kernel tap, the address of the input pixel's channels
//! (or of a zero row in the padding). The forward tile holds 6 output pixels × 64 output
//! channels in registers and, for each input channel of each tap, broadcasts one value per
//! pixel against four vectors of a packed filter block ([`Filter`], `[k][64]`); the
//! weight-gradient tile holds up to 6 reduction indices × 64 output channels and runs over
//! the pixels. No column matrix is written and no operand is repacked per call, which the
//! im2col + GEMM formulation spends about a tenth of a training step on.
//!
//! AVX-512F only ([`available`]: either AVX-512 VNNI path chosen, [`KernelPath::is_avx512`]), output
//! channels a multiple of 16, one channel group; callers keep another formulation for the
//! rest. Sums run in a fixed order (taps, then channels, within blocks of taps sized by
//! [`archparam::FLOAT_PANEL_BYTES`](crate::archparam::FLOAT_PANEL_BYTES)): the same inputs give the same
//! bits whatever the threads.
//!
//! ```
//! use nuq_kernels::float_conv::{self, ConvGeometry, Filter};
//!
//! // One 3×3 image of 1 channel, a 3×3 kernel with padding 1, 16 output channels that each
//! // sum the window times their index.
//! let g = ConvGeometry::square(1, 3, 1, 16, 3, 1, 1);
//! let w: Vec<f32> = (0..16).flat_map(|o| [o as f32; 9]).collect(); // OHWI
//! let x = [1.0f32; 9];
//! if float_conv::supports(&g) {
//!     let filter = Filter::forward(&g, &w)?;
//!     let mut y = vec![0.0f32; 9 * 16];
//!     float_conv::forward(&g, &x, &filter, 0, &mut y)?;
//!     assert_eq!(y[4 * 16 + 2], 18.0); // the centre pixel sees all 9 ones, times 2
//!     assert_eq!(y[2], 8.0); // a corner sees 4
//! }
//! # Ok::<(), nuq_kernels::KernelError>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx512;
mod filter;
mod geometry;
#[cfg(target_arch = "x86_64")]
mod tiles;

pub use filter::{Filter, GradFilter};
pub use geometry::ConvGeometry;

use crate::error::{check_eq, check_len};
use crate::{KernelError, KernelPath};

/// Output channels of one filter block (four vectors of 16 lanes).
const BLOCK: usize = 64;
/// Output pixels of one forward register tile.
const TILE_ROWS: usize = 6;

/// True where the direct kernels run: AVX-512F, where [`KernelPath::detect`] chooses an
/// AVX-512 path (so `NUQ_KERNEL=avx2` turns them off; [`KernelPath::detects_avx512`]).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| KernelPath::detects_avx512().unwrap_or(false))
}

/// True when [`forward`] and [`weight_grad`] run `g` here: [`available`], a valid window
/// and output channels a positive multiple of 16 ([`supports_input_grad`] adds the input
/// channels).
pub fn supports(g: &ConvGeometry) -> bool {
    available() && g.checked().is_ok()
}

/// The output size of a geometry the kernels run here, else why not.
fn ready(g: &ConvGeometry) -> Result<(usize, usize), KernelError> {
    let out = g.checked()?;
    match available() {
        true => Ok(out),
        false => Err(unavailable()),
    }
}

fn unavailable() -> KernelError {
    KernelError::PathUnavailable {
        path: "avx512 (f32 direct convolution)",
    }
}

/// Output pixels `row0 ..` (`y.len() / c_out` of them, NHWC rows of `c_out`) of the
/// convolution of the images `x` (`n × h × w × c_in`) with `filter`, into `y`
/// (overwritten). One thread; callers split the pixels.
///
/// # Errors
/// [`KernelError::PathUnavailable`] where not [`available`]; [`KernelError::Unsupported`]
/// for a geometry [`supports`] refuses; [`KernelError::ShapeMismatch`] or
/// [`KernelError::SliceTooShort`] when `x`, `filter` or `y` do not match `g`.
pub fn forward(
    g: &ConvGeometry,
    x: &[f32],
    filter: &Filter,
    row0: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let (oh, ow) = ready(g)?;
    check_eq("input values", g.n * g.h * g.w * g.c_in, x.len())?;
    check_eq("filter rows", g.k(), filter.k)?;
    check_eq("filter output channels", g.c_out, filter.c_out)?;
    check_eq("output values", 0, y.len() % g.c_out)?;
    let rows = y.len() / g.c_out;
    check_len("output pixels", row0 + rows, g.n * oh * ow)?;
    #[cfg(target_arch = "x86_64")]
    {
        tiles::forward(g, (oh, ow), x, filter, row0, y);
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, filter, row0, rows);
        Err(unavailable())
    }
}

/// True when [`input_grad`] runs `g` here: [`supports`], and input channels (the
/// gradient's lanes) a multiple of 16.
pub fn supports_input_grad(g: &ConvGeometry) -> bool {
    supports(g) && g.c_in.is_multiple_of(16)
}

/// Input-gradient pixels `row0 ..` (`dx.len() / c_in` of them, NHWC rows of `c_in`) of the
/// convolution `g` from the output gradient `dy` (`n × oh × ow × c_out`) and the filter
/// packed by [`GradFilter::new`], into `dx` (overwritten; pixels no tap reaches get zeros).
/// One thread.
///
/// # Errors
/// As [`forward`]; [`KernelError::ShapeMismatch`] naming the first field of the geometry
/// that differs from the one `filter` was packed for.
pub fn input_grad(
    g: &ConvGeometry,
    dy: &[f32],
    filter: &GradFilter,
    row0: usize,
    dx: &mut [f32],
) -> Result<(), KernelError> {
    let (oh, ow) = ready(g)?;
    filter.geometry.check_same(g)?;
    check_eq("output-gradient values", g.n * oh * ow * g.c_out, dy.len())?;
    check_eq("input-gradient values", 0, dx.len() % g.c_in)?;
    let rows = dx.len() / g.c_in;
    check_len("input pixels", row0 + rows, g.n * g.h * g.w)?;
    #[cfg(target_arch = "x86_64")]
    {
        tiles::input_grad(g, (oh, ow), dy, filter, row0, dx);
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (dy, filter, row0, rows, dx);
        Err(unavailable())
    }
}

/// Adds to `dwt` (`k × c_out`: the transposed OHWI weight gradient, row `(ky, kx, ci)`)
/// the weight gradient of output pixels `row0 ..` (`dy.len() / c_out` of them, whose output
/// gradient rows are `dy`) of the convolution of `x` (`n × h × w × c_in`). One thread.
///
/// # Errors
/// As [`forward`].
pub fn weight_grad(
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    row0: usize,
    dwt: &mut [f32],
) -> Result<(), KernelError> {
    let (oh, ow) = ready(g)?;
    check_eq("input values", g.n * g.h * g.w * g.c_in, x.len())?;
    check_eq("output-gradient values", 0, dy.len() % g.c_out)?;
    check_eq("weight-gradient values", g.k() * g.c_out, dwt.len())?;
    let rows = dy.len() / g.c_out;
    check_len("output pixels", row0 + rows, g.n * oh * ow)?;
    #[cfg(target_arch = "x86_64")]
    {
        tiles::weight_grad(g, (oh, ow), x, dy, row0, dwt);
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, dy, row0, rows, dwt);
        Err(unavailable())
    }
}
