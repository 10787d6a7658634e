//! Stand-alone ReLU and ReLU6 (models fuse them into [`crate::BatchNorm2d`] where one
//! precedes them).

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::layers::batchnorm::RELU6_MAX;
use crate::tensor::Tensor;

const BLOCK: usize = 1 << 15;

/// `max(0, x)` element-wise.
#[derive(Default)]
pub struct Relu {
    out: Tensor,
    dx: Tensor,
}

impl Relu {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Relu {
    fn describe(&self) -> String {
        "ReLU".into()
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        self.out.reshape_uninit(x.shape());
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK))
            .for_each(|(o, i)| {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = v.max(0.0);
                }
            });
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ReLU", x.shape(), dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        self.dx
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK).zip(dy.data().par_chunks(BLOCK)))
            .for_each(|(d, (xi, g))| {
                for ((d, &v), &g) in d.iter_mut().zip(xi).zip(g) {
                    *d = if v > 0.0 { g } else { 0.0 };
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

/// `min(6, max(0, x))` element-wise (PyTorch's `nn.ReLU6`); the gradient passes where
/// `0 < x < 6`.
#[derive(Default)]
pub struct Relu6 {
    out: Tensor,
    dx: Tensor,
}

impl Relu6 {
    /// A ReLU6 layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Relu6 {
    fn describe(&self) -> String {
        "ReLU6".into()
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        self.out.reshape_uninit(x.shape());
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK))
            .for_each(|(o, i)| {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = v.clamp(0.0, RELU6_MAX);
                }
            });
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ReLU6", x.shape(), dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        self.dx
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK).zip(dy.data().par_chunks(BLOCK)))
            .for_each(|(d, (xi, g))| {
                for ((d, &v), &g) in d.iter_mut().zip(xi).zip(g) {
                    *d = if v > 0.0 && v < RELU6_MAX { g } else { 0.0 };
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}
