//! [`Window`]: the geometry of a square window (a convolution's or a max-pool's) sliding over
//! NHWC images, and its output size.

use crate::KernelError;

/// A square `kernel × kernel` window moved by `stride` over `height × width × channels` images
/// padded by `padding` on every side.
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
}

impl Window {
    /// Output height, `(height + 2·padding − kernel) / stride + 1`.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Values under one window position, `kernel² · channels` (a convolution's im2col row, the
    /// GEMM's reduction length).
    pub fn k(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    /// `Ok` for positive sizes and a kernel that fits the padded input; `op` names the
    /// operation in the error.
    pub(crate) fn validate(&self, op: &'static str) -> Result<(), KernelError> {
        for (what, v) in [
            ("height", self.height),
            ("width", self.width),
            ("channels", self.channels),
            ("kernel", self.kernel),
            ("stride", self.stride),
        ] {
            if v == 0 {
                return Err(KernelError::Unsupported {
                    what,
                    value: 0,
                    allowed: "at least 1",
                });
            }
        }
        if self.height.min(self.width) + 2 * self.padding < self.kernel {
            return Err(KernelError::Unsupported {
                what: op,
                value: self.kernel as i64,
                allowed: "a kernel at most the padded input's height and width",
            });
        }
        Ok(())
    }
}
