//! [`ConvGeometry`]: the shape of a convolution over NHWC `f32` tensors, and its checks.

use crate::error::check_eq;
use crate::KernelError;

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
    pub(super) fn check_same(&self, g: &ConvGeometry) -> Result<(), KernelError> {
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

    pub(super) fn checked(&self) -> Result<(usize, usize), KernelError> {
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
