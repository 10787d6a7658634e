//! Flatten to `[n, 1, 1, c·h·w]` in PyTorch (channel-major) feature order.

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::tensor::Tensor;

/// Flattens each image to a feature vector ordered `[c][h][w]`, as `torch.flatten` does on an
/// NCHW tensor, so that a following [`crate::Linear`] has exactly PyTorch's weight matrix.
#[derive(Clone, Default)]
pub struct Flatten {
    out: Tensor,
    dx: Tensor,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Flatten {
    fn describe(&self) -> String {
        "Flatten".into()
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok([input[0], 1, 1, input[1] * input[2] * input[3]])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        let [n, h, w, c] = x.shape();
        self.out.reshape_uninit([n, 1, 1, h * w * c]);
        let hw = h * w;
        let per = hw * c;
        for img in 0..n {
            let xi = x.image(img);
            let o = &mut self.out.data_mut()[img * per..(img + 1) * per];
            for p in 0..hw {
                for ch in 0..c {
                    o[ch * hw + p] = xi[p * c + ch];
                }
            }
        }
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        let [n, h, w, c] = x.shape();
        check_grad_shape("Flatten", [n, 1, 1, h * w * c], dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        let hw = h * w;
        let per = hw * c;
        for img in 0..n {
            let g = &dy.data()[img * per..(img + 1) * per];
            let d = &mut self.dx.data_mut()[img * per..(img + 1) * per];
            for p in 0..hw {
                for ch in 0..c {
                    d[p * c + ch] = g[ch * hw + p];
                }
            }
        }
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}
