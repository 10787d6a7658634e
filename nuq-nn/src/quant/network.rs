//! A float [`Network`] prepared for quantization.
//!
//! [`QuantizedNetwork::prepare`] quantizes every conv and linear weight in place (the float
//! network then holds the dequantized values), inserts [`ActQuant`] after every ReLU and wraps
//! residual blocks in [`QuantBlock`]; [`QuantizedNetwork::calibrate`] runs one forward pass in
//! which each activation quantizer fits itself on the (already quantized) values reaching
//! it. Fine-tuning is in `qat.rs`, the fold into the integer model in `fold.rs`.

use std::collections::BTreeMap;

use crate::layer::Mode;
use crate::layers::{BasicBlock, BatchNorm2d, Conv2d, GlobalAvgPool, Linear, Sequential};
use crate::models::Network;
use crate::quant::config::{InputNorm, QuantConfig};
use crate::quant::layers::{ActQuant, GridRound, QuantBlock};
use crate::quant::slot::WeightSlot;
use crate::quant::weights::{center_rows, quantize_weights_by};
use crate::tensor::Tensor;
use crate::NnError;

/// A float network prepared for quantization: dequantized weights, activation quantizers,
/// and the integer weights each layer will use.
pub struct QuantizedNetwork {
    /// The float twin (fake-quantized).
    pub net: Network,
    /// The configuration.
    pub config: QuantConfig,
    /// The input normalisation.
    pub input_norm: InputNorm,
    pub(crate) slots: BTreeMap<String, WeightSlot>,
    /// Parameters and running statistics of the frozen layers of a gradual schedule, by
    /// name, restored after every fine-tuning step (the frozen weights' masters stay in
    /// their slots).
    pub(crate) frozen: crate::quant::gradual::Frozen,
}

pub(crate) fn downcast<'a, T: 'static>(
    layer: &'a dyn crate::Layer,
    name: &str,
    what: &'static str,
) -> Result<&'a T, NnError> {
    layer
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| NnError::UnexpectedLayer {
            layer: name.to_string(),
            expected: what,
            found: layer.describe(),
        })
}

struct Prep<'a> {
    cfg: QuantConfig,
    norm: &'a InputNorm,
    slots: BTreeMap<String, WeightSlot>,
    first: bool,
}

impl Prep<'_> {
    fn conv(&mut self, name: &str, conv: &mut Conv2d) -> Result<(), NnError> {
        let c = conv.config();
        let taps = c.kernel.0 * c.kernel.1;
        // One row per output channel, `kh·kw·c_in/groups` long (its group's input channels).
        let row_len = taps * (c.c_in / c.groups.max(1));
        // The OHWI weight is already the row-major `[c_out][kh·kw·c_in/groups]` table.
        let mut rows = conv.weight.value.clone();
        let first = std::mem::replace(&mut self.first, false);
        if first && c.groups != 1 {
            // The first layer's input factor (`255 · std` per image channel) is indexed by
            // the column of a row modulo `c_in` (also in `nuq.torch`), which holds for one
            // group only.
            return Err(NnError::NoIntegerForm {
                layer: name.to_string(),
                why: "a grouped first convolution (the per-image-channel input factor needs every row to read every image channel): use groups 1 on the image",
            });
        }
        let input_factor = |i: usize| -> f64 {
            if first {
                255.0 * f64::from(self.norm.std[(i % (taps * c.c_in)) % c.c_in])
            } else {
                1.0
            }
        };
        if first {
            if c.c_in != self.norm.std.len() {
                return Err(NnError::SizeMismatch {
                    what: format!("layer {name}: input channels (one per normalisation std)"),
                    expected: self.norm.std.len(),
                    found: c.c_in,
                });
            }
            for (i, v) in rows.iter_mut().enumerate() {
                *v = (f64::from(*v) / input_factor(i)) as f32;
            }
        }
        let bits = if first {
            self.cfg.edge_bits
        } else {
            self.cfg.weight_bits
        };
        let center = self.cfg.weight_norm && !first;
        if center {
            center_rows(&mut rows, row_len);
        }
        let q = quantize_weights_by(
            name,
            &rows,
            c.c_out,
            bits,
            self.cfg.weight_family,
            self.cfg.per_channel,
            self.cfg.kq_rule,
        )?;
        let deq: Vec<f32> = q
            .dequantized()
            .iter()
            .enumerate()
            .map(|(i, &v)| (f64::from(v) * input_factor(i)) as f32)
            .collect();
        let shadow = std::mem::replace(&mut conv.weight.value, deq);
        let input_factor = first.then(|| (0..c.c_in).map(input_factor).collect());
        self.slots.insert(
            name.to_string(),
            WeightSlot {
                q,
                shadow,
                input_factor,
                edge: first,
                per_channel: self.cfg.per_channel,
                velocity: Vec::new(),
                center,
                rule: self.cfg.kq_rule,
                follow: self.cfg.follow_quantiles,
                noise: None,
                phase: crate::quant::Phase::Active,
                frozen: false,
            },
        );
        Ok(())
    }

    fn seq(
        &mut self,
        prefix: &str,
        s: &mut Sequential,
        last_linear: Option<&str>,
    ) -> Result<(), NnError> {
        let act = |cfg: &QuantConfig| {
            ActQuant::new(cfg.act_family, cfg.act_bits)
                .per_channel(cfg.act_per_channel)
                .learn_clip(cfg.learn_clip)
        };
        let mut i = 0;
        while i < s.len() {
            let child = s.layers()[i].0.clone();
            let name = format!("{prefix}{child}");
            let layer = &mut s.layers_mut()[i].1;
            let any = layer.as_any_mut();
            if let Some(conv) = any.downcast_mut::<Conv2d>() {
                self.conv(&name, conv)?;
            } else if let Some(bn) = any.downcast_mut::<BatchNorm2d>() {
                if bn.fused_relu {
                    // After a ReLU6 the quantizer never represents values above 6.
                    let cap = bn.activation_cap();
                    let aq = act(&self.cfg).cap(cap.is_finite().then_some(f64::from(cap)));
                    s.insert(i + 1, format!("{child}.act"), Box::new(aq))?;
                    i += 1;
                }
            } else if let Some(lin) = any.downcast_mut::<Linear>() {
                let rows = lin.weight.torch_shape[0];
                let per_channel = if Some(name.as_str()) == last_linear {
                    false
                } else {
                    self.cfg.per_channel
                };
                let q = quantize_weights_by(
                    &name,
                    &lin.weight.value,
                    rows,
                    self.cfg.edge_bits,
                    self.cfg.weight_family,
                    per_channel,
                    self.cfg.kq_rule,
                )?;
                let shadow = std::mem::replace(&mut lin.weight.value, q.dequantized());
                self.slots.insert(
                    name,
                    WeightSlot {
                        q,
                        shadow,
                        input_factor: None,
                        edge: true,
                        per_channel,
                        velocity: Vec::new(),
                        center: false,
                        rule: self.cfg.kq_rule,
                        follow: self.cfg.follow_quantiles,
                        noise: None,
                        phase: crate::quant::Phase::Active,
                        frozen: false,
                    },
                );
            } else if let Some(bb) = any.downcast_mut::<BasicBlock>() {
                // Take the block out (a 1-channel placeholder keeps the slot valid) and wrap it.
                let placeholder = BasicBlock::new(1, 1, 1, &mut crate::Rng::new(0))?;
                let mut block = std::mem::replace(bb, placeholder);
                self.seq(&format!("{name}."), &mut block.main, None)?;
                if let Some(d) = block.downsample.as_mut() {
                    self.seq(&format!("{name}.downsample."), d, None)?;
                }
                s.replace(
                    &child,
                    Box::new(QuantBlock {
                        block,
                        act: act(&self.cfg),
                    }),
                )?;
            } else if any.is::<GlobalAvgPool>() {
                s.insert(
                    i + 1,
                    format!("{child}.round"),
                    Box::new(GridRound::new(None)),
                )?;
                i += 1;
            }
            i += 1;
        }
        Ok(())
    }
}

impl QuantizedNetwork {
    /// Quantizes the weights of `net` in place and inserts activation quantizers.
    ///
    /// # Errors
    /// [`NnError::UnexpectedLayer`], [`NnError::SizeMismatch`] or a quantizer error for a layer
    /// that cannot be quantized or bad settings.
    pub fn prepare(
        mut net: Network,
        config: QuantConfig,
        input_norm: InputNorm,
    ) -> Result<Self, NnError> {
        let last_linear = net
            .body
            .layers()
            .iter()
            .rev()
            .find(|(_, l)| l.as_any().is::<Linear>())
            .map(|(n, _)| n.clone());
        let mut prep = Prep {
            cfg: config,
            norm: &input_norm,
            slots: BTreeMap::new(),
            first: true,
        };
        prep.seq("", &mut net.body, last_linear.as_deref())?;
        let slots = prep.slots;
        Ok(Self {
            net,
            config,
            input_norm,
            slots,
            frozen: Default::default(),
        })
    }

    /// Fits every activation quantizer (those not yet fitted) in one forward pass over
    /// `images` (already normalised with [`QuantizedNetwork::input_norm`]).
    ///
    /// # Errors
    /// As the forward pass.
    pub fn calibrate(&mut self, images: &Tensor) -> Result<(), NnError> {
        self.net.forward(images, Mode::Eval)?;
        self.sync_scales();
        Ok(())
    }

    /// Stretches every quantizer to its learned clip and points the rounding after the
    /// global pool at the scale of the quantizer before it.
    pub(crate) fn sync_scales(&mut self) {
        fn walk(s: &mut Sequential, last_scale: &mut Option<f64>) {
            for (_, l) in s.layers_mut() {
                let any = l.as_any_mut();
                if let Some(b) = any.downcast_mut::<QuantBlock>() {
                    walk(&mut b.block.main, last_scale);
                    b.act.apply_clip();
                    *last_scale = b.act.quantizer.as_ref().map(|q| q.scale);
                } else if let Some(a) = any.downcast_mut::<ActQuant>() {
                    a.apply_clip();
                    *last_scale = a.quantizer.as_ref().map(|q| q.scale);
                } else if let Some(r) = any.downcast_mut::<GridRound>() {
                    r.scale = *last_scale;
                }
            }
        }
        walk(&mut self.net.body, &mut None);
    }

    /// Forgets every activation quantizer so the next [`QuantizedNetwork::calibrate`] refits,
    /// except those frozen by a gradual schedule ([`ActQuant::set_frozen`]).
    pub fn reset_activations(&mut self) {
        fn walk(s: &mut Sequential) {
            for (_, l) in s.layers_mut() {
                let any = l.as_any_mut();
                if let Some(a) = any.downcast_mut::<ActQuant>() {
                    if !a.frozen() {
                        a.reset();
                    }
                } else if let Some(b) = any.downcast_mut::<QuantBlock>() {
                    if !b.act.frozen() {
                        b.act.reset();
                    }
                    walk(&mut b.block.main);
                } else if let Some(r) = any.downcast_mut::<GridRound>() {
                    r.scale = None;
                }
            }
        }
        walk(&mut self.net.body);
    }
}
