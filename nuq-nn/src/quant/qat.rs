//! Quantization-aware fine-tuning: float master weights, re-quantized with their codebooks and
//! scales before every forward pass (straight-through estimator); scales and activation clips
//! optionally learned (LSQ / APoT gradients); codebooks refitted to the
//! masters and activation quantizers recalibrated on demand ([`QuantizedNetwork::recalibrate`]),
//! and bit widths lowered in stages ([`QuantizedNetwork::set_bits`], progressive reduction).

use crate::loss::CrossEntropy;
use crate::optim::Optimizer;
use crate::quant::layers::ActQuant;
use crate::quant::network::QuantizedNetwork;
use crate::tensor::Tensor;
use crate::train::Stats;
use crate::{Mode, NnError};

impl QuantizedNetwork {
    /// Refits every weight codebook and scale to the current float masters, then refits
    /// every activation quantizer in one forward pass (in a gradual schedule the frozen and
    /// full-precision layers are left alone) over `images` (normalised with
    /// [`QuantizedNetwork::input_norm`]). Calling it at an interval during fine-tuning keeps
    /// the codebooks matched to the weights and activations as they move.
    ///
    /// # Errors
    /// As [`quantize_weights`](crate::quant::quantize_weights) and [`QuantizedNetwork::calibrate`].
    pub fn recalibrate(&mut self, images: &Tensor) -> Result<(), NnError> {
        let cfg = self.config;
        for (name, slot) in self.slots.iter_mut() {
            if slot.frozen || slot.phase == crate::quant::Phase::Float {
                continue;
            }
            let bits = if slot.edge {
                cfg.edge_bits
            } else {
                cfg.weight_bits
            };
            slot.refit(name, bits, cfg.weight_family)?;
        }
        self.load_quantized_weights();
        self.reset_activations();
        self.calibrate(images)
    }

    /// Progressive bit reduction: sets the inner layers' weight and activation bits (the
    /// first convolution and the classifier keep [`crate::quant::QuantConfig::edge_bits`]),
    /// then [`QuantizedNetwork::recalibrate`]s on `images`.
    ///
    /// # Errors
    /// [`NnError::InvalidParameter`] for bits outside `1..=8`; as [`QuantizedNetwork::recalibrate`].
    pub fn set_bits(
        &mut self,
        weight_bits: u8,
        act_bits: u8,
        images: &Tensor,
    ) -> Result<(), NnError> {
        for (what, b) in [("weight", weight_bits), ("activation", act_bits)] {
            if !(1..=8).contains(&b) {
                return Err(NnError::InvalidParameter {
                    what: format!("{what} bits"),
                    allowed: "1..=8",
                    found: b.to_string(),
                });
            }
        }
        crate::layer::visit_leaves_mut(&mut self.net.body, "", &mut |_, l| {
            if let Some(a) = l.as_any_mut().downcast_mut::<ActQuant>() {
                a.set_bits(act_bits);
            }
        });
        self.config.weight_bits = weight_bits;
        self.config.act_bits = act_bits;
        self.recalibrate(images)
    }

    /// UNIQ-style training noise on the k-quantile weights under quantile assignment: with
    /// `Some(seed)`, every later re-quantization of the masters puts each weight at a random
    /// point about one equal-mass bin wide around its CDF value instead of at its level
    /// (see the slot's `noisy`); with `None`, the weights are snapped to their levels again.
    /// The indices (and so the integer model) are the quantile ones either way. Layers
    /// without equal-mass bins (other families, 8-bit layers) are unaffected, and in a
    /// gradual schedule only the active block gets noise
    /// ([`Phase::Active`](crate::quant::Phase::Active)).
    pub fn set_noise(&mut self, seed: Option<u64>) {
        for (i, slot) in self.slots.values_mut().enumerate() {
            slot.noise = seed
                .filter(|_| slot.phase == crate::quant::Phase::Active)
                .map(|s| crate::Rng::derive(s, &[0x756e_6971, i as u64]));
        }
        self.load_quantized_weights();
    }

    /// Puts every layer's weights into the network: re-quantized from the masters, or the
    /// masters themselves for a layer still in full precision.
    pub(crate) fn load_quantized_weights(&mut self) {
        let slots = &mut self.slots;
        self.net.visit_params(&mut |name, p| {
            if let Some(slot) = name.strip_suffix(".weight").and_then(|n| slots.get_mut(n)) {
                p.value = if slot.phase == crate::quant::Phase::Float {
                    slot.float_weights()
                } else {
                    slot.requantize()
                };
            }
        });
    }

    /// One quantization-aware training step: the weights are re-quantized from their float
    /// masters (fixed codebooks), the forward and backward passes run through the activation
    /// quantizers (straight-through), and the optimiser updates the float masters. With
    /// [`crate::quant::QuantConfig::learn_clip`] the weight scales take a step too (LSQ-style,
    /// momentum SGD at `lr`) and the activation clips, being parameters of the network, move
    /// with the optimiser. With a [`QuantizedNetwork::teacher`] the loss is
    /// [`CrossEntropy::forward_distilled`] against the teacher's logits for the same batch
    /// (evaluation mode), else the cross-entropy on the labels.
    ///
    /// # Errors
    /// As the forward/backward passes and the optimiser.
    pub fn qat_step(
        &mut self,
        loss: &mut CrossEntropy,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        labels: &[u32],
        lr: f32,
    ) -> Result<Stats, NnError> {
        self.load_quantized_weights();
        let soft = match self.teacher.as_mut() {
            Some(t) => {
                let d = t.distill;
                Some((t.logits(x)?, d))
            }
            None => None,
        };
        let logits = self.net.forward(x, Mode::Train)?;
        let out = match soft {
            Some((t, d)) => loss.forward_distilled(logits, labels, t, d)?,
            None => loss.forward(logits, labels)?,
        };
        self.net.backward(x, loss.grad())?;
        // The gradient with respect to the quantized weights updates the float masters (and
        // the scales, when they are learned).
        {
            let learn = self.config.learn_clip;
            let slots = &mut self.slots;
            self.net.visit_params(&mut |name, p| {
                if let Some(slot) = name.strip_suffix(".weight").and_then(|n| slots.get_mut(n)) {
                    if learn && !slot.frozen && slot.phase != crate::quant::Phase::Float {
                        slot.learn_scales(&p.grad, lr);
                    }
                    slot.center_gradient(&mut p.grad);
                    p.value.copy_from_slice(&slot.shadow);
                }
            });
        }
        opt.step(&mut self.net, lr)?;
        // A gradual schedule's frozen layers take back their parameters and statistics.
        self.frozen.restore(&mut self.net);
        self.sync_scales();
        {
            let slots = &mut self.slots;
            self.net.visit_params(&mut |name, p| {
                if let Some(slot) = name
                    .strip_suffix(".weight")
                    .and_then(|n| slots.get_mut(n))
                    .filter(|s| !s.frozen)
                {
                    slot.shadow.copy_from_slice(&p.value);
                }
            });
        }
        self.load_quantized_weights();
        Ok(Stats {
            loss_sum: f64::from(out.loss) * labels.len() as f64,
            correct: out.correct,
            samples: labels.len(),
        })
    }
}
