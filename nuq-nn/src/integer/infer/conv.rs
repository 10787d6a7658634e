//! A convolution node compiled for the runner: packed weights, the im2col plan and the
//! epilogue (requantization to levels, or accumulator + bias), run as tiles of output rows
//! (and, for short outputs, column panels) that each unfold, multiply and requantize their
//! own block while it is in cache.
//!
//! ## Folding the bias into the thresholds
//!
//! The model requantizes `v = acc + bias` (in 64-bit) as `#{j : v ≥ T_j}` (rising) or
//! `#{j : v ≤ T_j}` (falling). The tiles compare the `i32` accumulator against
//! `T'_j = clamp(T_j − bias, i32)` instead, which is exact as long as the accumulator never
//! reaches `i32::MAX`: a clamped-down `T'_j = i32::MIN` is reached by every `acc` exactly like
//! `T_j − bias < i32::MIN` is, and a clamped-up `T'_j = i32::MAX` is reached by no `acc <
//! i32::MAX` exactly like `T_j − bias > i32::MAX` (mirrored for falling channels, where
//! `acc > i32::MIN` is what matters, and `acc ≥ −bound` holds). The GEMM bounds `|acc|` by
//! `k · max|w| · 255`; a layer whose bound reaches `i32::MAX` keeps the 64-bit definition
//! ([`Epilogue::Wide`]).

use std::cell::RefCell;
use std::ops::Range;

use nuq_kernels::threshold::Thresholds;
use nuq_kernels::{gemm_block, KernelPath, PANEL};
use rayon::prelude::*;

use super::im2col::Unfold;
use super::weights::{kernel_err, Packed};
use crate::integer::model::{ConvNode, ConvOutput};
use crate::integer::requant::Requant;
use crate::{ModelProblem, NnError};

/// Activation bytes a row tile's im2col block aims at (it stays in L2 with the tile's
/// accumulators and the weight panel being read).
const TILE_BYTES: usize = 256 << 10;
/// Row tiles are multiples of the GEMM's register tile.
const ROW_ALIGN: usize = 8;
/// Row tiles are not split below this many rows before columns are split instead.
const MIN_SPLIT_ROWS: usize = 32;

/// What a convolution does with its accumulators.
pub(super) enum Epilogue {
    /// Requantize to levels with bias-folded `i32` thresholds (see the module docs).
    Levels {
        thresholds: Thresholds,
        levels: Vec<u8>,
    },
    /// Requantize `acc + bias` in 64-bit, as the model defines it (layers whose
    /// accumulator bound reaches `i32::MAX`).
    Wide { requant: Requant, bias: Vec<i32> },
    /// Hand on `acc + bias` as `i32` (an error if it overflows).
    Accumulator { bias: Vec<i32> },
}

/// Where a tile's output goes.
pub(super) enum ConvOut<'a> {
    Levels(&'a mut [u8]),
    Int32(&'a mut [i32]),
}

/// A compiled convolution.
pub(super) struct ConvOp {
    pub(super) node: usize,
    pub(super) unfold: Unfold,
    pub(super) weights: Packed,
    pub(super) n: usize,
    pub(super) epilogue: Epilogue,
}

thread_local! {
    /// Per-thread im2col rows and accumulators of one tile (grown to the largest tile once,
    /// then reused: no allocation per call in steady state).
    static TILE_SCRATCH: RefCell<(Vec<u8>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Bias-folded `i32` thresholds (see the module docs), compiled for the kernels.
fn folded_thresholds(r: &Requant, bias: &[i32]) -> Result<Thresholds, NnError> {
    let folded = r.thresholds.offset(bias).map_err(|source| NnError::Core {
        what: "requantization thresholds".into(),
        source,
    })?;
    Ok(Thresholds::new(&folded))
}

impl ConvOp {
    /// Compiles node `node`; `pad` is the byte each input channel pads with.
    pub(super) fn new(
        node: usize,
        c: &ConvNode,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        pad: Vec<u8>,
    ) -> Result<Self, NnError> {
        let unfold = Unfold {
            h,
            w,
            c: c.c_in,
            oh,
            ow,
            kernel: c.kernel,
            stride: c.stride,
            padding: c.padding,
            pad,
        };
        let k = unfold.k();
        let weights = Packed::new(&c.weights, c.c_out, k)?;
        let bound = k as u128 * u128::from(weights.max_abs()) * 255;
        let epilogue = match &c.output {
            ConvOutput::Codes(r) if bound < i32::MAX as u128 => Epilogue::Levels {
                thresholds: folded_thresholds(r, &c.bias)?,
                levels: r.levels.clone(),
            },
            ConvOutput::Codes(r) => Epilogue::Wide {
                requant: r.clone(),
                bias: c.bias.clone(),
            },
            ConvOutput::Accumulator => Epilogue::Accumulator {
                bias: c.bias.clone(),
            },
        };
        Ok(Self {
            node,
            unfold,
            weights,
            n: c.c_out,
            epilogue,
        })
    }

    /// Runs the convolution of `n_img` images `x` into `out` on the current rayon pool;
    /// `cols` and `acc` are the runner's buffers for column-split tiles.
    pub(super) fn run(
        &self,
        path: KernelPath,
        x: &[u8],
        n_img: usize,
        out: ConvOut<'_>,
        cols: &mut Vec<u8>,
        acc: &mut Vec<i32>,
    ) -> Result<(), NnError> {
        let m = n_img * self.unfold.oh * self.unfold.ow;
        let (k, n) = (self.unfold.k(), self.n);
        let panels = n.div_ceil(PANEL);
        let threads = rayon::current_num_threads().max(1);
        let want = 4 * threads;
        let cap = (TILE_BYTES / k.max(1) / ROW_ALIGN * ROW_ALIGN).clamp(ROW_ALIGN, 256);
        let mut mc = m.min(cap).div_ceil(ROW_ALIGN) * ROW_ALIGN;
        while m.div_ceil(mc) < want && mc > MIN_SPLIT_ROWS {
            mc = (mc / 2).div_ceil(ROW_ALIGN) * ROW_ALIGN;
        }
        if m.div_ceil(mc) >= want || panels == 1 {
            self.run_row_tiles(path, x, m, mc, out)
        } else {
            let mut pc = panels;
            while m.div_ceil(mc) * panels.div_ceil(pc) < want && pc > 1 {
                pc = pc.div_ceil(2);
            }
            self.run_column_tiles(path, x, m, mc, pc, out, cols, acc)
        }
    }

    /// Tiles of `mc` whole output rows, each unfolding its own rows.
    fn run_row_tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        m: usize,
        mc: usize,
        out: ConvOut<'_>,
    ) -> Result<(), NnError> {
        let n = self.n;
        let tile = |t: usize, out: ConvOut<'_>| -> Result<(), NnError> {
            let rows = t * mc..((t + 1) * mc).min(m);
            TILE_SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let (cols, acc) = &mut *scratch;
                let k = self.unfold.k();
                let a: &[u8] = if self.unfold.direct() {
                    &x[rows.start * k..rows.end * k]
                } else {
                    grow(cols, rows.len() * k);
                    self.unfold.rows(x, rows.start, rows.len(), cols);
                    cols
                };
                grow(acc, rows.len() * n);
                self.gemm(path, a, rows.len(), 0..n.div_ceil(PANEL), acc, n)?;
                self.epilogue(path, acc, n, rows.len(), 0..n, out, n)
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
    /// rows) into `acc` laid out `[group][m][group columns]`, then the epilogue.
    #[allow(clippy::too_many_arguments)]
    fn run_column_tiles(
        &self,
        path: KernelPath,
        x: &[u8],
        m: usize,
        mc: usize,
        pc: usize,
        out: ConvOut<'_>,
        cols: &mut Vec<u8>,
        acc: &mut Vec<i32>,
    ) -> Result<(), NnError> {
        let (k, n) = (self.unfold.k(), self.n);
        let panels = n.div_ceil(PANEL);
        let a: &[u8] = if self.unfold.direct() {
            &x[..m * k]
        } else {
            grow(cols, m * k);
            cols[..m * k]
                .par_chunks_mut(mc * k)
                .enumerate()
                .for_each(|(t, dst)| self.unfold.rows(x, t * mc, dst.len() / k, dst));
            cols
        };
        let group_cols = pc * PANEL;
        grow(acc, m * n);
        acc[..m * n]
            .par_chunks_mut(m * group_cols)
            .enumerate()
            .try_for_each(|(g, block)| {
                let pans = g * pc..((g + 1) * pc).min(panels);
                let width = block.len() / m;
                self.gemm(path, a, m, pans, block, width)
            })?;
        let mut out = out;
        for (g, block) in acc[..m * n].chunks(m * group_cols).enumerate() {
            let c0 = g * group_cols;
            let width = block.len() / m;
            let dst = match &mut out {
                ConvOut::Levels(o) => ConvOut::Levels(&mut o[c0..]),
                ConvOut::Int32(o) => ConvOut::Int32(&mut o[c0..]),
            };
            self.epilogue(path, block, width, m, c0..c0 + width, dst, n)?;
        }
        Ok(())
    }

    fn gemm(
        &self,
        path: KernelPath,
        a: &[u8],
        rows: usize,
        panels: Range<usize>,
        acc: &mut [i32],
        ldc: usize,
    ) -> Result<(), NnError> {
        gemm_block(
            path,
            a,
            self.unfold.k(),
            rows,
            self.weights.block(),
            panels,
            acc,
            ldc,
        )
        .map_err(|source| NnError::Kernel {
            what: format!("node {}: integer GEMM", self.node),
            source,
        })
    }

    /// Requantizes (or biases) `rows` accumulator rows (stride `lda`) of channels
    /// `chans` into `out` (stride `ldo`, column 0 = channel `chans.start`).
    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &self,
        path: KernelPath,
        acc: &[i32],
        lda: usize,
        rows: usize,
        chans: Range<usize>,
        out: ConvOut<'_>,
        ldo: usize,
    ) -> Result<(), NnError> {
        let width = chans.len();
        match (&self.epilogue, out) {
            (Epilogue::Levels { thresholds, levels }, ConvOut::Levels(o)) => thresholds
                .apply_levels_block(path, acc, lda, rows, chans.start, width, levels, o, ldo)
                .map_err(kernel_err("requantization")),
            (Epilogue::Wide { requant, bias }, ConvOut::Levels(o)) => {
                for r in 0..rows {
                    for j in 0..width {
                        let c = chans.start + j;
                        let v = i64::from(acc[r * lda + j]) + i64::from(bias[c]);
                        o[r * ldo + j] = requant.levels[usize::from(requant.code(c, v))];
                    }
                }
                Ok(())
            }
            (Epilogue::Accumulator { bias }, ConvOut::Int32(o)) => {
                // A signed add overflowed iff the sum's sign differs from both operands';
                // the sign bits are gathered rather than checked per element, so that the
                // loop vectorises.
                let bias = &bias[chans.clone()];
                let mut signs = 0i32;
                for r in 0..rows {
                    let src = &acc[r * lda..r * lda + width];
                    let dst = &mut o[r * ldo..r * ldo + width];
                    for ((d, &a), &b) in dst.iter_mut().zip(src).zip(bias) {
                        let v = a.wrapping_add(b);
                        *d = v;
                        signs |= (a ^ v) & (b ^ v);
                    }
                }
                if signs < 0 {
                    return Err(NnError::Overflow {
                        node: self.node,
                        what: "accumulator + bias",
                    });
                }
                Ok(())
            }
            _ => Err(NnError::InvalidModel {
                node: Some(self.node),
                problem: ModelProblem::Input {
                    op: "conv output",
                    expected: "a buffer of the output's kind".into(),
                    found: "another kind".into(),
                },
            }),
        }
    }
}

/// Grows `v` to at least `len` elements (never shrinks: buffers are reused).
pub(super) fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}
