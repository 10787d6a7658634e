//! The tile driver: row tiles that each unfold, multiply and requantize their own rows, or,
//! for short outputs, the whole im2col matrix once and then tiles of weight panels.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::{Conv, ConvOut, ConvScratch};
use crate::archparam::GATHER_ELEMENTS;
use crate::gemm::gemm_block;
use crate::packed::PANEL;
use crate::residual_threshold::{Block, ResidualThresholds, Shortcut};
use crate::tiling::CONV;
use crate::{KernelError, KernelPath};

thread_local! {
    /// Per-thread im2col rows and accumulators of one row tile (grown to the largest tile
    /// once, then reused: no allocation per call in steady state).
    static TILE_SCRATCH: RefCell<(Vec<u8>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
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
}

impl Conv {
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
        let plan = CONV.plan(m, self.shape.k(), panels, rayon::current_num_threads());
        if plan.panels == panels {
            self.row_tiles(path, x, m, plan.rows, out, finish)
        } else {
            self.column_tiles(path, x, m, plan.rows, plan.panels, out, finish, scratch)
        }
    }

    /// Finishes the accumulators of rows `first_row ..` (`rows` of them, stride `lda`) ×
    /// channels `chans` into `out` (stride `ldo`, column 0 = channel `chans.start`).
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
        match finish {
            Finish::Epilogue => self.epilogue.apply(path, acc, lda, rows, chans, out, ldo),
            Finish::Join(join, b) => {
                let ConvOut::Levels(o) = out else {
                    return Err(KernelError::OutputKind {
                        expected: "u8 levels",
                    });
                };
                self.epilogue.bias_in_place(acc, lda, rows, chans.clone())?;
                let n = self.n();
                let block = Block {
                    a: acc,
                    lda,
                    b: b.from(first_row * n),
                    ldb: n,
                    rows,
                    chans,
                };
                join.block(path, &block, o, ldo)
            }
        }
    }

    /// Tiles of `mc` whole output rows, each unfolding its own rows.
    fn row_tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        m: usize,
        mc: usize,
        out: ConvOut<'_>,
        finish: Finish<'_>,
    ) -> Result<(), KernelError> {
        let (k, n) = (self.shape.k(), self.n());
        let lda = self.lda();
        let tile = |t: usize, out: ConvOut<'_>| -> Result<(), KernelError> {
            let rows = t * mc..((t + 1) * mc).min(m);
            TILE_SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let (cols, acc) = &mut *scratch;
                let a: &[u8] = if self.shape.direct() {
                    &x[rows.start * k..rows.end * k]
                } else {
                    grow(cols, rows.len() * lda);
                    self.shape
                        .unfold(x, &self.pad, rows.start, rows.len(), cols);
                    cols
                };
                grow(acc, rows.len() * n);
                self.gemm(path, a, rows.len(), 0..n.div_ceil(PANEL), acc, n)?;
                self.finish(path, finish, acc, n, rows.start, rows.len(), 0..n, out, n)
            })
        };
        match out {
            ConvOut::Levels(o) => o[..m * n]
                .par_chunks_mut(mc * n)
                .enumerate()
                .try_for_each(|(t, o)| tile(t, ConvOut::Levels(o))),
            ConvOut::Int32(o) => o[..m * n]
                .par_chunks_mut(mc * n)
                .enumerate()
                .try_for_each(|(t, o)| tile(t, ConvOut::Int32(o))),
        }
    }

    /// Short outputs: the whole im2col matrix once, then tiles of `pc` weight panels (all
    /// rows) into the scratch accumulators laid out `[group][m][group columns]`, then the
    /// epilogue.
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
        let ConvScratch { cols, acc, staged } = scratch;
        let a: &[u8] = if self.shape.direct() {
            &x[..m * k]
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
        grow(acc, m * n);
        grow(staged, if levels { m * n } else { 0 });
        let tile = |g: usize, block: &mut [i32], stage: &mut [u8]| -> Result<(), KernelError> {
            let pans = g * pc..((g + 1) * pc).min(panels);
            let width = block.len() / m;
            let c0 = g * group_cols;
            let chans = c0..c0 + width;
            self.gemm(path, a, m, pans, block, width)?;
            if levels {
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
        match &mut out {
            ConvOut::Levels(o) => o[..m * n]
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

    /// Row stride of the GEMM's activations: the input itself for direct convolutions,
    /// else the unfolded matrix's (whole 4-byte groups, zeros past `k`).
    fn lda(&self) -> usize {
        if self.shape.direct() {
            self.shape.k()
        } else {
            self.shape.unfold_stride()
        }
    }

    fn gemm(
        &self,
        path: KernelPath,
        a: &[u8],
        rows: usize,
        panels: Range<usize>,
        acc: &mut [i32],
        ldc: usize,
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
        )
    }
}
