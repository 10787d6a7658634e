//! The dense 4-D `f32` activation tensor.
//!
//! # Layout: NHWC
//! Activations are stored batch-major, then row, column and channel (`[n][h][w][c]`, channel
//! fastest). This is the layout the hot paths want:
//! - im2col for a convolution copies, for every output pixel and kernel tap, one contiguous run
//!   of `c` input channels; the column matrix rows (one per output pixel, batch folded in) are
//!   the GEMM's M dimension and the output `[n·h·w, c_out]` is the convolution result with no
//!   transposition;
//! - a 1×1 stride-1 convolution needs no im2col at all (the input already is the column matrix);
//! - BatchNorm, ReLU and bias passes walk channels contiguously, so per-channel scale and shift
//!   vectorise across channels;
//! - the integer kernels of a later stage read the same layout.
//!
//! Fully connected activations use the shape `[n, 1, 1, features]`.

use crate::error::NnError;

/// A dense NHWC tensor of `f32` values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: [usize; 4],
    data: Vec<f32>,
}

impl Tensor {
    /// A zero-filled tensor of shape `[n, h, w, c]`.
    pub fn zeros(shape: [usize; 4]) -> Self {
        Self {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Wraps `data` (NHWC order) as a tensor of the given shape.
    pub fn from_vec(shape: [usize; 4], data: Vec<f32>) -> Result<Self, NnError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(NnError::DataLength {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    /// The shape `[n, h, w, c]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Batch size.
    pub fn n(&self) -> usize {
        self.shape[0]
    }

    /// Height.
    pub fn h(&self) -> usize {
        self.shape[1]
    }

    /// Width.
    pub fn w(&self) -> usize {
        self.shape[2]
    }

    /// Channels (the contiguous dimension).
    pub fn c(&self) -> usize {
        self.shape[3]
    }

    /// Number of pixels over the batch, `n·h·w` (the row count of the NHWC matrix view).
    pub fn rows(&self) -> usize {
        self.shape[0] * self.shape[1] * self.shape[2]
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values in NHWC order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable values in NHWC order.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor and returns its values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Gives the tensor a new shape, keeping its allocation when it is large enough.
    ///
    /// The values after the call are unspecified (old contents or zeros): callers overwrite them.
    /// This is how layers reuse their output and gradient buffers from step to step.
    pub fn reshape_uninit(&mut self, shape: [usize; 4]) {
        self.shape = shape;
        let len = shape.iter().product();
        if self.data.len() != len {
            self.data.resize(len, 0.0);
        }
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        self.data.fill(0.0);
    }

    /// Values of one image (`[h][w][c]`).
    ///
    /// # Panics
    /// If `i` is not below the batch size.
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[i * per..(i + 1) * per]
    }
}
