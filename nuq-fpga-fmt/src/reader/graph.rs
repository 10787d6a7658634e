//! The GRAPH section: layers in topological order, each naming its inputs (earlier layers) and
//! the tables it uses. Validated structurally when parsed and against the other sections by
//! [`validate_references`].

use super::table::{field, field_err, reserved_zero, string, SectionCtx, Table};
use super::{
    AlignsSection, Biases, Codebooks, Scales, ThresholdsSection, WeightsSection, ZeroPointsSection,
};
use crate::enums::LayerOp;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{
    caps, RawLayer, RawLayerExt, RawTableHead, BYTE_BLOB_ALIGN, LAYER_RECORD_1_0, LAYER_RECORD_1_1,
    NONE,
};
use crate::le::U32Le;
use core::mem::{offset_of, size_of};

/// The validated GRAPH section.
#[derive(Debug, Clone, Copy)]
pub struct Graph<'a> {
    table: Table<'a, RawLayer>,
    /// The minor version whose rules apply (the declared one, at most 1).
    minor: u16,
}

/// One validated layer, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    raw: &'a RawLayer,
    /// The format 1.1 fields (absent in a file declaring 1.0).
    ext: Option<&'a RawLayerExt>,
    name: &'a str,
}

fn get3(a: &[U32Le; 3]) -> [u32; 3] {
    [a[0].get(), a[1].get(), a[2].get()]
}
fn get2(a: &[U32Le; 2]) -> [u32; 2] {
    [a[0].get(), a[1].get()]
}
fn opt(v: &U32Le) -> Option<u32> {
    let v = v.get();
    (v != NONE).then_some(v)
}

/// Whether `op` uses kernel, stride, padding, dilation and groups.
pub fn is_spatial(op: LayerOp) -> bool {
    matches!(
        op,
        LayerOp::Conv2d | LayerOp::MaxPool2d | LayerOp::AvgPool2d
    )
}

/// Whether `op` has packed weights.
pub fn has_weights(op: LayerOp) -> bool {
    matches!(op, LayerOp::Conv2d | LayerOp::Linear)
}

/// Number of inputs `op` takes.
pub fn input_arity(op: LayerOp) -> u8 {
    match op {
        LayerOp::Input | LayerOp::InputZp => 0,
        LayerOp::Add | LayerOp::AlignedAdd => 2,
        _ => 1,
    }
}

/// Output size of a sliding window along one axis, or `None` when the window does not fit.
pub fn window_out(
    input: u32,
    pad_a: u32,
    pad_b: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
) -> Option<u32> {
    let padded = u64::from(input) + u64::from(pad_a) + u64::from(pad_b);
    let span = u64::from(dilation) * (u64::from(kernel) - 1) + 1;
    if padded < span || stride == 0 {
        return None;
    }
    u32::try_from((padded - span) / u64::from(stride) + 1).ok()
}

impl<'a> Graph<'a> {
    /// Whether this section's head or records are larger than in the declared version (a
    /// later minor version).
    pub(crate) fn extended(&self) -> bool {
        self.table.extended
    }

    /// Validates the section under the rules of minor version `minor` (0 or 1).
    pub(crate) fn parse(ctx: SectionCtx<'a>, minor: u16) -> Result<Self> {
        let min_rec = if minor >= 1 {
            LAYER_RECORD_1_1
        } else {
            LAYER_RECORD_1_0
        };
        let table = Table::<RawLayer>::parse_sized(ctx, size_of::<RawTableHead>() as u32, min_rec)?;
        let mut blobs = table.blobs();
        for i in 0..table.count {
            let r = table.record(i)?;
            let ro = table.record_offset(i);
            let Some(op) = LayerOp::from_raw_in(r.op.get(), minor) else {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawLayer,
                    op,
                    ErrorKind::Invalid {
                        found: r.op.get().into(),
                        expected: if minor >= 1 {
                            "a layer op defined by format 1.1 (1..=11)"
                        } else {
                            "a layer op defined by format 1.0 (1..=9; declare version 1.1 for 10, 11)"
                        }
                    }
                ));
            };
            ctx.ensure(
                r.weight_bits <= 8,
                field!(i, ro, RawLayer, weight_bits),
                r.weight_bits,
                "0..=8",
            )?;
            ctx.ensure(
                r.act_bits <= 8,
                field!(i, ro, RawLayer, act_bits),
                r.act_bits,
                "0..=8",
            )?;
            let n = input_arity(op);
            if r.input_count != n {
                return Err(field_err!(
                    ctx,
                    i,
                    ro,
                    RawLayer,
                    input_count,
                    ErrorKind::Mismatch {
                        found: r.input_count.into(),
                        expected: n.into()
                    }
                ));
            }
            for (k, inp) in r.inputs.iter().enumerate() {
                let at = ro + offset_of!(RawLayer, inputs) as u64 + 4 * k as u64;
                let v = inp.get();
                if k < usize::from(n) {
                    if v >= i {
                        return Err(ctx.err(
                            Some(i),
                            "inputs",
                            at,
                            ErrorKind::BadReference {
                                found: v.into(),
                                limit: i.into(),
                            },
                        ));
                    }
                } else if v != NONE {
                    return Err(ctx.err(
                        Some(i),
                        "inputs",
                        at,
                        ErrorKind::Invalid {
                            found: v.into(),
                            expected: "0xffffffff for unused inputs",
                        },
                    ));
                }
            }
            reserved_zero(&ctx, Some(i), "reserved0", ro + 5, &r.reserved0)?;
            ctx.ensure(
                r.reserved1.get() == 0,
                field!(i, ro, RawLayer, reserved1),
                r.reserved1.get(),
                "0",
            )?;
            for (k, d) in r.out_shape.iter().enumerate() {
                if !(1..=caps::DIM).contains(&d.get()) {
                    let at = ro + offset_of!(RawLayer, out_shape) as u64 + 4 * k as u64;
                    return Err(ctx.err(
                        Some(i),
                        "out_shape",
                        at,
                        ErrorKind::Invalid {
                            found: d.get().into(),
                            expected: "1..=2^24",
                        },
                    ));
                }
            }
            check_spatial(&ctx, i, ro, r, op)?;
            let no = ro + offset_of!(RawLayer, name) as u64;
            let name = blobs.take(Some(i), "name", no, &r.name, BYTE_BLOB_ALIGN, None)?;
            string(&ctx, Some(i), "name", no, name)?;
        }
        blobs.finish()?;
        Ok(Graph { table, minor })
    }

    /// Number of layers.
    pub fn len(&self) -> u32 {
        self.table.count
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.table.count == 0
    }

    /// Layer `i`.
    pub fn get(&self, i: u32) -> Option<Layer<'a>> {
        let raw = self.table.get(i)?;
        let name = core::str::from_utf8(self.table.blob_bytes(&raw.name)).ok()?;
        Some(Layer {
            raw,
            ext: self.ext(i),
            name,
        })
    }

    /// The format 1.1 fields of record `i` (only in a file declaring 1.1 or later, where every
    /// record has them).
    fn ext(&self, i: u32) -> Option<&'a RawLayerExt> {
        if self.minor == 0 {
            return None;
        }
        let at = self.table.record_offset(i) + u64::from(LAYER_RECORD_1_0);
        self.table
            .ctx
            .pod::<RawLayerExt>(Some(i), "record", at)
            .ok()
    }

    /// All layers in order.
    pub fn iter(&self) -> impl Iterator<Item = Layer<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    fn record_offset(&self, i: u32) -> u64 {
        self.table.record_offset(i)
    }
}

fn check_spatial(ctx: &SectionCtx<'_>, i: u32, ro: u64, r: &RawLayer, op: LayerOp) -> Result<()> {
    let fields: [(&'static str, usize, &[U32Le]); 5] = [
        ("kernel", offset_of!(RawLayer, kernel), &r.kernel),
        ("stride", offset_of!(RawLayer, stride), &r.stride),
        ("dilation", offset_of!(RawLayer, dilation), &r.dilation),
        (
            "groups",
            offset_of!(RawLayer, groups),
            core::slice::from_ref(&r.groups),
        ),
        ("padding", offset_of!(RawLayer, padding), &r.padding),
    ];
    for (name, off, vals) in fields {
        for (k, v) in vals.iter().enumerate() {
            let v = v.get();
            let at = ro + off as u64 + 4 * k as u64;
            let (ok, expected) = if !is_spatial(op) {
                (v == 0, "0: this op has no window")
            } else if name == "padding" {
                (v <= caps::DIM, "0..=2^24")
            } else if op != LayerOp::Conv2d && (name == "dilation" || name == "groups") {
                (v == 1, "1 for pooling")
            } else {
                ((1..=caps::DIM).contains(&v), "1..=2^24")
            };
            if !ok {
                return Err(ctx.err(
                    Some(i),
                    name,
                    at,
                    ErrorKind::Invalid {
                        found: v.into(),
                        expected,
                    },
                ));
            }
        }
    }
    Ok(())
}

/// The sections a graph refers to.
pub(crate) struct Tables<'s, 'a> {
    pub aligns: &'s AlignsSection<'a>,
    pub zero_points: &'s ZeroPointsSection<'a>,
    pub codebooks: &'s Codebooks<'a>,
    pub weights: &'s WeightsSection<'a>,
    pub biases: &'s Biases<'a>,
    pub thresholds: &'s ThresholdsSection<'a>,
    pub scales: &'s Scales<'a>,
}

/// Checks every layer's references against the other sections, and its shapes against its
/// inputs' shapes.
pub(crate) fn validate_references(graph: &Graph<'_>, t: &Tables<'_, '_>) -> Result<()> {
    let ctx = graph.table.ctx;
    for i in 0..graph.len() {
        let ro = graph.record_offset(i);
        let r = graph.table.record(i)?;
        let op = LayerOp::from_raw(r.op.get()).unwrap_or(LayerOp::Input);
        let none = U32Le::new(NONE);
        let (align, zero_point) = graph
            .ext(i)
            .map_or((&none, &none), |e| (&e.align, &e.zero_point));
        let fe = |field: &'static str, off: usize, kind: ErrorKind| -> Error {
            ctx.err(Some(i), field, ro + off as u64, kind)
        };
        let reference = |field: &'static str,
                         off: usize,
                         v: &U32Le,
                         limit: u32,
                         required: bool|
         -> Result<Option<u32>> {
            match opt(v) {
                None if required => Err(fe(
                    field,
                    off,
                    ErrorKind::Invalid {
                        found: NONE.into(),
                        expected: "a reference: this op requires it",
                    },
                )),
                None => Ok(None),
                Some(x) if x >= limit => Err(fe(
                    field,
                    off,
                    ErrorKind::BadReference {
                        found: x.into(),
                        limit: limit.into(),
                    },
                )),
                Some(x) => Ok(Some(x)),
            }
        };
        let forbid = |field: &'static str, off: usize, v: &U32Le| -> Result<()> {
            match opt(v) {
                Some(x) => Err(fe(
                    field,
                    off,
                    ErrorKind::Invalid {
                        found: x.into(),
                        expected: "0xffffffff: this layer cannot use this table",
                    },
                )),
                None => Ok(()),
            }
        };
        let out = get3(&r.out_shape);
        // Weights, weight codebook, weight scale, bias.
        if has_weights(op) {
            let w = reference(
                "weights",
                offset_of!(RawLayer, weights),
                &r.weights,
                t.weights.len(),
                true,
            )?
            .unwrap_or(0);
            let cb = reference(
                "weight_codebook",
                offset_of!(RawLayer, weight_codebook),
                &r.weight_codebook,
                t.codebooks.len(),
                true,
            )?
            .unwrap_or(0);
            reference(
                "weight_scale",
                offset_of!(RawLayer, weight_scale),
                &r.weight_scale,
                t.scales.len(),
                true,
            )?;
            let (Some(tensor), Some(codebook)) = (t.weights.get(w), t.codebooks.get(cb)) else {
                return Err(fe(
                    "weights",
                    offset_of!(RawLayer, weights),
                    ErrorKind::BadReference {
                        found: w.into(),
                        limit: t.weights.len().into(),
                    },
                ));
            };
            if r.weight_bits != tensor.bits() {
                return Err(fe(
                    "weight_bits",
                    offset_of!(RawLayer, weight_bits),
                    ErrorKind::Mismatch {
                        found: r.weight_bits.into(),
                        expected: tensor.bits().into(),
                    },
                ));
            }
            if codebook.bits() != tensor.bits() {
                return Err(fe(
                    "weight_codebook",
                    offset_of!(RawLayer, weight_codebook),
                    ErrorKind::Mismatch {
                        found: codebook.bits().into(),
                        expected: tensor.bits().into(),
                    },
                ));
            }
            if let Some(b) = reference(
                "bias",
                offset_of!(RawLayer, bias),
                &r.bias,
                t.biases.len(),
                false,
            )? {
                let len = t.biases.get(b).map_or(0, |v| v.len());
                if len as u64 != u64::from(out[0]) {
                    return Err(fe(
                        "bias",
                        offset_of!(RawLayer, bias),
                        ErrorKind::Mismatch {
                            found: len as u64,
                            expected: out[0].into(),
                        },
                    ));
                }
            }
        } else {
            if r.weight_bits != 0 {
                return Err(fe(
                    "weight_bits",
                    offset_of!(RawLayer, weight_bits),
                    ErrorKind::Invalid {
                        found: r.weight_bits.into(),
                        expected: "0: this op has no weights",
                    },
                ));
            }
            forbid("weights", offset_of!(RawLayer, weights), &r.weights)?;
            forbid(
                "weight_codebook",
                offset_of!(RawLayer, weight_codebook),
                &r.weight_codebook,
            )?;
            forbid(
                "weight_scale",
                offset_of!(RawLayer, weight_scale),
                &r.weight_scale,
            )?;
            forbid("bias", offset_of!(RawLayer, bias), &r.bias)?;
        }
        // Output requantization.
        if r.act_bits == 0 {
            forbid(
                "thresholds",
                offset_of!(RawLayer, thresholds),
                &r.thresholds,
            )?;
            forbid(
                "act_codebook",
                offset_of!(RawLayer, act_codebook),
                &r.act_codebook,
            )?;
        } else {
            if op.is_input() {
                forbid(
                    "thresholds",
                    offset_of!(RawLayer, thresholds),
                    &r.thresholds,
                )?;
            }
            if let Some(th) = reference(
                "thresholds",
                offset_of!(RawLayer, thresholds),
                &r.thresholds,
                t.thresholds.len(),
                false,
            )? {
                let table = t.thresholds.get(th);
                let (bits, ch) = table.map_or((0, 0), |x| (x.bits(), x.channels()));
                if bits != r.act_bits {
                    return Err(fe(
                        "thresholds",
                        offset_of!(RawLayer, thresholds),
                        ErrorKind::Mismatch {
                            found: bits.into(),
                            expected: r.act_bits.into(),
                        },
                    ));
                }
                if ch != out[0] {
                    return Err(fe(
                        "thresholds",
                        offset_of!(RawLayer, thresholds),
                        ErrorKind::Mismatch {
                            found: ch.into(),
                            expected: out[0].into(),
                        },
                    ));
                }
            }
            if let Some(cb) = reference(
                "act_codebook",
                offset_of!(RawLayer, act_codebook),
                &r.act_codebook,
                t.codebooks.len(),
                false,
            )? {
                let bits = t.codebooks.get(cb).map_or(0, |c| c.bits());
                if bits != r.act_bits {
                    return Err(fe(
                        "act_codebook",
                        offset_of!(RawLayer, act_codebook),
                        ErrorKind::Mismatch {
                            found: bits.into(),
                            expected: r.act_bits.into(),
                        },
                    ));
                }
            }
        }
        reference(
            "act_scale",
            offset_of!(RawLayer, act_scale),
            &r.act_scale,
            t.scales.len(),
            false,
        )?;
        // Format 1.1 fields: the alignment of a residual join, the input zero points.
        let align_off = LAYER_RECORD_1_0 as usize + offset_of!(RawLayerExt, align);
        let zp_off = LAYER_RECORD_1_0 as usize + offset_of!(RawLayerExt, zero_point);
        if op == LayerOp::AlignedAdd {
            reference(
                "thresholds",
                offset_of!(RawLayer, thresholds),
                &r.thresholds,
                t.thresholds.len(),
                true,
            )?;
            let a = reference("align", align_off, align, t.aligns.len(), true)?.unwrap_or(0);
            let ch = t.aligns.get(a).map_or(0, |x| x.channels());
            if ch != out[0] {
                return Err(fe(
                    "align",
                    align_off,
                    ErrorKind::Mismatch {
                        found: ch.into(),
                        expected: out[0].into(),
                    },
                ));
            }
        } else {
            forbid("align", align_off, align)?;
        }
        if op == LayerOp::InputZp {
            let z = reference("zero_point", zp_off, zero_point, t.zero_points.len(), true)?
                .unwrap_or(0);
            let (ch, bits) = t
                .zero_points
                .get(z)
                .map_or((0, 0), |x| (x.channels(), x.bits()));
            if ch != out[0] {
                return Err(fe(
                    "zero_point",
                    zp_off,
                    ErrorKind::Mismatch {
                        found: ch.into(),
                        expected: out[0].into(),
                    },
                ));
            }
            if bits != r.act_bits {
                return Err(fe(
                    "zero_point",
                    zp_off,
                    ErrorKind::Mismatch {
                        found: bits.into(),
                        expected: r.act_bits.into(),
                    },
                ));
            }
        } else {
            forbid("zero_point", zp_off, zero_point)?;
        }
        // Shapes.
        if op.is_input() {
            continue;
        }
        let input_shape = |k: usize| -> [u32; 3] {
            graph
                .table
                .get(r.inputs[k].get())
                .map_or([0; 3], |l| get3(&l.out_shape))
        };
        let inp = input_shape(0);
        let expected: [u32; 3] = match op {
            LayerOp::Input | LayerOp::InputZp => out,
            LayerOp::Conv2d | LayerOp::MaxPool2d | LayerOp::AvgPool2d => {
                let [kh, kw] = get2(&r.kernel);
                let [sh, sw] = get2(&r.stride);
                let [dh, dw] = get2(&r.dilation);
                let p = [
                    r.padding[0].get(),
                    r.padding[1].get(),
                    r.padding[2].get(),
                    r.padding[3].get(),
                ];
                let h = window_out(inp[1], p[0], p[2], kh, sh, dh);
                let w = window_out(inp[2], p[1], p[3], kw, sw, dw);
                let (Some(h), Some(w)) = (h, w) else {
                    return Err(fe(
                        "kernel",
                        offset_of!(RawLayer, kernel),
                        ErrorKind::Invalid {
                            found: kh.max(kw).into(),
                            expected: "a window that fits the padded input",
                        },
                    ));
                };
                let c = if op == LayerOp::Conv2d {
                    out[0]
                } else {
                    inp[0]
                };
                if op == LayerOp::Conv2d {
                    let g = r.groups.get();
                    if inp[0] % g != 0 || !out[0].is_multiple_of(g) {
                        return Err(fe(
                            "groups",
                            offset_of!(RawLayer, groups),
                            ErrorKind::Invalid {
                                found: g.into(),
                                expected: "a divisor of the input and output channels",
                            },
                        ));
                    }
                    check_weight_dims(&fe, t, r, &[out[0], inp[0] / g, kh, kw])?;
                }
                [c, h, w]
            }
            LayerOp::Linear => {
                if inp[1] != 1 || inp[2] != 1 {
                    return Err(fe(
                        "inputs",
                        offset_of!(RawLayer, inputs),
                        ErrorKind::Invalid {
                            found: u64::from(inp[1]) * u64::from(inp[2]),
                            expected: "an input of shape [c, 1, 1] (flatten first)",
                        },
                    ));
                }
                check_weight_dims(&fe, t, r, &[out[0], inp[0]])?;
                [out[0], 1, 1]
            }
            LayerOp::GlobalAvgPool => [inp[0], 1, 1],
            LayerOp::Add | LayerOp::AlignedAdd => {
                if op == LayerOp::AlignedAdd {
                    let main = graph.table.get(r.inputs[0].get());
                    let (main_op, main_abits) = main.map_or((0, 0), |l| (l.op.get(), l.act_bits));
                    let accumulator = matches!(
                        LayerOp::from_raw(main_op),
                        Some(LayerOp::Conv2d | LayerOp::Linear)
                    ) && main_abits == 0;
                    if !accumulator {
                        return Err(fe(
                            "inputs",
                            offset_of!(RawLayer, inputs),
                            ErrorKind::Invalid {
                                found: main_op.into(),
                                expected: "a conv2d or linear layer with act_bits 0 (an accumulator) as the main input",
                            },
                        ));
                    }
                }
                let other = input_shape(1);
                if other != inp {
                    let found = u64::from(other[0]) * u64::from(other[1]) * u64::from(other[2]);
                    let expected = u64::from(inp[0]) * u64::from(inp[1]) * u64::from(inp[2]);
                    return Err(fe(
                        "inputs",
                        offset_of!(RawLayer, inputs) + 4,
                        ErrorKind::Mismatch { found, expected },
                    ));
                }
                inp
            }
            LayerOp::Flatten => {
                // Each dimension is at most 2^24, so the product of all three (up to 2^72)
                // is formed in 128 bits: in 64 bits it could wrap to a small, accepted count.
                let n = u128::from(inp[0]) * u128::from(inp[1]) * u128::from(inp[2]);
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                if n > u64::from(caps::DIM) {
                    return Err(fe(
                        "out_shape",
                        offset_of!(RawLayer, out_shape),
                        ErrorKind::CountCap {
                            count: n,
                            cap: caps::DIM.into(),
                        },
                    ));
                }
                [n as u32, 1, 1]
            }
            LayerOp::Relu => inp,
        };
        for k in 0..3 {
            if out[k] != expected[k] {
                return Err(fe(
                    "out_shape",
                    offset_of!(RawLayer, out_shape) + 4 * k,
                    ErrorKind::Mismatch {
                        found: out[k].into(),
                        expected: expected[k].into(),
                    },
                ));
            }
        }
    }
    Ok(())
}

fn check_weight_dims(
    fe: &dyn Fn(&'static str, usize, ErrorKind) -> Error,
    t: &Tables<'_, '_>,
    r: &RawLayer,
    want: &[u32],
) -> Result<()> {
    let dims = t
        .weights
        .get(r.weights.get())
        .map(|w| w.dims())
        .unwrap_or(&[]);
    if dims.len() != want.len() {
        return Err(fe(
            "weights",
            offset_of!(RawLayer, weights),
            ErrorKind::Mismatch {
                found: dims.len() as u64,
                expected: want.len() as u64,
            },
        ));
    }
    for (d, &w) in dims.iter().zip(want) {
        if d.get() != w {
            return Err(fe(
                "weights",
                offset_of!(RawLayer, weights),
                ErrorKind::Mismatch {
                    found: d.get().into(),
                    expected: w.into(),
                },
            ));
        }
    }
    Ok(())
}

impl<'a> Layer<'a> {
    /// ALIGNS index of an `aligned_add` layer (format 1.1).
    pub fn align(&self) -> Option<u32> {
        self.ext.and_then(|e| opt(&e.align))
    }

    /// ZERO_POINTS index of an `input_zp` layer (format 1.1).
    pub fn zero_point(&self) -> Option<u32> {
        self.ext.and_then(|e| opt(&e.zero_point))
    }

    /// The operation.
    pub fn op(&self) -> LayerOp {
        LayerOp::from_raw(self.raw.op.get()).unwrap_or(LayerOp::Input)
    }

    /// The layer name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Indices of the layers feeding this one.
    pub fn inputs(&self) -> impl Iterator<Item = u32> + 'a {
        let n = usize::from(self.raw.input_count).min(4);
        self.raw.inputs[..n].iter().map(|v| v.get())
    }

    /// Output shape `[c, h, w]`.
    pub fn out_shape(&self) -> [u32; 3] {
        get3(&self.raw.out_shape)
    }

    /// Kernel `[kh, kw]` (zero for ops without a window).
    pub fn kernel(&self) -> [u32; 2] {
        get2(&self.raw.kernel)
    }

    /// Stride `[sh, sw]`.
    pub fn stride(&self) -> [u32; 2] {
        get2(&self.raw.stride)
    }

    /// Padding `[top, left, bottom, right]`.
    pub fn padding(&self) -> [u32; 4] {
        let p = &self.raw.padding;
        [p[0].get(), p[1].get(), p[2].get(), p[3].get()]
    }

    /// Dilation `[dh, dw]`.
    pub fn dilation(&self) -> [u32; 2] {
        get2(&self.raw.dilation)
    }

    /// Group count.
    pub fn groups(&self) -> u32 {
        self.raw.groups.get()
    }

    /// Bits of the weight indices (0 without weights).
    pub fn weight_bits(&self) -> u8 {
        self.raw.weight_bits
    }

    /// Bits of the output codes (0 when the output is not requantized).
    pub fn act_bits(&self) -> u8 {
        self.raw.act_bits
    }

    /// WEIGHTS index.
    pub fn weights(&self) -> Option<u32> {
        opt(&self.raw.weights)
    }

    /// CODEBOOKS index of the weight codebook.
    pub fn weight_codebook(&self) -> Option<u32> {
        opt(&self.raw.weight_codebook)
    }

    /// SCALES index of the weight scale.
    pub fn weight_scale(&self) -> Option<u32> {
        opt(&self.raw.weight_scale)
    }

    /// BIASES index.
    pub fn bias(&self) -> Option<u32> {
        opt(&self.raw.bias)
    }

    /// THRESHOLDS index.
    pub fn thresholds(&self) -> Option<u32> {
        opt(&self.raw.thresholds)
    }

    /// CODEBOOKS index of the output-code codebook.
    pub fn act_codebook(&self) -> Option<u32> {
        opt(&self.raw.act_codebook)
    }

    /// SCALES index of the output scale.
    pub fn act_scale(&self) -> Option<u32> {
        opt(&self.raw.act_scale)
    }
}
