//! The integer model: a graph of integer-only operations over codebook levels.

use nuq_core::Codebook;

use crate::error::ModelProblem;
use nuq_core::{FixedPointMultiplier, Scale};

use crate::integer::requant::Requant;
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

/// Weights as codebook indices and the codebook whose integer levels they decode to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTable {
    /// The codebook: at most `2^bits` levels on a signed grid of at most 8 bits (a
    /// [`Codebook::table`] read from a file may repeat a level).
    pub codebook: Codebook,
    /// Row-major `[out][k]` indices; for a convolution `k` runs over `(ky, kx, c_in)` (OHWI).
    pub indices: Vec<u8>,
}

impl WeightTable {
    /// `bits`-bit indices into a level table on the signed 8-bit grid ([`Codebook::table`]:
    /// non-decreasing, at most `2^bits` levels in `-127..=127`).
    ///
    /// # Errors
    /// The table's [`nuq_core::Error`].
    pub fn new(bits: u8, levels: &[i32], indices: Vec<u8>) -> Result<WeightTable, nuq_core::Error> {
        Ok(WeightTable {
            codebook: Codebook::table(nuq_core::Grid::I8, bits, levels)?,
            indices,
        })
    }

    /// Index bits.
    pub fn bits(&self) -> u8 {
        self.codebook.bits()
    }

    /// The levels as the `i8` lookup table the integer kernels decode through (the model's
    /// validation keeps the grid within `i8`).
    pub fn lut(&self) -> Vec<i8> {
        self.codebook
            .levels()
            .iter()
            .map(|&l| l.clamp(-128, 127) as i8)
            .collect()
    }

    /// The decoded level of every weight, row-major like [`WeightTable::indices`].
    pub fn decoded(&self) -> Vec<i8> {
        let lut = self.lut();
        self.indices.iter().map(|&i| lut[usize::from(i)]).collect()
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
    /// Dilation (square): tap `(ky, kx)` of output `(oy, ox)` reads input
    /// `(oy·stride + ky·dilation − padding, ox·stride + kx·dilation − padding)`; 1 is a
    /// plain convolution. The kernel spans `dilation·(kernel − 1) + 1` positions.
    pub dilation: usize,
    /// Channel groups: output channel `o` reads only the `c_in / groups` input channels of
    /// its group (`groups == c_in` is depthwise).
    pub groups: usize,
    /// Weights `[c_out][kernel · kernel · c_in / groups]`.
    pub weights: WeightTable,
    /// Per-output-channel bias in accumulator units, added before requantization.
    pub bias: Vec<i32>,
    /// Real value of one weight level (the mean of per-channel scales, as `f32` like the
    /// file stores it); informative only: the thresholds already hold every scale.
    pub weight_scale: Scale,
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
    pub align: Vec<FixedPointMultiplier>,
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
    /// Positions added on every side, at most `kernel / 2`; they never win (PyTorch's `−∞`
    /// padding: every window still covers an input position).
    pub padding: usize,
}

/// A fully connected layer over the flattened activation levels, producing the class logits as
/// int32.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearNode {
    /// Input tensor.
    pub input: TensorId,
    /// Input features (`c · h · w` of the input tensor).
    pub in_features: usize,
    /// Output features (classes).
    pub out_features: usize,
    /// Weights `[out][in]`, the input features in PyTorch's flatten order `[c][h][w]` (as the
    /// float network and the `.nuq` file hold them).
    pub weights: WeightTable,
    /// Bias in accumulator units.
    pub bias: Vec<i32>,
    /// Real value of one weight level (informative).
    pub weight_scale: Scale,
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
    pub logit_scale: Scale,
}

/// The error for `problem` at node `node` (`usize::MAX`: the input).
fn bad(node: usize, problem: ModelProblem) -> NnError {
    NnError::InvalidModel {
        node: (node != usize::MAX).then_some(node),
        problem,
    }
}

/// An input of the wrong kind or shape for `op`.
fn wrong_input(op: &'static str, expected: String, found: &TensorInfo) -> ModelProblem {
    ModelProblem::Input {
        op,
        expected,
        found: format!("{:?} {}×{}×{}", found.kind, found.h, found.w, found.c),
    }
}

impl IntegerModel {
    /// Checks the graph and returns the shape and kind of every tensor (`[0]` is the input).
    ///
    /// # Errors
    /// [`NnError::InvalidModel`] naming the node and the [`ModelProblem`],
    /// [`NnError::TooLarge`] for a tensor past [`MAX_TENSOR_ELEMENTS`].
    pub fn tensor_infos(&self) -> Result<Vec<TensorInfo>, NnError> {
        let inp = &self.input;
        if inp.zero_point.len() != inp.channels {
            return Err(bad(
                usize::MAX,
                ModelProblem::Count {
                    what: "zero points",
                    expected: inp.channels,
                    found: inp.zero_point.len(),
                },
            ));
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
                    .ok_or_else(|| bad(i, ModelProblem::ForwardReference(id)))
            };
            let info = match node {
                Node::Conv(c) => {
                    let x = get(c.input)?;
                    if x.kind != TensorKind::Levels || x.c != c.c_in {
                        return Err(bad(
                            i,
                            wrong_input("conv", format!("levels with {} channels", c.c_in), &x),
                        ));
                    }
                    if c.groups == 0
                        || !c.c_in.is_multiple_of(c.groups)
                        || !c.c_out.is_multiple_of(c.groups)
                    {
                        return Err(bad(
                            i,
                            ModelProblem::Groups {
                                groups: c.groups,
                                c_in: c.c_in,
                                c_out: c.c_out,
                            },
                        ));
                    }
                    for (what, v) in [
                        ("conv kernel", c.kernel),
                        ("conv stride", c.stride),
                        ("conv dilation", c.dilation),
                        ("conv output channels", c.c_out),
                    ] {
                        if v == 0 {
                            return Err(bad(i, ModelProblem::NotPositive(what)));
                        }
                    }
                    // The positions the dilated kernel spans.
                    let span = c
                        .dilation
                        .checked_mul(c.kernel - 1)
                        .and_then(|s| s.checked_add(1))
                        .ok_or_else(|| {
                            too_large(i, "dilated conv kernel", &[c.kernel, c.dilation])
                        })?;
                    let oh = window_out(i, "conv", x.h, c.padding, span, c.stride)?;
                    let ow = window_out(i, "conv", x.w, c.padding, span, c.stride)?;
                    let k = c
                        .kernel
                        .checked_mul(c.kernel)
                        .and_then(|kk| kk.checked_mul(c.c_in / c.groups))
                        .filter(|&k| k as u64 <= MAX_TENSOR_ELEMENTS)
                        .ok_or_else(|| {
                            let dims = [c.kernel, c.kernel, c.c_in / c.groups];
                            too_large(i, "conv weight row", &dims)
                        })?;
                    check_weights(i, &c.weights, c.c_out, k)?;
                    if c.bias.len() != c.c_out {
                        return Err(bad(
                            i,
                            ModelProblem::Count {
                                what: "biases",
                                expected: c.c_out,
                                found: c.bias.len(),
                            },
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
                            wrong_input(
                                "add",
                                format!("an accumulator and a shortcut of its shape ({x:?})"),
                                &y,
                            ),
                        ));
                    }
                    if a.a_shift > 30 {
                        return Err(bad(i, ModelProblem::ShiftTooLarge(a.a_shift)));
                    }
                    if a.align.len() != x.c {
                        return Err(bad(
                            i,
                            ModelProblem::Count {
                                what: "align factors",
                                expected: x.c,
                                found: a.align.len(),
                            },
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
                    if x.kind != TensorKind::Levels {
                        return Err(bad(i, wrong_input("max-pool", "levels".into(), &x)));
                    }
                    if p.kernel == 0 || p.stride == 0 {
                        return Err(bad(
                            i,
                            ModelProblem::NotPositive("max-pool kernel and stride"),
                        ));
                    }
                    if p.padding > p.kernel / 2 {
                        return Err(bad(
                            i,
                            ModelProblem::PoolPadding {
                                kernel: p.kernel,
                                padding: p.padding,
                            },
                        ));
                    }
                    TensorInfo {
                        h: window_out(i, "max-pool", x.h, p.padding, p.kernel, p.stride)?,
                        w: window_out(i, "max-pool", x.w, p.padding, p.kernel, p.stride)?,
                        ..x
                    }
                }
                Node::GlobalAvgPool { input } => {
                    let x = get(*input)?;
                    if x.kind != TensorKind::Levels {
                        return Err(bad(
                            i,
                            wrong_input("global average pool", "levels".into(), &x),
                        ));
                    }
                    TensorInfo { h: 1, w: 1, ..x }
                }
                Node::Linear(l) => {
                    let x = get(l.input)?;
                    if l.out_features == 0 {
                        return Err(bad(i, ModelProblem::NotPositive("linear outputs")));
                    }
                    if x.kind != TensorKind::Levels || x.len() != l.in_features {
                        return Err(bad(
                            i,
                            wrong_input("linear", format!("{} levels", l.in_features), &x),
                        ));
                    }
                    check_weights(i, &l.weights, l.out_features, l.in_features)?;
                    if l.bias.len() != l.out_features {
                        return Err(bad(
                            i,
                            ModelProblem::Count {
                                what: "biases",
                                expected: l.out_features,
                                found: l.bias.len(),
                            },
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
            _ => Err(bad(
                self.nodes.len().checked_sub(1).unwrap_or(usize::MAX),
                ModelProblem::NoClassifier,
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
                Node::Conv(c) => product(&[out.len(), c.kernel, c.kernel, c.c_in / c.groups]),
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
                let k = (c.kernel * c.kernel * (c.c_in / c.groups)) as u128;
                let mut bytes = rows * k + rows * c.c_out as u128 * 4;
                if c.groups > 1 {
                    // A group's gathered input channels and outputs, and the whole
                    // `acc + bias` of a grouped convolution fused with a join.
                    let x = infos[c.input];
                    bytes += (x.h * x.w * (x.c / c.groups)) as u128 + rows * c.c_out as u128 * 8;
                }
                scratch = scratch.max(bytes);
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
        return Err(bad(
            node,
            ModelProblem::EmptyTensor(format!("{:?} {}×{}×{}", t.kind, t.h, t.w, t.c)),
        ));
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
    what: &'static str,
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
            ModelProblem::Window {
                op: what,
                kernel,
                positions: n,
                padding: pad,
            },
        ));
    }
    Ok((padded - kernel) / stride + 1)
}

fn check_weights(node: usize, w: &WeightTable, rows: usize, k: usize) -> Result<(), NnError> {
    let grid = w.codebook.grid();
    if !grid.is_signed() || grid.bits() > 8 {
        return Err(bad(
            node,
            ModelProblem::WeightGrid {
                bits: grid.bits(),
                signed: grid.is_signed(),
            },
        ));
    }
    if rows.checked_mul(k) != Some(w.indices.len()) {
        return Err(bad(
            node,
            ModelProblem::Count {
                what: "weight indices",
                expected: rows.saturating_mul(k),
                found: w.indices.len(),
            },
        ));
    }
    if let Some(p) = w
        .indices
        .iter()
        .position(|&x| usize::from(x) >= w.codebook.len())
    {
        return Err(bad(
            node,
            ModelProblem::WeightIndex {
                index: w.indices[p],
                position: p,
            },
        ));
    }
    Ok(())
}

/// Transposes every row of `src`, laid out `[a][b]`, to `[b][a]` (rows of `a · b` values).
///
/// Used at the two places where an order meets another: a convolution row is `[ky·kx][c_in]`
/// (OHWI) in memory and `[c_in][ky·kx]` in the `.nuq` file (its writer and reader), and a
/// classifier row holds `[c][h·w]` features that the runner packs as `[h·w][c]` for NHWC
/// activations.
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
