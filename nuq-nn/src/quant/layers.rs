//! Fake-quantization layers: the float twin of the integer model.
//!
//! [`ActQuant`] follows a ReLU and replaces each value by its quantized real value;
//! [`GridRound`] rounds a pooled average to the activation grid exactly as the integer
//! global average pool does; [`QuantBlock`] puts an [`ActQuant`] after a residual block's
//! final ReLU. Their backward passes are straight-through estimators.

use std::any::Any;

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::layers::BasicBlock;
use crate::param::{BufferMut, Param};
use crate::quant::{ActQuantizer, Family};
use crate::tensor::Tensor;

const BLOCK: usize = 1 << 15;

/// Activation fake-quantization after a ReLU.
///
/// Until it has a quantizer, the first `forward` fits one ([`ActQuantizer::fit`]) on the
/// values it sees (calibration), so a single pass over a calibration batch calibrates a whole
/// network in order, each layer seeing already-quantized inputs. The backward pass is the
/// straight-through estimator clipped at the top level: `dx = dy` where `x ≤ scale · 255`.
pub struct ActQuant {
    family: Family,
    bits: u8,
    /// The fitted quantizer (`None` until calibrated).
    pub quantizer: Option<ActQuantizer>,
    out: Tensor,
    dx: Tensor,
}

impl ActQuant {
    /// An uncalibrated quantizer of `family` with `bits`-bit codes.
    pub fn new(family: Family, bits: u8) -> Self {
        Self {
            family,
            bits,
            quantizer: None,
            out: Tensor::default(),
            dx: Tensor::default(),
        }
    }

    /// Forgets the quantizer so the next forward recalibrates.
    pub fn reset(&mut self) {
        self.quantizer = None;
    }

    /// Code bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Changes the code width and forgets the quantizer (the next forward recalibrates).
    pub fn set_bits(&mut self, bits: u8) {
        self.bits = bits;
        self.quantizer = None;
    }
}

impl Layer for ActQuant {
    fn describe(&self) -> String {
        format!("ActQuant({:?}, {} bits)", self.family, self.bits)
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        if self.quantizer.is_none() {
            self.quantizer = Some(ActQuantizer::fit(self.family, self.bits, x.data())?);
        }
        let q = self.quantizer.as_ref().expect("fitted above");
        self.out.reshape_uninit(x.shape());
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK))
            .for_each(|(o, i)| {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = q.fake_quantize(v);
                }
            });
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ActQuant", x.shape(), dy)?;
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        let clip = self
            .quantizer
            .as_ref()
            .map_or(f32::INFINITY, |q| q.value(((1u16 << q.bits) - 1) as u8));
        self.dx.reshape_uninit(x.shape());
        self.dx
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK).zip(dy.data().par_chunks(BLOCK)))
            .for_each(|(d, (xi, g))| {
                for ((d, &v), &g) in d.iter_mut().zip(xi).zip(g) {
                    *d = if v <= clip { g } else { 0.0 };
                }
            });
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Rounds values to multiples of `scale`, half up: `scale · ⌊x / scale + ½⌋`. It mirrors the
/// integer global average pool's rounding; the backward pass is the identity. Without a scale
/// (before calibration) it passes values through.
pub struct GridRound {
    /// The grid step.
    pub scale: Option<f64>,
    out: Tensor,
    dx: Tensor,
}

impl GridRound {
    /// Rounding to multiples of `scale` (`None`: identity).
    pub fn new(scale: Option<f64>) -> Self {
        Self {
            scale,
            out: Tensor::default(),
            dx: Tensor::default(),
        }
    }
}

impl Layer for GridRound {
    fn describe(&self) -> String {
        format!("GridRound({:?})", self.scale)
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        Ok(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Result<&Tensor, NnError> {
        self.out.reshape_uninit(x.shape());
        let out = self.out.data_mut();
        match self.scale {
            Some(s) => {
                for (o, &v) in out.iter_mut().zip(x.data()) {
                    *o = (s * (f64::from(v) / s + 0.5).floor()) as f32;
                }
            }
            None => out.copy_from_slice(x.data()),
        }
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("GridRound", x.shape(), dy)?;
        if need_input_grad {
            self.dx.reshape_uninit(dy.shape());
            self.dx.data_mut().copy_from_slice(dy.data());
        } else {
            self.dx.reshape_uninit([0, 0, 0, 0]);
        }
        Ok(())
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A residual block followed by activation fake-quantization of its output.
pub struct QuantBlock {
    /// The float block (its inner `ActQuant` sits after `bn1` in `block.main`).
    pub block: BasicBlock,
    /// The quantizer of the block's output.
    pub act: ActQuant,
}

impl Layer for QuantBlock {
    fn describe(&self) -> String {
        format!("{} → {}", self.block.describe(), self.act.describe())
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], NnError> {
        self.block.output_shape(input)
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor, NnError> {
        let y = self.block.forward(x, mode)?;
        self.act.forward(y, mode)
    }

    fn output(&self) -> &Tensor {
        self.act.output()
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        self.act.backward(self.block.output(), dy, true)?;
        self.block
            .backward(x, self.act.input_grad(), need_input_grad)
    }

    fn input_grad(&self) -> &Tensor {
        self.block.input_grad()
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.block.visit_params(prefix, f);
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, BufferMut<'_>)) {
        self.block.visit_buffers(prefix, f);
    }

    fn macs(&self, input: [usize; 4]) -> u64 {
        self.block.macs(input)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
