//! NHWC convolution as im2col + GEMM into scratch owned by [`Conv2d`].
//!
//! Input `[batch][H][W][Cin]`, weights packed from OHWI (`W[cout][(ky·kw + kx)·Cin + ci]`,
//! see [`crate::packed`]), output accumulators `[batch][OH][OW][Cout]` (`i32`, i.e. the GEMM
//! output with `m = batch·OH·OW`). The im2col matrix has one row per output pixel with the
//! `(ky, kx, ci)` taps in weight order, rows padded with zeros to a multiple of 4 bytes;
//! taps outside the image read `pad_value` (the activation level that stands for 0).
//! The scratch is allocated once by [`Conv2d::new`] and reused by every call; a 1×1
//! stride-1 unpadded convolution reads the input directly.

use crate::gemm::{gemm_codebook, gemm_i8i8, gemm_u8i8};
use crate::packed::round_up;
use crate::{CodebookWeights, KernelError, KernelPath, PackedWeights};
use rayon::prelude::*;

/// Shape of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub batch: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel side (1 and 3 are the ResNet cases).
    pub kernel: usize,
    /// Stride (1 or 2 in ResNet).
    pub stride: usize,
    /// Zero padding on every side (1 for 3×3, 0 for 1×1 in ResNet).
    pub pad: usize,
}

impl ConvGeometry {
    /// Output height `(H + 2·pad − kernel) / stride + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// GEMM rows: `batch · OH · OW`.
    pub fn m(&self) -> usize {
        self.batch * self.out_height() * self.out_width()
    }

    /// GEMM reduction length: `kernel² · Cin`.
    pub fn k(&self) -> usize {
        self.kernel * self.kernel * self.in_channels
    }

    /// Input elements: `batch · H · W · Cin`.
    pub fn input_len(&self) -> usize {
        self.batch * self.height * self.width * self.in_channels
    }

    /// Output elements: `m · Cout`.
    pub fn output_len(&self) -> usize {
        self.m() * self.out_channels
    }

    fn validate(&self) -> Result<(), KernelError> {
        let positive = [
            ("batch", self.batch),
            ("height", self.height),
            ("width", self.width),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("kernel", self.kernel),
            ("stride", self.stride),
        ];
        for (what, v) in positive {
            if v == 0 {
                return Err(KernelError::Unsupported {
                    what,
                    value: 0,
                    allowed: "at least 1",
                });
            }
        }
        if self.pad >= self.kernel {
            return Err(KernelError::Unsupported {
                what: "pad",
                value: self.pad as i64,
                allowed: "less than the kernel side",
            });
        }
        if self.height + 2 * self.pad < self.kernel || self.width + 2 * self.pad < self.kernel {
            return Err(KernelError::Unsupported {
                what: "kernel",
                value: self.kernel as i64,
                allowed: "no larger than the padded input",
            });
        }
        Ok(())
    }

    fn direct(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0
    }
}

/// A convolution layer's geometry plus its reusable im2col scratch.
#[derive(Debug, Clone)]
pub struct Conv2d {
    geom: ConvGeometry,
    lda: usize,
    scratch: Vec<u8>,
}

impl Conv2d {
    /// Validates `geom` and allocates the im2col scratch (none for 1×1 stride 1).
    ///
    /// # Errors
    /// [`KernelError::Unsupported`] for a zero dimension, `pad ≥ kernel` or a kernel larger
    /// than the padded input.
    pub fn new(geom: ConvGeometry) -> Result<Self, KernelError> {
        geom.validate()?;
        let (lda, scratch) = if geom.direct() {
            (geom.in_channels, Vec::new())
        } else {
            let lda = round_up(geom.k(), 4);
            (lda, vec![0u8; geom.m() * lda])
        };
        Ok(Conv2d { geom, lda, scratch })
    }

    /// The geometry.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }

    /// Builds the im2col matrix of `input` in the scratch (row stride
    /// `round_up(k, 4)`) and returns it; for a direct 1×1 convolution returns `input`.
    ///
    /// # Errors
    /// [`KernelError::SliceTooShort`] when `input` is shorter than the geometry needs.
    pub fn im2col<'s>(
        &'s mut self,
        input: &'s [u8],
        pad_value: u8,
    ) -> Result<&'s [u8], KernelError> {
        let g = self.geom;
        if input.len() < g.input_len() {
            return Err(KernelError::SliceTooShort {
                what: "conv input",
                expected: g.input_len(),
                found: input.len(),
            });
        }
        if g.direct() {
            return Ok(&input[..g.input_len()]);
        }
        let (oh, ow, lda) = (g.out_height(), g.out_width(), self.lda);
        const ROWS_PER_TASK: usize = 64;
        self.scratch
            .par_chunks_mut(lda * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(chunk, rows)| {
                for (i, row) in rows.chunks_exact_mut(lda).enumerate() {
                    let pix = chunk * ROWS_PER_TASK + i;
                    let (b, rest) = (pix / (oh * ow), pix % (oh * ow));
                    let (oy, ox) = (rest / ow, rest % ow);
                    fill_row(&g, input, b, oy, ox, pad_value, row);
                }
            });
        Ok(&self.scratch)
    }

    fn check_out(&self, n: usize, k: usize, out_len: usize) -> Result<(), KernelError> {
        let g = &self.geom;
        if n != g.out_channels {
            return Err(KernelError::ShapeMismatch {
                what: "weights' output channels",
                expected: g.out_channels,
                found: n,
            });
        }
        if k != g.k() {
            return Err(KernelError::ShapeMismatch {
                what: "weights' reduction length (kernel² · Cin)",
                expected: g.k(),
                found: k,
            });
        }
        if out_len < g.output_len() {
            return Err(KernelError::SliceTooShort {
                what: "conv output",
                expected: g.output_len(),
                found: out_len,
            });
        }
        Ok(())
    }

    /// Convolution of unsigned activation levels with int8 weights into `i32`
    /// accumulators (`out` is `[batch][OH][OW][Cout]`).
    ///
    /// # Errors
    /// Shape errors as above; GEMM errors (path, accumulator bound) as
    /// [`gemm_u8i8`].
    pub fn forward_u8(
        &mut self,
        path: KernelPath,
        input: &[u8],
        pad_value: u8,
        w: &PackedWeights,
        out: &mut [i32],
    ) -> Result<(), KernelError> {
        self.check_out(w.n(), w.k(), out.len())?;
        let (m, n, lda) = (self.geom.m(), w.n(), self.lda);
        let a = self.im2col(input, pad_value)?;
        gemm_u8i8(path, a, lda, m, w, out, n)
    }

    /// As [`Conv2d::forward_u8`] with packed codebook weights.
    ///
    /// # Errors
    /// As [`Conv2d::forward_u8`].
    pub fn forward_codebook(
        &mut self,
        path: KernelPath,
        input: &[u8],
        pad_value: u8,
        w: &CodebookWeights,
        out: &mut [i32],
    ) -> Result<(), KernelError> {
        self.check_out(w.n(), w.k(), out.len())?;
        let (m, n, lda) = (self.geom.m(), w.n(), self.lda);
        let a = self.im2col(input, pad_value)?;
        gemm_codebook(path, a, lda, m, w, out, n)
    }

    /// Convolution of signed activations (padding reads 0) with int8 weights.
    ///
    /// # Errors
    /// As [`Conv2d::forward_u8`].
    pub fn forward_i8(
        &mut self,
        path: KernelPath,
        input: &[i8],
        w: &PackedWeights,
        out: &mut [i32],
    ) -> Result<(), KernelError> {
        self.check_out(w.n(), w.k(), out.len())?;
        let (m, n, lda) = (self.geom.m(), w.n(), self.lda);
        let a = self.im2col(bytemuck::cast_slice(input), 0)?;
        gemm_i8i8(path, bytemuck::cast_slice(a), lda, m, w, out, n)
    }
}

/// One im2col row: output pixel `(b, oy, ox)`.
fn fill_row(
    g: &ConvGeometry,
    input: &[u8],
    b: usize,
    oy: usize,
    ox: usize,
    pad_value: u8,
    row: &mut [u8],
) {
    let cin = g.in_channels;
    let mut dst = 0;
    for ky in 0..g.kernel {
        let iy = (oy * g.stride + ky)
            .checked_sub(g.pad)
            .filter(|&y| y < g.height);
        for kx in 0..g.kernel {
            let ix = (ox * g.stride + kx)
                .checked_sub(g.pad)
                .filter(|&x| x < g.width);
            let seg = &mut row[dst..dst + cin];
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let src = ((b * g.height + iy) * g.width + ix) * cin;
                    seg.copy_from_slice(&input[src..src + cin]);
                }
                _ => seg.fill(pad_value),
            }
            dst += cin;
        }
    }
    row[dst..].fill(0);
}
