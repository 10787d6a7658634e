//! Fake-quantization layers: the float twin of the integer model.
//!
//! [`ActQuant`] follows a ReLU and replaces each value by its quantized real value;
//! [`GridRound`] rounds a pooled average to the activation grid exactly as the integer
//! global average pool does. The preparation puts an [`ActQuant`] after every ReLU, a
//! residual join's included. Their backward passes are straight-through estimators.

use rayon::prelude::*;

use crate::error::NnError;
use crate::layer::{check_grad_shape, Layer, Mode};
use crate::param::{join_name, Param, ParamRole};
use crate::quant::{ActQuantizer, Family};
use crate::tensor::Tensor;

const BLOCK: usize = 1 << 15;

/// Activation fake-quantization after a ReLU.
///
/// Until it has a quantizer, the first `forward` fits one ([`ActQuantizer::fit_nhwc`]) on the
/// values it sees (calibration), so a single pass over a calibration batch calibrates a whole
/// network in order, each layer seeing already-quantized inputs. The backward pass is the
/// straight-through estimator clipped at the top level: `dx = dy` where `x ≤ clip`.
///
/// With a learned clip ([`ActQuant::learn_clip`]) the quantizer's clip `α = scale · L_top`
/// is a trainable parameter (`clip`): the optimiser moves it, the next forward stretches the
/// quantizer to it ([`ActQuantizer::rescale`], levels fixed), and the backward pass gives it
/// the gradient of every element — `∂q/∂α = (L[code] − x/scale) / L_top` below the clip and
/// `1` above it (APoT's clipping gradient on the non-uniform levels) — scaled by
/// `1/√(N · (2^b − 1))` for `N` values per image (LSQ's gradient scale).
///
/// After a ReLU6 the quantizer is capped ([`ActQuant::cap`]): its clip and thresholds never
/// exceed 6, at calibration, after a learned-clip step or a quantizer set from outside, so
/// the float twin (which sees values capped at 6) and the integer model (whose thresholds
/// compare the uncapped accumulator) give the same codes.
#[derive(Clone)]
pub struct ActQuant {
    family: Family,
    bits: u8,
    per_channel: bool,
    cap: Option<f64>,
    /// The fitted quantizer (`None` until calibrated).
    pub quantizer: Option<ActQuantizer>,
    clip: Option<Param>,
    bypass: bool,
    frozen: bool,
    out: Tensor,
    dx: Tensor,
}

impl ActQuant {
    /// An uncalibrated quantizer of `family` with `bits`-bit codes, one threshold set for the
    /// layer.
    pub fn new(family: Family, bits: u8) -> Self {
        Self {
            family,
            bits,
            per_channel: false,
            cap: None,
            quantizer: None,
            clip: None,
            bypass: false,
            frozen: false,
            out: Tensor::default(),
            dx: Tensor::default(),
        }
    }

    /// Fits thresholds per channel (k-quantile only, see [`ActQuantizer::fit_nhwc`]).
    pub fn per_channel(mut self, per_channel: bool) -> Self {
        self.per_channel = per_channel;
        self
    }

    /// Caps the quantizer at `cap` (ReLU6's 6; `None`: no cap), see [`ActQuantizer::cap_at`].
    pub fn cap(mut self, cap: Option<f64>) -> Self {
        self.cap = cap;
        self
    }

    /// The cap of the quantizer (`Some(6.0)` after a ReLU6).
    pub fn cap_value(&self) -> Option<f64> {
        self.cap
    }

    /// Makes the clip a trainable parameter (see the type's documentation).
    pub fn learn_clip(mut self, learn: bool) -> Self {
        self.clip = learn.then(|| Param::new(vec![0.0], ParamRole::QuantClip, vec![1]));
        self
    }

    /// Forgets the quantizer so the next forward recalibrates.
    pub fn reset(&mut self) {
        self.quantizer = None;
    }

    /// Full precision (a layer not yet quantized in a gradual schedule,
    /// [`QuantizedNetwork::begin_stage`](crate::quant::QuantizedNetwork::begin_stage)): with
    /// `true` the quantizer is forgotten and the layer passes values through unchanged (no
    /// calibration on them, the gradient passes whole); with `false` the next forward
    /// calibrates again.
    pub fn set_bypass(&mut self, bypass: bool) {
        if bypass {
            self.quantizer = None;
        }
        self.bypass = bypass;
    }

    /// Whether the layer passes values through unquantized ([`ActQuant::set_bypass`]).
    pub fn bypassed(&self) -> bool {
        self.bypass
    }

    /// Marks the quantizer as frozen (a finished stage of a gradual schedule): periodic
    /// recalibration ([`QuantizedNetwork::recalibrate`](crate::quant::QuantizedNetwork::recalibrate))
    /// leaves it where it is.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// Whether the quantizer is frozen ([`ActQuant::set_frozen`]).
    pub fn frozen(&self) -> bool {
        self.frozen
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

    /// Stretches the quantizer to the learned clip (after an optimiser step; a learned clip
    /// above the cap is brought down to it), then applies the cap; nothing without a
    /// quantizer.
    pub fn apply_clip(&mut self) {
        if let (Some(q), Some(p)) = (self.quantizer.as_mut(), self.clip.as_mut()) {
            if let Some(cap) = self.cap {
                p.value[0] = p.value[0].min(cap as f32);
            }
            let top = f64::from(q.codebook.levels().last().copied().unwrap_or(0));
            let alpha = f64::from(p.value[0]);
            if top > 0.0 && (alpha - q.clip()).abs() > 1e-12 * alpha.abs() {
                q.rescale(alpha / top);
            }
        }
        if let (Some(q), Some(cap)) = (self.quantizer.as_mut(), self.cap) {
            q.cap_at(cap);
        }
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
        let channels = x.shape()[3];
        if self.bypass {
            self.out.reshape_uninit(x.shape());
            self.out.data_mut().copy_from_slice(x.data());
            return Ok(&self.out);
        }
        if self.quantizer.is_none() {
            let q = ActQuantizer::fit_nhwc(
                self.family,
                self.bits,
                x.data(),
                channels,
                self.per_channel,
            )?;
            let mut q = q;
            if let Some(cap) = self.cap {
                q.cap_at(cap);
            }
            if let Some(p) = self.clip.as_mut() {
                p.value[0] = q.clip() as f32;
            }
            self.quantizer = Some(q);
        }
        self.apply_clip();
        let q = self.quantizer.as_ref().expect("fitted above");
        self.out.reshape_uninit(x.shape());
        // BLOCK is a multiple of every channel count that divides it; a block's first value
        // is then channel 0, otherwise the offset is carried.
        self.out
            .data_mut()
            .par_chunks_mut(BLOCK)
            .zip(x.data().par_chunks(BLOCK))
            .enumerate()
            .for_each(|(b, (o, i))| {
                if q.groups() == 1 {
                    for (o, &v) in o.iter_mut().zip(i) {
                        *o = q.fake_quantize(v);
                    }
                    return;
                }
                let mut c = (b * BLOCK) % channels;
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = q.value(q.code_in(v, c));
                    c = if c + 1 == channels { 0 } else { c + 1 };
                }
            });
        Ok(&self.out)
    }

    fn output(&self) -> &Tensor {
        &self.out
    }

    fn backward(&mut self, x: &Tensor, dy: &Tensor, need_input_grad: bool) -> Result<(), NnError> {
        check_grad_shape("ActQuant", x.shape(), dy)?;
        if let (Some(q), Some(p)) = (self.quantizer.as_ref(), self.clip.as_mut()) {
            p.grad[0] = clip_gradient(q, x, dy) as f32;
        }
        if !need_input_grad {
            self.dx.reshape_uninit([0, 0, 0, 0]);
            return Ok(());
        }
        let clip = self
            .quantizer
            .as_ref()
            .map_or(f32::INFINITY, |q| q.value(((1u16 << q.bits()) - 1) as u8));
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

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(p) = self.clip.as_mut() {
            f(&join_name(prefix, "clip"), p);
        }
    }

    fn input_grad(&self) -> &Tensor {
        &self.dx
    }
}

/// `Σ dy · ∂q/∂α` over a batch with the LSQ gradient scale (see [`ActQuant`]).
fn clip_gradient(q: &ActQuantizer, x: &Tensor, dy: &Tensor) -> f64 {
    let [n, h, w, c] = x.shape();
    let top = f64::from(q.codebook.levels().last().copied().unwrap_or(0));
    if top <= 0.0 || n == 0 {
        return 0.0;
    }
    let per_image = (h * w * c) as f64;
    let positive_levels = f64::from((1u32 << q.bits()) - 1);
    let g = 1.0 / (per_image * positive_levels).sqrt();
    let clip = q.clip();
    let sum: f64 = x
        .data()
        .par_chunks(BLOCK)
        .zip(dy.data().par_chunks(BLOCK))
        .enumerate()
        .map(|(b, (xi, gi))| {
            let mut group = (b * BLOCK) % c;
            let mut acc = 0.0f64;
            for (&v, &d) in xi.iter().zip(gi) {
                let channel = group;
                group = if group + 1 == c { 0 } else { group + 1 };
                let v = f64::from(v);
                let dq = if v <= 0.0 {
                    0.0
                } else if v >= clip {
                    1.0
                } else {
                    let code = q.code_in(v as f32, channel);
                    (f64::from(q.codebook.levels()[usize::from(code)]) - v / q.scale) / top
                };
                acc += f64::from(d) * dq;
            }
            acc
        })
        .sum();
    sum * g
}

/// Rounds values to multiples of `scale`, half up: `scale · ⌊x / scale + ½⌋`. It mirrors the
/// integer global average pool's rounding; the backward pass is the identity. Without a scale
/// (before calibration) it passes values through.
#[derive(Clone)]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A learned clip pushed above ReLU6's cap is brought back to 6, and the quantizer
    /// with it; a quantizer set from outside is capped at the next forward.
    #[test]
    fn capped_quantizer_never_represents_values_above_the_cap() {
        let x = Tensor::from_vec(
            [1, 4, 4, 2],
            (0..32).map(|i| (i as f32 * 0.2).min(6.0)).collect(),
        )
        .unwrap();
        let mut aq = ActQuant::new(Family::Uniform, 3)
            .cap(Some(6.0))
            .learn_clip(true);
        aq.forward(&x, Mode::Eval).unwrap();
        assert!(aq.quantizer.as_ref().unwrap().clip() <= 6.0 + 1e-9);
        aq.visit_params("", &mut |_, p| p.value[0] = 10.0);
        let y = aq.forward(&x, Mode::Eval).unwrap();
        assert!(y.data().iter().all(|&v| v <= 6.0 + 1e-5));
        let q = aq.quantizer.as_ref().unwrap();
        assert!((q.clip() - 6.0).abs() < 1e-5, "clip {}", q.clip());
        assert!(q.thresholds.iter().all(|&t| t <= 6.0));
        aq.visit_params("", &mut |_, p| assert!(p.value[0] <= 6.0));
        // Stretched to 12 from outside (a foreign trainer's table): capped again.
        aq.quantizer.as_mut().unwrap().rescale(12.0 / 255.0);
        aq.forward(&x, Mode::Eval).unwrap();
        assert!(aq.quantizer.as_ref().unwrap().clip() <= 6.0 + 1e-9);
    }
}
