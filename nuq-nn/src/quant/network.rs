//! A float [`Network`] prepared for quantization.
//!
//! [`QuantizedNetwork::prepare`] quantizes every conv and linear weight in place (the float
//! network then holds the dequantized values), inserts [`ActQuant`] after every ReLU (a batch-norm's
//! fused one or a graph join's); [`QuantizedNetwork::calibrate`] runs one forward pass in
//! which each activation quantizer fits itself on the (already quantized) values reaching
//! it. Fine-tuning is in `qat.rs`, the fold into the integer model in `fold.rs`.

use std::collections::BTreeMap;

use crate::layer::{visit_leaves_mut, Mode};
use crate::layers::{BatchNorm2d, Conv2d, GlobalAvgPool, Graph, Linear, Op, Sequential};
use crate::models::Network;
use crate::param::join_name;
use crate::quant::config::{InputNorm, QuantConfig};
use crate::quant::layers::{ActQuant, GridRound};
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
    /// A float teacher: while set, every [`QuantizedNetwork::qat_step`] distils its logits
    /// ([`crate::CrossEntropy::forward_distilled`]). [`crate::pipeline::quantize`] sets it
    /// for the fine-tuning of a recipe with [`Recipe::distill`](crate::pipeline::Recipe::distill)
    /// and clears it afterwards.
    pub teacher: Option<crate::quant::Teacher>,
}

/// A layer to insert after the one prepared, with its name relative to their container.
type Insert = Option<(String, Box<dyn crate::Layer>)>;

struct Prep<'a> {
    cfg: QuantConfig,
    norm: &'a InputNorm,
    slots: BTreeMap<String, WeightSlot>,
    first: bool,
    /// The classifier: the last linear layer in forward order (one weight scale).
    last_linear: Option<String>,
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

    fn act(&self) -> ActQuant {
        ActQuant::new(self.cfg.act_family, self.cfg.act_bits)
            .per_channel(self.cfg.act_per_channel)
            .learn_clip(self.cfg.learn_clip)
    }

    /// Prepares a leaf layer called `name`; returns the layer to insert after it (its
    /// activation quantizer, or the rounding after a global pool) with its name relative to
    /// the container (`child` is the leaf's own).
    fn leaf(
        &mut self,
        name: &str,
        child: &str,
        layer: &mut dyn crate::Layer,
    ) -> Result<Insert, NnError> {
        let any = layer.as_any_mut();
        if let Some(conv) = any.downcast_mut::<Conv2d>() {
            self.conv(name, conv)?;
        } else if let Some(bn) = any.downcast_mut::<BatchNorm2d>() {
            if bn.fused_relu {
                // After a ReLU6 the quantizer never represents values above 6.
                let cap = bn.activation_cap();
                let aq = self.act().cap(cap.is_finite().then_some(f64::from(cap)));
                return Ok(Some((join_name(child, "act"), Box::new(aq))));
            }
        } else if let Some(lin) = any.downcast_mut::<Linear>() {
            let rows = lin.weight.torch_shape[0];
            let per_channel = if Some(name) == self.last_linear.as_deref() {
                false
            } else {
                self.cfg.per_channel
            };
            let q = quantize_weights_by(
                name,
                &lin.weight.value,
                rows,
                self.cfg.edge_bits,
                self.cfg.weight_family,
                per_channel,
                self.cfg.kq_rule,
            )?;
            let shadow = std::mem::replace(&mut lin.weight.value, q.dequantized());
            self.slots.insert(
                name.to_string(),
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
        } else if any.is::<GlobalAvgPool>() {
            return Ok(Some((
                join_name(child, "round"),
                Box::new(GridRound::new(None)),
            )));
        }
        Ok(None)
    }

    /// Prepares `layer` (a container or a leaf) called `name`; returns what to insert after
    /// it, as [`Prep::leaf`].
    fn layer(
        &mut self,
        name: &str,
        child: &str,
        layer: &mut dyn crate::Layer,
    ) -> Result<Insert, NnError> {
        let any = layer.as_any_mut();
        if let Some(s) = any.downcast_mut::<Sequential>() {
            self.seq(name, s)?;
            Ok(None)
        } else if let Some(g) = any.downcast_mut::<Graph>() {
            self.graph(name, g)?;
            Ok(None)
        } else {
            self.leaf(name, child, layer)
        }
    }

    fn seq(&mut self, prefix: &str, s: &mut Sequential) -> Result<(), NnError> {
        let mut i = 0;
        while i < s.len() {
            let child = s.layers()[i].0.clone();
            let name = join_name(prefix, &child);
            let layer = s.layers_mut()[i].1.as_mut();
            if let Some((after, l)) = self.layer(&name, &child, layer)? {
                s.insert(i + 1, after, l)?;
                i += 1;
            }
            i += 1;
        }
        Ok(())
    }

    /// Prepares the layers of a graph and puts an activation quantizer after every join
    /// followed by ReLU (named after the join plus `act`: a residual block's unnamed join
    /// gives `<block>.act`).
    fn graph(&mut self, prefix: &str, g: &mut Graph) -> Result<(), NnError> {
        let mut i = 0;
        while i < g.len() {
            let node = &mut g.nodes_mut()[i];
            let child = node.name().to_string();
            let name = join_name(prefix, &child);
            let insert = match node.op_mut() {
                Op::Layer(l) => self.layer(&name, &child, l.as_mut())?,
                Op::Add(a) => a.relu().then(|| {
                    (
                        join_name(&child, "act"),
                        Box::new(self.act()) as Box<dyn crate::Layer>,
                    )
                }),
            };
            if let Some((after, l)) = insert {
                g.insert_after(i, after, l)?;
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
        let mut last_linear = None;
        crate::layer::visit_leaves(&net.body, "", &mut |name, l| {
            if l.as_any().is::<Linear>() {
                last_linear = Some(name.to_string());
            }
        });
        let mut prep = Prep {
            cfg: config,
            norm: &input_norm,
            slots: BTreeMap::new(),
            first: true,
            last_linear,
        };
        prep.seq("", &mut net.body)?;
        let slots = prep.slots;
        Ok(Self {
            net,
            config,
            input_norm,
            slots,
            frozen: Default::default(),
            teacher: None,
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
        let mut last_scale = None;
        visit_leaves_mut(&mut self.net.body, "", &mut |_, l| {
            let any = l.as_any_mut();
            if let Some(a) = any.downcast_mut::<ActQuant>() {
                a.apply_clip();
                last_scale = a.quantizer.as_ref().map(|q| q.scale);
            } else if let Some(r) = any.downcast_mut::<GridRound>() {
                r.scale = last_scale;
            }
        });
    }

    /// Forgets every activation quantizer so the next [`QuantizedNetwork::calibrate`] refits,
    /// except those frozen by a gradual schedule ([`ActQuant::set_frozen`]).
    pub fn reset_activations(&mut self) {
        visit_leaves_mut(&mut self.net.body, "", &mut |_, l| {
            let any = l.as_any_mut();
            if let Some(a) = any.downcast_mut::<ActQuant>() {
                if !a.frozen() {
                    a.reset();
                }
            } else if let Some(r) = any.downcast_mut::<GridRound>() {
                r.scale = None;
            }
        });
    }
}
