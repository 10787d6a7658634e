//! Grouped convolutions of several channels per group: each group is a convolution of its
//! own (its weight rows, bias, thresholds and padding bytes), run by the tiles on a
//! contiguous copy of its input channels; its output channels are scattered into their
//! slice of the layer's output.

use nuq_core::MacThresholds;
use rayon::prelude::*;

use super::tiles::Finish;
use super::{ConvOut, ConvScratch, Dense, Requantize};
use crate::archparam::GATHER_ELEMENTS;
use crate::residual_threshold::{ResidualThresholds, Shortcut};
use crate::window::Window;
use crate::{KernelError, KernelPath, Weights};

/// A grouped convolution, one [`Dense`] per group.
#[derive(Debug, Clone)]
pub(super) struct Grouped {
    /// The layer's shape (all input channels).
    shape: Window,
    /// Each group's convolution (its shape has the group's input channels).
    groups: Vec<Dense>,
}

/// Grows `v` to at least `len` elements (never shrinks: buffers are reused).
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// Copies `len` elements per pixel from `src` (`src_stride` per pixel, from `src_at`) to
/// `dst` (`dst_stride` per pixel, from `dst_at`) for `pixels` pixels, in parallel.
#[allow(clippy::too_many_arguments)]
fn copy_channels<T: Copy + Send + Sync>(
    src: &[T],
    src_stride: usize,
    src_at: usize,
    dst: &mut [T],
    dst_stride: usize,
    dst_at: usize,
    len: usize,
    pixels: usize,
) {
    let min = (GATHER_ELEMENTS / dst_stride.max(1)).max(1);
    dst[..pixels * dst_stride]
        .par_chunks_mut(dst_stride)
        .with_min_len(min)
        .enumerate()
        .for_each(|(p, d)| {
            let s = &src[p * src_stride + src_at..][..len];
            d[dst_at..dst_at + len].copy_from_slice(s);
        });
}

impl Grouped {
    /// Splits the checked layer into `groups` convolutions.
    pub(super) fn new(
        shape: Window,
        groups: usize,
        pad: &[u8],
        weights: &Weights,
        bias: &[i32],
        output: Requantize<'_>,
    ) -> Result<Grouped, KernelError> {
        let cg = shape.channels / groups;
        let ng = weights.n() / groups;
        let group_shape = Window {
            channels: cg,
            ..shape
        };
        let mut convs = Vec::with_capacity(groups);
        for g in 0..groups {
            let rows = g * ng..(g + 1) * ng;
            let w = weights.select_rows(rows.clone())?;
            let pad = &pad[g * cg..(g + 1) * cg];
            let bias = &bias[rows.clone()];
            let dense = match output {
                Requantize::Accumulator => {
                    Dense::new(group_shape, pad, w, bias, Requantize::Accumulator)?
                }
                Requantize::Levels { thresholds, levels } => {
                    let t = group_thresholds(thresholds, rows)?;
                    let out = Requantize::Levels {
                        thresholds: &t,
                        levels,
                    };
                    Dense::new(group_shape, pad, w, bias, out)?
                }
            };
            convs.push(dense);
        }
        Ok(Grouped {
            shape,
            groups: convs,
        })
    }

    /// Whether the groups write levels (else `acc + bias`).
    pub(super) fn writes_levels(&self) -> bool {
        self.groups
            .first()
            .is_some_and(|g| g.epilogue.writes_levels())
    }

    /// Runs the checked problem: each group's channels gathered, convolved and scattered.
    pub(super) fn run(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        mut out: ConvOut<'_>,
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        let s = self.shape;
        let pixels_in = images * s.height * s.width;
        let m = images * s.out_height() * s.out_width();
        let n = self.groups.iter().map(Dense::n).sum::<usize>();
        let mut gx = std::mem::take(&mut scratch.group_x);
        let mut levels = std::mem::take(&mut scratch.group_levels);
        let mut acc = std::mem::take(&mut scratch.group_acc);
        let result = (|| {
            let mut c0 = 0;
            for (g, dense) in self.groups.iter().enumerate() {
                let (cg, ng) = (dense.shape.channels, dense.n());
                grow(&mut gx, pixels_in * cg);
                copy_channels(x, s.channels, g * cg, &mut gx, cg, 0, cg, pixels_in);
                match &mut out {
                    ConvOut::Levels(o) => {
                        grow(&mut levels, m * ng);
                        let group_out = ConvOut::Levels(&mut levels[..m * ng]);
                        dense.tiles(path, &gx, m, group_out, Finish::Epilogue, scratch)?;
                        copy_channels(&levels, ng, 0, o, n, c0, ng, m);
                    }
                    ConvOut::Int32(o) => {
                        grow(&mut acc, m * ng);
                        let group_out = ConvOut::Int32(&mut acc[..m * ng]);
                        dense.tiles(path, &gx, m, group_out, Finish::Epilogue, scratch)?;
                        copy_channels(&acc, ng, 0, o, n, c0, ng, m);
                    }
                }
                c0 += ng;
            }
            Ok(())
        })();
        scratch.group_x = gx;
        scratch.group_levels = levels;
        scratch.group_acc = acc;
        result
    }

    /// The convolution's `acc + bias`, written whole, then joined with `shortcut`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_join(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        join: &ResidualThresholds,
        shortcut: Shortcut<'_>,
        out: &mut [u8],
        scratch: &mut ConvScratch,
    ) -> Result<(), KernelError> {
        let s = self.shape;
        let n = self.groups.iter().map(Dense::n).sum::<usize>();
        let len = images * s.out_height() * s.out_width() * n;
        let mut main = vec![0i32; len];
        self.run(path, x, images, ConvOut::Int32(&mut main), scratch)?;
        join.apply(path, &main, shortcut.prefix(len), out)
    }
}

/// The thresholds of output channels `rows`.
fn group_thresholds(
    t: &MacThresholds,
    rows: std::ops::Range<usize>,
) -> Result<MacThresholds, KernelError> {
    let per = t.per_channel();
    let values = t.values()[rows.start * per..rows.end * per].to_vec();
    let dirs = t.directions()[rows].to_vec();
    MacThresholds::new(t.bits(), values, dirs).map_err(|_| KernelError::ShapeMismatch {
        what: "threshold rows (one per output channel)",
        expected: t.channels(),
        found: t.channels(),
    })
}
