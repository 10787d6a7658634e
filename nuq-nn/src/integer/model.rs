//! The integer model: a graph of integer-only operations over codebook levels.

use crate::integer::requant::{Align, Requant};
use crate::NnError;

/// Where a node reads a tensor from: the model input (`0`) or the output of node `i`
/// (`i + 1`). Nodes only read earlier tensors, so the graph is in topological order.
pub type TensorId = usize;

/// The model input: `channels × height × width` image bytes (NHWC per image).
///
/// The first convolution multiplies the raw bytes. Its float twin normalised them as
/// `(byte − zero_point[c]) / (255 · std[c])`; the `1 / (255 · std[c])` factor lives in the
/// first layer's weights and scale, and `zero_point[c]` is the byte that stands for zero, so
/// padding writes `zero_point[c]` (exactly the float model's zero padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// Channels of an image.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Per-channel byte that stands for zero (the padding value).
    pub zero_point: Vec<u8>,
}

/// Weights as codebook indices plus the signed 8-bit integer levels they decode to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTable {
    /// Index bits (1..=8).
    pub bits: u8,
    /// The codebook: at most `2^bits` strictly increasing levels on the signed 8-bit grid.
    pub levels: Vec<i8>,
    /// Row-major `[out][k]` indices; for a convolution `k` runs over `(ky, kx, c_in)`.
    pub indices: Vec<u8>,
}

impl WeightTable {
    /// The decoded level of every weight, row-major like [`WeightTable::indices`].
    pub fn decoded(&self) -> Vec<i8> {
        self.indices
            .iter()
            .map(|&i| self.levels[usize::from(i)])
            .collect()
    }
}

/// What a convolution hands on: requantized activation levels, or the raw accumulator for
/// a residual [`Node::Add`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConvOutput {
    /// Threshold requantization to the next layer's codebook.
    Codes(Requant),
    /// The int32 accumulator (plus bias), consumed by an [`Node::Add`].
    Accumulator,
}

/// A 2-D convolution over NHWC activation levels (`u8`) with codebook weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvNode {
    /// Input tensor.
    pub input: TensorId,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side (the input's zero point for the model input).
    pub padding: usize,
    /// Weights `[c_out][kernel · kernel · c_in]`.
    pub weights: WeightTable,
    /// Per-output-channel bias in accumulator units, added before requantization.
    pub bias: Vec<i32>,
    /// Real value of one weight level (the mean of per-channel scales); informative only:
    /// the thresholds already hold every scale.
    pub weight_scale: f64,
    /// Requantized codes or the accumulator.
    pub output: ConvOutput,
}

/// `requant((a << a_shift) + align(b))`: the residual join of a ResNet block, with `a` an
/// accumulator and `b` an accumulator (projection shortcut) or activation levels (identity
/// shortcut). The sum is formed in 64-bit integers; `a_shift` gives the sum fractional bits
/// so the rounding of `align(b)` costs `2^−a_shift` of an `a` unit.
#[derive(Debug, Clone, PartialEq)]
pub struct AddNode {
    /// The main branch: an accumulator tensor.
    pub a: TensorId,
    /// Left shift of the main accumulator (`0..=30`).
    pub a_shift: u8,
    /// The shortcut: an accumulator or activation levels.
    pub b: TensorId,
    /// Per-channel fixed-point factor bringing `b` into the units of `a`.
    pub align: Vec<Align>,
    /// Requantization of the sum.
    pub output: Requant,
}

/// Max-pooling of activation levels (exact: codebooks are increasing, so the max of levels
/// is the level of the max code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPoolNode {
    /// Input tensor.
    pub input: TensorId,
    /// Square window.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
}

/// A fully connected layer over the flattened (NHWC order) activation levels, producing the
/// class logits as int32.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearNode {
    /// Input tensor (flattened as `h, w, c`).
    pub input: TensorId,
    /// Input features (`h · w · c` of the input tensor).
    pub in_features: usize,
    /// Output features (classes).
    pub out_features: usize,
    /// Weights `[out][in]`.
    pub weights: WeightTable,
    /// Bias in accumulator units.
    pub bias: Vec<i32>,
    /// Real value of one weight level (informative).
    pub weight_scale: f64,
}

/// One integer operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Convolution.
    Conv(ConvNode),
    /// Residual add + requantization.
    Add(AddNode),
    /// Max-pooling.
    MaxPool(MaxPoolNode),
    /// Global average pooling of levels to `1 × 1`, rounded half up:
    /// `(Σ + n/2) / n` with `n = h · w` (integer division).
    GlobalAvgPool {
        /// Input tensor.
        input: TensorId,
    },
    /// Fully connected layer (the classifier).
    Linear(LinearNode),
}

/// The kind of a tensor in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// `u8` activation levels (or the image bytes).
    Levels,
    /// `i32` accumulators.
    Accumulator,
    /// `i32` logits of the classifier.
    Logits,
}

/// Shape and kind of a tensor for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo {
    /// Kind.
    pub kind: TensorKind,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl TensorInfo {
    /// Elements per image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An integer-only CNN: image bytes in, int32 logits out.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegerModel {
    /// The input image.
    pub input: InputSpec,
    /// Nodes in topological order; the last one produces the logits.
    pub nodes: Vec<Node>,
    /// Real value of one logit unit (`logit = logit_scale × int`); informative only, inference
    /// never uses it.
    pub logit_scale: f64,
}

fn bad(node: usize, msg: String) -> NnError {
    NnError::Config(format!("integer model node {node}: {msg}"))
}

impl IntegerModel {
    /// Checks the graph and returns the shape and kind of every tensor (`[0]` is the input).
    ///
    /// # Errors
    /// [`NnError::Config`] naming the node and the inconsistency.
    pub fn tensor_infos(&self) -> Result<Vec<TensorInfo>, NnError> {
        let inp = &self.input;
        if inp.channels == 0 || inp.height == 0 || inp.width == 0 {
            return Err(NnError::Config(
                "integer model input has a zero dimension".into(),
            ));
        }
        if inp.zero_point.len() != inp.channels {
            return Err(NnError::Config(format!(
                "integer model input: {} zero points for {} channels",
                inp.zero_point.len(),
                inp.channels
            )));
        }
        let mut infos = vec![TensorInfo {
            kind: TensorKind::Levels,
            h: inp.height,
            w: inp.width,
            c: inp.channels,
        }];
        for (i, node) in self.nodes.iter().enumerate() {
            let get = |id: TensorId| -> Result<TensorInfo, NnError> {
                infos
                    .get(id)
                    .copied()
                    .ok_or_else(|| bad(i, format!("reads tensor {id}, which is not computed yet")))
            };
            let info = match node {
                Node::Conv(c) => {
                    let x = get(c.input)?;
                    if x.kind != TensorKind::Levels || x.c != c.c_in {
                        return Err(bad(
                            i,
                            format!(
                                "conv expects {} input channels of levels, found {x:?}",
                                c.c_in
                            ),
                        ));
                    }
                    if c.kernel == 0 || c.stride == 0 || x.h + 2 * c.padding < c.kernel {
                        return Err(bad(i, "conv window does not fit its input".into()));
                    }
                    check_weights(i, &c.weights, c.c_out, c.kernel * c.kernel * c.c_in)?;
                    if c.bias.len() != c.c_out {
                        return Err(bad(
                            i,
                            format!("{} biases for {} channels", c.bias.len(), c.c_out),
                        ));
                    }
                    let kind = match &c.output {
                        ConvOutput::Codes(r) => {
                            r.validate(c.c_out).map_err(|e| bad(i, e))?;
                            TensorKind::Levels
                        }
                        ConvOutput::Accumulator => TensorKind::Accumulator,
                    };
                    TensorInfo {
                        kind,
                        h: (x.h + 2 * c.padding - c.kernel) / c.stride + 1,
                        w: (x.w + 2 * c.padding - c.kernel) / c.stride + 1,
                        c: c.c_out,
                    }
                }
                Node::Add(a) => {
                    let x = get(a.a)?;
                    let y = get(a.b)?;
                    if x.kind != TensorKind::Accumulator
                        || y.kind == TensorKind::Logits
                        || (x.h, x.w, x.c) != (y.h, y.w, y.c)
                    {
                        return Err(bad(
                            i,
                            format!("add of incompatible tensors {x:?} and {y:?}"),
                        ));
                    }
                    if a.a_shift > 30 {
                        return Err(bad(i, format!("add shift {} exceeds 30", a.a_shift)));
                    }
                    if a.align.len() != x.c {
                        return Err(bad(
                            i,
                            format!("{} align factors for {} channels", a.align.len(), x.c),
                        ));
                    }
                    a.output.validate(x.c).map_err(|e| bad(i, e))?;
                    TensorInfo {
                        kind: TensorKind::Levels,
                        ..x
                    }
                }
                Node::MaxPool(p) => {
                    let x = get(p.input)?;
                    if x.kind != TensorKind::Levels
                        || p.kernel == 0
                        || p.stride == 0
                        || x.h < p.kernel
                        || x.w < p.kernel
                    {
                        return Err(bad(
                            i,
                            format!("max-pool {}×{} does not fit {x:?}", p.kernel, p.kernel),
                        ));
                    }
                    TensorInfo {
                        h: (x.h - p.kernel) / p.stride + 1,
                        w: (x.w - p.kernel) / p.stride + 1,
                        ..x
                    }
                }
                Node::GlobalAvgPool { input } => {
                    let x = get(*input)?;
                    if x.kind != TensorKind::Levels {
                        return Err(bad(i, format!("global average pool of {x:?}")));
                    }
                    TensorInfo { h: 1, w: 1, ..x }
                }
                Node::Linear(l) => {
                    let x = get(l.input)?;
                    if x.kind != TensorKind::Levels || x.len() != l.in_features {
                        return Err(bad(
                            i,
                            format!("linear expects {} input levels, found {x:?}", l.in_features),
                        ));
                    }
                    check_weights(i, &l.weights, l.out_features, l.in_features)?;
                    if l.bias.len() != l.out_features {
                        return Err(bad(
                            i,
                            format!("{} biases for {} outputs", l.bias.len(), l.out_features),
                        ));
                    }
                    TensorInfo {
                        kind: TensorKind::Logits,
                        h: 1,
                        w: 1,
                        c: l.out_features,
                    }
                }
            };
            infos.push(info);
        }
        match infos.last() {
            Some(t) if t.kind == TensorKind::Logits && !self.nodes.is_empty() => Ok(infos),
            _ => Err(NnError::Config(
                "integer model must end with a linear classifier".into(),
            )),
        }
    }

    /// Number of classes (outputs of the last node).
    ///
    /// # Errors
    /// As [`IntegerModel::tensor_infos`].
    pub fn classes(&self) -> Result<usize, NnError> {
        Ok(self.tensor_infos()?.last().map_or(0, |t| t.c))
    }

    /// Multiply-accumulates of one forward pass for one image.
    ///
    /// # Errors
    /// As [`IntegerModel::tensor_infos`].
    pub fn macs_per_image(&self) -> Result<u64, NnError> {
        let infos = self.tensor_infos()?;
        let mut macs = 0u64;
        for (i, node) in self.nodes.iter().enumerate() {
            let out = infos[i + 1];
            macs += match node {
                Node::Conv(c) => (out.h * out.w * c.c_out * c.kernel * c.kernel * c.c_in) as u64,
                Node::Linear(l) => (l.in_features * l.out_features) as u64,
                _ => 0,
            };
        }
        Ok(macs)
    }
}

fn check_weights(node: usize, w: &WeightTable, rows: usize, k: usize) -> Result<(), NnError> {
    if !(1..=8).contains(&w.bits) || w.levels.is_empty() || w.levels.len() > 1 << w.bits {
        return Err(bad(
            node,
            format!(
                "{}-bit weights need 1..={} levels, found {}",
                w.bits,
                1usize << w.bits.min(8),
                w.levels.len()
            ),
        ));
    }
    if w.levels.windows(2).any(|p| p[0] >= p[1]) {
        return Err(bad(
            node,
            "weight codebook levels are not strictly increasing".into(),
        ));
    }
    if w.indices.len() != rows * k {
        return Err(bad(
            node,
            format!("{} weight indices, expected {rows} × {k}", w.indices.len()),
        ));
    }
    if let Some(p) = w
        .indices
        .iter()
        .position(|&x| usize::from(x) >= w.levels.len())
    {
        return Err(bad(
            node,
            format!("weight index {} at {p} is out of range", w.indices[p]),
        ));
    }
    Ok(())
}

/// Transposes every row of `src`, laid out `[a][b]`, to `[b][a]` (rows of `a · b` values).
///
/// The weight layouts differ only by such a per-row transposition: a convolution row is
/// `[ky·kx][c_in]` here and `[c_in][ky·kx]` in PyTorch and the `.nuq` file, and a classifier
/// row after a flatten is `[h·w][c]` here (NHWC) and `[c][h·w]` there.
pub(crate) fn transpose_rows<T: Copy>(src: &[T], a: usize, b: usize) -> Vec<T> {
    let mut dst = src.to_vec();
    for (s, d) in src.chunks_exact(a * b).zip(dst.chunks_exact_mut(a * b)) {
        for i in 0..a {
            for j in 0..b {
                d[j * a + i] = s[i * b + j];
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::transpose_rows;

    #[test]
    fn transpose_rows_swaps_each_row_and_round_trips() {
        let src: Vec<u8> = (0..12).collect();
        let t = transpose_rows(&src, 2, 3);
        assert_eq!(t, vec![0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
        assert_eq!(transpose_rows(&t, 3, 2), src);
    }
}
