//! Depthwise convolutions (one input channel per group, any channel multiplier `mult =
//! n / channels`): a direct kernel over NHWC rows. Output channel `o` reads input channel
//! `o / mult`; each input row a tap reads is widened once to `i16` and expanded to the output
//! channels (`[padded x][channel]`, padding bytes at the borders), and each tap then
//! multiplies whole vectors of channels into the row's `i32` accumulators — `u8 × i8` fits
//! `i16`, so the products are exact, and the sums are `i32` within the accumulator bound.
//! Codebook indices are decoded to levels once, when the layer is compiled. The rows finish
//! with the convolution's epilogue (or fused join) while in cache; output rows are spread
//! over the rayon pool, so a batch of one image uses every thread.

use std::cell::RefCell;

use rayon::prelude::*;
use wide::{i16x8, i32x8};

use super::epilogue::Epilogue;
use super::tiles::{finish_block, AccBlock, Finish};
use super::{ConvOut, Requantize};
use crate::archparam::DEPTHWISE_TASK_OUTPUTS;
use crate::overflow::check_accumulator_bound;
use crate::window::Window;
use crate::{KernelError, KernelPath, Weights};

/// Channels per vector step: the channel rows are padded to whole vectors.
const LANES: usize = 8;

thread_local! {
    /// Per-thread accumulators of one output row and one widened input row.
    static ROW_SCRATCH: RefCell<(Vec<i32>, Vec<i16>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A compiled depthwise convolution.
#[derive(Debug, Clone)]
pub(super) struct Depthwise {
    shape: Window,
    /// Output channels per input channel.
    mult: usize,
    /// Output channels.
    n: usize,
    /// `n` rounded up to whole vectors.
    np: usize,
    /// The padding byte of each output channel's input channel (`np`, zeros past `n`).
    pad: Vec<i16>,
    /// Weight levels `[tap][np]` (zeros past `n`).
    taps: Vec<i16>,
    max_abs: u32,
    epilogue: Epilogue,
}

impl Depthwise {
    /// Compiles the checked layer (`weights` rows of `kernel²`).
    pub(super) fn new(
        shape: Window,
        pad: &[u8],
        weights: &Weights,
        bias: &[i32],
        output: Requantize<'_>,
    ) -> Result<Depthwise, KernelError> {
        let n = weights.n();
        let mult = n / shape.channels;
        let np = n.next_multiple_of(LANES);
        let taps_n = shape.kernel * shape.kernel;
        let mut taps = vec![0i16; taps_n * np];
        for (t, row) in taps.chunks_exact_mut(np).enumerate() {
            for (o, w) in row[..n].iter_mut().enumerate() {
                *w = i16::from(weights.level(o, t));
            }
        }
        let mut padded = vec![0i16; np];
        for (o, p) in padded[..n].iter_mut().enumerate() {
            *p = i16::from(pad[o / mult]);
        }
        let bound = taps_n as u128 * u128::from(weights.max_abs()) * 255;
        Ok(Depthwise {
            shape,
            mult,
            n,
            np,
            pad: padded,
            taps,
            max_abs: weights.max_abs(),
            epilogue: Epilogue::new(output, bias, bound)?,
        })
    }

    /// Whether the output is levels (else `acc + bias`).
    pub(super) fn writes_levels(&self) -> bool {
        self.epilogue.writes_levels()
    }

    /// Runs the checked problem of `images` images into `out` (or, for a join, into levels).
    pub(super) fn run(
        &self,
        path: KernelPath,
        x: &[u8],
        images: usize,
        out: ConvOut<'_>,
        finish: Finish<'_>,
    ) -> Result<(), KernelError> {
        let s = self.shape;
        check_accumulator_bound(s.kernel * s.kernel, self.max_abs, 255)?;
        let (oh, ow, n) = (s.out_height(), s.out_width(), self.n);
        let row_len = ow * n;
        let rows = images * oh;
        let per_task = (DEPTHWISE_TASK_OUTPUTS / row_len.max(1))
            .clamp(1, rows.div_ceil(rayon::current_num_threads()).max(1));
        let task = |t: usize, out: ConvOut<'_>| -> Result<(), KernelError> {
            ROW_SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                let (acc, line) = &mut *scratch;
                let mut out = out;
                for r in 0..out.len() / row_len {
                    let row = t * per_task + r;
                    self.row_acc(path, x, row / oh, row % oh, acc, line);
                    let block = AccBlock {
                        acc,
                        lda: self.np,
                        first_row: row * ow,
                        rows: ow,
                        chans: 0..n,
                    };
                    let dst = sub(&mut out, r * row_len, row_len);
                    finish_block(&self.epilogue, n, path, finish, block, dst, n)?;
                }
                Ok(())
            })
        };
        match out {
            ConvOut::Levels(o) => o[..rows * row_len]
                .par_chunks_mut(per_task * row_len)
                .enumerate()
                .try_for_each(|(t, o)| task(t, ConvOut::Levels(o))),
            ConvOut::Int32(o) => o[..rows * row_len]
                .par_chunks_mut(per_task * row_len)
                .enumerate()
                .try_for_each(|(t, o)| task(t, ConvOut::Int32(o))),
        }
    }

    /// The accumulators of output row `oy` of image `b` into `acc` (`[ox][np]`).
    fn row_acc(
        &self,
        path: KernelPath,
        x: &[u8],
        b: usize,
        oy: usize,
        acc: &mut Vec<i32>,
        line: &mut Vec<i16>,
    ) {
        let s = self.shape;
        let (ow, np) = (s.out_width(), self.np);
        acc.clear();
        acc.resize(ow * np, 0);
        for ky in 0..s.kernel {
            let iy = (oy * s.stride + ky * s.dilation).checked_sub(s.padding);
            self.widen_line(x, b, iy.filter(|&y| y < s.height), line);
            for kx in 0..s.kernel {
                let w = &self.taps[(ky * s.kernel + kx) * np..][..np];
                for ox in 0..ow {
                    let a = &mut acc[ox * np..(ox + 1) * np];
                    let src = &line[(ox * s.stride + kx * s.dilation) * np..][..np];
                    match path {
                        KernelPath::Scalar => mac_scalar(a, src, w),
                        _ => mac_wide(a, src, w),
                    }
                }
            }
        }
    }

    /// Input row `iy` of image `b` (`None`: a padding row) widened into `line`
    /// (`[padded x][np]`, each output channel holding its input channel's value).
    fn widen_line(&self, x: &[u8], b: usize, iy: Option<usize>, line: &mut Vec<i16>) {
        let s = self.shape;
        let (np, c, p) = (self.np, s.channels, s.padding);
        let wp = s.width + 2 * p;
        line.clear();
        line.resize(wp * np, 0);
        for (ix, px) in line.chunks_exact_mut(np).enumerate() {
            let inside = ix.checked_sub(p).filter(|&v| v < s.width);
            match (iy, inside) {
                (Some(y), Some(v)) => {
                    let src = &x[((b * s.height + y) * s.width + v) * c..][..c];
                    if self.mult == 1 {
                        for (d, &v) in px.iter_mut().zip(src) {
                            *d = i16::from(v);
                        }
                    } else {
                        for (d, &v) in px.chunks_exact_mut(self.mult).zip(src) {
                            d.fill(i16::from(v));
                        }
                    }
                }
                _ => px.copy_from_slice(&self.pad),
            }
        }
    }
}

/// `acc[j] += x[j] · w[j]`, one channel at a time.
fn mac_scalar(acc: &mut [i32], x: &[i16], w: &[i16]) {
    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
        *a += i32::from(x) * i32::from(w);
    }
}

/// `acc[j] += x[j] · w[j]`, eight channels at a time (`wide`: SSE2 on baseline x86-64,
/// NEON on aarch64); the `i16` products of `u8` activations and `i8` weights are exact
/// and widened to `i32` before they are summed.
fn mac_wide(acc: &mut [i32], x: &[i16], w: &[i16]) {
    for ((a, x), w) in acc
        .chunks_exact_mut(LANES)
        .zip(x.chunks_exact(LANES))
        .zip(w.chunks_exact(LANES))
    {
        let xv = i16x8::new(x.try_into().expect("8 lanes"));
        let wv = i16x8::new(w.try_into().expect("8 lanes"));
        let av = i32x8::new(<[i32; LANES]>::try_from(&*a).expect("8 lanes"));
        a.copy_from_slice(&(av + xv.widening_mul(wv)).to_array());
    }
}

/// `len` elements of `out` from `at` on.
fn sub<'a>(out: &'a mut ConvOut<'_>, at: usize, len: usize) -> ConvOut<'a> {
    match out {
        ConvOut::Levels(o) => ConvOut::Levels(&mut o[at..at + len]),
        ConvOut::Int32(o) => ConvOut::Int32(&mut o[at..at + len]),
    }
}
