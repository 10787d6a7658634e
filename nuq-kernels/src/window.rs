//! [`Window`]: the geometry of a square window (a convolution's or a max-pool's) sliding over
//! NHWC images, and its output size.

use crate::KernelError;

/// A square `kernel × kernel` window moved by `stride` over `height × width × channels` images
/// padded by `padding` on every side, its taps `dilation` pixels apart: tap `(ky, kx)` of
/// output `(oy, ox)` reads input `(oy·stride + ky·dilation − padding, ox·stride +
/// kx·dilation − padding)`. Dilation 1 is a plain window; only convolutions take another.
///
/// `Window::new` builds one with dilation 1; a dilated one sets the field:
///
/// ```
/// use nuq_kernels::Window;
/// let w = Window { dilation: 2, ..Window::new(8, 8, 3, 3, 1, 2) };
/// assert_eq!((w.span(), w.out_height(), w.out_width()), (5, 8, 8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Input channels.
    pub channels: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
    /// Spacing of the kernel taps in input pixels (1: adjacent taps).
    pub dilation: usize,
}

impl Window {
    /// A window with dilation 1.
    pub fn new(
        height: usize,
        width: usize,
        channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            height,
            width,
            channels,
            kernel,
            stride,
            padding,
            dilation: 1,
        }
    }

    /// The input pixels one window spans along each axis, `dilation·(kernel − 1) + 1`.
    pub fn span(&self) -> usize {
        self.dilation * self.kernel.saturating_sub(1) + 1
    }

    /// Output height, `(height + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.span()) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.span()) / self.stride + 1
    }

    /// Values under one window position, `kernel² · channels` (a convolution's im2col row, the
    /// GEMM's reduction length).
    pub fn k(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    /// `Ok` for positive sizes (dilation included) and a (dilated) kernel that fits the
    /// padded input; `op` names the operation in the error.
    pub(crate) fn validate(&self, op: &'static str) -> Result<(), KernelError> {
        for (what, v) in [
            ("height", self.height),
            ("width", self.width),
            ("channels", self.channels),
            ("kernel", self.kernel),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ] {
            if v == 0 {
                return Err(KernelError::Unsupported {
                    what,
                    value: 0,
                    allowed: "at least 1",
                });
            }
        }
        let span = self
            .dilation
            .checked_mul(self.kernel - 1)
            .and_then(|s| s.checked_add(1));
        match span {
            Some(span) if self.height.min(self.width) + 2 * self.padding >= span => {}
            _ => {
                return Err(KernelError::Unsupported {
                    what: op,
                    value: self.kernel as i64,
                    allowed: "a kernel (spanning dilation·(kernel − 1) + 1) at most the padded input's height and width",
                })
            }
        }
        Ok(())
    }
}
