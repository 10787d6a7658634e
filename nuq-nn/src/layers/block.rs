//! The residual BasicBlock of ResNet-18/20.

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::layers::{BatchNorm2d, Conv2d, Conv2dConfig, Sequential};
use crate::param::{join_name, BufferMut, Param};
use crate::rng::Rng;
use crate::tensor::Tensor;

const BLOCK: usize = 1 << 15;

/// `relu(main(x) + shortcut(x))` with `main = conv3×3(stride) → BN → ReLU → conv3×3 → BN` and
/// `shortcut` either the identity or `conv1×1(stride) → BN` (when the stride or the channel
/// count changes).
///
/// PyTorch names (torchvision convention): `conv1`, `bn1`, `conv2`, `bn2`, `downsample.0`
/// (1×1 conv), `downsample.1` (its BN). The first BN is fused with its ReLU.
pub struct BasicBlock {
    /// The residual branch, children named `conv1`, `bn1`, `conv2`, `bn2`.
    pub main: Sequential,
    /// The projection shortcut, children named `0` (conv) and `1` (BN); `None` for identity.
    pub downsample: Option<Sequential>,
    out: Tensor,
    dsum: Tensor,
    dx: Tensor,
}

impl BasicBlock {
    /// A block from `c_in` to `c_out` channels whose first conv (and shortcut) has `stride`.
    pub fn new(c_in: usize, c_out: usize, stride: usize, rng: &mut Rng) -> Result<Self, NnError> {
        let mut main = Sequential::new();
        main.push(
            "conv1",
            Conv2d::new(Conv2dConfig::square(c_in, c_out, 3, stride, 1), rng)?,
        )
        .push("bn1", BatchNorm2d::new(c_out, true))
        .push(
            "conv2",
            Conv2d::new(Conv2dConfig::square(c_out, c_out, 3, 1, 1), rng)?,
        )
        .push("bn2", BatchNorm2d::new(c_out, false));
        let downsample = if stride != 1 || c_in != c_out {
            let mut s = Sequential::new();
            s.push(
                "0",
                Conv2d::new(Conv2dConfig::square(c_in, c_out, 1, stride, 0), rng)?,
            )
            .push("1", BatchNorm2d::new(c_out, false));
            Some(s)
        } else {
            None
        };
        Ok(Self {
            main,
            downsample,
            out: Tensor::default(),
            dsum: Tensor::default(),
            dx: Tensor::default(),
        })
    }
}

impl BasicBlock {
    /// A block from its branches: `relu(main(x) + shortcut(x))`, the shortcut the identity
    /// when `None` (the ONNX importer builds blocks this way). The quantizer folds blocks
    /// whose main branch is conv–BN(ReLU)–conv–BN and whose shortcut is conv–BN, as
    /// [`BasicBlock::new`] builds them.
    pub fn from_parts(main: Sequential, downsample: Option<Sequential>) -> Self {
        Self {
            main,
            downsample,
            out: Tensor::default(),
            dsum: Tensor::default(),
            dx: Tensor::default(),
        }
    }
}

impl Layer for BasicBlock {
    fn describe(&self) -> String {
        format!(
            "BasicBlock({}; shortcut {})",
            self.main.describe(),
            self.downsample
                .as_ref()
                .map_or("identity".to_string(), |d| d.describe())
        )
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        let m = self.main.output_shape(input)?;
        let s = match &self.downsample {
            Some(d) => d.output_shape(input)?,
            None => input,
        };
        if m != s {
            return Err(NnError::InputShape {
                layer: "BasicBlock".into(),
                found: input,
                reason: format!("branch shapes differ: main {m:?}, shortcut {s:?}"),
            });
        }
        Ok(m)
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        let os = self.output_shape(x.shape())?;
        let m = self.main.forward(x, mode)?;
        let s = match &mut self.downsample {
            Some(d) => d.forward(x, mode)?,
            None => x,
        };
        self.out.reshape_uninit(os);
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(m.data().par_chunks(BLOCK).zip(s.data().par_chunks(BLOCK)))
            .for_each(|(o, (a, b))| {
                for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                    *o = (a + b).max(0.0);
                }
            });
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("BasicBlock", self.out.shape(), dy)?;
        self.dsum.reshape_uninit(dy.shape());
        self.dsum
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(
                dy.data()
                    .par_chunks(BLOCK)
                    .zip(self.out.data().par_chunks(BLOCK)),
            )
            .for_each(|(d, (g, y))| {
                for ((d, g), y) in d.iter_mut().zip(g).zip(y) {
                    *d = if *y > 0.0 { *g } else { 0.0 };
                }
            });
        self.main.backward(x, &self.dsum, need_input_grad)?;
        if let Some(d) = &mut self.downsample {
            d.backward(x, &self.dsum, need_input_grad)?;
        }
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        let a = self.main.input_grad();
        let b = match &self.downsample {
            Some(d) => d.input_grad(),
            None => &self.dsum,
        };
        self.dx
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(a.data().par_chunks(BLOCK).zip(b.data().par_chunks(BLOCK)))
            .for_each(|(o, (a, b))| {
                for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                    *o = a + b;
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.main.visit_params(prefix, f);
        if let Some(d) = &mut self.downsample {
            d.visit_params(&join_name(prefix, "downsample"), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        self.main.visit_buffers(prefix, f);
        if let Some(d) = &mut self.downsample {
            d.visit_buffers(&join_name(prefix, "downsample"), f);
        }
    }

    fn macs(&self, input: [usize; 4]) -> u64 {
        self.main.macs(input) + self.downsample.as_ref().map_or(0, |d| d.macs(input))
    }
}
