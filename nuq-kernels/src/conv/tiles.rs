//! The tile driver: row tiles that each unfold, multiply and requantize their own rows, or,
//! for short outputs, the whole im2col matrix once and then tiles of weight panels.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::border::Sorted;
use super::epilogue::Epilogue;
use super::{ConvOut, ConvScratch, Dense};
use crate::archparam::{row_split_max_weight_bytes, GATHER_ELEMENTS};
use crate::gemm::{gemm_block, gemm_block_gather, takes_row_map, Gather, Live};
use crate::overflow::check_accumulator_bound;
use crate::packed::PANEL;
use crate::residual_threshold::{Block, ResidualThresholds, Shortcut};
use crate::tiling::{CONV, CONV_LIGHT};
use crate::{KernelError, KernelPath};

/// One row tile's im2col rows (or padded input rows), accumulators, gathered row starts and
/// their order by live taps.
struct TileScratch {
    cols: Vec<u8>,
    acc: Vec<i32>,
    rows_at: Vec<usize>,
    sorted: Sorted,
}

thread_local! {
    /// Per-thread scratch of one row tile (grown to the largest tile once, then reused: no
    /// allocation per call in steady state).
    static TILE_SCRATCH: RefCell<TileScratch> = const {
        RefCell::new(TileScratch {
            cols: Vec::new(),
            acc: Vec::new(),
            rows_at: Vec::new(),
            sorted: Sorted::new(),
        })
    };
}

/// Grows `v` to at least `len` elements (never shrinks: buffers are reused).
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// What the tiles do with their accumulators while they are in cache.
#[derive(Debug, Clone, Copy)]
pub(super) enum Finish<'j> {
    /// The compiled epilogue.
    Epilogue,
    /// `acc + bias` (the compiled epilogue must hand on accumulators) joined with a
    /// shortcut of `[m][n]` elements into levels.
    Join(&'j ResidualThresholds, Shortcut<'j>),
    /// The compiled epilogue (levels) of a 2×2, stride-2 max-pool of the accumulators: each
    /// channel's largest `acc ^ flip` of the window ([`Epilogue::pool_flip`]). Blocks are
    /// whole pairs of output rows `width` pixels wide (even) and finish into a quarter as
    /// many rows.
    Pool { width: usize, flip: &'j [i32] },
}

impl Finish<'_> {
    /// Rows a block of `rows` accumulator rows finishes into.
    pub(super) fn out_rows(&self, rows: usize) -> usize {
        match self {
            Finish::Pool { .. } => rows / 4,
            _ => rows,
        }
    }
}

thread_local! {
    /// Per-thread scratch for a block's pooled accumulators (grows once, then is reused).
    static POOLED: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// `dst[j]` = the largest of `a[j] ^ f`, `b[j] ^ f`, `c[j] ^ f`, `d[j] ^ f`, flipped back
/// (`f = flip[j]`): the maximum of a rising channel, the minimum of a falling one. Compiled
/// for the path's vector width (the baseline x86-64 build has no `pmaxsd`).
fn pool4(path: KernelPath, dst: &mut [i32], rows: [&[i32]; 4], flip: &[i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if path.is_avx512() {
            // SAFETY: an AVX-512 path is only run where the CPU has AVX-512 F
            // (`ensure_available`).
            unsafe { pool4_avx512(dst, rows, flip) };
            return;
        }
        if matches!(path, KernelPath::Avx2 | KernelPath::AvxVnni) {
            // SAFETY: as above, AVX2.
            unsafe { pool4_avx2(dst, rows, flip) };
            return;
        }
    }
    let _ = path;
    pool4_lanes(dst, rows, flip);
}

/// [`pool4`] with AVX-512 F enabled.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool4_avx512(dst: &mut [i32], rows: [&[i32]; 4], flip: &[i32]) {
    pool4_lanes(dst, rows, flip);
}

/// [`pool4`] with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool4_avx2(dst: &mut [i32], rows: [&[i32]; 4], flip: &[i32]) {
    pool4_lanes(dst, rows, flip);
}

/// The loop of [`pool4`], inlined into each caller so that it vectorizes at the caller's
/// width.
#[inline(always)]
fn pool4_lanes(dst: &mut [i32], [a, b, c, d]: [&[i32]; 4], flip: &[i32]) {
    for ((((o, &a), &b), &c), (&d, &f)) in
        dst.iter_mut().zip(a).zip(b).zip(c).zip(d.iter().zip(flip))
    {
        *o = (a ^ f).max(b ^ f).max(c ^ f).max(d ^ f) ^ f;
    }
}

/// A block of accumulators: `rows` rows (stride `lda`, row 0 = output pixel `first_row`)
/// × channels `chans` (column 0 = channel `chans.start`).
#[derive(Debug)]
pub(super) struct AccBlock<'a> {
    pub(super) acc: &'a mut [i32],
    pub(super) lda: usize,
    pub(super) first_row: usize,
    pub(super) rows: usize,
    pub(super) chans: Range<usize>,
}

/// Finishes `block` with `epilogue` (a convolution of `n` output channels) into `out`
/// (stride `ldo`, column 0 = channel `chans.start`): requantized or biased, or, for a
/// join, biased in place and joined with the shortcut's rows.
pub(super) fn finish_block(
    epilogue: &Epilogue,
    n: usize,
    path: KernelPath,
    finish: Finish<'_>,
    block: AccBlock<'_>,
    out: ConvOut<'_>,
    ldo: usize,
) -> Result<(), KernelError> {
    let AccBlock {
        acc,
        lda,
        first_row,
        rows,
        chans,
    } = block;
    match finish {
        Finish::Epilogue => epilogue.apply(path, acc, lda, rows, chans, out, ldo),
        Finish::Join(join, b) => {
            let ConvOut::Levels(o) = out else {
                return Err(KernelError::OutputKind {
                    expected: "u8 levels",
                });
            };
            let (bias, bound) = epilogue.accumulator_bias()?;
            let block = Block {
                a: acc,
                bias: Some(bias),
                bound: Some(bound),
                lda,
                b: b.from(first_row * n),
                ldb: n,
                rows,
                chans,
            };
            join.block(path, &block, o, ldo)
        }
        Finish::Pool { width, flip } => {
            let pair = 2 * width;
            if !first_row.is_multiple_of(pair) || !rows.is_multiple_of(pair) {
                return Err(KernelError::Unsupported {
                    what: "rows of a pooled block (whole pairs of output rows)",
                    value: rows as i64,
                    allowed: "a multiple of twice the output width, from such a row",
                });
            }
            let (w, pooled_rows) = (chans.len(), rows / 4);
            let flip = &flip[chans.clone()];
            POOLED.with(|cell| {
                let mut pooled = cell.borrow_mut();
                grow(&mut pooled, pooled_rows * w);
                for (p, dst) in pooled[..pooled_rows * w].chunks_exact_mut(w).enumerate() {
                    let r = (p / (width / 2)) * pair + 2 * (p % (width / 2));
                    let row = |r: usize| &acc[r * lda..r * lda + w];
                    let four = [row(r), row(r + 1), row(r + width), row(r + width + 1)];
                    pool4(path, dst, four, flip);
                }
                epilogue.apply(
                    path,
                    &pooled[..pooled_rows * w],
                    w,
                    pooled_rows,
                    chans,
                    out,
                    ldo,
                )
            })
        }
    }
}

/// Where a row tile's GEMM rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Unfolded im2col rows (or the input itself for a direct convolution).
    Unfold,
    /// Gathered from the input itself where [`Dense::sort_rows`] says (always without
    /// padding), else as [`Rows::PaddedPerTile`].
    InPlace,
    /// Gathered from the tile's own padded copy of the input rows it reads: no barrier
    /// for a shared copy before the tiles start.
    PaddedPerTile,
}

impl Dense {
    /// Runs `m` output rows of the checked problem on the current rayon pool.
    pub(super) fn tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        m: usize,
        out: ConvOut<'_>,
        finish: Finish<'_>,
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        let panels = self.n().div_ceil(PANEL);
        let light = self.weights.stored_bytes() <= row_split_max_weight_bytes();
        let policy = if light { &CONV_LIGHT } else { &CONV };
        let mut plan = policy.plan(m, self.shape.k(), panels, rayon::current_num_threads());
        if let Finish::Pool { width, .. } = finish {
            // Row tiles of whole pairs of output rows.
            plan.rows = plan.rows.next_multiple_of(2 * width);
        }
        if plan.panels == panels {
            let source = if !self.gathers(path) {
                Rows::Unfold
            } else if self.reads_input(path) {
                Rows::InPlace
            } else {
                Rows::PaddedPerTile
            };
            self.row_tiles(path, x, source, m, plan.rows, out, finish)
        } else {
            self.column_tiles(path, x, m, plan.rows, plan.panels, out, finish, scratch)
        }
    }

    /// Finishes a block of accumulators with this group's epilogue (see [`finish_block`]).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        path: KernelPath,
        finish: Finish<'_>,
        acc: &mut [i32],
        lda: usize,
        first_row: usize,
        rows: usize,
        chans: Range<usize>,
        out: ConvOut<'_>,
        ldo: usize,
    ) -> Result<(), KernelError> {
        let n = self.n();
        let block = AccBlock {
            acc,
            lda,
            first_row,
            rows,
            chans,
        };
        finish_block(&self.epilogue, n, path, finish, block, out, ldo)
    }

    /// Tiles of `mc` whole output rows, each unfolding or gathering (see [`Rows`]) its own
    /// rows.
    #[allow(clippy::too_many_arguments)]
    fn row_tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        source: Rows,
        m: usize,
        mc: usize,
        out: ConvOut<'_>,
        finish: Finish<'_>,
    ) -> Result<(), KernelError> {
        let (k, n) = (self.shape.k(), self.n());
        let lda = self.lda();
        // `acc + bias` stored by the GEMM itself, straight into the output, where it can.
        let stored_bias = match (finish, &out) {
            (Finish::Epilogue, ConvOut::Int32(_)) => self.epilogue.stored_bias(path),
            _ => None,
        };
        let tile = |t: usize, out: ConvOut<'_>| -> Result<(), KernelError> {
            let rows = t * mc..((t + 1) * mc).min(m);
            TILE_SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let TileScratch {
                    cols,
                    acc,
                    rows_at,
                    sorted,
                } = &mut *scratch;
                // Where the GEMM writes: the output itself, or accumulators to finish.
                let (dst, bias, out): (&mut [i32], _, _) = match (stored_bias, out) {
                    (Some(bias), ConvOut::Int32(o)) => (o, Some(bias), None),
                    (_, out) => {
                        grow(acc, rows.len() * n);
                        (&mut acc[..], None, Some(out))
                    }
                };
                let panels = 0..n.div_ceil(PANEL);
                if source != Rows::Unfold {
                    let input = self.sort_rows(path, rows.clone(), source == Rows::InPlace, sorted);
                    let a: &[u8] = if input {
                        self.gather_rows(rows.clone(), 0, true, rows_at);
                        x
                    } else {
                        let first = self.pad_tile_rows(x, rows.clone(), cols);
                        self.gather_rows(rows.clone(), first, false, rows_at);
                        cols
                    };
                    let rows_at = &rows_at[..rows.len()];
                    sorted.place(rows_at);
                    self.gemm_gathered(path, a, input, rows_at, sorted, panels, dst, n, bias)?;
                } else {
                    let a: &[u8] = if self.shape.direct() {
                        &x[rows.start * k..rows.end * k]
                    } else {
                        grow(cols, rows.len() * lda);
                        self.shape
                            .unfold(x, &self.pad, rows.start, rows.len(), cols);
                        cols
                    };
                    self.gemm(path, a, rows.len(), panels, dst, n, bias)?;
                }
                match out {
                    Some(out) => {
                        self.finish(path, finish, acc, n, rows.start, rows.len(), 0..n, out, n)
                    }
                    None => Ok(()),
                }
            })
        };
        // Each tile's rows of the output (a quarter of its accumulator rows when pooled).
        let (m_out, mc_out) = (finish.out_rows(m), finish.out_rows(mc));
        match out {
            ConvOut::Levels(o) => o[..m_out * n]
                .par_chunks_mut(mc_out * n)
                .enumerate()
                .try_for_each(|(t, o)| tile(t, ConvOut::Levels(o))),
            ConvOut::Int32(o) => o[..m_out * n]
                .par_chunks_mut(mc_out * n)
                .enumerate()
                .try_for_each(|(t, o)| tile(t, ConvOut::Int32(o))),
        }
    }

    /// Short outputs: the whole im2col matrix once (or, where row tiles would gather, the
    /// padded input and every row's start), then tiles of `pc` weight panels (all rows), each
    /// finishing its own columns into `[group][m][group columns]` blocks, then the rows are
    /// gathered into the output.
    #[allow(clippy::too_many_arguments)]
    fn column_tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        m: usize,
        mc: usize,
        pc: usize,
        mut out: ConvOut<'_>,
        finish: Finish<'_>,
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        let (k, n) = (self.shape.k(), self.n());
        let lda = self.lda();
        let panels = n.div_ceil(PANEL);
        let gathers = self.gathers(path);
        let mut input = false;
        if gathers {
            let ConvScratch {
                cols,
                rows_at,
                sorted,
                ..
            } = &mut *scratch;
            input = self.sort_rows(path, 0..m, self.reads_input(path), sorted);
            if !input {
                self.pad_images(
                    x,
                    m / (self.shape.out_height() * self.shape.out_width()),
                    cols,
                );
            }
            self.gather_rows(0..m, 0, input, rows_at);
            sorted.place(&rows_at[..m]);
        }
        let ConvScratch {
            cols,
            acc,
            staged,
            rows_at,
            sorted,
            ..
        } = scratch;
        let (rows_at, sorted) = (&rows_at[..if gathers { m } else { 0 }], &*sorted);
        let a: &[u8] = if self.shape.direct() {
            &x[..m * k]
        } else if input {
            x
        } else if gathers {
            cols
        } else {
            // Short outputs unfold in as many pieces as there are threads (at most `mc` rows
            // each), so that the unfold is not left to one thread.
            let piece = mc.min(m.div_ceil(rayon::current_num_threads())).max(1);
            grow(cols, m * lda);
            cols[..m * lda]
                .par_chunks_mut(piece * lda)
                .enumerate()
                .for_each(|(t, dst)| {
                    self.shape
                        .unfold(x, &self.pad, t * piece, dst.len() / lda, dst)
                });
            cols
        };
        // Each column tile multiplies and finishes its own columns into a block of its own
        // (`[group][m][group columns]`: accumulators in place, levels staged), then the rows
        // are gathered into the output in parallel.
        let group_cols = pc * PANEL;
        let levels = matches!(out, ConvOut::Levels(_));
        let stored_bias = match finish {
            Finish::Epilogue => self.epilogue.stored_bias(path),
            Finish::Join(..) | Finish::Pool { .. } => None,
        };
        grow(acc, m * n);
        grow(staged, if levels { m * n } else { 0 });
        let tile = |g: usize, block: &mut [i32], stage: &mut [u8]| -> Result<(), KernelError> {
            let pans = g * pc..((g + 1) * pc).min(panels);
            let width = block.len() / m;
            let c0 = g * group_cols;
            let chans = c0..c0 + width;
            // Accumulators handed on get their bias in the GEMM's stores where it can.
            let bias = if levels { None } else { stored_bias };
            if gathers {
                self.gemm_gathered(path, a, input, rows_at, sorted, pans, block, width, bias)?;
            } else {
                self.gemm(path, a, m, pans, block, width, bias)?;
            }
            if bias.is_some() {
                Ok(())
            } else if levels {
                self.finish(
                    path,
                    finish,
                    block,
                    width,
                    0,
                    m,
                    chans,
                    ConvOut::Levels(stage),
                    width,
                )
            } else {
                self.epilogue.bias_in_place(block, width, m, chans)
            }
        };
        let acc_blocks = acc[..m * n].par_chunks_mut(m * group_cols);
        if levels {
            acc_blocks
                .zip(staged[..m * n].par_chunks_mut(m * group_cols))
                .enumerate()
                .try_for_each(|(g, (block, stage))| tile(g, block, stage))?;
        } else {
            acc_blocks
                .enumerate()
                .try_for_each(|(g, block)| tile(g, block, &mut []))?;
        }
        let groups = n.div_ceil(group_cols);
        let gather = |r: usize, row_out: &mut dyn FnMut(usize, usize, usize)| {
            for g in 0..groups {
                let c0 = g * group_cols;
                let width = group_cols.min(n - c0);
                row_out(c0, g * m * group_cols + r * width, width);
            }
        };
        let min_rows = (GATHER_ELEMENTS / n.max(1)).max(1);
        // Rows of the output: a quarter of the accumulator rows when pooled.
        let m_out = finish.out_rows(m);
        match &mut out {
            ConvOut::Levels(o) => o[..m_out * n]
                .par_chunks_mut(n)
                .with_min_len(min_rows)
                .enumerate()
                .for_each(|(r, row)| {
                    gather(r, &mut |c0, at, width| {
                        row[c0..c0 + width].copy_from_slice(&staged[at..at + width]);
                    });
                }),
            ConvOut::Int32(o) => o[..m * n]
                .par_chunks_mut(n)
                .with_min_len(min_rows)
                .enumerate()
                .for_each(|(r, row)| {
                    gather(r, &mut |c0, at, width| {
                        row[c0..c0 + width].copy_from_slice(&acc[at..at + width]);
                    });
                }),
        }
        Ok(())
    }

    /// Whether row tiles gather their GEMM rows from a padded copy of the input (an implicit
    /// im2col: no unfolded matrix is written) rather than unfolding them: on the VNNI
    /// paths (AVX-VNNI, AVX-512; AMX where its tiles can load them), for int8 or 4-bit
    /// weights, adjacent taps (dilation 1: a dilated convolution unfolds its rows) and
    /// accumulators bounded for any activations.
    /// Channels that are not whole 4-byte groups (an RGB image) are padded to them, with
    /// zeros in the copy and zero int8 weights of their own ([`Dense::gathered`]).
    fn gathers(&self, path: KernelPath) -> bool {
        let s = self.shape;
        let weights_ok = match self.gathered().0 {
            crate::Weights::Int8(_) => true,
            crate::Weights::Codebook(w) => w.bits() == 4,
        };
        // The gather reads each kernel row as one contiguous run: adjacent taps only (a
        // dilated convolution unfolds instead). AMX tiles load 16 rows a fixed stride apart
        // and 16 groups of one piece: gathered rows where output rows are whole 16-pixel
        // runs and pieces whole tiles, else unfolded rows (the AVX-512 kernel would run
        // gathered blocks that tiles cannot take).
        let amx_tiles = s.out_width().is_multiple_of(16)
            && (s.kernel * self.gathered().1 / 4).is_multiple_of(16);
        (path == KernelPath::AvxVnni
            || (path.is_avx512() && (path != KernelPath::Amx || amx_tiles)))
            && !s.direct()
            && s.dilation == 1
            && weights_ok
            && check_accumulator_bound(s.k(), self.weights.max_abs(), 255).is_ok()
    }

    /// The weights the gathered rows multiply and the channels of the padded input they
    /// are gathered from: the weights and channels themselves, or, for channels that are
    /// not whole 4-byte groups, both padded to a multiple of 4.
    fn gathered(&self) -> (&crate::Weights, usize) {
        match &self.gather_weights {
            Some(w) => (w, self.shape.channels.next_multiple_of(4)),
            None => (&self.weights, self.shape.channels),
        }
    }

    /// The gathered rows starting at `rows_at` in the padded input, or with `input` in the
    /// input itself ([`Dense::reads_input`]): one piece of `kernel` taps per kernel row, an
    /// image row apart.
    fn gather<'r>(&self, rows_at: &'r [usize], input: bool) -> Gather<'r> {
        let c4 = self.gathered().1;
        let k = self.shape.kernel;
        Gather {
            rows_at,
            pieces: k,
            piece_len: k * c4,
            pitch: self.gather_layout(input).0 * c4,
            live: Live {
                pieces: (0, k),
                groups: (0, k * c4 / 4),
            },
            out_rows: None,
        }
    }

    /// Orders the gathered rows of output pixels `pixels` by their live taps into `sorted`,
    /// where the layer's padding byte is zero and `path`'s kernels take rows in another
    /// order (AVX-VNNI, AVX-512 VNNI; not AMX tiles); else leaves `sorted` empty (every row
    /// read whole, in order). Returns whether the rows are gathered from the input itself:
    /// where [`Dense::reads_input`] allows it (`input`), always without a border, else where
    /// the sort by their exact live taps pays for it ([`Borders::sort`](super::border::Borders::sort)). The caller then
    /// [places](Sorted::place) the rows.
    fn sort_rows(
        &self,
        path: KernelPath,
        pixels: Range<usize>,
        input: bool,
        sorted: &mut Sorted,
    ) -> bool {
        match &self.borders {
            Some(b) if takes_row_map(path) => b.sort(pixels, sorted, input),
            _ => {
                sorted.clear();
                // `reads_input` allows a layer without these borders only unpadded.
                input
            }
        }
    }

    /// The block GEMM of gathered rows `rows_at` (in the padded input `a`) into `dst`
    /// (`ldc`, row `r` = row `r` of the block), over each row's live taps as `sorted` says
    /// ([`Dense::sort_rows`] of the same rows), or whole where it is empty.
    #[allow(clippy::too_many_arguments)]
    fn gemm_gathered(
        &self,
        path: KernelPath,
        a: &[u8],
        input: bool,
        rows_at: &[usize],
        sorted: &Sorted,
        panels: Range<usize>,
        dst: &mut [i32],
        ldc: usize,
        bias: Option<&[i32]>,
    ) -> Result<(), KernelError> {
        let weights = self.gathered().0;
        let whole = self.gather(rows_at, input);
        if sorted.runs.is_empty() {
            return gemm_block_gather(path, a, &whole, weights, panels, dst, ldc, bias);
        }
        for (live, run) in &sorted.runs {
            let gather = if sorted.reordered() {
                Gather {
                    rows_at: &sorted.at[run.clone()],
                    live: *live,
                    out_rows: Some(&sorted.order[run.clone()]),
                    ..whole
                }
            } else {
                Gather {
                    live: *live,
                    ..whole
                }
            };
            gemm_block_gather(path, a, &gather, weights, panels.clone(), dst, ldc, bias)?;
        }
        Ok(())
    }

    /// Whether gathered rows may read the input itself instead of a padded copy: no
    /// channels to pad, and no border — or one that `path`'s kernels skip (the padding byte
    /// is zero and the kernels take rows sorted by their live taps, [`Dense::sort_rows`])
    /// in an image at least a kernel wide (each kernel row's taps one run of a row); a
    /// tile with a border does where that pays ([`Dense::sort_rows`]).
    fn reads_input(&self, path: KernelPath) -> bool {
        let s = self.shape;
        self.gather_weights.is_none()
            && (s.padding == 0
                || (self.borders.is_some() && takes_row_map(path) && s.width >= s.kernel))
    }

    /// Width, height and origin of the image gathered rows read: the padded copy's
    /// (origin 0), or with `input` the input's, whose origin is the top-left tap of the
    /// first pixel's window — `padding` rows and columns before the image, an offset that
    /// wraps below it (only the live taps are read, [`Dense::sort_rows`]).
    fn gather_layout(&self, input: bool) -> (usize, usize, usize) {
        let s = self.shape;
        if input {
            let origin = s.padding * (s.width + 1) * self.gathered().1;
            (s.width, s.height, origin)
        } else {
            (self.padded_width(), s.height + 2 * s.padding, 0)
        }
    }

    /// Width of the padded input.
    fn padded_width(&self) -> usize {
        self.shape.width + 2 * self.shape.padding
    }

    /// Copies `images` NHWC images into `dst` with a border of `padding` pixels of the
    /// per-channel padding bytes (and each pixel's channels padded as [`Dense::gathered`]
    /// says), one padded row per task.
    fn pad_images(&self, x: &[u8], images: usize, dst: &mut Vec<u8>) {
        let s = self.shape;
        let line = self.padded_width() * self.gathered().1;
        let hp = s.height + 2 * s.padding;
        grow(dst, images * hp * line);
        dst[..images * hp * line]
            .par_chunks_mut(line)
            .with_min_len((GATHER_ELEMENTS / line.max(1)).max(1))
            .enumerate()
            .for_each(|(i, row)| self.pad_row(x, i, row));
    }

    /// Copies the padded rows that the output pixels `rows` read (rows counted across the
    /// batch, as [`Dense::pad_images`] lays them out) into `dst`, on the calling thread;
    /// returns the byte offset in that layout where `dst` starts.
    fn pad_tile_rows(&self, x: &[u8], rows: Range<usize>, dst: &mut Vec<u8>) -> usize {
        let s = self.shape;
        let (oh, ow) = (s.out_height(), s.out_width());
        let hp = s.height + 2 * s.padding;
        let line = self.padded_width() * self.gathered().1;
        let padded_row = |pix: usize| {
            let (b, oy) = (pix / (oh * ow), pix % (oh * ow) / ow);
            b * hp + oy * s.stride
        };
        let (first, last) = (
            padded_row(rows.start),
            padded_row(rows.end - 1) + s.span() - 1,
        );
        let count = last + 1 - first;
        grow(dst, count * line);
        for (i, row) in dst[..count * line].chunks_exact_mut(line).enumerate() {
            self.pad_row(x, first + i, row);
        }
        first * line
    }

    /// Writes padded row `i` (row `i % hp` of padded image `i / hp`) of `x` into `row`.
    fn pad_row(&self, x: &[u8], i: usize, row: &mut [u8]) {
        let s = self.shape;
        let (c, p) = (s.channels, s.padding);
        let c4 = self.gathered().1;
        let hp = s.height + 2 * p;
        let (b, y) = (i / hp, i % hp);
        let inside = y >= p && y < s.height + p;
        if c4 == c {
            if !inside {
                for px in row.chunks_exact_mut(c) {
                    px.copy_from_slice(&self.pad);
                }
                return;
            }
            let src_row = (b * s.height + y - p) * s.width * c;
            let (left, rest) = row.split_at_mut(p * c);
            let (mid, right) = rest.split_at_mut(s.width * c);
            mid.copy_from_slice(&x[src_row..src_row + s.width * c]);
            for px in left.chunks_exact_mut(c).chain(right.chunks_exact_mut(c)) {
                px.copy_from_slice(&self.pad);
            }
            return;
        }
        // Channels padded to `c4` with zeros (whose weights are zero).
        let src_row = if inside {
            (b * s.height + y - p) * s.width * c
        } else {
            0
        };
        for (xp, px) in row.chunks_exact_mut(c4).enumerate() {
            let pixel = inside && xp >= p && xp < s.width + p;
            let at = src_row + xp.saturating_sub(p) * c;
            // A few bytes: a plain loop (a memcpy call per pixel costs more).
            for (j, v) in px.iter_mut().enumerate() {
                *v = match (pixel, j < c) {
                    (true, true) => x[at + j],
                    (false, true) => self.pad[j],
                    (_, false) => 0,
                };
            }
        }
    }

    /// Where each output pixel of `rows` starts (its top-left tap) in the padded input, less
    /// `base` (the offset of a tile's own copy of its padded rows), or with `input` in the
    /// input itself (an offset that wraps below it for a border pixel: see
    /// [`Dense::gather_layout`]).
    fn gather_rows(&self, rows: Range<usize>, base: usize, input: bool, dst: &mut Vec<usize>) {
        let s = self.shape;
        let (oh, ow, c) = (s.out_height(), s.out_width(), self.gathered().1);
        let (wp, hp, origin) = self.gather_layout(input);
        let base = base.wrapping_add(origin);
        dst.clear();
        if rows.is_empty() {
            return;
        }
        // The first pixel's position by division, the others by stepping.
        let (b, rest) = (rows.start / (oh * ow), rows.start % (oh * ow));
        let (mut oy, mut ox) = (rest / ow, rest % ow);
        let mut image = b * hp * wp * c;
        let (step, line, plane) = (s.stride * c, s.stride * wp * c, hp * wp * c);
        let mut at = image + (oy * s.stride * wp + ox * s.stride) * c;
        for _ in rows {
            dst.push(at.wrapping_sub(base));
            ox += 1;
            at += step;
            if ox == ow {
                ox = 0;
                oy += 1;
                if oy == oh {
                    oy = 0;
                    image += plane;
                    at = image;
                } else {
                    at = image + oy * line;
                }
            }
        }
    }

    /// Row stride of the GEMM's activations: the input itself for direct convolutions,
    /// else the unfolded matrix's (whole 4-byte groups, zeros past `k`).
    fn lda(&self) -> usize {
        if self.shape.direct() {
            self.shape.k()
        } else {
            self.shape.unfold_stride()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        path: KernelPath,
        a: &[u8],
        rows: usize,
        panels: Range<usize>,
        acc: &mut [i32],
        ldc: usize,
        bias: Option<&[i32]>,
    ) -> Result<(), KernelError> {
        let lda = self.lda();
        gemm_block(
            path,
            a,
            lda,
            // Unfolded rows are zero from `k` to `lda`: the GEMM may read those bytes.
            if self.shape.direct() {
                self.shape.k()
            } else {
                lda
            },
            rows,
            &self.weights,
            panels,
            acc,
            ldc,
            bias,
        )
    }
}
