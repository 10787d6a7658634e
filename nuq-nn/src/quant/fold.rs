//! The fold of a calibrated [`QuantizedNetwork`] into the [`IntegerModel`]: batch-norm, the
//! scales and the activation thresholds become integer MAC thresholds.
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
//! (or `s_x / D`) as a fixed-point [`FixedPointMultiplier`] factor and its offset joins `c_o`.
//!
//! ## The input
//!
//! Images are bytes. The float network saw `(byte − zp_c) / (255 · std_c)` with integer
//! zero points `zp_c = round(255 · mean_c)` (use [`QuantizedNetwork::input_norm`] to
//! normalise calibration and evaluation images for the float twin). The first convolution's
//! weights are quantized as `w / (255 · std_c)`, so its accumulator runs over raw bytes;
//! padding with `zp_c` and the bias `−Σ w · zp` make it exact.

use crate::integer::{
    AddNode, ConvNode, ConvOutput, InputSpec, IntegerModel, LinearNode, MaxPoolNode, Node, Requant,
    TensorId,
};
use crate::layers::{
    BatchNorm2d, Conv2d, Flatten, GlobalAvgPool, Graph, Linear, MaxPool2d, Op as GraphOp,
};
use crate::param::join_name;
use crate::quant::layers::{ActQuant, GridRound};
use crate::quant::network::QuantizedNetwork;
use crate::quant::weights::QuantizedWeights;
use crate::quant::ActQuantizer;
use crate::Layer;
use crate::NnError;
use nuq_core::{Direction, FixedPointMultiplier, MacThresholds, Scale};

impl QuantizedNetwork {
    /// Folds everything into the integer model.
    ///
    /// # Errors
    /// [`NnError::NotCalibrated`] when a quantizer is not calibrated, [`NnError::NoIntegerForm`],
    /// [`NnError::UnexpectedLayer`] or [`NnError::Unrepresentable`] when the network has a shape the
    /// integer model cannot express (non-square kernels, a residual branch with a zero
    /// batch-norm scale, factors beyond the fixed-point range); [`NnError::GradualUnfinished`]
    /// while a gradual schedule keeps a layer in full precision.
    pub fn to_integer(&self) -> Result<IntegerModel, NnError> {
        if let Some((name, _)) = self
            .slots
            .iter()
            .find(|(_, s)| s.phase == crate::quant::Phase::Float)
        {
            return Err(NnError::GradualUnfinished(name.clone()));
        }
        let cfg = self.net.config();
        let (h, w) = cfg.input_size;
        let mut flat = Vec::new();
        flatten(&self.net.body, "", 0, &mut flat);
        let mut b = Builder::new(self, None);
        let logits = b.fold(&flat)?;
        let model = IntegerModel {
            input: InputSpec {
                channels: cfg.in_channels,
                height: h,
                width: w,
                zero_point: self.input_norm.zero_point.clone(),
            },
            nodes: b.nodes,
            logit_scale: informative_scale("logit scale", logits.scale)?,
        };
        model.tensor_infos()?;
        Ok(model)
    }

    /// Moves activation thresholds off the accumulator values the integer model can reach,
    /// so the float twin and the integer model take the same side of every threshold.
    ///
    /// The integer model compares the exact accumulator with `⌈(t − c) / D⌉`; the twin
    /// compares its `f32` convolution and batch-norm output with `t`, a few `f32` ulps off.
    /// When a threshold position `(t − c) / D` lies within that error of a reachable
    /// accumulator value (every reachable value of a convolution row is a multiple of `g`,
    /// the greatest common divisor of the row's weight levels, shifted by its bias), and
    /// many activations share that value (a background patch), the two disagree on all of
    /// them. For each such channel of a convolution → batch-norm → activation quantizer,
    /// the batch-norm shift `β` moves by `−s · D` with the smallest `s` (accumulator units)
    /// that puts every threshold of the channel at least `TIE_MARGIN` = 2⁻¹⁸ (relative to the
    /// magnitudes the twin cancels) from the reachable values, inside the gap of `g·ℤ` it
    /// was in: the integer model's codes do not change on any input, only the twin's
    /// near-ties become clear. Channels with no such shift are left alone. Residual joins
    /// are not treated.
    ///
    /// Returns how many channels moved.
    ///
    /// # Errors
    /// As [`QuantizedNetwork::to_integer`].
    pub fn separate_ties(&mut self) -> Result<usize, NnError> {
        let ties = {
            let mut flat = Vec::new();
            flatten(&self.net.body, "", 0, &mut flat);
            let mut b = Builder::new(self, Some(Vec::new()));
            b.fold(&flat)?;
            b.ties.unwrap_or_default()
        };
        let moved = ties.len();
        if moved > 0 {
            self.net.visit_params(&mut |name, p| {
                for t in ties.iter().filter(|t| t.param == name) {
                    p.value[t.channel] = t.beta;
                }
            });
        }
        Ok(moved)
    }
}

/// Smallest distance, relative to the magnitudes `|c| + |t|` the twin's batch-norm output
/// cancels, between a threshold and a reachable accumulator value
/// ([`QuantizedNetwork::separate_ties`]): 2⁻¹⁸, 64 `f32` ulps.
pub const TIE_MARGIN: f64 = 1.0 / 262_144.0;

/// A batch-norm shift to write ([`QuantizedNetwork::separate_ties`]).
struct Tie {
    /// The batch-norm's shift parameter (`….bias`).
    param: String,
    channel: usize,
    beta: f32,
}

/// The shift `s` (accumulator units) of threshold positions `pos` that keeps each in its gap
/// of the lattice `g·ℤ` (`(L − g, L]` rising, `[L, L + g)` falling: no lattice point changes
/// side) and at least `margin[j]` from both ends of its gap, as near 0 as possible and then
/// moved towards the middle of the allowed range by up to the largest margin; `None` when
/// every position already keeps its margin, or when no shift does it. Infinite positions
/// (unreachable thresholds) are ignored.
fn tie_shift(pos: &[f64], margin: &[f64], g: f64, rising: bool) -> Option<f64> {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut close = false;
    let mut widest = 0.0f64;
    for (&p, &m) in pos.iter().zip(margin) {
        if !p.is_finite() {
            continue;
        }
        let a = if rising {
            (p / g).ceil() * g - g
        } else {
            (p / g).floor() * g
        };
        let b = a + g;
        close |= p - a < m || b - p < m;
        lo = lo.max(a + m - p);
        hi = hi.min(b - m - p);
        widest = widest.max(m);
    }
    if !close || lo.partial_cmp(&hi).is_none_or(std::cmp::Ordering::is_gt) {
        return None;
    }
    let s = 0.0f64.clamp(lo, hi);
    let mid = (lo + hi) / 2.0;
    Some(if s <= mid {
        (s + widest).min(mid)
    } else {
        (s - widest).max(mid)
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
    /// The value of every tensor of the flattened network (`[0]` the input); `None` once a
    /// pending accumulator has been taken by its reader.
    vals: Vec<Option<Val<'a>>>,
    /// Batch-norm shifts that separate near-ties ([`QuantizedNetwork::separate_ties`]);
    /// `None` when folding.
    ties: Option<Vec<Tie>>,
}

/// A leaf layer or a join of the float network, its containers flattened away.
struct Flat<'a> {
    name: String,
    op: FlatOp<'a>,
    /// Flat tensors read: 0 the network input, `i + 1` the output of flat node `i`.
    inputs: Vec<usize>,
}

enum FlatOp<'a> {
    Leaf(&'a dyn Layer),
    /// A join; whether ReLU follows it.
    Add(bool),
}

/// Appends the leaves and joins of `layer`, called `name` and reading flat tensor `input`,
/// to `out`; returns the flat tensor it writes.
fn flatten<'a>(layer: &'a dyn Layer, name: &str, input: usize, out: &mut Vec<Flat<'a>>) -> usize {
    if let Some(g) = layer.as_any().downcast_ref::<Graph>() {
        let mut ids = vec![input];
        for n in g.nodes() {
            let child = join_name(name, n.name());
            let id = match n.op() {
                GraphOp::Layer(l) => flatten(l.as_ref(), &child, ids[n.inputs()[0]], out),
                GraphOp::Add(a) => {
                    out.push(Flat {
                        name: child,
                        op: FlatOp::Add(a.relu()),
                        inputs: n.inputs().iter().map(|&t| ids[t]).collect(),
                    });
                    out.len()
                }
            };
            ids.push(id);
        }
        return ids[ids.len() - 1];
    }
    let children = layer.children();
    if children.is_empty() {
        out.push(Flat {
            name: name.to_string(),
            op: FlatOp::Leaf(layer),
            inputs: vec![input],
        });
        return out.len();
    }
    children.into_iter().fold(input, |x, (child, l)| {
        flatten(l, &join_name(name, child), x, out)
    })
}

/// A convolution and the batch-norm after it: an accumulator node not placed yet, waiting
/// for its reader (an activation quantizer or a join) to choose its output.
struct ConvBn<'a> {
    node: ConvNode,
    aff: Affine,
    h: usize,
    w: usize,
    bn: &'a BatchNorm2d,
    bn_name: String,
}

/// A convolution waiting for its batch-norm: the node, `u[o] = s_in · s_w[o]`, the output
/// size and the layer.
struct PendingConv<'a> {
    node: ConvNode,
    u: Vec<f64>,
    h: usize,
    w: usize,
    conv: &'a Conv2d,
}

/// The shortcut of a join: an accumulator or activation levels.
enum Shortcut<'a> {
    Acc(Box<ConvBn<'a>>),
    Levels(Cur),
}

/// What a tensor of the flattened network is in the integer model.
enum Val<'a> {
    /// Activation levels (or the image bytes, or the logits) of a placed node.
    Levels(Cur),
    /// A convolution waiting for its batch-norm.
    Conv(Box<PendingConv<'a>>),
    /// Convolution and batch-norm, waiting for a quantizer or a join.
    ConvBn(Box<ConvBn<'a>>),
    /// A join followed by ReLU, waiting for its quantizer.
    Sum { a: Box<ConvBn<'a>>, b: Shortcut<'a> },
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
/// An informative scale as the model and the file hold it (`f32`); the integer arithmetic
/// never reads it.
fn informative_scale(what: &str, value: f64) -> Result<Scale, NnError> {
    Scale::new(value as f32).map_err(|source| NnError::Core {
        what: what.to_string(),
        source,
    })
}

fn requant(aff: &Affine, q: &ActQuantizer, name: &str) -> Result<Requant, NnError> {
    let groups = q.groups();
    if groups != 1 && groups != aff.d.len() {
        return Err(NnError::SizeMismatch {
            what: format!("activation quantizer {name}: threshold groups (1 or one per channel)"),
            expected: aff.d.len(),
            found: groups,
        });
    }
    let per = q.codebook.len() - 1;
    let mut thresholds = Vec::with_capacity(aff.d.len() * per);
    let mut directions = Vec::with_capacity(aff.d.len());
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
        directions.push(Direction::of_scale(d));
    }
    Ok(Requant {
        thresholds: MacThresholds::new(q.bits(), thresholds, directions).map_err(|source| {
            NnError::Core {
                what: format!("activation quantizer {name}: MAC thresholds"),
                source,
            }
        })?,
        codebook: q.codebook.clone(),
        scale: informative_scale(&format!("activation quantizer {name}: scale"), q.scale)?,
    })
}

impl<'a> Builder<'a> {
    fn new(qn: &'a QuantizedNetwork, ties: Option<Vec<Tie>>) -> Self {
        let cfg = qn.net.config();
        let (h, w) = cfg.input_size;
        Builder {
            qn,
            nodes: Vec::new(),
            vals: vec![Some(Val::Levels(Cur {
                id: 0,
                scale: 1.0,
                h,
                w,
                c: cfg.in_channels,
            }))],
            ties,
        }
    }

    /// Records the batch-norm shifts that take the thresholds of `q` off the accumulator
    /// values `node` can reach ([`QuantizedNetwork::separate_ties`]).
    fn find_ties(
        &mut self,
        bn: &BatchNorm2d,
        bn_name: &str,
        node: &ConvNode,
        aff: &Affine,
        q: &ActQuantizer,
    ) {
        let Some(ties) = self.ties.as_mut() else {
            return;
        };
        let levels = node.weights.codebook.levels();
        let k = node.kernel * node.kernel * (node.c_in / node.groups.max(1));
        for (o, (&d, &c)) in aff.d.iter().zip(&aff.c).enumerate() {
            if d == 0.0 || !d.is_finite() {
                continue;
            }
            let g = node.weights.indices[o * k..(o + 1) * k]
                .iter()
                .fold(0u64, |g, &i| {
                    gcd(g, u64::from(levels[usize::from(i)].unsigned_abs()))
                });
            if g == 0 {
                continue;
            }
            let ts = q.thresholds_of(o);
            // Accumulator units; the lattice is offset by the bias (a multiple of `g`).
            let bias = f64::from(node.bias[o]);
            let pos: Vec<f64> = ts.iter().map(|&t| (t - c) / d - bias).collect();
            let margin: Vec<f64> = ts
                .iter()
                .map(|&t| TIE_MARGIN * (c.abs() + t.abs()) / d.abs())
                .collect();
            let Some(shift) = tie_shift(&pos, &margin, g as f64, d > 0.0) else {
                continue;
            };
            // `(t − c') / d = pos + shift` with `c' = c − shift · d`.
            let beta = (f64::from(bn.bias.value[o]) - shift * d) as f32;
            ties.push(Tie {
                param: format!("{bn_name}.bias"),
                channel: o,
                beta,
            });
        }
    }

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
            .ok_or_else(|| NnError::NoIntegerForm {
                layer: name.to_string(),
                why: "no quantized weights (was the network prepared?)",
            })
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
        if c.kernel.0 != c.kernel.1
            || c.stride.0 != c.stride.1
            || c.padding.0 != c.padding.1
            || c.dilation.0 != c.dilation.1
        {
            return Err(NnError::NoIntegerForm {
                layer: name.to_string(),
                why: "the integer model needs square kernels, strides, padding and dilation",
            });
        }
        let q = self.weights(name)?;
        let k = c.kernel.0;
        // The input positions the (dilated) kernel spans.
        let span = c.dilation.0 * (k - 1) + 1;
        let (oh, ow) = (
            (input.h + 2 * c.padding.0 - span) / c.stride.0 + 1,
            (input.w + 2 * c.padding.0 - span) / c.stride.0 + 1,
        );
        if c.groups == 0 || !c.c_in.is_multiple_of(c.groups) || !c.c_out.is_multiple_of(c.groups) {
            return Err(NnError::NoIntegerForm {
                layer: name.to_string(),
                why: "channel groups that do not divide both channel counts",
            });
        }
        // A row reads its group's `c_in / groups` channels, `cg` per kernel tap.
        let cg = c.c_in / c.groups;
        let outs_per_group = c.c_out / c.groups;
        let mut bias = vec![0i32; c.c_out];
        if input.id == 0 {
            // Raw bytes: remove the zero point's contribution (padding carries it too).
            let zp = &self.qn.input_norm.zero_point;
            let kk = k * k * cg;
            for (o, b) in bias.iter_mut().enumerate() {
                let c0 = o / outs_per_group * cg;
                let s: i64 = (0..kk)
                    .map(|t| {
                        i64::from(
                            q.table.codebook.levels()[usize::from(q.table.indices[o * kk + t])],
                        ) * i64::from(zp[c0 + t % cg])
                    })
                    .sum();
                *b = i32::try_from(-s).map_err(|_| NnError::Unrepresentable {
                    what: format!("layer {name}: zero-point bias of channel {o}"),
                    ty: "i32",
                    value: -s as f64,
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
            dilation: c.dilation.0,
            groups: c.groups,
            weights: q.table.clone(),
            bias,
            weight_scale: informative_scale(
                &format!("{name}: weight scale"),
                q.scales.iter().sum::<f64>() / q.scales.len() as f64,
            )?,
            output,
        };
        Ok((node, u, oh, ow))
    }

    fn fitted<'q>(act: &'q ActQuant, name: &str) -> Result<&'q ActQuantizer, NnError> {
        act.quantizer
            .as_ref()
            .ok_or_else(|| NnError::NotCalibrated(name.to_string()))
    }

    /// Folds the flattened network; returns the output tensor (the logits).
    fn fold(&mut self, flat: &[Flat<'a>]) -> Result<Cur, NnError> {
        for f in flat {
            let val = match f.op {
                FlatOp::Add(relu) => self.join(f, relu)?,
                FlatOp::Leaf(l) => self.leaf(&f.name, l, f.inputs[0])?,
            };
            self.vals.push(Some(val));
        }
        let last = flat
            .last()
            .map_or("the network input".to_string(), |f| f.name.clone());
        self.levels(self.vals.len() - 1, &last)
    }

    /// Takes the value of tensor `id` for `reader`: levels are read any number of times, a
    /// pending accumulator once.
    fn take(&mut self, id: usize, reader: &str) -> Result<Val<'a>, NnError> {
        match &self.vals[id] {
            Some(Val::Levels(c)) => Ok(Val::Levels(*c)),
            Some(_) => Ok(self.vals[id].take().expect("matched Some")),
            None => Err(NnError::NoIntegerForm {
                layer: reader.to_string(),
                why: "reads a convolution's accumulator that another layer reads too: the integer model gives an accumulator one reader",
            }),
        }
    }

    /// The activation levels of tensor `id`, read by `reader`.
    fn levels(&mut self, id: usize, reader: &str) -> Result<Cur, NnError> {
        let why = match self.take(id, reader)? {
            Val::Levels(c) => return Ok(c),
            Val::Conv(_) => "reads a convolution with no batch-norm after it (nuq folds every convolution with the batch-norm that follows it)",
            Val::ConvBn(_) => "reads a batch-norm with no ReLU after it: the integer model hands on unsigned activation codes",
            Val::Sum { .. } => "reads a residual join with no activation quantizer after it",
        };
        Err(NnError::NoIntegerForm {
            layer: reader.to_string(),
            why,
        })
    }

    /// Places a pending convolution as an accumulator node; returns it and the affine map of
    /// its output.
    fn place_acc(&mut self, cb: ConvBn<'a>) -> (Cur, Affine) {
        let ConvBn {
            node, aff, h, w, ..
        } = cb;
        let c = node.c_out;
        (self.push(Node::Conv(node), f64::NAN, h, w, c), aff)
    }

    fn leaf(&mut self, name: &str, layer: &'a dyn Layer, input: usize) -> Result<Val<'a>, NnError> {
        let any = layer.as_any();
        if let Some(conv) = any.downcast_ref::<Conv2d>() {
            let cur = self.levels(input, name)?;
            let (node, u, h, w) = self.conv_node(name, conv, cur, ConvOutput::Accumulator)?;
            return Ok(Val::Conv(Box::new(PendingConv {
                node,
                u,
                h,
                w,
                conv,
            })));
        }
        if let Some(bn) = any.downcast_ref::<BatchNorm2d>() {
            let Val::Conv(pending) = self.take(input, name)? else {
                return Err(NnError::NoIntegerForm {
                    layer: name.to_string(),
                    why: "a batch-norm that does not follow a convolution directly",
                });
            };
            let PendingConv {
                node,
                u,
                h,
                w,
                conv,
            } = *pending;
            let aff = bn_affine(bn, &u, conv.bias.as_ref().map(|b| b.value.as_slice()));
            return Ok(Val::ConvBn(Box::new(ConvBn {
                node,
                aff,
                h,
                w,
                bn,
                bn_name: name.to_string(),
            })));
        }
        if let Some(aq) = any.downcast_ref::<ActQuant>() {
            let q = Self::fitted(aq, name)?;
            return match self.take(input, name)? {
                Val::ConvBn(cb) => {
                    let ConvBn {
                        mut node,
                        aff,
                        h,
                        w,
                        bn,
                        bn_name,
                    } = *cb;
                    if self.ties.is_some() {
                        self.find_ties(bn, &bn_name, &node, &aff, q);
                    }
                    node.output = ConvOutput::Codes(requant(&aff, q, name)?);
                    let c = node.c_out;
                    Ok(Val::Levels(self.push(Node::Conv(node), q.scale, h, w, c)))
                }
                Val::Sum { a, b } => Ok(Val::Levels(self.place_join(name, a, b, q)?)),
                Val::Conv(_) => Err(NnError::NoIntegerForm {
                    layer: name.to_string(),
                    why: "quantizes a convolution with no batch-norm after it",
                }),
                Val::Levels(_) => Err(NnError::NoIntegerForm {
                    layer: name.to_string(),
                    why: "an activation quantizer that does not follow a convolution with batch-norm or a residual join",
                }),
            };
        }
        if let Some(p) = any.downcast_ref::<MaxPool2d>() {
            let cur = self.levels(input, name)?;
            let (k, st, pad) = (p.kernel(), p.stride(), p.padding());
            if cur.h + 2 * pad < k || cur.w + 2 * pad < k {
                return Err(NnError::NoIntegerForm {
                    layer: name.to_string(),
                    why: "pool window larger than its input",
                });
            }
            let out = self.push(
                Node::MaxPool(MaxPoolNode {
                    input: cur.id,
                    kernel: k,
                    stride: st,
                    padding: pad,
                }),
                cur.scale,
                (cur.h + 2 * pad - k) / st + 1,
                (cur.w + 2 * pad - k) / st + 1,
                cur.c,
            );
            return Ok(Val::Levels(out));
        }
        if any.is::<GlobalAvgPool>() {
            let cur = self.levels(input, name)?;
            let out = self.push(
                Node::GlobalAvgPool { input: cur.id },
                cur.scale,
                1,
                1,
                cur.c,
            );
            return Ok(Val::Levels(out));
        }
        if any.is::<GridRound>() || any.is::<Flatten>() {
            // The rounding is the integer pool's own; the classifier's rows already hold
            // PyTorch's flatten order.
            return Ok(Val::Levels(self.levels(input, name)?));
        }
        if let Some(lin) = any.downcast_ref::<Linear>() {
            let cur = self.levels(input, name)?;
            return Ok(Val::Levels(self.linear(name, lin, cur)?));
        }
        Err(NnError::UnexpectedLayer {
            layer: name.to_string(),
            expected: "a layer with an integer form",
            found: layer.describe(),
        })
    }

    /// A join of two tensors followed by ReLU: one a convolution with batch-norm (the main
    /// branch, the first such input), the other another one or activation levels.
    fn join(&mut self, f: &Flat<'a>, relu: bool) -> Result<Val<'a>, NnError> {
        let fail = |why| NnError::NoIntegerForm {
            layer: f.name.clone(),
            why,
        };
        if f.inputs.len() != 2 {
            return Err(fail(
                "a join of more than two tensors: the integer model adds two",
            ));
        }
        if !relu {
            return Err(fail("a residual join without a ReLU after it: its sum can be negative, and the integer model's activation codes are unsigned (MobileNet-V2's linear bottleneck)"));
        }
        let x = self.take(f.inputs[0], &f.name)?;
        let y = self.take(f.inputs[1], &f.name)?;
        let shortcut = |v: Val<'a>| match v {
            Val::ConvBn(cb) => Ok(Shortcut::Acc(cb)),
            Val::Levels(c) => Ok(Shortcut::Levels(c)),
            _ => Err(fail(
                "a join input that is neither a convolution with batch-norm nor activation codes",
            )),
        };
        match (x, y) {
            (Val::ConvBn(a), b) | (b, Val::ConvBn(a)) => Ok(Val::Sum {
                a,
                b: shortcut(b)?,
            }),
            _ => Err(fail("a join with no convolution followed by batch-norm among its inputs: the integer model's join requantizes an accumulator")),
        }
    }

    /// Places a join, `a` its main branch and `b` its shortcut, requantized by `q` (the
    /// quantizer called `name`); returns its output.
    fn place_join(
        &mut self,
        name: &str,
        a: Box<ConvBn<'a>>,
        b: Shortcut<'a>,
        q: &ActQuantizer,
    ) -> Result<Cur, NnError> {
        // Fractional bits for the sum: as many as keep the shifted main accumulator within
        // 2^30 (its bound is K · max|w| · 255).
        let conv2 = &a.node;
        let max_w = conv2
            .weights
            .codebook
            .levels()
            .iter()
            .map(|l| i64::from(l.unsigned_abs()))
            .max()
            .unwrap_or(1)
            .max(1);
        // K, the length of a weight row: `c_in / groups` channels per tap.
        let k = conv2.kernel * conv2.kernel * (conv2.c_in / conv2.groups.max(1));
        let bound = k as i64 * max_w * 255;
        let a_shift = (0u8..=16)
            .rev()
            .find(|&s| bound << s <= 1i64 << 30)
            .unwrap_or(0);
        let frac = f64::from(1u32 << a_shift);
        let (a_cur, aff_a) = self.place_acc(*a);
        let (b_cur, b_d, b_c) = match b {
            Shortcut::Acc(cb) => {
                let (cur, aff) = self.place_acc(*cb);
                (cur, aff.d, aff.c)
            }
            Shortcut::Levels(cur) => (cur, vec![cur.scale; cur.c], vec![0.0; cur.c]),
        };
        let mut align = Vec::with_capacity(a_cur.c);
        let mut unit = Affine {
            d: Vec::with_capacity(a_cur.c),
            c: Vec::with_capacity(a_cur.c),
        };
        for o in 0..a_cur.c {
            let d = aff_a.d[o];
            if d == 0.0 {
                return Err(NnError::NoIntegerForm {
                    layer: format!("{name} channel {o}"),
                    why: "the main branch has a zero batch-norm scale",
                });
            }
            let r = b_d[o] / d * frac;
            align.push(
                FixedPointMultiplier::from_f64(r).map_err(|source| NnError::Core {
                    what: format!("join {name}: channel {o} shortcut alignment factor"),
                    source,
                })?,
            );
            unit.d.push(d / frac);
            unit.c.push(aff_a.c[o] + b_c[o]);
        }
        let node = AddNode {
            a: a_cur.id,
            a_shift,
            b: b_cur.id,
            align,
            output: requant(&unit, q, name)?,
        };
        Ok(self.push(Node::Add(node), q.scale, a_cur.h, a_cur.w, a_cur.c))
    }

    fn linear(&mut self, name: &str, lin: &Linear, cur: Cur) -> Result<Cur, NnError> {
        let q = self.weights(name)?;
        let (outs, ins) = (lin.weight.torch_shape[0], lin.weight.torch_shape[1]);
        if ins != cur.h * cur.w * cur.c {
            return Err(NnError::SizeMismatch {
                what: format!("layer {name}: inputs (the elements of the tensor before it)"),
                expected: cur.h * cur.w * cur.c,
                found: ins,
            });
        }
        if q.scales.windows(2).any(|s| s[0] != s[1]) {
            return Err(NnError::NoIntegerForm {
                layer: name.to_string(),
                why: "the classifier needs one weight scale (logits share units)",
            });
        }
        // Rows keep PyTorch's `[c][h][w]` feature order (the runner orders its columns for NHWC
        // activations when it packs them).
        let table = q.table.clone();
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
            weight_scale: informative_scale(&format!("{name}: weight scale"), q.scales[0])?,
        };
        Ok(self.push(Node::Linear(node), unit, 1, 1, outs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shifted position stays in its gap of `g·ℤ` and keeps its margin from both ends.
    fn check(pos: &[f64], margin: &[f64], g: f64, rising: bool, s: f64) {
        for (&p, &m) in pos.iter().zip(margin) {
            let a = if rising {
                (p / g).ceil() * g - g
            } else {
                (p / g).floor() * g
            };
            let q = p + s;
            assert!(
                q - a >= m - 1e-9 && a + g - q >= m - 1e-9,
                "{p} + {s} in gap from {a}"
            );
        }
    }

    #[test]
    fn a_threshold_on_a_shared_accumulator_value_moves_off_it_within_its_gap() {
        // The channel of VGG-Small W3/A3 APoT (seed 3, QAT 0.5) whose first threshold sat
        // 0.0049 accumulator units below a value 3 692 activations of 500 images shared;
        // weight levels ±31·{1, 2, 4}: reachable accumulators are multiples of 31.
        let pos = [
            -54250.004869976,
            -45557.923431553,
            -36865.841993130,
            -28173.760554707,
            -15135.638397072,
            2248.524479774,
            19632.687356620,
        ];
        let margin = [0.24; 7];
        let s = tie_shift(&pos, &margin, 31.0, true).expect("a shift exists");
        check(&pos, &margin, 31.0, true, s);
        assert!(s < 0.0 && s > -1.0, "{s}");
        // Falling channel on an exact lattice point: the point keeps counting (stays ≤ t).
        let s = tie_shift(&[62.0], &[0.5], 31.0, false).expect("a shift exists");
        check(&[62.0], &[0.5], 31.0, false, s);
        assert!(s > 0.0);
    }

    #[test]
    fn clear_or_unsolvable_thresholds_stay() {
        assert_eq!(
            tie_shift(&[10.5, f64::INFINITY], &[0.1, 0.1], 1.0, true),
            None
        );
        // Unit lattice, positions 0.45 apart, margins 0.3: no common shift.
        assert_eq!(tie_shift(&[0.01, 0.46], &[0.3, 0.3], 1.0, true), None);
    }
}
