//! The integer model in the `.nuq` file format (`nuq-fpga-fmt`).
//!
//! Mapping (format 1.1; a model without residual joins and with a zero input zero point uses
//! only the 1.0 subset, and the writer then declares 1.0):
//!
//! | integer model | `.nuq` layers |
//! |---|---|
//! | input | `input` with an 8-bit identity codebook (codes are the image bytes); `input_zp` with a ZERO_POINTS table when a zero point is not 0 (1.1) |
//! | [`ConvNode`] with codes | `conv2d` with weights, weight codebook, scale, bias, thresholds, output codebook and scale |
//! | [`ConvNode`] with an accumulator | `conv2d` with weights, weight codebook, scale and bias, `act_bits = 0` |
//! | [`AddNode`] | `aligned_add` of the main accumulator and the shortcut, with an ALIGNS table (`a_shift`, per-channel multiplier and shift), thresholds, output codebook and scale (1.1) |
//! | [`Node::MaxPool`] | `maxpool2d` (codes pass through; the input's codebook still applies) |
//! | [`Node::GlobalAvgPool`] | `global_avgpool` (levels averaged, rounded half up) |
//! | [`LinearNode`] | `flatten` (when its input is not `1×1`) then `linear`, output logits (`act_bits = 0`) |
//!
//! Weights are stored `[out, in / groups, kh, kw]` (PyTorch order; a grouped convolution
//! stores its `groups` in the layer record) and the linear layer after a
//! `flatten` reads features in `[c][h][w]` order, as the format defines; the integer model's
//! NHWC orders are converted both ways. The first convolution's bias already holds the input
//! zero point's contribution (`−Σ w · zero_point`), exactly as the format's `input_zp` defines
//! it, so biases are stored as they are. Scales are informative and stored as `f32`.
//! Every other layer op (`add`, `relu`, `avgpool2d`, ...) and every field value the integer
//! model cannot compute exactly (non-square dilation, an input codebook other than the identity,
//! requantization fields on pools or logits, ...) is refused before anything runs, with an
//! error naming the layer and the field: FORMAT.md's "Executor notes" list them.

use std::collections::BTreeMap;

use nuq_core::{Codebook, Grid};
use nuq_fpga_fmt::model::{self, AlignTable, Layer, Metadata, WeightTensor, ZeroPointTable};
use nuq_fpga_fmt::reader::Scale;
use nuq_fpga_fmt::{CodebookKind, LayerOp, Model, TileOrder};

use crate::integer::model::{
    transpose_rows, AddNode, ConvNode, ConvOutput, InputSpec, IntegerModel, LinearNode,
    MaxPoolNode, Node, TensorKind, WeightTable,
};
use crate::integer::requant::Requant;
use crate::NnError;

fn missing(layer: &str, what: &'static str) -> NnError {
    NnError::MissingTable {
        layer: layer.to_string(),
        what,
    }
}

fn no_form(layer: &str, why: &'static str) -> NnError {
    NnError::NoIntegerForm {
        layer: layer.to_string(),
        why,
    }
}

fn unrepresentable(what: String, ty: &'static str, value: f64) -> NnError {
    NnError::Unrepresentable { what, ty, value }
}

/// The refusal of a field value the integer executor does not implement.
fn unsupported(layer: &str, field: &'static str, value: impl std::fmt::Debug) -> NnError {
    NnError::Unsupported {
        layer: layer.to_string(),
        field,
        value: format!("{value:?}"),
    }
}

/// Refuses requantization fields on a layer that hands on its input's values (pools,
/// flatten) or produces logits (linear): the integer model would ignore them.
fn no_requant(l: &Layer, name: &str) -> Result<(), NnError> {
    if l.act_bits != 0 {
        return Err(unsupported(name, "act_bits", l.act_bits));
    }
    if let Some(t) = l.thresholds {
        return Err(unsupported(name, "thresholds", t));
    }
    if let Some(c) = l.act_codebook {
        return Err(unsupported(name, "act_codebook", c));
    }
    Ok(())
}

/// Refuses a window the integer model cannot express: non-square kernels, strides or
/// dilations, uneven padding (the reader holds pools to dilation 1 and one group, and a
/// convolution's groups to divisors of its channels).
fn plain_window(l: &Layer, name: &str) -> Result<(), NnError> {
    if l.kernel[0] != l.kernel[1] {
        return Err(unsupported(name, "kernel", l.kernel));
    }
    if l.stride[0] != l.stride[1] {
        return Err(unsupported(name, "stride", l.stride));
    }
    if l.padding.iter().any(|&p| p != l.padding[0]) {
        return Err(unsupported(name, "padding", l.padding));
    }
    if l.dilation[0] != l.dilation[1] {
        return Err(unsupported(name, "dilation", l.dilation));
    }
    Ok(())
}

struct Writer {
    m: Model,
    kind: CodebookKind,
}

impl Writer {
    fn codebook(&mut self, bits: u8, signed: bool, levels: Vec<i32>, kind: CodebookKind) -> u32 {
        let mut levels = levels;
        let last = *levels.last().unwrap_or(&0);
        levels.resize(1 << bits, last);
        let cb = model::Codebook::new(kind, 8, signed, levels);
        self.m.codebooks.push(cb);
        (self.m.codebooks.len() - 1) as u32
    }

    fn scale(&mut self, s: nuq_core::Scale) -> u32 {
        self.m.scales.push(Scale::from(s));
        (self.m.scales.len() - 1) as u32
    }

    fn weights(&mut self, table: &WeightTable, dims: Vec<u32>, indices: Vec<u8>) -> (u32, u32) {
        self.m.weights.push(WeightTensor {
            bits: table.bits(),
            word_bits: 32,
            order: TileOrder::RowPerOutput,
            dims,
            indices,
        });
        let w = (self.m.weights.len() - 1) as u32;
        let cb = self.codebook(
            table.bits(),
            true,
            table.codebook.levels().to_vec(),
            if table.bits() == 8 {
                CodebookKind::Uniform
            } else {
                self.kind
            },
        );
        (w, cb)
    }

    fn requant(&mut self, r: &Requant) -> Result<(u32, u32, u32), NnError> {
        self.m.thresholds.push(r.thresholds.clone());
        let t = (self.m.thresholds.len() - 1) as u32;
        let cb = self.codebook(r.bits(), false, r.codebook.levels().to_vec(), self.kind);
        Ok((t, cb, self.scale(r.scale)))
    }

    fn bias(&mut self, b: &[i32]) -> u32 {
        self.m.biases.push(b.to_vec());
        (self.m.biases.len() - 1) as u32
    }
}

/// Converts an integer model to a `.nuq` model; `kind` names the activation/weight codebook
/// family and `entries` go into the metadata.
///
/// # Errors
/// [`NnError::InvalidModel`] for an inconsistent model.
pub fn to_file_model(
    model: &IntegerModel,
    kind: CodebookKind,
    entries: BTreeMap<String, String>,
) -> Result<Model, NnError> {
    let infos = model.tensor_infos()?;
    let mut w = Writer {
        m: Model::default(),
        kind,
    };
    w.m.metadata = Metadata {
        producer: "nuq".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        entries,
    };
    let inp = &model.input;
    let mut input = Layer::new(
        "input",
        LayerOp::Input,
        &[],
        [inp.channels as u32, inp.height as u32, inp.width as u32],
    );
    input.act_bits = 8;
    input.act_codebook = Some(w.codebook(8, false, (0..256).collect(), CodebookKind::Uniform));
    if inp.zero_point.iter().any(|&z| z != 0) {
        w.m.zero_points.push(ZeroPointTable {
            bits: 8,
            values: inp.zero_point.clone(),
        });
        input.op = LayerOp::InputZp;
        input.zero_point = Some((w.m.zero_points.len() - 1) as u32);
    }
    w.m.layers.push(input);
    // Tensor id → layer index in the file.
    let mut layer_of = vec![0u32];
    for (i, node) in model.nodes.iter().enumerate() {
        let out = infos[i + 1];
        let shape = [out.c as u32, out.h as u32, out.w as u32];
        let layer = match node {
            Node::Conv(c) => {
                let k = c.kernel;
                // [o][ky][kx][ci] → [o][ci][ky][kx]
                let ci = c.c_in / c.groups;
                let idx = transpose_rows(&c.weights.indices, k * k, ci);
                let (wi, wcb) = w.weights(
                    &c.weights,
                    vec![c.c_out as u32, ci as u32, k as u32, k as u32],
                    idx,
                );
                let mut l = Layer::new(
                    &format!("conv{i}"),
                    LayerOp::Conv2d,
                    &[layer_of[c.input]],
                    shape,
                )
                .with_window(
                    [k as u32; 2],
                    [c.stride as u32; 2],
                    [c.padding as u32; 4],
                );
                l.groups = c.groups as u32;
                l.dilation = [c.dilation as u32; 2];
                l.weight_bits = c.weights.bits();
                l.weights = Some(wi);
                l.weight_codebook = Some(wcb);
                l.weight_scale = Some(w.scale(c.weight_scale));
                l.bias = Some(w.bias(&c.bias));
                if let ConvOutput::Codes(r) = &c.output {
                    let (t, acb, asc) = w.requant(r)?;
                    l.act_bits = r.bits();
                    l.thresholds = Some(t);
                    l.act_codebook = Some(acb);
                    l.act_scale = Some(asc);
                }
                l
            }
            Node::Add(a) => {
                w.m.aligns.push(AlignTable {
                    main_shift: a.a_shift,
                    factors: a.align.clone(),
                });
                let (t, acb, asc) = w.requant(&a.output)?;
                let mut l = Layer::new(
                    &format!("add{i}"),
                    LayerOp::AlignedAdd,
                    &[layer_of[a.a], layer_of[a.b]],
                    shape,
                );
                l.act_bits = a.output.bits();
                l.thresholds = Some(t);
                l.act_codebook = Some(acb);
                l.act_scale = Some(asc);
                l.align = Some((w.m.aligns.len() - 1) as u32);
                l
            }
            Node::MaxPool(p) => Layer::new(
                &format!("maxpool{i}"),
                LayerOp::MaxPool2d,
                &[layer_of[p.input]],
                shape,
            )
            .with_window(
                [p.kernel as u32; 2],
                [p.stride as u32; 2],
                [p.padding as u32; 4],
            ),
            Node::GlobalAvgPool { input } => Layer::new(
                &format!("avgpool{i}"),
                LayerOp::GlobalAvgPool,
                &[layer_of[*input]],
                shape,
            ),
            Node::Linear(lin) => {
                let x = infos[lin.input];
                let mut src = layer_of[lin.input];
                if x.h * x.w > 1 {
                    w.m.layers.push(Layer::new(
                        &format!("flatten{i}"),
                        LayerOp::Flatten,
                        &[src],
                        [lin.in_features as u32, 1, 1],
                    ));
                    src = (w.m.layers.len() - 1) as u32;
                    // NHWC feature order → [c][h][w].
                }
                let (wi, wcb) = w.weights(
                    &lin.weights,
                    vec![lin.out_features as u32, lin.in_features as u32],
                    lin.weights.indices.clone(),
                );
                let mut l = Layer::new(&format!("linear{i}"), LayerOp::Linear, &[src], shape);
                l.weight_bits = lin.weights.bits();
                l.weights = Some(wi);
                l.weight_codebook = Some(wcb);
                l.weight_scale = Some(w.scale(lin.weight_scale));
                l.bias = Some(w.bias(&lin.bias));
                l.act_scale = Some(w.scale(model.logit_scale));
                l
            }
        };
        w.m.layers.push(layer);
        layer_of.push((w.m.layers.len() - 1) as u32);
    }
    Ok(w.m)
}

/// Rebuilds the integer model from a `.nuq` model written by [`to_file_model`] (or any file
/// using the same subset: input or input_zp, conv2d with thresholds or an accumulator output,
/// aligned_add, maxpool2d, global_avgpool, flatten, linear).
///
/// # Errors
/// [`NnError::Unsupported`] naming the layer and the field the integer executor does not
/// implement (FORMAT.md, "Executor notes"); [`NnError::TooLarge`] for a tensor above
/// [`crate::integer::MAX_TENSOR_ELEMENTS`] elements; [`NnError::MissingTable`], [`NnError::NoIntegerForm`], [`NnError::Unrepresentable`] or [`NnError::InvalidModel`] for anything else
/// the integer model cannot express.
pub fn from_file_model(m: &Model) -> Result<IntegerModel, NnError> {
    let first = m.layers.first().ok_or_else(|| missing("model", "layers"))?;
    let [c, h, w] = first.out_shape;
    let input_name = format!("layer 0 ({})", first.name);
    // Image bytes are the input codes and the integer model multiplies them as levels: the
    // input must have 8-bit codes whose codebook (if any) is the identity.
    if first.act_bits != 8 {
        return Err(unsupported(&input_name, "act_bits", first.act_bits));
    }
    if let Some(cb) = first.act_codebook {
        let book = m
            .codebooks
            .get(cb as usize)
            .ok_or_else(|| missing(&input_name, "act_codebook"))?;
        if !book.levels.iter().copied().eq(0..256) {
            return Err(unsupported(
                &input_name,
                "act_codebook",
                format!("codebook {cb} (not the identity 0..=255)"),
            ));
        }
    }
    let zero_point = match first.op {
        LayerOp::Input => vec![0; c as usize],
        LayerOp::InputZp => m
            .zero_points
            .get(first.zero_point.unwrap_or(u32::MAX) as usize)
            .ok_or_else(|| missing("layer 0", "zero-point table"))?
            .values
            .clone(),
        other => {
            return Err(NnError::UnexpectedLayer {
                layer: "layer 0".into(),
                expected: "input or input_zp",
                found: other.to_string(),
            })
        }
    };
    let input = InputSpec {
        channels: c as usize,
        height: h as usize,
        width: w as usize,
        zero_point,
    };
    let mut nodes = Vec::new();
    // File layer index → tensor id (None for a flatten, resolved to its input).
    let mut tensor_of: Vec<usize> = vec![0];
    let mut shape_of: Vec<[u32; 3]> = vec![first.out_shape];
    let mut logit_scale = nuq_core::Scale::ONE;
    let get = |v: &[i32]| v.to_vec();
    for (li, l) in m.layers.iter().enumerate().skip(1) {
        let name = format!("layer {li} ({})", l.name);
        let src = *l.inputs.first().ok_or_else(|| missing(&name, "input"))? as usize;
        let (tid, in_shape) = match (tensor_of.get(src), shape_of.get(src)) {
            (Some(&t), Some(&s)) => (t, s),
            _ => return Err(no_form(&name, "its input is not an earlier layer")),
        };
        let table =
            |wi: Option<u32>, cb: Option<u32>| -> Result<(WeightTable, Vec<u32>), NnError> {
                let t = m
                    .weights
                    .get(wi.unwrap_or(u32::MAX) as usize)
                    .ok_or_else(|| missing(&name, "weights"))?;
                let book = m
                    .codebooks
                    .get(cb.unwrap_or(u32::MAX) as usize)
                    .ok_or_else(|| missing(&name, "weight codebook"))?;
                let mut levels = book.levels.clone();
                if levels.windows(2).any(|p| p[0] > p[1]) {
                    return Err(no_form(&name, "weight codebook is not non-decreasing"));
                }
                // The writer pads a short codebook by repeating its last level: the integer
                // model keeps the table up to the first copy of the last level and indices
                // into the padding decode through that copy (the same level). Repeats before
                // it are kept, so every index decodes to its own entry.
                let last = *levels
                    .last()
                    .ok_or_else(|| missing(&name, "weight codebook levels"))?;
                let keep = levels
                    .iter()
                    .position(|&v| v == last)
                    .map_or(levels.len(), |p| p + 1);
                levels.truncate(keep);
                if let Some(&v) = levels
                    .iter()
                    .find(|&&v| i8::try_from(v).is_err() || v == -128)
                {
                    return Err(unrepresentable(
                        format!("{name}: weight level"),
                        "a level of the signed 8-bit grid (-127..=127)",
                        f64::from(v),
                    ));
                }
                let codebook =
                    Codebook::table(Grid::I8, t.bits, &levels).map_err(|source| NnError::Core {
                        what: format!("{name}: weight codebook"),
                        source,
                    })?;
                let top = (keep - 1) as u8;
                Ok((
                    WeightTable {
                        codebook,
                        indices: t.indices.iter().map(|&i| i.min(top)).collect(),
                    },
                    t.dims.clone(),
                ))
            };
        let scale_of = |i: Option<u32>| core_scale(m, i, &name);
        match l.op {
            LayerOp::Conv2d => {
                plain_window(l, &name)?;
                let (mut wt, dims) = table(l.weights, l.weight_codebook)?;
                if dims.len() != 4 || dims[2] != dims[3] {
                    return Err(unsupported(&name, "weights.dims", &dims));
                }
                let (co, ci, k) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
                wt.indices = transpose_rows(&wt.indices, ci, k * k);
                let output = if l.act_bits == 0 {
                    ConvOutput::Accumulator
                } else {
                    ConvOutput::Codes(requant(m, l, &name)?)
                };
                let bias = match l.bias {
                    Some(b) => get(m
                        .biases
                        .get(b as usize)
                        .ok_or_else(|| missing(&name, "bias"))?),
                    None => vec![0; co],
                };
                nodes.push(Node::Conv(ConvNode {
                    input: tid,
                    c_in: ci
                        .checked_mul(l.groups as usize)
                        .ok_or_else(|| unsupported(&name, "groups", l.groups))?,
                    c_out: co,
                    kernel: k,
                    stride: l.stride[0] as usize,
                    padding: l.padding[0] as usize,
                    dilation: l.dilation[0] as usize,
                    groups: l.groups as usize,
                    weights: wt,
                    bias,
                    weight_scale: scale_of(l.weight_scale)?,
                    output,
                }));
            }
            LayerOp::AlignedAdd => {
                let table = m
                    .aligns
                    .get(l.align.unwrap_or(u32::MAX) as usize)
                    .ok_or_else(|| missing(&name, "alignment table"))?;
                let shortcut = *l
                    .inputs
                    .get(1)
                    .ok_or_else(|| missing(&name, "shortcut input"))?
                    as usize;
                nodes.push(Node::Add(AddNode {
                    a: tid,
                    a_shift: table.main_shift,
                    b: *tensor_of
                        .get(shortcut)
                        .ok_or_else(|| no_form(&name, "its shortcut is not an earlier layer"))?,
                    align: table.factors.clone(),
                    output: requant(m, l, &name)?,
                }));
            }
            LayerOp::MaxPool2d => {
                no_requant(l, &name)?;
                plain_window(l, &name)?;
                if l.padding[0] > l.kernel[0] / 2 {
                    return Err(unsupported(&name, "padding", l.padding));
                }
                nodes.push(Node::MaxPool(MaxPoolNode {
                    input: tid,
                    kernel: l.kernel[0] as usize,
                    stride: l.stride[0] as usize,
                    padding: l.padding[0] as usize,
                }));
            }
            LayerOp::GlobalAvgPool => {
                no_requant(l, &name)?;
                nodes.push(Node::GlobalAvgPool { input: tid });
            }
            LayerOp::Flatten => {
                no_requant(l, &name)?;
                tensor_of.push(tid);
                shape_of.push(in_shape);
                continue;
            }
            LayerOp::Linear => {
                no_requant(l, &name)?;
                let (wt, dims) = table(l.weights, l.weight_codebook)?;
                if dims.len() != 2 {
                    return Err(unsupported(&name, "weights.dims", &dims));
                }
                let (outs, ins) = (dims[0] as usize, dims[1] as usize);
                let [c, h, w] = in_shape.map(|v| v as usize);
                if (c as u64) * (h as u64) * (w as u64) != ins as u64 {
                    return Err(NnError::SizeMismatch {
                        what: format!("{name}: inputs of a {c}×{h}×{w} tensor"),
                        expected: c.saturating_mul(h).saturating_mul(w),
                        found: ins,
                    });
                }
                let bias = match l.bias {
                    Some(b) => get(m
                        .biases
                        .get(b as usize)
                        .ok_or_else(|| missing(&name, "bias"))?),
                    None => vec![0; outs],
                };
                logit_scale = scale_of(l.act_scale)?;
                nodes.push(Node::Linear(LinearNode {
                    input: tid,
                    in_features: ins,
                    out_features: outs,
                    weights: wt,
                    bias,
                    weight_scale: scale_of(l.weight_scale)?,
                }));
            }
            other => {
                return Err(NnError::Unsupported {
                    layer: name,
                    field: "op",
                    value: other.to_string(),
                })
            }
        }
        tensor_of.push(nodes.len());
        shape_of.push(l.out_shape);
    }
    let model = IntegerModel {
        input,
        nodes,
        logit_scale,
    };
    let infos = model.tensor_infos()?;
    if infos.last().map(|t| t.kind) != Some(TensorKind::Logits) {
        return Err(NnError::InvalidModel {
            node: model.nodes.len().checked_sub(1),
            problem: crate::ModelProblem::NoClassifier,
        });
    }
    // Every layer's declared shape is the shape the integer model computes (a flatten is
    // checked through the linear layer reading it).
    for (li, l) in m.layers.iter().enumerate() {
        if l.op == LayerOp::Flatten {
            continue;
        }
        let t = infos[tensor_of[li]];
        let computed = [t.c, t.h, t.w];
        if computed != l.out_shape.map(|v| v as usize) {
            return Err(NnError::InvalidParameter {
                what: format!("layer {li} ({}) out_shape", l.name),
                allowed: "the shape the integer model computes from its inputs",
                found: format!("{:?}, computed {computed:?}", l.out_shape),
            });
        }
    }
    Ok(model)
}

/// The threshold requantization of layer `l` (its thresholds, output codebook and scale).
fn requant(m: &Model, l: &Layer, name: &str) -> Result<Requant, NnError> {
    let th = m
        .thresholds
        .get(l.thresholds.unwrap_or(u32::MAX) as usize)
        .ok_or_else(|| missing(name, "thresholds"))?;
    // Without an act_codebook a code's level is the code itself (FORMAT.md §6.1).
    let levels: Vec<i32> = match l.act_codebook {
        None => (0..1i32 << th.bits()).collect(),
        Some(cb) => m
            .codebooks
            .get(cb as usize)
            .ok_or_else(|| missing(name, "act_codebook"))?
            .levels
            .clone(),
    };
    if let Some(&v) = levels.iter().find(|&&v| u8::try_from(v).is_err()) {
        return Err(unrepresentable(
            format!("{name}: output level"),
            "u8",
            f64::from(v),
        ));
    }
    let codebook =
        Codebook::table(Grid::U8, th.bits(), &levels).map_err(|source| NnError::Core {
            what: format!("{name}: act_codebook"),
            source,
        })?;
    Ok(Requant {
        thresholds: th.clone(),
        codebook,
        scale: core_scale(m, l.act_scale, name)?,
    })
}

/// The scale a layer refers to, as `nuq-core`'s [`nuq_core::Scale`] (`1` without one). A
/// valid file may hold a subnormal scale, which the integer model refuses.
fn core_scale(m: &Model, i: Option<u32>, name: &str) -> Result<nuq_core::Scale, NnError> {
    match i.and_then(|i| m.scales.get(i as usize)) {
        None => Ok(nuq_core::Scale::ONE),
        Some(s) => nuq_core::Scale::new(s.value).map_err(|source| NnError::Core {
            what: format!("{name}: scale"),
            source,
        }),
    }
}
