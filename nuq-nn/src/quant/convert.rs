//! Post-training quantization of a float [`Network`] and its conversion to the
//! [`IntegerModel`].
//!
//! [`QuantizedNetwork::prepare`] quantizes every conv and linear weight in place (the float
//! network then holds the dequantized values), inserts [`ActQuant`] after every ReLU and wraps
//! residual blocks in [`QuantBlock`]; [`QuantizedNetwork::calibrate`] runs one forward pass in
//! which each activation quantizer fits itself on the (already quantized) values reaching
//! it; [`QuantizedNetwork::to_integer`] folds batch-norm, the scales and the activation
//! thresholds into integer MAC thresholds.
//!
//! ## Folding, per output channel `o`
//!
//! A convolution's accumulator `acc` (integer levels × integer weights) stands for
//! `u_o · acc` with `u_o = s_in · s_w[o]`. Batch-norm in eval mode maps the conv output `y` to
//! `z = g_o · y + c_o` with `g_o = γ_o / √(var_o + ε)` and `c_o = β_o − g_o · μ_o (+ g_o · bias_o)`.
//! With `D = g_o · u_o`, the activation code `#{j : z ≥ t_j}` becomes `#{j : acc ≥ ⌈(t_j −
//! c_o) / D⌉}` when `D > 0`, and `#{j : acc ≤ ⌊(t_j − c_o) / D⌋}` (a *falling* channel) when
//! `D < 0`; when `D = 0` the code is constant. For a residual join, the shortcut (another
//! accumulator with its own `D'`, or levels with scale `s_x`) is multiplied by `D' / D`
//! (or `s_x / D`) as a fixed-point [`Align`] factor and its offset joins `c_o`.
//!
//! ## The input
//!
//! Images are bytes. The float network saw `(byte − zp_c) / (255 · std_c)` with integer
//! zero points `zp_c = round(255 · mean_c)` (use [`QuantizedNetwork::input_norm`] to
//! normalise calibration and evaluation images for the float twin). The first convolution's
//! weights are quantized as `w / (255 · std_c)`, so its accumulator runs over raw bytes;
//! padding with `zp_c` and the bias `−Σ w · zp` make it exact.

use std::collections::BTreeMap;

use crate::integer::transpose_rows;
use crate::integer::{
    AddNode, Align, ConvNode, ConvOutput, InputSpec, IntegerModel, LinearNode, MaxPoolNode, Node,
    Requant, TensorId,
};
use crate::layer::Mode;
use crate::layers::{
    BasicBlock, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, Sequential,
};
use crate::models::Network;
use crate::quant::layers::{ActQuant, GridRound, QuantBlock};
use crate::quant::qat::WeightSlot;
use crate::quant::weights::{center_rows, quantize_weights, QuantizedWeights};
use crate::quant::{ActQuantizer, Family};
use crate::tensor::Tensor;
use crate::NnError;

/// What to quantize and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantConfig {
    /// Weight index bits of the inner layers.
    pub weight_bits: u8,
    /// Activation code bits.
    pub act_bits: u8,
    /// Weight codebook family.
    pub weight_family: Family,
    /// Activation codebook family.
    pub act_family: Family,
    /// One weight scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Weight bits of the first convolution and the classifier.
    pub edge_bits: u8,
    /// Activation thresholds per channel (k-quantile: each channel's own equal-mass
    /// quantiles, one shared level table), else one threshold set per layer.
    pub act_per_channel: bool,
    /// Learn the activation clips and the weight scales during fine-tuning
    /// ([`crate::quant::ActQuant`], [`QuantizedNetwork::qat_step`]); else they stay where
    /// calibration put them.
    pub learn_clip: bool,
    /// Weight normalisation of the inner convolutions: each output channel's weights are
    /// used minus their mean (APoT's `(w − mean) / std`; the per-channel scale divides out
    /// the magnitude). It changes the function, so it is meant for fine-tuning.
    pub weight_norm: bool,
}

impl QuantConfig {
    /// `bits`-bit weights and activations of one family, per-channel weight scales, 8-bit
    /// first and last layers.
    pub fn new(bits: u8, family: Family) -> Self {
        Self {
            weight_bits: bits,
            act_bits: bits,
            weight_family: family,
            act_family: family,
            per_channel: true,
            edge_bits: 8,
            act_per_channel: false,
            learn_clip: false,
            weight_norm: false,
        }
    }
}

/// Input normalisation with integer zero points: `x = (byte − zero_point) / (255 · std)`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputNorm {
    /// Per-channel byte standing for zero.
    pub zero_point: Vec<u8>,
    /// Per-channel standard deviation (in units of 1/255 of the byte range, as usual).
    pub std: Vec<f32>,
}

impl InputNorm {
    /// From the usual float mean and std (pixels in `[0, 1]`); the mean is rounded to a byte.
    ///
    /// # Errors
    /// [`NnError::Config`] for mismatched lengths, a mean outside `[0, 1]` or a std ≤ 0.
    pub fn from_mean_std(mean: &[f32], std: &[f32]) -> Result<Self, NnError> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(NnError::Config(format!(
                "{} means for {} stds",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|m| !(0.0..=1.0).contains(m))
            || std.iter().any(|s| !(*s > 0.0 && s.is_finite()))
        {
            return Err(NnError::Config(format!(
                "bad input normalisation mean {mean:?} std {std:?}"
            )));
        }
        Ok(Self {
            zero_point: mean.iter().map(|m| (m * 255.0).round() as u8).collect(),
            std: std.to_vec(),
        })
    }

    /// The mean actually used (`zero_point / 255`), for the float twin's normalisation.
    pub fn mean(&self) -> Vec<f32> {
        self.zero_point
            .iter()
            .map(|&z| f32::from(z) / 255.0)
            .collect()
    }

    /// Normalises NHWC bytes of `n` images of `h × w` into a float tensor.
    pub fn normalise(&self, bytes: &[u8], n: usize, h: usize, w: usize) -> Result<Tensor, NnError> {
        let c = self.std.len();
        let data = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                (f32::from(b) - f32::from(self.zero_point[i % c])) / (255.0 * self.std[i % c])
            })
            .collect();
        Tensor::from_vec([n, h, w, c], data)
    }
}

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
}

/// `[kh][kw][ci][co]` → rows `[co][kh·kw·ci]`.
pub(crate) fn hwio_to_rows(w: &[f32], taps: usize, ci: usize, co: usize) -> Vec<f32> {
    let mut rows = vec![0.0; w.len()];
    for t in 0..taps {
        for i in 0..ci {
            for o in 0..co {
                rows[o * taps * ci + t * ci + i] = w[(t * ci + i) * co + o];
            }
        }
    }
    rows
}

pub(crate) fn rows_to_hwio(rows: &[f32], taps: usize, ci: usize, co: usize) -> Vec<f32> {
    let mut w = vec![0.0; rows.len()];
    for t in 0..taps {
        for i in 0..ci {
            for o in 0..co {
                w[(t * ci + i) * co + o] = rows[o * taps * ci + t * ci + i];
            }
        }
    }
    w
}

fn downcast<'a, T: 'static>(
    layer: &'a dyn crate::Layer,
    name: &str,
    what: &str,
) -> Result<&'a T, NnError> {
    layer.as_any().downcast_ref::<T>().ok_or_else(|| {
        NnError::Config(format!(
            "layer {name}: expected {what}, found {}",
            layer.describe()
        ))
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
        let mut rows = hwio_to_rows(&conv.weight.value, taps, c.c_in, c.c_out);
        let first = std::mem::replace(&mut self.first, false);
        let input_factor = |i: usize| -> f64 {
            if first {
                255.0 * f64::from(self.norm.std[(i % (taps * c.c_in)) % c.c_in])
            } else {
                1.0
            }
        };
        if first {
            if c.c_in != self.norm.std.len() {
                return Err(NnError::Config(format!(
                    "layer {name}: {} input channels but the input normalisation has {}",
                    c.c_in,
                    self.norm.std.len()
                )));
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
            center_rows(&mut rows, taps * c.c_in);
        }
        let q = quantize_weights(
            name,
            &rows,
            c.c_out,
            bits,
            self.cfg.weight_family,
            self.cfg.per_channel,
        )?;
        let deq: Vec<f32> = q
            .dequantized()
            .iter()
            .enumerate()
            .map(|(i, &v)| (f64::from(v) * input_factor(i)) as f32)
            .collect();
        let shadow = std::mem::replace(
            &mut conv.weight.value,
            rows_to_hwio(&deq, taps, c.c_in, c.c_out),
        );
        let input_factor = first.then(|| (0..c.c_in).map(input_factor).collect());
        self.slots.insert(
            name.to_string(),
            WeightSlot {
                q,
                shadow,
                conv: Some((taps, c.c_in, c.c_out)),
                input_factor,
                edge: first,
                per_channel: self.cfg.per_channel,
                velocity: Vec::new(),
                center,
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
                    s.insert(i + 1, format!("{child}.act"), Box::new(act(&self.cfg)))?;
                    i += 1;
                }
            } else if let Some(lin) = any.downcast_mut::<Linear>() {
                let rows = lin.weight.torch_shape[0];
                let per_channel = if Some(name.as_str()) == last_linear {
                    false
                } else {
                    self.cfg.per_channel
                };
                let q = quantize_weights(
                    &name,
                    &lin.weight.value,
                    rows,
                    self.cfg.edge_bits,
                    self.cfg.weight_family,
                    per_channel,
                )?;
                let shadow = std::mem::replace(&mut lin.weight.value, q.dequantized());
                self.slots.insert(
                    name,
                    WeightSlot {
                        q,
                        shadow,
                        conv: None,
                        input_factor: None,
                        edge: true,
                        per_channel,
                        velocity: Vec::new(),
                        center: false,
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
    /// [`NnError::Config`] for a layer that cannot be quantized or bad settings.
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

    /// Forgets every activation quantizer so the next [`QuantizedNetwork::calibrate`] refits.
    pub fn reset_activations(&mut self) {
        fn walk(s: &mut Sequential) {
            for (_, l) in s.layers_mut() {
                let any = l.as_any_mut();
                if let Some(a) = any.downcast_mut::<ActQuant>() {
                    a.reset();
                } else if let Some(b) = any.downcast_mut::<QuantBlock>() {
                    b.act.reset();
                    walk(&mut b.block.main);
                } else if let Some(r) = any.downcast_mut::<GridRound>() {
                    r.scale = None;
                }
            }
        }
        walk(&mut self.net.body);
    }

    /// Folds everything into the integer model.
    ///
    /// # Errors
    /// [`NnError::Config`] when a quantizer is not calibrated or the network has a shape the
    /// integer model cannot express (non-square kernels, a residual branch with a zero
    /// batch-norm scale, factors beyond the fixed-point range).
    pub fn to_integer(&self) -> Result<IntegerModel, NnError> {
        let cfg = self.net.config();
        let (h, w) = cfg.input_size;
        let mut b = Builder {
            qn: self,
            nodes: Vec::new(),
            cur: Cur {
                id: 0,
                scale: 1.0,
                h,
                w,
                c: cfg.in_channels,
            },
            flatten_chw: None,
        };
        b.seq("", &self.net.body)?;
        let model = IntegerModel {
            input: InputSpec {
                channels: cfg.in_channels,
                height: h,
                width: w,
                zero_point: self.input_norm.zero_point.clone(),
            },
            nodes: b.nodes,
            logit_scale: b.cur.scale,
        };
        model.tensor_infos()?;
        Ok(model)
    }
}

#[derive(Clone, Copy)]
struct Cur {
    id: TensorId,
    /// Real value of one unit of the tensor (level or accumulator).
    scale: f64,
    h: usize,
    w: usize,
    c: usize,
}

struct Builder<'a> {
    qn: &'a QuantizedNetwork,
    nodes: Vec<Node>,
    cur: Cur,
    flatten_chw: Option<(usize, usize, usize)>,
}

/// Per-channel affine `z = d[o] · acc + c[o]` of an accumulator.
struct Affine {
    d: Vec<f64>,
    c: Vec<f64>,
}

fn bn_affine(bn: &BatchNorm2d, u: &[f64], bias: Option<&[f32]>) -> Affine {
    let n = bn.channels();
    let mut d = vec![0.0; n];
    let mut c = vec![0.0; n];
    for o in 0..n {
        let g = f64::from(bn.weight.value[o])
            / (f64::from(bn.running_var[o]) + f64::from(bn.eps)).sqrt();
        let b = bias.map_or(0.0, |b| f64::from(b[o]));
        d[o] = g * u[o];
        c[o] = f64::from(bn.bias.value[o]) + g * (b - f64::from(bn.running_mean[o]));
    }
    Affine { d, c }
}

fn to_i32(x: f64) -> i32 {
    x.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// Integer thresholds for `code = #{j : d·acc + c ≥ t_j}` per channel (`t` the quantizer's
/// thresholds of that channel).
fn requant(aff: &Affine, q: &ActQuantizer, name: &str) -> Result<Requant, NnError> {
    let groups = q.groups();
    if groups != 1 && groups != aff.d.len() {
        return Err(NnError::Config(format!(
            "activation quantizer {name}: {groups} threshold groups for {} channels",
            aff.d.len()
        )));
    }
    let per = q.levels.len() - 1;
    let mut thresholds = Vec::with_capacity(aff.d.len() * per);
    let mut falling = Vec::with_capacity(aff.d.len());
    for (o, (&d, &c)) in aff.d.iter().zip(&aff.c).enumerate() {
        let mut row: Vec<i32> = q
            .thresholds_of(o)
            .iter()
            .map(|&t| {
                if d > 0.0 {
                    to_i32(((t - c) / d).ceil())
                } else if d < 0.0 {
                    to_i32(((t - c) / d).floor())
                } else if c >= t {
                    i32::MIN
                } else {
                    i32::MAX
                }
            })
            .collect();
        row.sort_unstable();
        thresholds.extend(row);
        falling.push(d < 0.0);
    }
    Ok(Requant {
        bits: q.bits,
        thresholds,
        falling,
        levels: q.levels.clone(),
        scale: q.scale,
    })
}

impl Builder<'_> {
    fn push(&mut self, node: Node, scale: f64, h: usize, w: usize, c: usize) -> Cur {
        self.nodes.push(node);
        Cur {
            id: self.nodes.len(),
            scale,
            h,
            w,
            c,
        }
    }

    fn weights(&self, name: &str) -> Result<&QuantizedWeights, NnError> {
        self.qn
            .slots
            .get(name)
            .map(|s| &s.q)
            .ok_or_else(|| NnError::Config(format!("layer {name} has no quantized weights")))
    }

    /// A convolution node reading `input`; returns its node, accumulator affine map pieces
    /// (`u[o] = s_in · s_w[o]`) and output size.
    fn conv_node(
        &self,
        name: &str,
        conv: &Conv2d,
        input: Cur,
        output: ConvOutput,
    ) -> Result<(ConvNode, Vec<f64>, usize, usize), NnError> {
        let c = conv.config();
        if c.kernel.0 != c.kernel.1 || c.stride.0 != c.stride.1 || c.padding.0 != c.padding.1 {
            return Err(NnError::Config(format!(
                "layer {name}: the integer model needs square kernels, strides and padding"
            )));
        }
        let q = self.weights(name)?;
        let k = c.kernel.0;
        let (oh, ow) = (
            (input.h + 2 * c.padding.0 - k) / c.stride.0 + 1,
            (input.w + 2 * c.padding.0 - k) / c.stride.0 + 1,
        );
        let mut bias = vec![0i32; c.c_out];
        if input.id == 0 {
            // Raw bytes: remove the zero point's contribution (padding carries it too).
            let zp = &self.qn.input_norm.zero_point;
            let kk = k * k * c.c_in;
            for (o, b) in bias.iter_mut().enumerate() {
                let s: i64 = (0..kk)
                    .map(|t| {
                        i64::from(q.table.levels[usize::from(q.table.indices[o * kk + t])])
                            * i64::from(zp[t % c.c_in])
                    })
                    .sum();
                *b = i32::try_from(-s).map_err(|_| {
                    NnError::Config(format!("layer {name}: zero-point bias overflows"))
                })?;
            }
        }
        let u = q.scales.iter().map(|s| s * input.scale).collect();
        let node = ConvNode {
            input: input.id,
            c_in: c.c_in,
            c_out: c.c_out,
            kernel: k,
            stride: c.stride.0,
            padding: c.padding.0,
            weights: q.table.clone(),
            bias,
            weight_scale: q.scales.iter().sum::<f64>() / q.scales.len() as f64,
            output,
        };
        Ok((node, u, oh, ow))
    }

    fn fitted<'q>(act: &'q ActQuant, name: &str) -> Result<&'q ActQuantizer, NnError> {
        act.quantizer.as_ref().ok_or_else(|| {
            NnError::Config(format!(
                "activation quantizer {name} is not calibrated (run calibrate first)"
            ))
        })
    }

    /// The convolution at layer `i` of `s` and the batch-norm after it, as an accumulator node
    /// and the affine map `z = d · acc + c` of its output (not pushed yet).
    fn conv_bn(
        &self,
        prefix: &str,
        s: &Sequential,
        i: usize,
        input: Cur,
    ) -> Result<(ConvNode, Affine, usize, usize), NnError> {
        let l = s.layers();
        let name = format!("{prefix}{}", l[i].0);
        let conv = downcast::<Conv2d>(l[i].1.as_ref(), &name, "Conv2d")?;
        let (bn_name, bn) = l
            .get(i + 1)
            .ok_or_else(|| NnError::Config(format!("layer {name}: no BatchNorm after it")))?;
        let bn = downcast::<BatchNorm2d>(bn.as_ref(), bn_name, "BatchNorm2d")?;
        let (node, u, oh, ow) = self.conv_node(&name, conv, input, ConvOutput::Accumulator)?;
        let aff = bn_affine(bn, &u, conv.bias.as_ref().map(|b| b.value.as_slice()));
        Ok((node, aff, oh, ow))
    }

    /// Conv → BN(ReLU) → ActQuant starting at layer `i` of `s`; returns the new current tensor.
    fn conv_bn_act(
        &mut self,
        prefix: &str,
        s: &Sequential,
        i: usize,
        input: Cur,
    ) -> Result<Cur, NnError> {
        let (mut node, aff, oh, ow) = self.conv_bn(prefix, s, i, input)?;
        let (aq_name, aq) = s.layers().get(i + 2).ok_or_else(|| {
            NnError::Config(format!(
                "layer {prefix}{}: no activation quantizer after it",
                s.layers()[i].0
            ))
        })?;
        let q = Self::fitted(
            downcast::<ActQuant>(aq.as_ref(), aq_name, "ActQuant")?,
            aq_name,
        )?;
        node.output = ConvOutput::Codes(requant(&aff, q, &format!("{prefix}{aq_name}"))?);
        let c_out = node.c_out;
        Ok(self.push(Node::Conv(node), q.scale, oh, ow, c_out))
    }

    /// Conv → BN (no ReLU) as an accumulator node; returns it and its affine map.
    fn conv_bn_acc(
        &mut self,
        prefix: &str,
        s: &Sequential,
        i: usize,
        input: Cur,
    ) -> Result<(Cur, Affine), NnError> {
        let (node, aff, oh, ow) = self.conv_bn(prefix, s, i, input)?;
        let c_out = node.c_out;
        Ok((self.push(Node::Conv(node), f64::NAN, oh, ow, c_out), aff))
    }

    fn block(&mut self, name: &str, qb: &QuantBlock) -> Result<(), NnError> {
        let input = self.cur;
        let main = &qb.block.main;
        let mid = self.conv_bn_act(&format!("{name}."), main, 0, input)?;
        let (a, aff_a) = self.conv_bn_acc(&format!("{name}."), main, 3, mid)?;
        let (b, b_d, b_c) = match &qb.block.downsample {
            Some(d) => {
                let (b, aff_b) = self.conv_bn_acc(&format!("{name}.downsample."), d, 0, input)?;
                (b, aff_b.d, aff_b.c)
            }
            None => (input, vec![input.scale; input.c], vec![0.0; input.c]),
        };
        let q = Self::fitted(&qb.act, name)?;
        // Fractional bits for the sum: as many as keep the shifted main accumulator within
        // 2^30 (its bound is K · max|w| · 255).
        let Some(Node::Conv(conv2)) = self.nodes.get(a.id - 1) else {
            return Err(NnError::Config(format!(
                "block {name}: main branch is not a convolution"
            )));
        };
        let max_w = conv2
            .weights
            .levels
            .iter()
            .map(|l| i64::from(l.unsigned_abs()))
            .max()
            .unwrap_or(1)
            .max(1);
        let bound = (conv2.kernel * conv2.kernel * conv2.c_in) as i64 * max_w * 255;
        let a_shift = (0u8..=16)
            .rev()
            .find(|&s| bound << s <= 1i64 << 30)
            .unwrap_or(0);
        let frac = f64::from(1u32 << a_shift);
        let mut align = Vec::with_capacity(a.c);
        let mut unit = Affine {
            d: Vec::with_capacity(a.c),
            c: Vec::with_capacity(a.c),
        };
        for o in 0..a.c {
            let d = aff_a.d[o];
            if d == 0.0 {
                return Err(NnError::Config(format!(
                    "block {name}: channel {o} of the main branch has a zero batch-norm scale"
                )));
            }
            let r = b_d[o] / d * frac;
            align.push(Align::from_f64(r).ok_or_else(|| {
                NnError::Config(format!("block {name}: channel {o} alignment factor {r:e} is out of the fixed-point range"))
            })?);
            unit.d.push(d / frac);
            unit.c.push(aff_a.c[o] + b_c[o]);
        }
        let node = AddNode {
            a: a.id,
            a_shift,
            b: b.id,
            align,
            output: requant(&unit, q, name)?,
        };
        self.cur = self.push(Node::Add(node), q.scale, a.h, a.w, a.c);
        Ok(())
    }

    fn seq(&mut self, prefix: &str, s: &Sequential) -> Result<(), NnError> {
        let l = s.layers();
        let mut i = 0;
        while i < l.len() {
            let name = format!("{prefix}{}", l[i].0);
            let any = l[i].1.as_any();
            if any.is::<Conv2d>() {
                self.cur = self.conv_bn_act(prefix, s, i, self.cur)?;
                i += 3;
                continue;
            } else if let Some(qb) = any.downcast_ref::<QuantBlock>() {
                self.block(&name, qb)?;
            } else if let Some(p) = any.downcast_ref::<MaxPool2d>() {
                let cur = self.cur;
                let (k, st) = (p.kernel(), p.stride());
                if cur.h < k || cur.w < k {
                    return Err(NnError::Config(format!(
                        "layer {name}: pool window larger than its input"
                    )));
                }
                self.cur = self.push(
                    Node::MaxPool(MaxPoolNode {
                        input: cur.id,
                        kernel: k,
                        stride: st,
                    }),
                    cur.scale,
                    (cur.h - k) / st + 1,
                    (cur.w - k) / st + 1,
                    cur.c,
                );
            } else if any.is::<GlobalAvgPool>() {
                let cur = self.cur;
                self.cur = self.push(
                    Node::GlobalAvgPool { input: cur.id },
                    cur.scale,
                    1,
                    1,
                    cur.c,
                );
            } else if any.is::<GridRound>() {
                // Folded into the integer pool's rounding.
            } else if any.is::<Flatten>() {
                self.flatten_chw = Some((self.cur.c, self.cur.h, self.cur.w));
            } else if let Some(lin) = any.downcast_ref::<Linear>() {
                self.linear(&name, lin)?;
            } else {
                return Err(NnError::Config(format!(
                    "layer {name} ({}) has no integer form",
                    l[i].1.describe()
                )));
            }
            i += 1;
        }
        Ok(())
    }

    fn linear(&mut self, name: &str, lin: &Linear) -> Result<(), NnError> {
        let q = self.weights(name)?;
        let cur = self.cur;
        let (outs, ins) = (lin.weight.torch_shape[0], lin.weight.torch_shape[1]);
        if ins != cur.h * cur.w * cur.c {
            return Err(NnError::Config(format!(
                "layer {name}: {ins} inputs, but the tensor before it has {}",
                cur.h * cur.w * cur.c
            )));
        }
        if q.scales.windows(2).any(|s| s[0] != s[1]) {
            return Err(NnError::Config(format!(
                "layer {name}: the classifier needs one weight scale (logits share units)"
            )));
        }
        let mut table = q.table.clone();
        if let Some((c, h, w)) = self.flatten_chw {
            // PyTorch flattens [c][h][w]; the integer model reads NHWC ([h][w][c]).
            table.indices = transpose_rows(&q.table.indices, c, h * w);
        }
        let unit = q.scales[0] * cur.scale;
        let bias = match &lin.bias {
            Some(b) => b
                .value
                .iter()
                .map(|&v| to_i32((f64::from(v) / unit).round()))
                .collect(),
            None => vec![0; outs],
        };
        let node = LinearNode {
            input: cur.id,
            in_features: ins,
            out_features: outs,
            weights: table,
            bias,
            weight_scale: q.scales[0],
        };
        self.cur = self.push(Node::Linear(node), unit, 1, 1, outs);
        Ok(())
    }
}
