//! Max pooling and global average pooling.

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::tensor::Tensor;

/// Max pooling with a square window, optional padding, floor rounding (PyTorch
/// `MaxPool2d(k, s, padding)`): padded positions never win (PyTorch pads with `-inf`), and
/// the padding is at most half the window, so every window covers at least one input value.
/// Ties go to the first maximum in scan order.
#[derive(Clone)]
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
    out: Tensor,
    dx: Tensor,
    /// For every output value, the offset of the chosen input inside its image.
    argmax: Vec<u32>,
    last: Option<[usize; 4]>,
}

impl MaxPool2d {
    /// A `kernel×kernel` max pool with the given stride (both positive), without padding.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for a zero kernel or stride.
    pub fn new(kernel: usize, stride: usize) -> Result<Self, NnError> {
        Self::with_padding(kernel, stride, 0)
    }

    /// A `kernel×kernel` max pool with the given stride and `padding` on every side
    /// (torchvision's ResNet stem: `MaxPool2d(3, 2, padding 1)`).
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for a zero kernel or stride, or a padding above half
    /// the kernel (PyTorch's limit).
    pub fn with_padding(kernel: usize, stride: usize, padding: usize) -> Result<Self, NnError> {
        if kernel == 0 || stride == 0 {
            return Err(NnError::InvalidParameter {
                what: "MaxPool2d kernel and stride".into(),
                allowed: "positive",
                found: format!("{kernel} and {stride}"),
            });
        }
        if padding > kernel / 2 {
            return Err(NnError::InvalidParameter {
                what: format!("MaxPool2d({kernel}) padding"),
                allowed: "at most half the kernel",
                found: padding.to_string(),
            });
        }
        Ok(Self {
            kernel,
            stride,
            padding,
            out: Tensor::default(),
            dx: Tensor::default(),
            argmax: Vec::new(),
            last: None,
        })
    }

    /// The window size.
    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// The stride.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The padding on every side.
    pub fn padding(&self) -> usize {
        self.padding
    }
}

impl Layer for MaxPool2d {
    fn describe(&self) -> String {
        if self.padding == 0 {
            format!("MaxPool2d({}, stride {})", self.kernel, self.stride)
        } else {
            format!(
                "MaxPool2d({}, stride {}, padding {})",
                self.kernel, self.stride, self.padding
            )
        }
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        let [n, h, w, c] = input;
        let p2 = 2 * self.padding;
        if h == 0 || w == 0 || h + p2 < self.kernel || w + p2 < self.kernel {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: "input (with its padding) smaller than the pooling window".into(),
            });
        }
        Ok([
            n,
            (h + p2 - self.kernel) / self.stride + 1,
            (w + p2 - self.kernel) / self.stride + 1,
            c,
        ])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        let os = self.output_shape(x.shape())?;
        let [_, _, w, c] = x.shape();
        let (oh, ow) = (os[1], os[2]);
        self.out.reshape_uninit(os);
        self.argmax.resize(self.out.len(), 0);
        let [_, h, _, _] = x.shape();
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let per_out = oh * ow * c;
        if per_out == 0 {
            self.last = Some(x.shape());
            return Ok(&self.out);
        }
        // The window rows (or columns) of output position `o` inside an axis of `n` values:
        // `start..end` in input coordinates (non-empty: padding ≤ kernel / 2).
        let taps = move |o: usize, n: usize| {
            let first = (o * s).saturating_sub(p);
            let end = (o * s + k - p).min(n);
            first..end
        };
        self.out
            .data_mut()
            .par_chunks_mut(per_out)
            .zip(self.argmax.par_chunks_mut(per_out))
            .enumerate()
            .for_each(|(img, (o, am))| {
                let xi = x.image(img);
                for oy in 0..oh {
                    let rows = taps(oy, h);
                    for ox in 0..ow {
                        let cols = taps(ox, w);
                        let ob = (oy * ow + ox) * c;
                        let first = (rows.start * w + cols.start) * c;
                        o[ob..ob + c].copy_from_slice(&xi[first..first + c]);
                        for (ch, a) in am[ob..ob + c].iter_mut().enumerate() {
                            *a = (first + ch) as u32;
                        }
                        for iy in rows.clone() {
                            for ix in cols.clone() {
                                let base = (iy * w + ix) * c;
                                let taps = &xi[base..base + c];
                                for (ch, ((ov, av), &v)) in o[ob..ob + c]
                                    .iter_mut()
                                    .zip(am[ob..ob + c].iter_mut())
                                    .zip(taps)
                                    .enumerate()
                                {
                                    let better = v > *ov;
                                    *ov = if better { v } else { *ov };
                                    *av = if better { (base + ch) as u32 } else { *av };
                                }
                            }
                        }
                    }
                }
            });
        self.last = Some(x.shape());
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        if self.last != Some(x.shape()) {
            return Err(NnError::NoForward {
                layer: self.describe(),
            });
        }
        check_grad_shape(&self.describe(), self.out.shape(), dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        let per_in = x.h() * x.w() * x.c();
        let per_out = self.out.h() * self.out.w() * self.out.c();
        if per_in == 0 || per_out == 0 {
            self.dx.fill_zero();
            return Ok(());
        }
        let argmax = &self.argmax;
        self.dx
            .data_mut()
            .par_chunks_mut(per_in)
            .enumerate()
            .for_each(|(img, d)| {
                d.fill(0.0);
                let g = &dy.data()[img * per_out..(img + 1) * per_out];
                let a = &argmax[img * per_out..(img + 1) * per_out];
                for (&gi, &ai) in g.iter().zip(a) {
                    d[ai as usize] += gi;
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

/// Global average pooling: `[n, h, w, c] → [n, 1, 1, c]`.
#[derive(Clone, Default)]
pub struct GlobalAvgPool {
    out: Tensor,
    dx: Tensor,
}

impl GlobalAvgPool {
    /// A global average pool.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for GlobalAvgPool {
    fn describe(&self) -> String {
        "GlobalAvgPool".into()
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        if input[1] == 0 || input[2] == 0 {
            return Err(NnError::InputShape {
                layer: self.describe(),
                found: input,
                reason: "empty spatial extent".into(),
            });
        }
        Ok([input[0], 1, 1, input[3]])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        let os = self.output_shape(x.shape())?;
        let c = x.c();
        let hw = x.h() * x.w();
        self.out.reshape_uninit(os);
        let inv = 1.0 / hw as f32;
        for (img, o) in self.out.data_mut().chunks_exact_mut(c.max(1)).enumerate() {
            o.fill(0.0);
            for px in x.image(img).chunks_exact(c) {
                for (a, v) in o.iter_mut().zip(px) {
                    *a += v;
                }
            }
            for a in o.iter_mut() {
                *a *= inv;
            }
        }
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        let os = self.output_shape(x.shape())?;
        check_grad_shape("GlobalAvgPool", os, dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        self.dx.reshape_uninit(x.shape());
        let c = x.c();
        let hw = x.h() * x.w();
        let inv = 1.0 / hw as f32;
        if c == 0 {
            return Ok(());
        }
        for (img, d) in self.dx.data_mut().chunks_exact_mut(hw * c).enumerate() {
            let g = &dy.data()[img * c..(img + 1) * c];
            for px in d.chunks_exact_mut(c) {
                for (o, v) in px.iter_mut().zip(g) {
                    *o = v * inv;
                }
            }
        }
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}
