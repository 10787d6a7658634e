//! The packed filters of the direct kernels: [`Filter`] (forward: blocks of 64 output
//! channels, `[k][64]`) and [`GradFilter`] (input gradient: one such filter per phase of the
//! stride, over the taps that reach it).

use super::{ConvGeometry, BLOCK};
use crate::error::check_eq;
use crate::KernelError;
use rayon::prelude::*;

/// A filter packed for the direct kernels: blocks of 64 output channels, each `[k][64]`
/// (the last block padded with zeros).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub(super) data: Vec<f32>,
    pub(super) k: usize,
    pub(super) c_out: usize,
}

impl Filter {
    /// Packs OHWI weights `w[c_out][k]` of `g` for [`forward`](super::forward).
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] when `w` does not hold `c_out · k` values;
    /// [`KernelError::Unsupported`] for a geometry [`supports`](super::supports) refuses.
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

/// One phase of the input gradient: the input pixels `(iy, ix)` with `iy mod s_h = a`,
/// `ix mod s_w = b`, which the same taps reach (those with `a + p_h − ky·d_h` a multiple of
/// `s_h`, likewise across).
#[derive(Debug, Clone)]
pub(super) struct Phase {
    /// The taps `(ky, kx)`, in the filter's row order.
    pub(super) taps: Vec<(usize, usize)>,
    /// Rows `(tap, o)`, lanes `ci`: `w[o][ky][kx][ci]`.
    pub(super) filter: Filter,
}

/// A filter packed for [`input_grad`](super::input_grad): the input gradient of a convolution is, for each
/// phase of the input pixels modulo the stride, a convolution of the output gradient with the
/// taps that reach that phase (one phase with every tap at stride 1).
#[derive(Debug, Clone)]
pub struct GradFilter {
    pub(super) geometry: ConvGeometry,
    /// Phase `a · s_w + b`.
    pub(super) phases: Vec<Phase>,
}

impl GradFilter {
    /// Packs the OHWI weights `w[c_out][k]` of `g` for [`input_grad`](super::input_grad).
    ///
    /// # Errors
    /// [`KernelError::ShapeMismatch`] when `w` does not hold `c_out · k` values;
    /// [`KernelError::Unsupported`] for a geometry [`supports`](super::supports) refuses or input channels
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
