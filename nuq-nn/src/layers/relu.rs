//! Stand-alone ReLU and ReLU6 (models fuse them into [`crate::BatchNorm2d`] where one
//! precedes them).

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::layers::batchnorm::RELU6_MAX;
use crate::tensor::Tensor;

const BLOCK: usize = 1 << 15;

/// `max(0, x)` element-wise.
#[derive(Clone, Default)]
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
        map(&mut self.out, x, |v| v.max(0.0));
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ReLU", x.shape(), dy)?;
        masked_grad(&mut self.dx, x, dy, need_input_grad, |v| v > 0.0);
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

/// `min(6, max(0, x))` element-wise (PyTorch's `nn.ReLU6`); the gradient passes where
/// `0 < x < 6`.
#[derive(Clone, Default)]
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
        map(&mut self.out, x, |v| v.clamp(0.0, RELU6_MAX));
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ReLU6", x.shape(), dy)?;
        masked_grad(&mut self.dx, x, dy, need_input_grad, |v| {
            v > 0.0 && v < RELU6_MAX
        });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

/// `out = f(x)` element-wise, in parallel blocks.
fn map(out: &mut Tensor, x: &Tensor, f: impl Fn(f32) -> f32 + Sync) {
    out.reshape_uninit(x.shape());
    out.data_mut()
        .par_chunks_mut(BLOCK)
        .zip(x.data().par_chunks(BLOCK))
        .for_each(|(o, i)| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = f(v);
            }
        });
}

/// `dx = dy` where `pass(x)`, else 0 (an empty `dx` when no input gradient is needed): a
/// select on values already loaded, which compiles to vector compares and blends (a branch
/// per element would mispredict on about half of them).
pub(crate) fn masked_grad(
    dx: &mut Tensor,
    x: &Tensor,
    dy: &Tensor,
    need_input_grad: bool,
    pass: impl Fn(f32) -> bool + Sync,
) {
    if !need_input_grad {
        dx.reshape_uninit([0, 0, 0, 0]);
        return;
    }
    dx.reshape_uninit(x.shape());
    dx.data_mut()
        .par_chunks_mut(BLOCK)
        .zip(x.data().par_chunks(BLOCK).zip(dy.data().par_chunks(BLOCK)))
        .for_each(|(d, (xi, g))| {
            for ((d, &v), &g) in d.iter_mut().zip(xi).zip(g) {
                *d = if pass(v) { g } else { 0.0 };
            }
        });
}
