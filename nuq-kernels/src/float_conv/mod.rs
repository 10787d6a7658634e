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
//! AVX-512F only ([`available`]: the [`KernelPath::Avx512Vnni`] path chosen), output
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

use crate::archparam::{FLOAT_CHUNK_BYTES, FLOAT_PANEL_BYTES};
use crate::error::{check_eq, check_len};
use crate::{KernelError, KernelPath};
use rayon::prelude::*;

/// Output channels of one filter block (four vectors of 16 lanes).
const BLOCK: usize = 64;
/// Output pixels of one forward register tile.
const TILE_ROWS: usize = 6;

/// The geometry of a convolution over NHWC `f32` tensors with one channel group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel `(height, width)`.
    pub kernel: (usize, usize),
    /// Stride `(vertical, horizontal)`, each ≥ 1.
    pub stride: (usize, usize),
    /// Zero padding `(vertical, horizontal)`.
    pub padding: (usize, usize),
    /// Dilation `(vertical, horizontal)`, each ≥ 1.
    pub dilation: (usize, usize),
}

impl ConvGeometry {
    /// `n` square `hw × hw × c_in` images, a square `k × k` kernel, one stride and padding,
    /// no dilation.
    pub fn square(
        n: usize,
        hw: usize,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            n,
            h: hw,
            w: hw,
            c_in,
            c_out,
            kernel: (k, k),
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (1, 1),
        }
    }

    /// Output `(height, width)`; `None` when the dilated kernel does not fit the padded
    /// input, or a stride, dilation or kernel side is zero.
    pub fn output(&self) -> Option<(usize, usize)> {
        let side = |len: usize, k: usize, s: usize, p: usize, d: usize| {
            if k == 0 || s == 0 || d == 0 {
                return None;
            }
            let span = d * (k - 1) + 1;
            (len + 2 * p).checked_sub(span).map(|v| v / s + 1)
        };
        Some((
            side(
                self.h,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            side(
                self.w,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }

    /// Length of a filter row: `kh · kw · c_in` (OHWI order: taps, then channels).
    pub fn k(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.c_in
    }

    /// [`KernelError::ShapeMismatch`] naming the first field in which `self` (what a filter
    /// was packed for) differs from `g` (the call's).
    fn check_same(&self, g: &ConvGeometry) -> Result<(), KernelError> {
        let fields = [
            ("filter geometry: images", g.n, self.n),
            ("filter geometry: input height", g.h, self.h),
            ("filter geometry: input width", g.w, self.w),
            ("filter geometry: input channels", g.c_in, self.c_in),
            ("filter geometry: output channels", g.c_out, self.c_out),
            ("filter geometry: kernel height", g.kernel.0, self.kernel.0),
            ("filter geometry: kernel width", g.kernel.1, self.kernel.1),
            (
                "filter geometry: vertical stride",
                g.stride.0,
                self.stride.0,
            ),
            (
                "filter geometry: horizontal stride",
                g.stride.1,
                self.stride.1,
            ),
            (
                "filter geometry: vertical padding",
                g.padding.0,
                self.padding.0,
            ),
            (
                "filter geometry: horizontal padding",
                g.padding.1,
                self.padding.1,
            ),
            (
                "filter geometry: vertical dilation",
                g.dilation.0,
                self.dilation.0,
            ),
            (
                "filter geometry: horizontal dilation",
                g.dilation.1,
                self.dilation.1,
            ),
        ];
        fields
            .into_iter()
            .try_for_each(|(what, expected, found)| check_eq(what, expected, found))
    }

    fn checked(&self) -> Result<(usize, usize), KernelError> {
        let (oh, ow) = self.output().ok_or(KernelError::Unsupported {
            what: "convolution window",
            value: (self.kernel.0 * self.kernel.1) as i64,
            allowed: "a kernel, stride and dilation of at least 1 that fit the padded input",
        })?;
        if self.c_out == 0 || !self.c_out.is_multiple_of(16) {
            return Err(KernelError::Unsupported {
                what: "output channels",
                value: self.c_out as i64,
                allowed: "a positive multiple of 16",
            });
        }
        if self.c_in == 0 {
            return Err(KernelError::Unsupported {
                what: "input channels",
                value: 0,
                allowed: "at least 1",
            });
        }
        Ok((oh, ow))
    }
}

/// True where the direct kernels run: AVX-512F through the [`KernelPath::Avx512Vnni`] path,
/// the one [`KernelPath::detect`] chooses (so `NUQ_KERNEL=avx2` turns them off).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| matches!(KernelPath::detect(), Ok(KernelPath::Avx512Vnni)))
}

/// True when [`forward`] and [`weight_grad`] run `g` here: [`available`], a valid window
/// and output channels a positive multiple of 16 ([`supports_input_grad`] adds the input
/// channels).
pub fn supports(g: &ConvGeometry) -> bool {
    available() && g.checked().is_ok()
}

/// A filter packed for the direct kernels: blocks of 64 output channels, each `[k][64]`
/// (the last block padded with zeros).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    data: Vec<f32>,
    k: usize,
    c_out: usize,
}

impl Filter {
    /// Packs OHWI weights `w[c_out][k]` of `g` for [`forward`].
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] when `w` does not hold `c_out · k` values;
    /// [`KernelError::Unsupported`] for a geometry [`supports`] refuses.
    pub fn forward(g: &ConvGeometry, w: &[f32]) -> Result<Self, KernelError> {
        g.checked()?;
        let k = g.k();
        check_eq("filter values", g.c_out * k, w.len())?;
        // Lane `o`, row `j`: `w[o · k + j]`.
        Ok(Self::pack(w, g.c_out, &(0..k).collect::<Vec<_>>(), k))
    }

    /// Lane `l` of row `j` is `w[rows[j] + l · lane_stride]`; blocks packed in parallel.
    fn pack(w: &[f32], c_out: usize, rows: &[usize], lane_stride: usize) -> Self {
        let k = rows.len();
        if k == 0 {
            // A gradient phase that no tap reaches.
            return Self {
                data: Vec::new(),
                k,
                c_out,
            };
        }
        let mut data = vec![0.0f32; c_out.div_ceil(BLOCK) * k * BLOCK];
        data.par_chunks_exact_mut(k * BLOCK)
            .enumerate()
            .for_each(|(b, block)| {
                let lanes = BLOCK.min(c_out - b * BLOCK);
                let first = b * BLOCK * lane_stride;
                for (row, &at) in block.chunks_exact_mut(BLOCK).zip(rows) {
                    for (l, v) in row[..lanes].iter_mut().enumerate() {
                        *v = w[first + at + l * lane_stride];
                    }
                }
            });
        Self { data, k, c_out }
    }
}

/// Output pixels per chunk: the chunk's input (about `rows · c_in` values) stays in L2 while
/// every filter block and tap block passes over it.
fn chunk_rows(c_in: usize) -> usize {
    (FLOAT_CHUNK_BYTES / (4 * c_in)).clamp(256, 4096)
}

/// The address table of output pixels `row0 .. row0 + rows`: entry `t · stride + r` points
/// to the `c_in` channels that tap `t` of pixel `row0 + r` reads, or to `zeros`; the
/// `TILE_ROWS` entries past each tap's last pixel point to `zeros` (a short tile reads them).
fn tap_table(
    g: &ConvGeometry,
    (oh, ow): (usize, usize),
    x: &[f32],
    zeros: &[f32],
    row0: usize,
    rows: usize,
    table: &mut Vec<*const f32>,
) -> usize {
    let stride = rows + TILE_ROWS;
    let (kh, kw) = g.kernel;
    table.clear();
    table.resize(kh * kw * stride, zeros.as_ptr());
    for r in 0..rows {
        let m = row0 + r;
        let (ox, rest) = (m % ow, m / ow);
        let (oy, img) = (rest % oh, rest / oh);
        let iy0 = (oy * g.stride.0) as isize - g.padding.0 as isize;
        let ix0 = (ox * g.stride.1) as isize - g.padding.1 as isize;
        for ky in 0..kh {
            let iy = iy0 + (ky * g.dilation.0) as isize;
            if iy < 0 || iy as usize >= g.h {
                continue;
            }
            for kx in 0..kw {
                let ix = ix0 + (kx * g.dilation.1) as isize;
                if ix < 0 || ix as usize >= g.w {
                    continue;
                }
                let at = ((img * g.h + iy as usize) * g.w + ix as usize) * g.c_in;
                table[(ky * kw + kx) * stride + r] = x[at..at + g.c_in].as_ptr();
            }
        }
    }
    stride
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
    let (oh, ow) = g.checked()?;
    if !available() {
        return Err(unavailable());
    }
    check_eq("input values", g.n * g.h * g.w * g.c_in, x.len())?;
    check_eq("filter rows", g.k(), filter.k)?;
    check_eq("filter output channels", g.c_out, filter.c_out)?;
    check_eq("output values", 0, y.len() % g.c_out)?;
    let rows = y.len() / g.c_out;
    check_len("output pixels", row0 + rows, g.n * oh * ow)?;
    #[cfg(target_arch = "x86_64")]
    {
        forward_x86(g, (oh, ow), x, filter, row0, y);
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

/// One phase of the input gradient: the input pixels `(iy, ix)` with `iy mod s_h = a`,
/// `ix mod s_w = b`, which the same taps reach (those with `a + p_h − ky·d_h` a multiple of
/// `s_h`, likewise across).
#[derive(Debug, Clone)]
struct Phase {
    /// The taps `(ky, kx)`, in the filter's row order.
    taps: Vec<(usize, usize)>,
    /// Rows `(tap, o)`, lanes `ci`: `w[o][ky][kx][ci]`.
    filter: Filter,
}

/// A filter packed for [`input_grad`]: the input gradient of a convolution is, for each
/// phase of the input pixels modulo the stride, a convolution of the output gradient with the
/// taps that reach that phase (one phase with every tap at stride 1).
#[derive(Debug, Clone)]
pub struct GradFilter {
    geometry: ConvGeometry,
    /// Phase `a · s_w + b`.
    phases: Vec<Phase>,
}

impl GradFilter {
    /// Packs the OHWI weights `w[c_out][k]` of `g` for [`input_grad`].
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] when `w` does not hold `c_out · k` values;
    /// [`KernelError::Unsupported`] for a geometry [`supports`] refuses or input channels
    /// that are not a multiple of 16.
    pub fn new(g: &ConvGeometry, w: &[f32]) -> Result<Self, KernelError> {
        g.checked()?;
        if !g.c_in.is_multiple_of(16) {
            return Err(KernelError::Unsupported {
                what: "input channels of an input gradient",
                value: g.c_in as i64,
                allowed: "a positive multiple of 16",
            });
        }
        check_eq("filter values", g.c_out * g.k(), w.len())?;
        let (kh, kw) = g.kernel;
        let (sh, sw) = g.stride;
        let reaches = |a: usize, p: usize, k: usize, d: usize, s: usize| {
            ((a + p) as isize - (k * d) as isize).rem_euclid(s as isize) == 0
        };
        let mut phases = Vec::with_capacity(sh * sw);
        for a in 0..sh {
            for b in 0..sw {
                let taps: Vec<(usize, usize)> = (0..kh)
                    .filter(|&ky| reaches(a, g.padding.0, ky, g.dilation.0, sh))
                    .flat_map(|ky| {
                        (0..kw)
                            .filter(move |&kx| reaches(b, g.padding.1, kx, g.dilation.1, sw))
                            .map(move |kx| (ky, kx))
                    })
                    .collect();
                let rows: Vec<usize> = taps
                    .iter()
                    .flat_map(|&(ky, kx)| {
                        (0..g.c_out).map(move |o| (o * kh * kw + ky * kw + kx) * g.c_in)
                    })
                    .collect();
                let filter = Filter::pack(w, g.c_in, &rows, 1);
                phases.push(Phase { taps, filter });
            }
        }
        Ok(Self {
            geometry: *g,
            phases,
        })
    }
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
    let (oh, ow) = g.checked()?;
    if !available() {
        return Err(unavailable());
    }
    filter.geometry.check_same(g)?;
    check_eq("output-gradient values", g.n * oh * ow * g.c_out, dy.len())?;
    check_eq("input-gradient values", 0, dx.len() % g.c_in)?;
    let rows = dx.len() / g.c_in;
    check_len("input pixels", row0 + rows, g.n * g.h * g.w)?;
    #[cfg(target_arch = "x86_64")]
    {
        input_grad_x86(g, (oh, ow), dy, filter, row0, dx);
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
    let (oh, ow) = g.checked()?;
    if !available() {
        return Err(unavailable());
    }
    check_eq("input values", g.n * g.h * g.w * g.c_in, x.len())?;
    check_eq("output-gradient values", 0, dy.len() % g.c_out)?;
    check_eq("weight-gradient values", g.k() * g.c_out, dwt.len())?;
    let rows = dy.len() / g.c_out;
    check_len("output pixels", row0 + rows, g.n * oh * ow)?;
    #[cfg(target_arch = "x86_64")]
    {
        weight_grad_x86(g, (oh, ow), x, dy, row0, dwt);
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, dy, row0, rows, dwt);
        Err(unavailable())
    }
}

#[cfg(target_arch = "x86_64")]
fn forward_x86(
    g: &ConvGeometry,
    out: (usize, usize),
    x: &[f32],
    filter: &Filter,
    row0: usize,
    y: &mut [f32],
) {
    let rows = y.len() / g.c_out;
    let zeros = vec![0.0f32; g.c_in];
    let taps = g.kernel.0 * g.kernel.1;
    let mut table = Vec::new();
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(g.c_in).min(rows - start);
        let stride = tap_table(g, out, x, &zeros, row0 + start, r, &mut table);
        let chunk = Chunk {
            table: &table,
            stride,
            rows: r,
            taps,
            cin: g.c_in,
        };
        chunk.run(
            filter,
            &mut y[start * g.c_out..(start + r) * g.c_out],
            |r| r * g.c_out,
        );
        start += r;
    }
}

/// The input gradient, phase by phase of each chunk of input pixels.
#[cfg(target_arch = "x86_64")]
fn input_grad_x86(
    g: &ConvGeometry,
    (oh, ow): (usize, usize),
    dy: &[f32],
    filter: &GradFilter,
    row0: usize,
    dx: &mut [f32],
) {
    let rows = dx.len() / g.c_in;
    let zeros = vec![0.0f32; g.c_out];
    let (sh, sw) = g.stride;
    let mut table = Vec::new();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); sh * sw];
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(g.c_out).min(rows - start);
        for list in members.iter_mut() {
            list.clear();
        }
        for i in start..start + r {
            let m = row0 + i;
            let (ix, iy) = (m % g.w, (m / g.w) % g.h);
            members[(iy % sh) * sw + ix % sw].push(i);
        }
        for (phase, list) in filter.phases.iter().zip(&members) {
            if phase.taps.is_empty() {
                for &i in list {
                    dx[i * g.c_in..(i + 1) * g.c_in].fill(0.0);
                }
                continue;
            }
            if list.is_empty() {
                continue;
            }
            let stride = list.len() + TILE_ROWS;
            table.clear();
            table.resize(phase.taps.len() * stride, zeros.as_ptr());
            for (j, &i) in list.iter().enumerate() {
                let m = row0 + i;
                let (ix, rest) = (m % g.w, m / g.w);
                let (iy, img) = (rest % g.h, rest / g.h);
                for (t, &(ky, kx)) in phase.taps.iter().enumerate() {
                    // The phase makes both differences multiples of the stride.
                    let ny = (iy + g.padding.0) as isize - (ky * g.dilation.0) as isize;
                    let nx = (ix + g.padding.1) as isize - (kx * g.dilation.1) as isize;
                    if ny < 0 || nx < 0 {
                        continue;
                    }
                    let (oy, ox) = (ny as usize / sh, nx as usize / sw);
                    if oy < oh && ox < ow {
                        let at = ((img * oh + oy) * ow + ox) * g.c_out;
                        table[t * stride + j] = dy[at..at + g.c_out].as_ptr();
                    }
                }
            }
            let chunk = Chunk {
                table: &table,
                stride,
                rows: list.len(),
                taps: phase.taps.len(),
                cin: g.c_out,
            };
            chunk.run(&phase.filter, dx, |j| list[j] * g.c_in);
        }
        start += r;
    }
}

/// The register tiles of one chunk of output rows: its table of tap addresses (entry
/// `t · stride + r` for tap `t` of row `r`, each pointing to `cin` values; `TILE_ROWS`
/// entries past each tap's last row), and the sizes.
#[cfg(target_arch = "x86_64")]
struct Chunk<'a> {
    table: &'a [*const f32],
    stride: usize,
    rows: usize,
    taps: usize,
    cin: usize,
}

#[cfg(target_arch = "x86_64")]
impl Chunk<'_> {
    /// Output row `r` of the chunk (its `filter.c_out` lanes) at `y[at(r)..]`, overwritten
    /// with the sum over every tap and channel.
    fn run(&self, filter: &Filter, y: &mut [f32], at: impl Fn(usize) -> usize) {
        let (cin, k) = (self.cin, filter.k);
        assert!(
            self.table.len() >= self.taps * self.stride
                && self.stride >= self.rows + TILE_ROWS
                && k == self.taps * cin,
            "float_conv: a chunk's table or filter does not match its sizes"
        );
        let tb = (FLOAT_PANEL_BYTES / (4 * BLOCK * cin)).clamp(1, self.taps.max(1));
        for b in 0..filter.c_out.div_ceil(BLOCK) {
            let lanes = BLOCK.min(filter.c_out - b * BLOCK);
            let block = &filter.data[b * k * BLOCK..(b + 1) * k * BLOCK];
            let mut t0 = 0;
            while t0 < self.taps {
                let t1 = (t0 + tb).min(self.taps);
                let mut m = 0;
                while m < self.rows {
                    let np = TILE_ROWS.min(self.rows - m);
                    let base = y.as_mut_ptr();
                    // Rows past `np` repeat the last one: never stored.
                    let outs: [*mut f32; TILE_ROWS] = std::array::from_fn(|p| {
                        let o = at(m + p.min(np - 1)) + b * BLOCK;
                        assert!(o + lanes <= y.len(), "float_conv: output row out of range");
                        // SAFETY: `o + lanes ≤ y.len()` (asserted).
                        unsafe { base.add(o) }
                    });
                    let tab = self.table[t0 * self.stride + m..].as_ptr();
                    let wq = block[t0 * cin * BLOCK..].as_ptr();
                    // SAFETY: AVX-512F checked by `available()` before any chunk runs; entries
                    // `t · stride + m + p` for `t < t1 − t0 ≤ taps`, `p < 6` lie in the
                    // table (`m + p < rows + 6 ≤ stride`, asserted), each pointing to `cin`
                    // values; the block holds `(t1 − t0) · cin` rows from `t0 · cin` on
                    // (`k = taps · cin`, asserted); `outs` are `lanes` writable values of
                    // `y` (asserted), which no input aliases.
                    unsafe {
                        let (n, s, a) = (t1 - t0, self.stride, t0 > 0);
                        match lanes / 16 {
                            1 => avx512::forward_tile::<1>(tab, s, n, cin, wq, &outs, np, a),
                            2 => avx512::forward_tile::<2>(tab, s, n, cin, wq, &outs, np, a),
                            3 => avx512::forward_tile::<3>(tab, s, n, cin, wq, &outs, np, a),
                            _ => avx512::forward_tile::<4>(tab, s, n, cin, wq, &outs, np, a),
                        }
                    }
                    m += np;
                }
                t0 = t1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn weight_grad_x86(
    g: &ConvGeometry,
    out: (usize, usize),
    x: &[f32],
    dy: &[f32],
    row0: usize,
    dwt: &mut [f32],
) {
    let rows = dy.len() / g.c_out;
    let zeros = vec![0.0f32; g.c_in];
    let taps = g.kernel.0 * g.kernel.1;
    let (cin, cout) = (g.c_in, g.c_out);
    let mut table = Vec::new();
    let mut start = 0;
    while start < rows {
        let r = chunk_rows(cin).min(rows - start);
        let stride = tap_table(g, out, x, &zeros, row0 + start, r, &mut table);
        let dy_chunk = &dy[start * cout..(start + r) * cout];
        for b in 0..cout.div_ceil(BLOCK) {
            let lanes = BLOCK.min(cout - b * BLOCK);
            for t in 0..taps {
                let mut c = 0;
                while c < cin {
                    let q = TILE_ROWS.min(cin - c);
                    let base = dwt.as_mut_ptr();
                    let rows_of = |p: usize| {
                        // SAFETY: row `t · c_in + c + min(p, q − 1)` of `dwt` (`k` rows of
                        // `c_out`), lane `b · 64 + lanes ≤ c_out`.
                        unsafe { base.add((t * cin + c + p.min(q - 1)) * cout + b * BLOCK) }
                    };
                    let outs: [*mut f32; TILE_ROWS] = std::array::from_fn(rows_of);
                    let tab = table[t * stride..t * stride + r].as_ptr();
                    let dyb = dy_chunk[b * BLOCK..].as_ptr();
                    // SAFETY: AVX-512F checked by `available()`; the `r` table entries of tap
                    // `t` each point to `c_in ≥ c + q` values (read from offset `c`, below);
                    // `dy` rows `< r` hold `lanes` values from `b · 64`; `outs` are
                    // distinct rows of `dwt`, which no input aliases.
                    unsafe { weight_grad_dispatch(q, lanes / 16, tab, r, c, dyb, cout, &outs) };
                    c += q;
                }
            }
        }
        start += r;
    }
}

/// Runs the weight-gradient tile of `q` reduction indices and `nv` vectors, reading each
/// pixel's channels from offset `c`.
///
/// # Safety
/// As [`avx512::weight_grad_tile`], with every table entry pointing to at least `c + q`
/// values.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_grad_dispatch(
    q: usize,
    nv: usize,
    tab: *const *const f32,
    count: usize,
    c: usize,
    dy: *const f32,
    dy_stride: usize,
    outs: &[*mut f32; TILE_ROWS],
) {
    macro_rules! tile {
        ($q:literal) => {{
            let o: &[*mut f32; $q] = outs[..$q].try_into().expect("q ≤ P rows");
            // SAFETY: the caller's contract.
            unsafe {
                match nv {
                    1 => avx512::weight_grad_tile::<$q, 1>(tab, count, c, dy, dy_stride, o),
                    2 => avx512::weight_grad_tile::<$q, 2>(tab, count, c, dy, dy_stride, o),
                    3 => avx512::weight_grad_tile::<$q, 3>(tab, count, c, dy, dy_stride, o),
                    _ => avx512::weight_grad_tile::<$q, 4>(tab, count, c, dy, dy_stride, o),
                }
            }
        }};
    }
    match q {
        1 => tile!(1),
        2 => tile!(2),
        3 => tile!(3),
        4 => tile!(4),
        5 => tile!(5),
        _ => tile!(6),
    }
}
