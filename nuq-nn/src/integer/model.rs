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
    /// The codebook: at most `2^bits` non-decreasing levels on the signed 8-bit grid (a level
    /// may repeat).
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

/// Max-pooling of activation levels (exact: codebooks are non-decreasing, so the max of
/// levels is the level of the max code).
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
    if node == usize::MAX {
        return NnError::Config(format!("integer model input: {msg}"));
    }
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
        elements(usize::MAX, &infos[0])?;
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
                    if c.kernel == 0 || c.stride == 0 || c.c_out == 0 {
                        return Err(bad(
                            i,
                            format!(
                                "conv kernel {}, stride {} and {} output channels must be positive",
                                c.kernel, c.stride, c.c_out
                            ),
                        ));
                    }
                    let oh = window_out(i, "conv", x.h, c.padding, c.kernel, c.stride)?;
                    let ow = window_out(i, "conv", x.w, c.padding, c.kernel, c.stride)?;
                    let k = c
                        .kernel
                        .checked_mul(c.kernel)
                        .and_then(|kk| kk.checked_mul(c.c_in))
                        .filter(|&k| k as u64 <= MAX_TENSOR_ELEMENTS)
                        .ok_or_else(|| {
                            too_large(i, "conv weight row", &[c.kernel, c.kernel, c.c_in])
                        })?;
                    check_weights(i, &c.weights, c.c_out, k)?;
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
                        h: oh,
                        w: ow,
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
                    if x.kind != TensorKind::Levels || p.kernel == 0 || p.stride == 0 {
                        return Err(bad(
                            i,
                            format!(
                                "max-pool {}×{} stride {} does not fit {x:?}",
                                p.kernel, p.kernel, p.stride
                            ),
                        ));
                    }
                    TensorInfo {
                        h: window_out(i, "max-pool", x.h, 0, p.kernel, p.stride)?,
                        w: window_out(i, "max-pool", x.w, 0, p.kernel, p.stride)?,
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
                    if l.out_features == 0 {
                        return Err(bad(i, "linear layer with no outputs".into()));
                    }
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
            elements(i, &info)?;
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
            let product = |v: &[usize]| v.iter().fold(1u64, |p, &d| p.saturating_mul(d as u64));
            macs = macs.saturating_add(match node {
                Node::Conv(c) => product(&[out.len(), c.kernel, c.kernel, c.c_in]),
                Node::Linear(l) => product(&[l.in_features, l.out_features]),
                _ => 0,
            });
        }
        Ok(macs)
    }

    /// Bytes of working memory [`crate::integer::IntegerRunner`] needs for a batch of `batch`
    /// images: every tensor of the graph (`u8` levels, `i32` accumulators and logits) plus the
    /// largest convolution's unfolded input and accumulators (an upper bound; saturates at
    /// `u64::MAX`).
    ///
    /// # Errors
    /// As [`IntegerModel::tensor_infos`].
    pub fn working_set_bytes(&self, batch: usize) -> Result<u64, NnError> {
        let infos = self.tensor_infos()?;
        let mut per_image: u128 = 0;
        for t in &infos {
            let bytes = if t.kind == TensorKind::Levels { 1 } else { 4 };
            per_image += t.len() as u128 * bytes;
        }
        let mut scratch: u128 = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            if let Node::Conv(c) = node {
                let out = infos[i + 1];
                let rows = (out.h * out.w) as u128;
                let k = (c.kernel * c.kernel * c.c_in) as u128;
                scratch = scratch.max(rows * k + rows * c.c_out as u128 * 4);
            }
        }
        let total = (per_image + scratch).saturating_mul(batch as u128);
        Ok(u64::try_from(total).unwrap_or(u64::MAX))
    }

    /// Checks that a batch of `batch` images fits in `limit` bytes of working memory
    /// ([`IntegerModel::working_set_bytes`]) and returns the bytes needed.
    ///
    /// # Errors
    /// [`NnError::MemoryLimit`] above the limit; as [`IntegerModel::tensor_infos`].
    pub fn check_memory(&self, batch: usize, limit: u64) -> Result<u64, NnError> {
        let needed = self.working_set_bytes(batch)?;
        if needed > limit {
            return Err(NnError::MemoryLimit {
                needed,
                limit,
                batch,
            });
        }
        Ok(needed)
    }
}

/// Most elements one tensor of one image may hold (2^32): every size the runner computes
/// from a tensor's shape stays far from overflow.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

/// Default working-memory limit of [`crate::integer::IntegerRunner`] and the `nuq` commands
/// that run a model (8 GiB); see [`IntegerModel::working_set_bytes`].
pub const DEFAULT_MEMORY_LIMIT: u64 = 8 << 30;

fn too_large(node: usize, what: &str, dims: &[usize]) -> NnError {
    let place = if node == usize::MAX {
        "integer model input".to_string()
    } else {
        format!("integer model node {node}")
    };
    NnError::TooLarge {
        what: format!("{place}: {what}"),
        detail: format!(
            "{} exceeds {MAX_TENSOR_ELEMENTS} elements",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" × ")
        ),
    }
}

/// Checks that a tensor holds at most [`MAX_TENSOR_ELEMENTS`] elements per image (node
/// `usize::MAX` is the input).
fn elements(node: usize, t: &TensorInfo) -> Result<(), NnError> {
    let n = (t.h as u128) * (t.w as u128) * (t.c as u128);
    if n == 0 {
        return Err(bad(node, format!("tensor {t:?} is empty")));
    }
    if n > u128::from(MAX_TENSOR_ELEMENTS) {
        return Err(too_large(node, "tensor", &[t.c, t.h, t.w]));
    }
    Ok(())
}

/// Output size of a window of `kernel` with `stride` over `n` positions padded by `pad` on
/// both sides, or an error naming the node when the window does not fit.
fn window_out(
    node: usize,
    what: &str,
    n: usize,
    pad: usize,
    kernel: usize,
    stride: usize,
) -> Result<usize, NnError> {
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(n))
        .ok_or_else(|| too_large(node, "padded input", &[n, pad]))?;
    if padded < kernel {
        return Err(bad(
            node,
            format!("{what} window {kernel} does not fit {n} positions padded by {pad}"),
        ));
    }
    Ok((padded - kernel) / stride + 1)
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
    if w.levels.windows(2).any(|p| p[0] > p[1]) {
        return Err(bad(
            node,
            "weight codebook levels are not non-decreasing".into(),
        ));
    }
    if rows.checked_mul(k) != Some(w.indices.len()) {
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
    if a * b == 0 {
        return dst;
    }
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
